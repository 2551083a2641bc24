"""``govlake serve``: the city service in one process — the dashboard (uvicorn) and the SQL endpoint (pg-wire).

Both front ends share the deployment's Context (settings, registry, lake, control-plane database) and the same
enforcement (``SqlSession`` over ``control.policy``), so a user sees the same tables in DBeaver as on the
dashboard. uvicorn runs in the main thread (it owns SIGINT/SIGTERM); the endpoint serves from a background
thread, one more thread per SQL connection. Ctrl-C (or SIGTERM) stops uvicorn, then the endpoint: its
listening socket is closed and every running statement interrupted (audited as interrupted), so the process
exits without a traceback.

Binds: both listen on loopback by default. The dashboard may listen elsewhere only behind TLS
(``--behind-tls``, checked by ``dashboard.check_loopback``); the SQL endpoint only when ``--sql-host`` names
an address explicitly — it never follows ``--host``, since its cleartext password exchange needs its own
TLS terminator in front (docs/security.md).
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from govlake.access.pgwire import DEFAULT_SQL_PORT, PgWireServer
from govlake.context import Context
from govlake.errors import ConfigError

DEFAULT_PORT = 8765


@dataclass
class ServiceConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    sql: bool = True
    sql_host: str | None = None  # None: loopback; an explicit address may be non-loopback
    sql_port: int = DEFAULT_SQL_PORT
    behind_tls: bool = False      # TLS terminates in front of the dashboard (Secure cookies, non-loopback bind)
    allowed_hosts: Iterable[str] = field(default_factory=tuple)


def check(config: ServiceConfig) -> None:
    """Refuse a bind the deployment does not allow, before anything starts or a URL is printed."""
    from govlake.access.dashboard import check_loopback

    check_loopback(config.host, secure_cookies=config.behind_tls)
    if config.sql and config.sql_host is not None and not config.sql_host.strip():
        raise ConfigError("--sql-host 不能为空", where="govlake serve --sql-host", hint="例如 --sql-host 127.0.0.1")


def open_sql_endpoint(ctx: Context, config: ServiceConfig) -> PgWireServer:
    """The listening SQL endpoint (not yet serving): a port already in use is a clear error."""
    host = config.sql_host or "127.0.0.1"
    try:
        return PgWireServer(ctx, host, config.sql_port, explicit=config.sql_host is not None)
    except OSError as exc:
        in_use = exc.errno in (errno.EADDRINUSE, errno.EACCES)
        raise ConfigError(f"SQL 端点无法监听 {host}:{config.sql_port}"
                          + ("（端口已被占用或无权限）" if in_use else f"（{exc.strerror}）"),
                          where="govlake serve --sql-port",
                          hint="换一个端口（--sql-port 5434），或停止占用该端口的进程；不需要 SQL 端点时加 --no-sql") from None


def run(ctx: Context, config: ServiceConfig, announce: Callable[[str], None] = print) -> None:
    """Serve until Ctrl-C / SIGTERM, then stop both front ends."""
    import uvicorn

    from govlake.access.dashboard import create_app

    check(config)
    endpoint = open_sql_endpoint(ctx, config) if config.sql else None
    app = create_app(ctx, secure_cookies=config.behind_tls, allowed_hosts=tuple(config.allowed_hosts))
    server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, log_level="warning"))
    scheme = "https" if config.behind_tls else "http"
    announce(f"数据治理驾驶舱：{scheme}://{config.host}:{config.port}/ （数据湖 {ctx.settings.lake_root}；Ctrl+C 退出）")
    if endpoint is not None:
        announce(f"SQL 端点（PostgreSQL 协议）：psql -h {endpoint.host} -p {endpoint.port} -U <用户名> -d govlake")
    if endpoint is not None:
        endpoint.start()
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises the captured SIGINT once it has shut down
        pass
    finally:
        if endpoint is not None:
            endpoint.stop()


__all__ = ["DEFAULT_PORT", "ServiceConfig", "check", "open_sql_endpoint", "run"]
