"""Incremental runs and one run over everything give the same lake.

A lake fed delivery by delivery (a base load with its own update and late files, then a day's delivery that
updates existing persons, entities and records and appends new ones, then a day on which entities are
deregistered: 注销, a delete by status) and run after each, against a fresh lake given the same files at once
and run once: silver, quarantine and every gold table are identical (the ingest times, which differ between
the two lakes by construction, left aside). On the incremental lake, ``govlake run --full`` then rebuilds
every gold table, 多源校核 and the governance outputs from whole sources and changes nothing. The
incremental path merges into silver touching only the files that hold a delivered key and maintains
gold.population and the cross-source check from the delivered keys; this test is what keeps that honest.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from govlake.context import Context
from govlake.devkit.bench_incremental import DATASETS, DELIVERY_SEED, SEED
from govlake.devkit.generate import Manifest, generate
from govlake.jobs.ingest.bronze import ingest_file
from govlake.jobs.pipeline import run_pending
from govlake.tables import SILVER

pytestmark = pytest.mark.slow

TIMES = ("_ingested_at", "conformed_at", "_resolved_by")
PHYSICAL = ("size_bytes", "delta_version", "last_update")  # the catalogue's file facts about each table


def _ingest(ctx: Context, landing: Path) -> None:
    for d in Manifest.load(landing / "manifest.json").deliveries:
        ingest_file(ctx, landing / d.path, d.node, d.dataset)


def _rows(ctx: Context, layer: str, table: str) -> list[tuple]:
    """The table's rows, sorted, without the ingest/conform times and the quality scores (a score is per
    run, and the two lakes ran a different number of times: gold.quality_scores keeps each run's)."""
    if not ctx.lake.exists(layer, table):
        return []
    t = ctx.lake.read(layer, table)
    keep = [c for c in t.column_names if c not in TIMES + PHYSICAL and "score" not in c]
    return sorted(tuple(str(v) for v in r.values()) for r in t.select(keep).to_pylist())


def _deregister(landing: Path, out: Path, rows: int = 40) -> None:
    """A later delivery of the first ``rows`` market entities of ``landing``, every one 注销 (deregistered)."""
    d = next(d for d in Manifest.load(landing / "manifest.json").deliveries
             if d.dataset == "market_entities" and d.format == "csv" and d.sequence == 1)
    with open(landing / d.path, encoding=d.encoding or "utf-8", newline="") as f:
        table = list(csv.reader(f))
    header, body = table[0], [r for r in table[1:] if len(r) == len(table[0])][:rows]
    status = header.index("登记状态")
    for r in body:
        r[status] = "注销"
    target = out / d.node / "market_entities" / f"market_entities__{d.node}__20261201__9.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([header, *body])
    (out / "manifest.json").write_text(json.dumps({"deliveries": [{
        "path": str(target.relative_to(out)), "node": d.node, "dataset": "market_entities", "format": "csv",
        "encoding": "utf-8", "rows": len(body), "delivered_on": "2026-12-01", "sequence": 9, "late": False,
        "defects": {}}]}, ensure_ascii=False))


@pytest.fixture(scope="module")
def lakes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Context, Context]:
    base = tmp_path_factory.mktemp("incremental")
    with pytest.MonkeyPatch.context() as mp:
        from tests.conftest import PROJECT

        mp.setenv("GOVLAKE_PROJECT", str(PROJECT))
        mp.setenv("GOVLAKE_PSEUDONYM_KEY", "test-key-not-secret")
        inc, full = Context.from_env(str(base / "inc")), Context.from_env(str(base / "full"))
        landings = [base / "day0", base / "updates", base / "new"]
        generate(inc.registry, landings[0], rows=6_000, seed=SEED, datasets=DATASETS)
        generate(inc.registry, landings[1], rows=300, seed=SEED, datasets=DATASETS)  # the same keys again
        generate(inc.registry, landings[2], rows=300, seed=DELIVERY_SEED, datasets=DATASETS)  # new keys
        landings.append(base / "deregistered")
        _deregister(landings[0], landings[3])
        with inc.engine("duckdb") as engine:
            for landing in landings:
                _ingest(inc, landing)
                assert run_pending(inc, engine).balanced
        with full.engine("duckdb") as engine:
            for landing in landings:
                _ingest(full, landing)
            assert run_pending(full, engine).balanced
        yield inc, full


@pytest.mark.parametrize("dataset", DATASETS)
def test_silver_and_quarantine_are_the_same(lakes, dataset: str) -> None:
    inc, full = lakes
    silver = _rows(inc, *SILVER.ref(dataset))
    assert silver and silver == _rows(full, *SILVER.ref(dataset))
    assert _rows(inc, "quarantine", dataset) == _rows(full, "quarantine", dataset)


def test_gold_is_the_same(lakes) -> None:
    inc, full = lakes
    tables = inc.lake.list_tables("gold")
    assert {"population", "air_quality_monthly", "source_conflicts", "crosscheck_summary"} <= set(tables)
    for table in tables:
        if table == "quality_scores":  # one row set per run
            continue
        assert _rows(inc, "gold", table) == _rows(full, "gold", table), table


def _modes(ctx: Context, table: str) -> list[str]:
    return [json.loads(h["govlake"]).get("mode") for h in ctx.lake.table("gold", table).history() if h.get("govlake")]


def test_the_incremental_lake_was_maintained_incrementally(lakes) -> None:
    """Else the comparison above would prove nothing about the incremental paths."""
    inc, _ = lakes
    for table in ("population", "source_conflicts", "crosscheck_summary"):
        assert "incremental" in _modes(inc, table), table
    statuses = {r["status"] for r in inc.lake.read("silver", "market_entities").to_pylist()}
    assert "3" in statuses  # the deregistrations reached silver


def test_a_full_rebuild_changes_nothing(lakes) -> None:
    inc, _ = lakes
    tables = [t for t in inc.lake.list_tables("gold") if t != "quality_scores"]
    before = {t: _rows(inc, "gold", t) for t in tables}
    with inc.engine("duckdb") as engine:
        run_pending(inc, engine, full=True)
    assert _modes(inc, "population")[0] == "full" and _modes(inc, "source_conflicts")[0] == "full"
    for t in tables:
        assert _rows(inc, "gold", t) == before[t], t


def test_the_delivery_updated_existing_keys(lakes) -> None:
    """The second delivery is not only new keys: conformed at once with the first, its rows supersede some."""
    _, full = lakes
    books = full.lake.read("meta", "conform_batches").to_pylist()
    assert sum(r["superseded"] for r in books) > 0
