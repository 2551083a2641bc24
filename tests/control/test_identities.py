"""Users, passwords, tokens and lockout (govlake.control.identities and ``govlake users``) on the default
SQLite control database: real files, real argon2, the real CLI in subprocesses."""

from __future__ import annotations

import json
import os
import pwd
import sqlite3
import statistics
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from govlake.control import audit, identities
from govlake.control.db import control_engine
from govlake.control.identities import (
    GENERIC_FAILURE, MAX_FAILURES, AuthenticationFailed, IdentityError, authenticate, disable_user, issue_token,
    principal_for, reset_password, revoke_token,
)
from govlake.control.schema import grants
from govlake.errors import AccessDenied, RegistryError

from .conftest import PASSWORD


def _db_file(ctx) -> Path:
    return Path(ctx.settings.control_db.split("///", 1)[1])


def _login_reasons(ctx) -> list[str]:
    return [r["detail"].split()[0] for r in reversed(audit.rows(ctx.settings, action="login", limit=1000))]


def _refused(ctx, name: str, secret: str) -> AuthenticationFailed:
    with pytest.raises(AuthenticationFailed) as info:
        authenticate(ctx.settings, ctx.registry, name, secret, "cli")
    assert info.value.message == GENERIC_FAILURE
    return info.value


# -- the CLI surface ----------------------------------------------------------------------------------------

def _users(govlake) -> dict[str, dict]:
    out = govlake("users", "list", "--format", "json")
    assert out.returncode == 0, out.stderr
    return {u["name"]: u for u in json.loads(out.stdout)}


