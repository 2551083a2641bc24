"""``govlake users``: the lake owner manages the city service's accounts.

Only the lake owner's local CLI (``Principal.lake_owner``, the OS account by euid) runs these, and every
change is audited under that principal. Passwords are read with hidden input or from stdin
(``--password-stdin``, for scripts), never from an argument (which ``ps`` and shell history would show).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence

import click

from govlake.cli import console, err_console, friendly, lake_option, make_context
from govlake.control.principal import Principal


def emit(rows: Sequence[dict], columns: Sequence[tuple[str, str]], fmt: str, title: str) -> None:
    """Rows as a rich table (headers in Chinese), CSV or JSON (keys as stored). Shared by ``audit list``."""
    keys = [k for k, _ in columns]
    if fmt == "json":
        sys.stdout.write(json.dumps([{k: r.get(k) for k in keys} for r in rows], ensure_ascii=False,
                                    default=str, indent=1) + "\n")
        return
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(keys)
        writer.writerows([["" if r.get(k) is None else str(r[k]) for k in keys] for r in rows])
        sys.stdout.write(buf.getvalue())
        return
    from rich.table import Table
    from rich.text import Text  # cells are data, never rich markup

    t = Table(title=title)
    for _, header in columns:
        t.add_column(header)
    for r in rows:
        t.add_row(*(Text("" if r.get(k) is None else str(r[k])) for k in keys))
    console.print(t)
    console.print(f"共 {len(rows)} 条")


def _password(from_stdin: bool, prompt: str = "密码") -> str:
    if from_stdin:
        return click.get_text_stream("stdin").readline().rstrip("\r\n")
    return click.prompt(prompt, hide_input=True, confirmation_prompt="再次输入以确认", err=True)


@click.group("users")
def group() -> None:
    """Accounts of the city service (users of 1+11+N nodes, roles, API tokens)."""


@group.command("add")
@click.argument("name")
@click.option("--node", required=True, help="The user's node code (catalog/nodes.yaml), e.g. 440106 or gaj.")
@click.option("--role", required=True, help="analyst / steward / admin.")
@click.option("--display-name", default=None, help="A display name (shown in lists).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@lake_option
@friendly
def add(name: str, node: str, role: str, display_name: str | None, password_stdin: bool, lake: str | None) -> None:
    """Create a user of NODE with ROLE."""
    from govlake.control.identities import add_user, check_name, check_password

    ctx = make_context(lake)
    check_name(name)  # refuse a bad name before asking for a password
    password = _password(password_stdin)
    check_password(password, name)
    add_user(ctx.settings, ctx.registry, name, node, role, password, by=Principal.owner_of(ctx.registry), display_name=display_name)
    console.print(f"已创建用户 {name}（{ctx.registry.node(node).label}，{role}）")


@group.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@lake_option
@friendly
def list_(fmt: str, lake: str | None) -> None:
    """Every user with node, role and status (正常 / 已停用 / 已锁定)."""
    from govlake.control.identities import list_users
    from govlake.control.principal import ROLE_NAMES

    ctx = make_context(lake)
    rows = list_users(ctx.settings)
    for r in rows:
        node = ctx.registry.nodes.get(r["node"])
        r["node_name"] = node.name if node else "（节点已不在登记表中）"
        r["role_name"] = ROLE_NAMES.get(r["role"], r["role"])
        r["created"] = r["created_at"].strftime("%Y-%m-%d %H:%M UTC") if r["created_at"] else None
        r["node_label"] = f"{r['node']} {r['node_name']}"
    if fmt == "table":
        columns = [("name", "用户名"), ("display_name", "显示名"), ("node_label", "节点"), ("role", "角色"),
                   ("status", "状态"), ("created", "创建时间")]
    else:
        columns = [("name", "用户名"), ("display_name", "显示名"), ("node", "节点"), ("node_name", "节点名称"),
                   ("role", "角色"), ("role_name", "角色名称"), ("status", "状态"), ("created", "创建时间"),
                   ("created_by", "创建者")]
    emit(rows, columns, fmt, "控制库用户")


@group.command("disable")
@click.argument("name")
@lake_option
@friendly
def disable(name: str, lake: str | None) -> None:
    """Disable NAME (their sessions and API tokens end at once)."""
    from govlake.control.identities import disable_user

    ctx = make_context(lake)
    disable_user(ctx.settings, name, by=Principal.owner_of(ctx.registry))
    console.print(f"已停用用户 {name}，其会话和令牌已失效")


@group.command("reset")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the new password from the first line of stdin.")
@lake_option
@friendly
def reset(name: str, password_stdin: bool, lake: str | None) -> None:
    """Set a new password for NAME and clear a lockout."""
    from govlake.control.identities import reset_password

    ctx = make_context(lake)
    reset_password(ctx.settings, name, _password(password_stdin, "新密码"), by=Principal.owner_of(ctx.registry))
    console.print(f"已重设用户 {name} 的密码并解除锁定")


@group.command("token")
@click.argument("name")
@click.option("--days", type=int, default=90, show_default=True, help="Days until the token expires.")
@click.option("--label", default=None, help="What the token is for (e.g. the client).")
@lake_option
@friendly
def token(name: str, days: int, label: str | None, lake: str | None) -> None:
    """Issue an API token for NAME (printed once; only its digest is kept)."""
    from govlake.control.identities import issue_token

    ctx = make_context(lake)
    secret = issue_token(ctx.settings, name, by=Principal.owner_of(ctx.registry), label=label, days=days)
    click.echo(secret)
    err_console.print(f"以上为用户 {name} 的 API 令牌，有效 {days} 天，仅显示这一次；请妥善保存。"
                      f"连接时用户名填 {name}，密码填该令牌。", highlight=False)


@group.command("revoke-token")
@click.argument("token_id", type=int)
@lake_option
@friendly
def revoke_token_cmd(token_id: int, lake: str | None) -> None:
    """Revoke the API token glk_<TOKEN_ID>_..."""
    from govlake.control.identities import revoke_token

    ctx = make_context(lake)
    revoke_token(ctx.settings, token_id, by=Principal.owner_of(ctx.registry))
    console.print(f"已吊销令牌 {token_id}")
