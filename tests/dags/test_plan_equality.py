"""Proof that the one plan is one pipeline: the same generated deliveries, run once in process by
``govlake run`` (lake A) and once through the Airflow DAGs (lake B, ``dag.test()`` on SQLite, the DAGs chained
in pipeline order as the scheduler would on their Asset events), give the same tables in every layer, the
same row counts and the same gold content; a second pass through Airflow changes and triggers nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from govlake.context import Context
from govlake.jobs import plan

from .test_pipeline_e2e import asset_events, run_chain, versions

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

NODES = ["gaj", "lsj", "scjgj", "440106"]  # 公安, 来穗, 市场监管 and 天河区: four nodes
DATASETS = ["hukou_population", "migrant_population", "market_entities", "grid_events", "hotline_tickets",
            "service_cases"]
CHAIN = [*(f"govlake_ingest_{n}" for n in NODES), "govlake_silver", "govlake_gold", "govlake_governance"]
LAYERS = ("bronze", "silver", "quarantine", "gold", "meta")

IGNORED = {
    "run_id": "the govlake run id: a random suffix for `govlake run`, derived from the DAG run in Airflow",
    "scored_at": "when the scores were computed",
    "last_update": "catalog_resources: the commit time of the silver table",
    "size_bytes": "catalog_resources: bytes of the silver Parquet files (physical layout, not content)",
    "delta_version": "catalog_resources: the silver table's Delta version (the number of commits, not content)",
}
"""Gold columns that differ between two runs of the same data by construction; every other column of every
gold table must be identical."""


def gold_rows(ctx: Context, table: str) -> tuple[list[str], list[tuple]]:
    t = ctx.lake.read("gold", table)
    cols = [c for c in t.column_names if c not in IGNORED]
    rows = sorted((tuple(r[c] for c in cols) for r in t.select(cols).to_pylist()), key=repr)
    return cols, rows


def run_cli(args: list[str], env: dict[str, str], ok: tuple[int, ...] = (0,)) -> None:
    done = subprocess.run([str(Path(sys.executable).parent / "govlake"), *args], env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode in ok, (args, done.returncode, done.stdout[-3000:], done.stderr[-3000:])


def queued_asset_triggers() -> int:
    """Rows of Airflow's asset_dag_run_queue: Asset events waiting to schedule a DAG run."""
    from airflow.models.asset import AssetDagRunQueue
    from airflow.settings import Session
    from sqlalchemy import func, select

    with Session() as s:
        return s.scalar(select(func.count()).select_from(AssetDagRunQueue))


def test_govlake_run_and_airflow_build_the_same_lake(airflow_db, govlake_env, ctx, tmp_path: Path) -> None:
    from govlake.devkit.generate import generate

    landing = Path(govlake_env["GOVLAKE_LANDING"])
    manifest = generate(ctx.registry, landing, rows=2000, seed=5, datasets=DATASETS, nodes=NODES)
    delivered = {d.dataset for d in manifest.deliveries if d.node in NODES}
    assert delivered == set(DATASETS)  # several nodes, six datasets: as wide as intended

    # -- lake A: `govlake ingest` of every delivery (node by node, files in name order), then `govlake run`
    lake_a = tmp_path / "lake_a"
    env = dict(os.environ, GOVLAKE_LAKE=str(lake_a))
    for node in NODES:
        for folder in sorted(p for p in (landing / node).iterdir() if p.is_dir()):
            files = sorted(str(f) for f in folder.iterdir() if f.is_file())
            run_cli(["ingest", *files, "--node", node, "--dataset", folder.name, "--lake", str(lake_a)], env,
                    ok=(0, 4))  # 4: the generator's defective files are refused, as in Airflow
    run_cli(["run", "--lake", str(lake_a)], env)
    a = Context.from_env(str(lake_a))

    # -- lake B: the Airflow DAGs ------------------------------------------------------------------------------
    from .conftest import dag_bag

    bag = dag_bag()
    assert bag.import_errors == {}
    for dag_id in CHAIN:
        for task in bag.dags[dag_id].tasks:
            task.retries = 0
    states = run_chain(bag, CHAIN)
    b = ctx
    assert states["govlake_governance"]["catalog"] == "success"  # the governance outputs, on an Airflow lake too

    # the same tables in every layer, with the same row counts
    for layer in LAYERS:
        assert sorted(b.lake.list_tables(layer)) == sorted(a.lake.list_tables(layer)), layer
        for t in a.lake.list_tables(layer):
            assert b.lake.table(layer, t).count() == a.lake.table(layer, t).count(), f"{layer}.{t}"
    lay = plan.build_layout(a, a.settings.lake_root, "")
    governance = {t.name for s in plan.steps(lay, plan.Flow.GOVERNANCE) for t in s.data_writes}
    assert governance <= set(b.lake.list_tables("gold"))  # catalog, duties-data list, indicators … on both

    # identical gold content, ignoring only the columns in IGNORED (each of which does occur)
    seen_ignored: set[str] = set()
    for t in a.lake.list_tables("gold"):
        cols_a, rows_a = gold_rows(a, t)
        cols_b, rows_b = gold_rows(b, t)
        seen_ignored |= set(a.lake.read("gold", t).column_names) & set(IGNORED)
        assert cols_a == cols_b, t
        assert rows_a == rows_b, f"gold.{t} differs between `govlake run` and Airflow"
    assert seen_ignored == set(IGNORED), set(IGNORED) - seen_ignored  # no stale entries

    # -- a second pass through Airflow: nothing written, nothing triggered ---------------------------------------
    before, n_events, n_queued = versions(b), len(asset_events()), queued_asset_triggers()
    states = run_chain(bag, CHAIN)
    assert versions(b) == before
    assert len(asset_events()) == n_events
    assert queued_asset_triggers() == n_queued
    for dag_id in ("govlake_silver", "govlake_gold", "govlake_governance"):
        wrote = [t for t, s in states[dag_id].items() if s == "success" and t not in ("plan", "check", "steward_report")]
        assert not wrote, (dag_id, wrote)
