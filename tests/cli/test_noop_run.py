"""A ``govlake run`` with nothing new writes nothing and loads only what its checks need (issue 14, point 7).

How long it takes is a benchmark (``python -m govlake.devkit.noop_bench``); what it must not do is tested:
write a Delta version, or load the libraries only work needs (pyarrow, NumPy, pandas, DuckDB, SQLAlchemy,
the OpenLineage client). And the bookkeeping it reads stays compact however many files were delivered.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

from govlake.lake import COMPACT_AT
from govlake.tables import INGEST_BATCHES
from tests.conftest import build_lake

HEAVY = {"pyarrow", "numpy", "pandas", "duckdb", "sqlalchemy", "openlineage", "great_expectations"}
CODE = ("import sys\nfrom govlake.cli import main\ntry:\n    main()\nfinally:\n"
        f"    print('loaded', sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(HEAVY)!r})), file=sys.stderr)\n")


def versions(lake: Path) -> dict[str, int]:
    return {f"{p.parent.parent.name}.{p.parent.name}": DeltaTable(str(p.parent)).version()
            for p in lake.glob("*/*/_delta_log")}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    return build_lake(tmp_path_factory.mktemp("noop"), rows=5000)


@pytest.mark.slow
def test_rerun_with_nothing_new_writes_nothing_and_loads_no_heavy_library(built) -> None:
    lake = Path(built.settings.lake_root)
    env = {**os.environ, "GOVLAKE_PSEUDONYM_KEY": "test-key-not-secret"}
    before = versions(lake)
    done = subprocess.run([sys.executable, "-c", CODE, "run", "--lake", str(lake)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "没有待处理的批次" in done.stdout and "上游未变化" in done.stdout
    assert versions(lake) == before
    assert done.stderr.rsplit("loaded", 1)[1].split()[0] == "[]", done.stderr[-1000:]


def test_the_batch_log_is_compacted_and_keeps_every_row(built) -> None:
    dt = built.lake.table(*INGEST_BATCHES.ref)
    rows = built.lake.rows(*INGEST_BATCHES.ref, ["batch_id", "source_file"])
    delivered = {p for p in Path(built.settings.lake_root).parent.glob("landing/*/*/*") if p.is_file()}
    assert len(rows) >= len(delivered) > COMPACT_AT  # one row per delivered file (refused ones included)
    assert {Path(r["source_file"]) for r in rows} >= delivered
    assert len(dt.file_uris()) < COMPACT_AT  # compacted as it grew
