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


os.environ.setdefault("GOVLAKE_THREADS", "2")
