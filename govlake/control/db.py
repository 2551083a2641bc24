"""The control-plane database of a deployment: one SQLAlchemy engine per URL per process.

SQLite (the default, a file beside the lake, owner-only like the lake) needs no service; PostgreSQL is
chosen by URL (``GOVLAKE_CONTROL_DB=postgresql+psycopg://...``) for a shared deployment. Tables are created
on first use, so a fresh lake needs no migration step.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError

from govlake.control.schema import metadata
from govlake.errors import ConfigError
from govlake.project import Settings

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def control_engine(settings: Settings) -> Engine:
    """The engine for ``settings.control_db``, with the tables created (idempotent)."""
    url = settings.control_db
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _create(url)
            _create_tables(engine)
            _engines[url] = engine
    return engine


_PG_DDL_LOCK_KEY = 0x60F1A4D  # advisory lock id serialising first-use DDL across processes


def _create_tables(engine: Engine, attempts: int = 3) -> None:
    """``create_all`` that tolerates another process creating the same tables at the same moment (two
    first-use processes both see no table, and the second CREATE fails): PostgreSQL serialises the DDL under
    an advisory lock; SQLite (autocommitted DDL) retries, and the retry finds the tables."""
    if engine.dialect.name == "sqlite":
        with _sqlite_init_lock(engine):
            metadata.create_all(engine)
        return
    for attempt in range(attempts):
        try:
            with engine.begin() as con:
                con.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_DDL_LOCK_KEY})")
                metadata.create_all(con)
            return
        except DBAPIError:
            if attempt == attempts - 1:
                raise


@contextlib.contextmanager
def _sqlite_init_lock(engine: Engine):
    """An exclusive ``flock`` on ``<db>.init.lock`` while the tables are created: SQLite's DDL autocommits
    statement by statement, so two first-use processes could otherwise both find a table missing."""
    path = engine.url.database
    if not path or path == ":memory:":
        yield
        return
    fd = os.open(f"{path}.init.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _create(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_con, _record) -> None:  # WAL: readers never block the audit writer
            dbapi_con.execute("PRAGMA journal_mode=WAL")
            dbapi_con.execute("PRAGMA foreign_keys=ON")
            dbapi_con.execute("PRAGMA busy_timeout=30000")

        return engine
    if url.startswith(("postgresql", "postgres")):
        return create_engine(url, pool_pre_ping=True)
    raise ConfigError(f"不支持的控制库地址：{url.split(':', 1)[0]}",
                      where="GOVLAKE_CONTROL_DB",
                      hint="使用 sqlite:///路径 或 postgresql+psycopg://用户@主机/库名")


def dispose_all() -> None:
    """Close every pooled connection (tests that drop a PostgreSQL database call this first)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
