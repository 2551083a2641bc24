"""Fixtures of the control plane: the lake owner, users with known passwords, the CLI as a subprocess, and a
real PostgreSQL control database (a throw-away cluster from tests/dags/postgres.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from govlake.context import Context
from govlake.control.principal import Principal
from tests.conftest import PROJECT
from tests.dags.postgres import Postgres, postgres_for_tests

PASSWORD = "Tianhe-analyst-2026"  # satisfies the policy; a test value, not a secret
KEY = "test-key-not-secret"


@pytest.fixture()
def owner(ctx: Context) -> Principal:
    return Principal.lake_owner(ctx.registry.city.code)


@pytest.fixture()
def make_user(ctx: Context, owner: Principal) -> Callable[..., dict]:
    """``make_user(name, node, role, password=PASSWORD)`` in ``ctx``'s control database."""
    from govlake.control.identities import add_user

    def make(name: str, node: str = "440106", role: str = "analyst", password: str = PASSWORD) -> dict:
        return add_user(ctx.settings, ctx.registry, name, node, role, password, by=owner)

    return make


def cli_env(lake: Path | str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "GOVLAKE_PROJECT": str(PROJECT), "GOVLAKE_PSEUDONYM_KEY": KEY, "GOVLAKE_LAKE": str(lake),
           "COLUMNS": "200", **extra}
    return env


def run_cli(lake: Path | str, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess:
    """``govlake ARGS`` in a real subprocess on ``lake``."""
    return subprocess.run([sys.executable, "-m", "govlake.cli", *args], input=stdin, capture_output=True,
                          text=True, env=cli_env(lake, **env), timeout=120, cwd=PROJECT)


@pytest.fixture()
def govlake(ctx: Context) -> Callable[..., subprocess.CompletedProcess]:
    """The CLI on ``ctx``'s lake (and control database)."""
    extra = {"GOVLAKE_CONTROL_DB": ctx.settings.control_db}
    return lambda *args, stdin=None, **env: run_cli(ctx.settings.lake_root, *args, stdin=stdin, **{**extra, **env})


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One real PostgreSQL cluster for the session (skipped without the server binaries, failed in CI)."""
    yield from postgres_for_tests(prefix="govlake-control-pg-")


@pytest.fixture()
def pg_ctx(postgres: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request) -> Iterator[Context]:
    """A Context whose control database is a fresh PostgreSQL database (GOVLAKE_CONTROL_DB)."""
    from govlake.control.db import dispose_all

    name = "ctl_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    postgres.create_database(name)
    monkeypatch.setenv("GOVLAKE_PROJECT", str(PROJECT))
    monkeypatch.setenv("GOVLAKE_PSEUDONYM_KEY", KEY)
    monkeypatch.setenv("GOVLAKE_CONTROL_DB", postgres.url(name))
    try:
        yield Context.from_env(str(tmp_path / "lake"))
    finally:
        dispose_all()


APPEND = """
import sys
from govlake.context import Context
from govlake.control.audit import AuditEvent, record
from govlake.control.principal import Principal
ctx = Context.from_env()
who = Principal(name=sys.argv[1], node="440106", role="analyst", auth="password")
for i in range(int(sys.argv[2])):
    record(ctx.settings, who, AuditEvent(action="sql", outcome="ok", tables=["gold.population"], rows=i,
                                         detail=f"SELECT {i}"))
"""


def append_concurrently(settings, writers: int = 2, each: int = 25, timeout: float = 120) -> None:
    """``writers`` processes appending ``each`` audit rows at once to ``settings``' control database."""
    import subprocess
    import sys

    env = cli_env(settings.lake_root, GOVLAKE_CONTROL_DB=settings.control_db)
    procs = [subprocess.Popen([sys.executable, "-c", APPEND, f"writer{i}", str(each)], env=env,
                              stderr=subprocess.PIPE, text=True) for i in range(writers)]
    for p in procs:
        assert p.wait(timeout=timeout) == 0, p.stderr.read()
