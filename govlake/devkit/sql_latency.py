"""The SQL endpoint's query latency beside the same query in ``SqlSession`` (what ``govlake sql`` runs).

    python -m govlake.devkit.sql_latency [--rows 2000] [--runs 5] [--big 1000000]

Builds a throw-away lake from generated deliveries (the real pipeline), creates one city-wide user, starts
the PostgreSQL-wire endpoint on a free loopback port and times, for a 10-row and a ``--big``-row result:

* ``govlake sql`` path: ``SqlSession.query(sql)`` for the same Principal — admission, grants, DuckDB, audit
  row, the result as an Arrow table (terminal rendering excluded: it caps at ``--limit`` rows anyway);
* endpoint path: psycopg 3 on one open connection, ``execute(sql).fetchall()`` — the same session work plus
  PostgreSQL text encoding, the socket and the client's parsing into Python objects.

Median of ``--runs`` runs each (after one warm-up), and the ratio endpoint / direct. Connection set-up
(authentication + building the per-connection session) is timed separately.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

USER, PASSWORD = "bench.latency", "Bench-latency-pass-2026!"


PROJECT = Path(__file__).resolve().parents[2]  # the checkout whose schemas/ and catalog/ are measured


def build_lake(base: Path, rows: int):
    """A small lake from the real pipeline, with one city-centre administrator to query as."""
    from govlake.context import Context
    from govlake.control import identities
    from govlake.control.principal import Principal
    from govlake.devkit.generate import generate
    from govlake.jobs.ingest.bronze import ingest_file
    from govlake.jobs.pipeline import run_pending

    from dataclasses import replace

    from govlake.project import Settings

    settings = Settings.from_env(str(base / "lake"))
    ctx = Context(replace(settings, project_dir=PROJECT, control_db="",
                          pseudonym_key=settings.pseudonym_key or b"sql-latency-bench-key"))
    manifest = generate(ctx.registry, base / "landing", rows=rows, seed=7)
    for d in manifest.deliveries:
        ingest_file(ctx, base / "landing" / d.path, d.node, d.dataset)
    with ctx.engine() as engine:
        run_pending(ctx, engine, as_of=date(2026, 11, 20))
    owner = Principal.owner_of(ctx.registry)
    identities.add_user(ctx.settings, ctx.registry, USER, ctx.registry.city.code, "admin", PASSWORD, by=owner)
    return ctx


def median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up: DuckDB's and the OS's caches, psycopg's type adapters
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(ctx, runs: int, big: int) -> list[dict]:
    import psycopg

    from govlake.access.pgwire import PgWireServer
    from govlake.control import identities

    queries = {
        "10 行": "SELECT * FROM gold.population LIMIT 10",
        f"{big:,} 行": f"SELECT range AS n, range % 97 AS k, 'v' || (range % 1000)::VARCHAR AS s FROM range({big})",
    }
    principal = identities.authenticate(ctx.settings, ctx.registry, USER, PASSWORD, channel="cli")
    server = PgWireServer(ctx, "127.0.0.1", 0)
    server.start()
    try:
        direct = server.open_session(principal)  # the session govlake sql builds for this principal

        def connect():
            return psycopg.connect(host="127.0.0.1", port=server.port, user=USER, password=PASSWORD,
                                   dbname="govlake", sslmode="disable", autocommit=True)

        connect_ms = median_ms(lambda: connect().close(), runs)
        out = []
        with connect() as con:
            for label, sql in queries.items():
                d = median_ms(lambda: direct.query(sql).table, runs)
                e = median_ms(lambda: con.execute(sql).fetchall(), runs)
                out.append({"result": label, "direct_ms": d, "endpoint_ms": e, "ratio": e / d if d else float("nan")})
        out.append({"result": "连接建立（认证 + 会话）", "direct_ms": None, "endpoint_ms": connect_ms, "ratio": None})
        direct.close()
        return out
    finally:
        server.stop()


def report(rows: list[dict], runs: int) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"SQL 端点与 govlake sql（SqlSession）的查询延迟（{runs} 次中位数，毫秒）")
    for col in ("结果", "govlake sql（SqlSession）", "SQL 端点（psycopg）", "倍数"):
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(r["result"], "—" if r["direct_ms"] is None else f"{r['direct_ms']:.1f}",
                  f"{r['endpoint_ms']:.1f}", "—" if r["ratio"] is None else f"{r['ratio']:.1f}×")
    Console().print(t)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000, help="generated rows per delivery (lake size)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--big", type=int, default=1_000_000, help="rows of the large result")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="govlake-sql-latency-") as tmp:
        ctx = build_lake(Path(tmp), args.rows)
        report(measure(ctx, args.runs, args.big), args.runs)


if __name__ == "__main__":
    main()
