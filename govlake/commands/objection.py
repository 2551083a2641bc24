"""``govlake objection``: the 数据异议 (校核纠错) queue, run by the lake owner locally.

Users file objections through the dashboard (``govlake.control.objections.file_objection``); these commands
list them, move them on as the source node's answer comes in, and reconcile them with the lake after a
re-delivery (``govlake run`` does that too). They act as the lake owner (``Principal.lake_owner``, an
administrator), and every step is audited.
"""

from __future__ import annotations

import click

from govlake.cli import console, friendly, lake_option, make_context
from govlake.commands.users import emit
from govlake.control.principal import Principal

STATUS_CHOICES = ("已提交", "已受理", "核实中", "已更正", "已驳回", "submitted", "accepted", "verifying", "corrected",
                  "rejected")
COLUMNS = [("id", "编号"), ("status", "状态"), ("table_name", "表"), ("record_ref", "记录"), ("field", "字段"),
           ("item", "数据项"), ("source_node", "办理节点"), ("due_at", "办理时限(UTC)"), ("overdue", "逾期"),
           ("reason", "理由"), ("resolution", "办理结果")]


@click.group("objection")
def group() -> None:
    """数据异议：列出、办理、按重新交付的数据核对。"""


@group.command("list")
@click.option("--node", default=None, help="Only objections routed to this node (e.g. gaj, 440103).")
@click.option("--status", type=click.Choice(STATUS_CHOICES), default=None, help="Only objections in this state.")
@click.option("--overdue", "only_overdue", is_flag=True, help="Only open objections past their state's deadline.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@lake_option
@friendly
def list_cmd(node: str | None, status: str | None, only_overdue: bool, fmt: str, lake: str | None) -> None:
    """Objections, newest first."""
    from govlake.control.objections import listing

    ctx = make_context(lake)
    if node:
        ctx.registry.node(node)  # an unknown node fails with "did you mean"
    rows = listing(ctx.settings, node=node, status=status, only_overdue=only_overdue)
    for r in rows:
        r["overdue"] = "是" if r["overdue"] else ""
        if fmt == "table" and r.get("due_at") is not None:
            r["due_at"] = r["due_at"].strftime("%Y-%m-%d %H:%M")
    emit(rows, COLUMNS, fmt, "数据异议")


@group.command("advance")
@click.argument("objection_id", type=int)
@click.argument("status", type=click.Choice(STATUS_CHOICES))
@click.option("--note", default=None, help="The handling note; required to reject (已驳回).")
@lake_option
@friendly
def advance_cmd(objection_id: int, status: str, note: str | None, lake: str | None) -> None:
    """Move objection OBJECTION_ID to STATUS (已受理 → 核实中 → 已更正 / 已驳回)."""
    from govlake.control.objections import advance

    ctx = make_context(lake)
    row = advance(ctx.settings, ctx.registry, Principal.owner_of(ctx.registry), objection_id, status, note)
    console.print(f"异议 #{row['id']} 现为“{row['status']}”", highlight=False)


@group.command("reconcile")
@lake_option
@friendly
def reconcile_cmd(lake: str | None) -> None:
    """Close as 已更正 the open objections whose disputed value a re-delivery changed."""
    from govlake.control.objections import reconcile

    ctx = make_context(lake)
    closed = reconcile(ctx)
    if closed:
        console.print(f"已更正 {len(closed)} 条异议：{', '.join(f'#{i}' for i in closed)}", highlight=False)
    else:
        console.print("没有因重新交付而更正的异议")
