"""The tamper-evident audit log: ``govlake audit verify`` passes on an honest log and finds an edited, a
deleted and a forged row; ``govlake audit list`` filters; concurrent writers never fork the chain."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from govlake.control import audit
from govlake.control.audit import AuditEvent

from .conftest import PASSWORD, append_concurrently



def _db(ctx) -> Path:
    return Path(ctx.settings.control_db.split("///", 1)[1])


def _seed(ctx, make_user, n: int = 4) -> None:
    make_user("audit.user")
    for i in range(n):
        audit.record(ctx.settings, audit.Actor.anonymous("x", "cli"), AuditEvent(action="sql", outcome="ok", rows=i))


def test_verify_passes_then_detects_an_edited_row(ctx, govlake, make_user):
    _seed(ctx, make_user)
    ok = govlake("audit", "verify")
    assert ok.returncode == 0, ok.stderr
    assert "审计日志完整：5 条记录，哈希链校验通过" in ok.stdout
    with sqlite3.connect(_db(ctx)) as con:
        con.execute("UPDATE audit_log SET rows = 999 WHERE seq = 3")
    broken = govlake("audit", "verify")
    assert broken.returncode == 3
    assert "seq=3" in broken.stderr and "被修改" in broken.stderr and "Traceback" not in broken.stderr


def test_verify_detects_a_deleted_row(ctx, govlake, make_user):
    _seed(ctx, make_user)
    with sqlite3.connect(_db(ctx)) as con:
        con.execute("DELETE FROM audit_log WHERE seq = 2")
    broken = govlake("audit", "verify")
    assert broken.returncode == 3 and "seq=3" in broken.stderr and "序号不连续" in broken.stderr


def test_verify_detects_a_forged_relinked_chain(ctx, govlake, make_user):
    """Deleting a row and renumbering/relinking the rest without the key still fails: hashes are HMACs."""
    _seed(ctx, make_user)
    with sqlite3.connect(_db(ctx)) as con:
        con.execute("DELETE FROM audit_log WHERE seq = 5")
        con.execute("UPDATE audit_log SET user_name = 'someone.else' WHERE seq = 4")
        import hashlib  # an attacker's best effort: a plain SHA-256 re-link of the edited row
        con.execute("UPDATE audit_log SET hash = ? WHERE seq = 4", (hashlib.sha256(b"forged").hexdigest(),))
    broken = govlake("audit", "verify")
    assert broken.returncode == 3 and "seq=4" in broken.stderr


def test_verify_is_independent_of_the_local_timezone(ctx, govlake, make_user):
    """SQLite returns timestamps naive; reading them as local time broke every hash outside UTC."""
    _seed(ctx, make_user, 2)
    out = govlake("audit", "verify", TZ="Asia/Shanghai")
    assert out.returncode == 0, out.stderr


def test_audit_list_filters_and_formats(ctx, govlake, make_user):
    from govlake.control.identities import AuthenticationFailed, authenticate

    make_user("list.user")
    authenticate(ctx.settings, ctx.registry, "list.user", PASSWORD, "web")
    try:
        authenticate(ctx.settings, ctx.registry, "list.user", "Wrong-password-1", "pgwire")
    except AuthenticationFailed:
        pass
    rows = json.loads(govlake("audit", "list", "--action", "login", "--format", "json").stdout)
    assert [(r["user_name"], r["outcome"]) for r in rows] == [("?list.user", "denied"), ("list.user", "ok")]
    assert "reason=bad_password" in rows[0]["detail"] and "Wrong-password-1" not in json.dumps(rows)
    mine = json.loads(govlake("audit", "list", "--user", "list.user", "--format", "json").stdout)
    assert [r["action"] for r in mine] == ["login"]
    limited = govlake("audit", "list", "--limit", "1", "--format", "csv").stdout.splitlines()
    assert limited[0].startswith("seq,") and len(limited) == 2
    table = govlake("audit", "list")
    assert table.returncode == 0 and "users.add" in table.stdout


def test_concurrent_appenders_keep_the_chain(ctx):
    append_concurrently(ctx.settings, timeout=120)
    result = audit.verify(ctx.settings)
    assert result.ok and result.rows == 50, result


def test_verify_detects_a_cut_off_tail(ctx, govlake, make_user):
    """Deleting the newest rows (an intruder removing the record of their own queries) leaves a shorter
    chain that links perfectly: the head anchor outside the database, and a head recorded elsewhere, catch it."""
    _seed(ctx, make_user)
    ok = govlake("audit", "verify")
    head = next(line.split("：", 1)[1].split("（")[0] for line in ok.stdout.splitlines() if line.startswith("链头"))
    assert head.startswith("5:")
    with sqlite3.connect(_db(ctx)) as con:
        con.execute("DELETE FROM audit_log WHERE seq >= 4")
    broken = govlake("audit", "verify")
    assert broken.returncode == 3 and "末尾的记录被删除" in broken.stderr

    audit.anchor_path(ctx.settings).unlink()  # the anchor deleted too: the recorded head still catches it
    assert govlake("audit", "verify").returncode == 0
    again = govlake("audit", "verify", "--head", head)
    assert again.returncode == 3 and "末尾的记录被删除" in again.stderr


def test_a_forged_anchor_is_refused(ctx, govlake, make_user):
    _seed(ctx, make_user)
    path = audit.anchor_path(ctx.settings)
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "seq": 2}))
    broken = govlake("audit", "verify")
    assert broken.returncode == 3 and "锚点被篡改" in broken.stderr and "Traceback" not in broken.stderr
