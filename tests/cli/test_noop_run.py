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


@pytest.mark.slow
def test_run_full_rebuilds_gold_and_governance_from_whole_sources(built) -> None:
    """``govlake run --full`` (after the tests above: it writes) rebuilds every gold table, 多源校核 and the
    governance outputs with nothing new delivered, and leaves bronze, silver and quarantine as they were."""
    lake = Path(built.settings.lake_root)
    env = {**os.environ, "GOVLAKE_PSEUDONYM_KEY": "test-key-not-secret"}
    before = versions(lake)
    done = subprocess.run([sys.executable, "-m", "govlake.cli", "run", "--full", "--lake", str(lake)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    after = versions(lake)
    data = {t for t in before if t.split(".")[0] in ("bronze", "silver", "quarantine")}
    assert data and {t: after[t] for t in data} == {t: before[t] for t in data}
    # scores are per conform run and the lineage graph is of the declarations: neither is built from sources
    rebuilt = {t for t in before if t.startswith("gold.") and t not in ("gold.quality_scores", "gold.lineage_edges")}
    assert {"gold.population", "gold.source_conflicts", "gold.catalog_nodes", "gold.indicator_values"} <= rebuilt
    assert [t for t in rebuilt if after[t] == before[t]] == []
