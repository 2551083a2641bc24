"""``govlake audit``: read and verify the tamper-evident audit log of the control plane."""

from __future__ import annotations

import sys
from datetime import timezone

import click

from govlake.cli import console, err_console, friendly, lake_option, make_context
from govlake.commands.users import emit

BROKEN_EXIT = 3  # the chain does not verify (AuditError's exit code)


@click.group("audit")
def group() -> None:
    """The audit log: every query and workflow step, hash-chained."""


def _head(value: str | None) -> tuple[int, str] | None:
    if value is None:
        return None
    seq, sep, digest = value.partition(":")
    if not sep or not seq.isdigit() or len(digest) != 64:
        raise click.BadParameter("应为 序号:哈希（govlake audit verify 输出的“链头”）", param_hint="--head")
    return int(seq), digest


@group.command("verify")
@click.option("--head", "head", default=None, metavar="SEQ:HASH",
              help="A head printed by an earlier verify and recorded elsewhere: the chain must still reach it.")
@lake_option
@friendly
def verify_cmd(head: str | None, lake: str | None) -> None:
    """Walk the hash chain from the first record; exit 3 at the first break or a cut-off tail."""
    from govlake.control.audit import verify

    ctx = make_context(lake)
    result = verify(ctx.settings, _head(head))
    if result.ok:
        console.print(f"审计日志完整：{result.rows} 条记录，哈希链校验通过")
        if result.head and result.head[0]:
            console.print(f"链头：{result.head[0]}:{result.head[1]}（请另行记录，日后以 --head 核对末尾未被删除）",
                          highlight=False)
        return
    err_console.print(f"[bold red]审计日志校验失败：[/]第 {result.first_bad} 条记录（seq={result.first_bad}）"
                      f"{result.problem}。该记录及其后的记录不可信，请从备份核对并调查。", highlight=False)
    sys.exit(BROKEN_EXIT)


@group.command("list")
@click.option("--user", default=None, help="Only this user's records (a failed login shows as ?NAME).")
@click.option("--action", default=None, help="Only actions starting with this (sql, login, users., share. ...).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@lake_option
@friendly
def list_cmd(user: str | None, action: str | None, limit: int, fmt: str, lake: str | None) -> None:
    """The newest audit records, newest first."""
    from govlake.control.audit import rows

    ctx = make_context(lake)
    records = rows(ctx.settings, user=user, action=action, limit=limit)
    for r in records:  # stored UTC (SQLite hands it back naive)
        if r.get("at") is not None:
            at = r["at"] if r["at"].tzinfo else r["at"].replace(tzinfo=timezone.utc)
            r["at"] = at.strftime("%Y-%m-%d %H:%M:%S") if fmt == "table" else at.isoformat()
    if fmt == "table":
        columns = [("seq", "序号"), ("at", "时间(UTC)"), ("user_name", "用户"), ("action", "操作"),
                   ("outcome", "结果"), ("tables", "表"), ("rows", "行数"), ("detail", "详情")]
    else:
        columns = [("seq", "序号"), ("at", "时间(UTC)"), ("user_name", "用户"), ("node", "节点"), ("role", "角色"),
                   ("auth", "认证"), ("action", "操作"), ("outcome", "结果"), ("tables", "表"), ("rows", "行数"),
                   ("grant_ids", "授权"), ("detail", "详情"), ("digest", "摘要"), ("request_id", "请求"),
                   ("hash", "哈希")]
    emit(records, columns, fmt, "审计日志")
