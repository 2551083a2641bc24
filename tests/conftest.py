"""Shared fixtures: a real lake on disk per test, the project's real contracts and registries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from govlake.context import Context

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    monkeypatch.setenv("GOVLAKE_PROJECT", str(PROJECT))
    monkeypatch.setenv("GOVLAKE_PSEUDONYM_KEY", "test-key-not-secret")
    return Context.from_env(str(tmp_path / "lake"))


@pytest.fixture()
def engine(ctx: Context):
    eng = ctx.engine()
    yield eng
    eng.close()


def write_csv(path: Path, header: list[str], rows: list[list[str]], encoding: str = "utf-8") -> Path:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def build_lake(base: Path, rows: int, seed: int = 7) -> Context:
    """A lake built by the real pipeline from generated deliveries of every node and dataset (for
    module- and session-scoped fixtures, which cannot use ``ctx``)."""
    from datetime import date

    from govlake.devkit.generate import generate
    from govlake.jobs.ingest.bronze import ingest_file
    from govlake.jobs.pipeline import run_pending

    os.environ.setdefault("GOVLAKE_PSEUDONYM_KEY", "test-key-not-secret")
    ctx = Context.from_env(str(base / "lake"))
    manifest = generate(ctx.registry, base / "landing", rows=rows, seed=seed)
    for d in manifest.deliveries:
        ingest_file(ctx, base / "landing" / d.path, d.node, d.dataset)
    with ctx.engine() as engine:
        run_pending(ctx, engine, as_of=date(2026, 11, 20))
    return ctx


os.environ.setdefault("GOVLAKE_THREADS", "2")
