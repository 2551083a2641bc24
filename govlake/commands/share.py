"""``govlake share``: the 共享申请 workflow from the lake owner's command line.

The CLI acts as the lake owner (``Principal.lake_owner``: the administrator of the deployment), so it lists
every request, decides, revokes and sweeps. It cannot file a request on someone's behalf: an identity is
never taken from a flag. Users file requests as themselves in the dashboard (我的申请), and stewards decide
their node's requests there (待办); both call ``govlake.control.sharing`` like these commands do.
"""

from __future__ import annotations

import click

from govlake.cli import console, friendly, lake_option, make_context
from govlake.commands.users import emit
from govlake.control.principal import Principal

FORMATS = click.Choice(["table", "csv", "json"])
REQUEST_COLUMNS = (("id", "编号"), ("requester", "申请人"), ("requester_node", "申请节点"), ("dataset", "数据集"),
                   ("layer", "层"), ("fields_shown", "字段"), ("period_days", "期限(天)"), ("share_type", "共享属性"),
                   ("owner_node", "提供节点"), ("status", "状态"), ("flag", "标记"), ("created", "提交日期"),
                   ("due", "答复期限"), ("grant_id", "授权"))
GRANT_COLUMNS = (("id", "授权"), ("user", "用户"), ("node", "节点"), ("dataset", "数据集"), ("layer", "层"),
                 ("columns_shown", "字段"), ("max_grade", "最高级别"), ("row_scope", "行范围"), ("state", "状态"),
                 ("expires", "到期"), ("request_id", "申请"))


def _day(value) -> str:
    from govlake.control.workdays import CHINA

    return value.astimezone(CHINA).strftime("%Y-%m-%d") if value is not None else ""


def _request_row(r: dict) -> dict:
    return {**r, "fields_shown": "全部" if r["fields"] is None else "、".join(r["fields"]),
            "created": _day(r["created_at"]), "due": _day(r["due_at"])}


def _grant_row(g: dict) -> dict:
    return {**g, "columns_shown": "全部" if g["columns"] is None else "、".join(g["columns"]),
            "row_scope": g["row_scope"] or "全市", "expires": _day(g["expires_at"])}


@click.group("share")
def group() -> None:
    """共享申请: list requests, approve or reject them, revoke grants, sweep expiries (as the lake owner)."""


@group.command("list")
@click.option("--status", default=None, help="Only requests in this state (待审核 已批准 已驳回 已撤销 已过期 已撤回).")
@click.option("--node", default=None, help="Only requests routed to this owner node.")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@lake_option
@friendly
def list_cmd(status: str | None, node: str | None, fmt: str, lake: str | None) -> None:
    """Every sharing request, newest first; pending ones past their reply deadline are flagged 已超期."""
    from govlake.control import sharing
    from govlake.errors import RegistryError, did_you_mean

    ctx = make_context(lake)
    if status is not None and status not in set(sharing.ShareStatus):
        raise RegistryError(f"未知状态：{status}", where="--status",
                            hint=did_you_mean(status, set(sharing.ShareStatus)) or f"可选：{' '.join(sharing.ShareStatus)}")
    if node is not None:
        try:
            ctx.registry.node(node)
        except RegistryError as exc:
            raise RegistryError(exc.message, where="--node", hint=exc.hint) from None
    rows = [_request_row(r) for r in sharing.list_requests(ctx.settings, status=status, node=node)]
    emit(rows, REQUEST_COLUMNS, fmt, "共享申请")


def _decide(request_id: int, approve: bool, reason: str | None, lake: str | None) -> None:
    from govlake.control import sharing

    ctx = make_context(lake)
    r = sharing.decide(ctx.settings, ctx.registry, Principal.owner_of(ctx.registry), request_id, approve, reason)
    extra = f"，授权 #{r['grant_id']} 有效期至 {_day(r['grant_expires_at'])}" if r["grant_id"] else ""
    console.print(f"申请 #{request_id}（{r['dataset']}，申请人 {r['requester']}）{r['status']}{extra}")


@group.command("approve")
@click.argument("request_id", type=int)
@click.option("--reason", default=None, help="Why (optional when approving; shown to the requester).")
@lake_option
@friendly
def approve(request_id: int, reason: str | None, lake: str | None) -> None:
    """Approve pending request REQUEST_ID: the requester is granted the requested fields."""
    _decide(request_id, True, reason, lake)


@group.command("reject")
@click.argument("request_id", type=int)
@click.option("--reason", required=True, help="Why the request is rejected (required; shown to the requester).")
@lake_option
@friendly
def reject(request_id: int, reason: str, lake: str | None) -> None:
    """Reject pending request REQUEST_ID with a reason."""
    _decide(request_id, False, reason, lake)


@group.command("revoke")
@click.argument("grant_id", type=int)
@click.option("--reason", required=True, help="Why the grant is revoked (required).")
@lake_option
@friendly
def revoke(grant_id: int, reason: str, lake: str | None) -> None:
    """Revoke grant GRANT_ID before its expiry."""
    from govlake.control import sharing

    ctx = make_context(lake)
    g = sharing.revoke(ctx.settings, ctx.registry, Principal.owner_of(ctx.registry), grant_id, reason)
    console.print(f"授权 #{grant_id}（{g['dataset']}，用户 {g['user']}）已撤销")


@group.command("grants")
@click.option("--user", default=None, help="Only this user's grants.")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@lake_option
@friendly
def grants_cmd(user: str | None, fmt: str, lake: str | None) -> None:
    """Every grant with its state (生效中 / 已过期 / 已撤销)."""
    from govlake.control import sharing

    ctx = make_context(lake)
    rows = [_grant_row(g) for g in sharing.list_grants(ctx.settings, user=user)]
    emit(rows, GRANT_COLUMNS, fmt, "授权")


@group.command("sweep")
@lake_option
@friendly
def sweep(lake: str | None) -> None:
    """Mark requests whose grant ran out as 已过期 and report pending requests past their deadline."""
    from govlake.control import sharing

    ctx = make_context(lake)
    out = sharing.expire_and_flag(ctx.settings, by=Principal.owner_of(ctx.registry))
    console.print(f"已过期的授权：{len(out['expired'])} 个；已超期未答复的申请：{len(out['overdue'])} 个")
    for r in out["overdue"]:
        console.print(f"  申请 #{r['id']}（{r['dataset']}）答复期限 {_day(r['due_at'])}，提供节点 {r['owner_node']}")