def test_cli_add_list_disable_reset(ctx, govlake):
    added = govlake("users", "add", "li.ming", "--node", "440106", "--role", "analyst", "--display-name", "李明",
                    "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert PASSWORD not in added.stdout + added.stderr
    u = _users(govlake)["li.ming"]
    assert (u["node"], u["node_name"], u["role"], u["status"]) == ("440106", "天河区政务数据节点", "analyst", "正常")
    assert authenticate(ctx.settings, ctx.registry, "li.ming", PASSWORD, "cli").district == "440106"

    dup = govlake("users", "add", "li.ming", "--node", "440106", "--role", "analyst", "--password-stdin",
                  stdin=PASSWORD + "\n")
    assert dup.returncode == 2 and "已存在" in dup.stderr and "Traceback" not in dup.stderr

    assert govlake("users", "disable", "li.ming").returncode == 0
    assert _users(govlake)["li.ming"]["status"] == "已停用"
    assert _refused(ctx, "li.ming", PASSWORD).reason == "disabled"

    new = "Another-long-pass-9"
    reset = govlake("users", "reset", "li.ming", "--password-stdin", stdin=new + "\n")
    assert reset.returncode == 0, reset.stderr
    assert _refused(ctx, "li.ming", new).reason == "disabled"  # a reset does not re-enable
    table = govlake("users", "list")
    assert table.returncode == 0 and "li.ming" in table.stdout and "已停用" in table.stdout
    csv_out = govlake("users", "list", "--format", "csv").stdout.splitlines()
    assert csv_out[0].startswith("name,") and any(line.startswith("li.ming,") for line in csv_out[1:])

    actions = [r["action"] for r in audit.rows(ctx.settings, action="users.")]
    assert actions == ["users.reset", "users.disable", "users.add"]


def test_cli_refuses_bad_input_without_traceback(govlake):
    cases = [
        (["users", "add", "Bad Name", "--node", "440106", "--role", "analyst"], "用户名不合规"),
        (["users", "add", "wang.wu", "--node", "440016", "--role", "analyst"], "440106"),  # did you mean
        (["users", "add", "wang.wu", "--node", "440106", "--role", "admin"], "市级中心节点"),
        (["users", "add", "wang.wu", "--node", "440106", "--role", "analist"], "analyst"),
        (["users", "disable", "nobody"], "没有用户"),
        (["users", "revoke-token", "999"], "没有编号为 999 的令牌"),
    ]
    for args, needle in cases:
        out = govlake(*args, "--password-stdin", stdin=PASSWORD + "\n") if args[1] == "add" else govlake(*args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert needle in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)
    weak = govlake("users", "add", "wang.wu", "--node", "440106", "--role", "analyst", "--password-stdin",
                   stdin="aaaaaaaaaaaaaaaa\n")
    assert weak.returncode == 2 and "密码过于简单" in weak.stderr and "aaaaaaaaaaaaaaaa" not in weak.stderr


def test_cli_token_issue_and_revoke(ctx, govlake, make_user):
    make_user("zhang.san")
    issued = govlake("users", "token", "zhang.san", "--days", "7", "--label", "superset")
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert token.startswith("glk_") and len(token) > 40
    p = authenticate(ctx.settings, ctx.registry, "zhang.san", token, "pgwire")
    assert (p.name, p.auth) == ("zhang.san", "token")
    token_id = token.split("_")[1]
    assert govlake("users", "revoke-token", token_id).returncode == 0
    assert _refused(ctx, "zhang.san", token).reason == "revoked_token"


def test_owner_identity_is_the_euid_account_not_USER(ctx, govlake):
    out = govlake("users", "add", "chen.yi", "--node", "gaj", "--role", "steward", "--password-stdin",
                  stdin=PASSWORD + "\n", USER="admin-impostor", LOGNAME="admin-impostor")
    assert out.returncode == 0, out.stderr
    listed = govlake("audit", "list", "--action", "users.add", "--format", "json", USER="admin-impostor")
    (row,) = json.loads(listed.stdout)
    real = pwd.getpwuid(os.geteuid()).pw_name
    assert row["user_name"] == real != "admin-impostor"
    assert (row["auth"], row["role"]) == ("local-owner", "admin")
    assert _users(govlake)["chen.yi"]["created_by"] == real


# -- passwords ----------------------------------------------------------------------------------------------

def test_wrong_password_and_unknown_user_look_the_same(ctx, make_user):
    make_user("li.si")
    bad = _refused(ctx, "li.si", PASSWORD + "x")
    unknown = _refused(ctx, "no.such.user", PASSWORD)
    assert str(bad) == str(unknown)
    assert (bad.reason, unknown.reason) == ("bad_password", "unknown_user")
    rows = audit.rows(ctx.settings, action="login")
    assert [(r["user_name"], r["outcome"], r["auth"]) for r in rows] == [
        ("?no.such.user", "denied", "cli"), ("?li.si", "denied", "cli")]
    assert PASSWORD not in json.dumps(rows, default=str)
    ok = authenticate(ctx.settings, ctx.registry, "li.si", PASSWORD, "web")
    last = audit.rows(ctx.settings, action="login", limit=1)[0]
    assert (last["user_name"], last["outcome"], last["auth"], last["node"]) == ("li.si", "ok", "password", ok.node)


def test_unknown_user_costs_an_argon2_verification(ctx, make_user):
    """Timing must not reveal which names exist: an unknown name is as slow as a wrong password."""
    make_user("zhao.liu")

    def median(name: str) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            with pytest.raises(AuthenticationFailed):
                authenticate(ctx.settings, ctx.registry, name, "Wrong-password-123", "cli")
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    known, unknown = median("zhao.liu"), median("nobody.here")
    assert unknown > 0.4 * known, (known, unknown)


def test_lockout_after_five_failures(ctx, make_user, owner):
    make_user("wu.qi")
    for _ in range(MAX_FAILURES):
        _refused(ctx, "wu.qi", "Wrong-password-123")
    assert _refused(ctx, "wu.qi", PASSWORD).reason == "locked"  # the right password, still refused
    assert [u["status"] for u in identities.list_users(ctx.settings)] == ["已锁定"]
    assert _login_reasons(ctx) == ["reason=bad_password"] * MAX_FAILURES + ["reason=locked"]

    reset_password(ctx.settings, "wu.qi", "Reset-password-456", by=owner)
    assert authenticate(ctx.settings, ctx.registry, "wu.qi", "Reset-password-456", "cli").name == "wu.qi"
    assert [u["status"] for u in identities.list_users(ctx.settings)] == ["正常"]


def test_lock_expires_and_success_resets_the_count(ctx, make_user):
    make_user("sun.ba")
    for _ in range(MAX_FAILURES - 1):
        _refused(ctx, "sun.ba", "Wrong-password-123")
    authenticate(ctx.settings, ctx.registry, "sun.ba", PASSWORD, "cli")  # resets the consecutive count
    for _ in range(MAX_FAILURES - 1):
        _refused(ctx, "sun.ba", "Wrong-password-123")
    assert authenticate(ctx.settings, ctx.registry, "sun.ba", PASSWORD, "cli").name == "sun.ba"
    for _ in range(MAX_FAILURES):
        _refused(ctx, "sun.ba", "Wrong-password-123")
    assert _refused(ctx, "sun.ba", PASSWORD).reason == "locked"
    with sqlite3.connect(_db_file(ctx)) as con:  # fifteen minutes pass
        past = (datetime.now(timezone.utc) - timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
        con.execute("UPDATE users SET locked_until = ? WHERE name = 'sun.ba'", (past,))
    assert authenticate(ctx.settings, ctx.registry, "sun.ba", PASSWORD, "cli").name == "sun.ba"


def test_password_policy(ctx, owner):
    def add(name: str, password: str, node: str = "440106", role: str = "analyst"):
        return identities.add_user(ctx.settings, ctx.registry, name, node, role, password, by=owner)

    for weak, needle in [("Short-1", "过短"), ("abcdefghijklmnop", "只含一类"), ("123456789012345", "只含一类"),
                         ("xx-zhou.jiu-2026", "用户名")]:
        with pytest.raises(IdentityError) as info:
            add("zhou.jiu", weak)
        assert needle in info.value.message and weak not in str(info.value)
    for bad in ("Zhou", "9zhou", "z", "zhou jiu", "zhou@jiu", "z" * 65):
        with pytest.raises(IdentityError):
            add(bad, PASSWORD)
    with pytest.raises(RegistryError) as info:
        add("zhou.jiu", PASSWORD, node="gajj")
    assert "gaj" in info.value.hint
    with pytest.raises(IdentityError):
        add("zhou.jiu", PASSWORD, node="gaj", role="admin")
    with pytest.raises(IdentityError):
        add("zhou.jiu", PASSWORD, node="440100", role="steward")
    assert identities.list_users(ctx.settings) == []
    add("zhou.jiu", PASSWORD, node="440100", role="admin")
    add("zheng.shi", PASSWORD, node="gaj", role="steward")
    add("feng.yi", PASSWORD, node="440111", role="steward")


def test_only_the_lake_owner_manages_users(ctx, make_user):
    make_user("admin.one", node="440100", role="admin")
    admin = authenticate(ctx.settings, ctx.registry, "admin.one", PASSWORD, "web")
    with pytest.raises(AccessDenied):
        identities.add_user(ctx.settings, ctx.registry, "x.y", "440106", "analyst", PASSWORD, by=admin)
    with pytest.raises(AccessDenied):
        issue_token(ctx.settings, "admin.one", by=admin)
    with pytest.raises(AccessDenied):
        disable_user(ctx.settings, "admin.one", by=admin)


def test_database_holds_no_secret(ctx, make_user, owner):
    make_user("qian.er")
    token = issue_token(ctx.settings, "qian.er", by=owner)
    authenticate(ctx.settings, ctx.registry, "qian.er", PASSWORD, "cli")
    authenticate(ctx.settings, ctx.registry, "qian.er", token, "pgwire")
    _refused(ctx, "qian.er", "Wrong-but-close-1")
    with control_engine(ctx.settings).connect() as con:
        hashed = con.exec_driver_sql("SELECT password_hash FROM users").scalar_one()
    assert hashed.startswith("$argon2id$")
    blob = b"".join(p.read_bytes() for p in _db_file(ctx).parent.iterdir() if p.is_file())  # db, -wal, -shm
    for secret in (PASSWORD, token, token.split("_", 2)[2], "Wrong-but-close-1"):
        assert secret.encode() not in blob


# -- tokens and principals ----------------------------------------------------------------------------------

def test_tokens_belong_to_their_user_and_expire(ctx, make_user, owner):
    make_user("he.yi")
    make_user("he.er")
    token = issue_token(ctx.settings, "he.yi", by=owner, label="excel", days=1)
    assert authenticate(ctx.settings, ctx.registry, "he.yi", token, "pgwire").auth == "token"
    assert _refused(ctx, "he.er", token).reason == "bad_token"          # someone else's token
    assert _refused(ctx, "he.yi", token[:-2] + "xx").reason == "bad_token"
    with sqlite3.connect(_db_file(ctx)) as con:
        con.execute("UPDATE api_tokens SET expires_at = '2020-01-01 00:00:00.000000'")
    assert _refused(ctx, "he.yi", token).reason == "expired_token"
    second = issue_token(ctx.settings, "he.yi", by=owner)
    revoke_token(ctx.settings, int(second.split("_")[1]), by=owner)
    assert _refused(ctx, "he.yi", second).reason == "revoked_token"
    with pytest.raises(IdentityError):
        issue_token(ctx.settings, "he.yi", by=owner, days=0)


def test_principal_for_loads_live_grants_only(ctx, make_user, owner):
    user = make_user("lin.yi", node="gaj")
    now = datetime.now(timezone.utc)
    common = {"user_id": user["id"], "layer": "silver", "max_grade": 2, "purpose": "test",
              "granted_by": owner.name, "granted_at": now, "revoked_at": None}
    with control_engine(ctx.settings).begin() as con:
        con.execute(grants.insert(), [
            {**common, "dataset": "hukou_population", "columns": ["name", "district_code"], "row_scope": "440106",
             "expires_at": now + timedelta(days=30)},
            {**common, "dataset": "business_registry", "columns": None, "row_scope": None,
             "expires_at": now - timedelta(minutes=1)},                                       # expired
            {**common, "dataset": "social_insurance", "columns": None, "row_scope": None,
             "expires_at": now + timedelta(days=30), "revoked_at": now},                      # revoked
        ])
    p = principal_for(ctx.settings, ctx.registry, user["id"], "session")
    assert (p.name, p.node, p.role, p.auth, p.district) == ("lin.yi", "gaj", "analyst", "session", None)
    (g,) = p.grants
    assert (g.dataset, g.columns, g.max_grade, g.row_scope) == ("hukou_population", ("name", "district_code"), 2, "440106")
    assert g.live() and g.expires_at.tzinfo is not None
    disable_user(ctx.settings, "lin.yi", by=owner)
    with pytest.raises(AuthenticationFailed):
        principal_for(ctx.settings, ctx.registry, user["id"], "session")


def test_quality_release_is_attributed_to_the_euid_account(ctx, engine, govlake, tmp_path):
    """``govlake quality release`` without --by records the lake owner's OS account, never $USER."""
    from govlake.jobs.conform.silver import conform
    from tests.jobs.quality.test_quality import deliver, held_file_rows, table

    rows, _, _ = held_file_rows()
    batch = deliver(ctx, tmp_path, "hukou_population", "held.csv", rows)
    assert conform(ctx, engine, "hukou_population").held == [batch]
    out = govlake("quality", "release", "hukou_population", batch, "--reason", "核实无误",
                  USER="admin-impostor", LOGNAME="admin-impostor")
    assert out.returncode == 0, out.stderr
    [w] = table(ctx, "meta", "batch_waivers")
    assert w["released_by"] == pwd.getpwuid(os.geteuid()).pw_name != "admin-impostor"


def test_wrong_tokens_cannot_lock_an_account_out(ctx, make_user, owner):
    """Token ids are sequential: if a wrong token secret counted as a failed login, anyone could walk
    glk_1_x, glk_2_x ... and lock every token owner out. A token cannot be guessed, so it is not counted."""
    make_user("zhou.ba")
    token = issue_token(ctx.settings, "zhou.ba", by=owner)
    token_id = token.split("_")[1]
    for _ in range(MAX_FAILURES + 2):
        _refused(ctx, "zhou.ba", f"glk_{token_id}_forged-secret")
    assert authenticate(ctx.settings, ctx.registry, "zhou.ba", PASSWORD, "web").name == "zhou.ba"
    assert authenticate(ctx.settings, ctx.registry, "zhou.ba", token, "pgwire").auth == "token"


def test_a_password_reset_ends_tokens_and_web_sessions(ctx, make_user, owner):
    """A reset is done when a password may be known to someone else: what they may have taken with it ends."""
    import sqlalchemy as sa

    from govlake.control.schema import web_sessions

    user = make_user("sun.jiu")
    token = issue_token(ctx.settings, "sun.jiu", by=owner)
    now = datetime.now(timezone.utc)
    with control_engine(ctx.settings).begin() as con:
        con.execute(web_sessions.insert().values(id_hash="f" * 64, user_id=user["id"], csrf_token="c" * 32,
                                                 created_at=now, expires_at=now + timedelta(hours=8)))
    reset_password(ctx.settings, "sun.jiu", "Reset-password-789", by=owner)
    assert _refused(ctx, "sun.jiu", token).reason == "revoked_token"
    with control_engine(ctx.settings).connect() as con:
        revoked = con.execute(sa.select(web_sessions.c.revoked_at).where(web_sessions.c.user_id == user["id"])).scalar_one()
    assert revoked is not None
