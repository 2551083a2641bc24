"""The control plane on a real PostgreSQL server (GOVLAKE_CONTROL_DB=postgresql+psycopg://...): the same
users, authentication, lockout and audit chain as on SQLite, and concurrent writers from two processes."""

from __future__ import annotations

import json

import pytest

from govlake.control import audit
from govlake.control.identities import (
    MAX_FAILURES, AuthenticationFailed, add_user, authenticate, issue_token, list_users, reset_password,
)
from govlake.control.principal import Principal

from .conftest import PASSWORD, append_concurrently, run_cli

pytestmark = pytest.mark.slow


def test_users_and_audit_on_postgres(pg_ctx, postgres):
    s, reg = pg_ctx.settings, pg_ctx.registry
    assert s.control_db.startswith("postgresql+psycopg://")
    owner = Principal.lake_owner(reg.city.code)
    add_user(s, reg, "pg.analyst", "440106", "analyst", PASSWORD, by=owner)
    p = authenticate(s, reg, "pg.analyst", PASSWORD, "pgwire")
    assert (p.name, p.district, p.auth) == ("pg.analyst", "440106", "password")
    token = issue_token(s, "pg.analyst", by=owner, days=1)
    assert authenticate(s, reg, "pg.analyst", token, "pgwire").auth == "token"

    for _ in range(MAX_FAILURES):
        with pytest.raises(AuthenticationFailed):
            authenticate(s, reg, "pg.analyst", "Wrong-password-1", "pgwire")
    with pytest.raises(AuthenticationFailed) as info:
        authenticate(s, reg, "pg.analyst", PASSWORD, "pgwire")
    assert info.value.reason == "locked"
    assert list_users(s)[0]["status"] == "已锁定"
    reset_password(s, "pg.analyst", "Reset-password-456", by=owner)
    authenticate(s, reg, "pg.analyst", "Reset-password-456", "pgwire")

    stored = postgres.psql("SELECT password_hash FROM users", database=s.control_db.rsplit("/", 1)[1])
    assert stored.startswith("$argon2id$")
    result = audit.verify(s)
    assert result.ok and result.rows == 1 + 1 + 1 + 1 + MAX_FAILURES + 1 + 1 + 1, result


def test_cli_and_tamper_detection_on_postgres(pg_ctx, postgres):
    url = pg_ctx.settings.control_db
    lake = pg_ctx.settings.lake_root
    added = run_cli(lake, "users", "add", "pg.steward", "--node", "gaj", "--role", "steward", "--password-stdin",
                    stdin=PASSWORD + "\n", GOVLAKE_CONTROL_DB=url)
    assert added.returncode == 0, added.stderr
    users = json.loads(run_cli(lake, "users", "list", "--format", "json", GOVLAKE_CONTROL_DB=url).stdout)
    assert [(u["name"], u["role"], u["status"]) for u in users] == [("pg.steward", "steward", "正常")]
    ok = run_cli(lake, "audit", "verify", GOVLAKE_CONTROL_DB=url)
    assert ok.returncode == 0 and "1 条记录" in ok.stdout, ok.stderr
    postgres.psql("UPDATE audit_log SET detail = 'user=someone.else' WHERE seq = 1",
                  database=url.rsplit("/", 1)[1])
    broken = run_cli(lake, "audit", "verify", GOVLAKE_CONTROL_DB=url)
    assert broken.returncode == 3 and "seq=1" in broken.stderr


def test_concurrent_appenders_on_postgres(pg_ctx):
    append_concurrently(pg_ctx.settings, timeout=180)
    result = audit.verify(pg_ctx.settings)
    assert result.ok and result.rows == 50, result
    writers = {r["user_name"] for r in audit.rows(pg_ctx.settings, limit=100)}
    assert writers == {"writer0", "writer1"}
