"""End to end through Airflow: generated deliveries of three nodes → ingestion DAGs → silver → gold →
governance, each run with ``dag.test()`` against a real SQLite metadata DB and a real Delta lake; then the
whole chain again, which must change nothing and trigger nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..conftest import write_csv
from .conftest import OL_EVENTS, dag_bag

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

NODES = ["gaj", "lsj", "440106"]  # 公安 (户籍), 来穗 (流动人口), 天河区 (three datasets: a mapped ingest)
DATASETS = ["hukou_population", "migrant_population", "grid_events", "hotline_tickets", "service_cases"]
CHAIN = [*(f"govlake_ingest_{n}" for n in NODES), "govlake_silver", "govlake_gold", "govlake_governance"]


def run_chain(bag, chain: list[str] = CHAIN) -> dict[str, dict[str, str]]:
    """dag.test() each DAG in pipeline order (what the scheduler does on the Asset events); task states."""
    states = {}
    for dag_id in chain:
        dr = bag.dags[dag_id].test()
        tis = {ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): str(ti.state) for ti in dr.get_task_instances()}
        assert str(dr.state) == "success", (dag_id, tis)
        states[dag_id] = tis
    return states


def versions(ctx) -> dict[str, int]:
    return {f"{layer}.{t}": ctx.lake.table(layer, t).version()
            for layer in ("bronze", "silver", "quarantine", "gold", "meta") for t in ctx.lake.list_tables(layer)}


def asset_events() -> list[tuple[str, str, str]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.settings import Session
    from sqlalchemy import select

    with Session() as s:
        rows = s.execute(select(AssetModel.uri, AssetEvent.source_dag_id, AssetEvent.source_task_id)
                         .join(AssetModel, AssetEvent.asset_id == AssetModel.id)).all()
    return [tuple(r) for r in rows]


def test_pipeline_through_airflow_then_rerun_is_a_noop(airflow_db, govlake_env, ctx) -> None:
    from govlake.devkit.generate import generate

    landing = Path(govlake_env["GOVLAKE_LANDING"])
    manifest = generate(ctx.registry, landing, rows=5000, seed=1, datasets=DATASETS, nodes=NODES)
    # a delivery that cannot be this dataset (no business-key column): refused, reported, not fatal
    refused = write_csv(landing / "gaj" / "hukou_population" / "hukou_population__gaj__20261121__9.csv",
                        ["备注", "数量"], [["没有身份证号", "1"]])

    bag = dag_bag()
    assert bag.import_errors == {}
    for dag_id in CHAIN:
        for task in bag.dags[dag_id].tasks:
            task.retries = 0  # a failure should fail the test now, not after the production retry delays

    # -- first pass ---------------------------------------------------------------------------------------
    states = run_chain(bag)
    assert states["govlake_ingest_440106"].keys() >= {"ingest[0]", "ingest[1]", "ingest[2]"}
    assert states["govlake_silver"]["conform__hukou_population"] == "success"
    assert states["govlake_silver"]["conform__market_entities"] == "skipped"  # nothing delivered
    assert states["govlake_gold"]["build__population"] == "success"

    batches = ctx.lake.read("meta", "ingest_batches").to_pylist()
    ingested = [b for b in batches if b["status"] == "ingested"]
    assert len(ingested) == manifest.total_files
    assert [b["source_file"] for b in batches if b["status"] == "refused"] == [str(refused.resolve())]
    for d in DATASETS:
        assert ctx.lake.read("silver", d).num_rows > 0, d
    acc = ctx.lake.read("meta", "conform_batches").to_pylist()
    assert {a["batch_id"] for a in acc} == {b["batch_id"] for b in ingested}
    for a in acc:  # the books balance per batch
        assert a["bronze_rows"] == a["silver_rows"] + a["quarantined"] + a["superseded"], a
    assert sum(a["bronze_rows"] for a in acc) == manifest.total_rows
    assert len({a["run_id"] for a in acc}) == 1  # one silver DAG run = one govlake run
    scores = ctx.lake.read("gold", "quality_scores").to_pylist()
    assert {s["run_id"] for s in scores} == {acc[0]["run_id"]}
    assert {s["dataset"] for s in scores if s["scope"] == "dataset"} == set(DATASETS)
    assert ctx.lake.read("gold", "population").num_rows > 0
    assert ctx.lake.exists("gold", "source_conflicts") and ctx.lake.exists("gold", "lineage_edges")
    audited = {r["dataset"] for r in ctx.lake.read("meta", "validation_results", filter_sql="layer = 'gold'").to_pylist()}
    assert {"population", "source_conflicts", "quality_scores", "lineage_edges"} <= audited  # write, audit, publish
    assert (Path(ctx.settings.lake_root) / "_reports" / "quality" / "index.html").is_file()
    # the governance outputs the dashboard, `govlake duties` and `govlake indicators` read: on an Airflow lake too
    for t in ("catalog_nodes", "catalog_resources", "catalog_items", "duty_data_list", "duty_findings",
              "indicator_progress"):
        assert ctx.lake.read("gold", t).num_rows > 0, t

    events = asset_events()
    lake_uri = Path(ctx.settings.lake_root).as_uri()
    bronze = {u.rsplit("/", 1)[1] for u, dag, _ in events if u.startswith(f"{lake_uri}/bronze/")}
    assert bronze == set(DATASETS)  # one event per dataset that received batches, through the node aliases
    assert {(u.rsplit("/", 1)[1], t) for u, dag, t in events if "/silver/" in u} == {(d, f"conform__{d}") for d in DATASETS}
    assert (f"{lake_uri}/gold/quality_scores", "govlake_governance", "score") in events
    assert not any(u.endswith("/gold/legal_entities") for u, _, _ in events)  # skipped: sources never delivered

    # the Airflow OpenLineage provider emitted task events (file transport), named like the lake's tables
    ol = [json.loads(line) for line in OL_EVENTS.read_text(encoding="utf-8").splitlines()]
    conform_ol = [e for e in ol if e["job"]["name"] == "govlake_silver.conform__hukou_population" and e["eventType"] == "COMPLETE"]
    assert conform_ol and {o["name"] for o in conform_ol[-1]["outputs"]} >= {str(Path(ctx.lake.uri("silver", "hukou_population")))}
    # the jobs' own runs are children of the Airflow task that ran them (and of its DAG run, as root)
    own_conform = [json.loads(line) for line in ctx.lineage.events_path.read_text(encoding="utf-8").splitlines()]
    own_conform = [e for e in own_conform if e["job"]["name"] == "conform.hukou_population"]
    assert own_conform
    parent = own_conform[-1]["run"]["facets"]["parent"]
    assert parent["job"]["name"] == "govlake_silver.conform__hukou_population"
    assert parent["run"]["runId"] == conform_ol[-1]["run"]["runId"]
    assert parent["root"]["job"]["name"] == "govlake_silver"
    # ... and they, like the jobs' own events in the lake, validate against the official OpenLineage schemas
    from tests.govlake.test_lineage_events import SPEC, _validators

    if SPEC.is_dir():
        event_validator, facet_validators = _validators()
        own = [json.loads(line) for line in ctx.lineage.events_path.read_text(encoding="utf-8").splitlines()]
        assert own
        for ev in ol + own:
            assert not list(event_validator.iter_errors(ev)), ev["job"]["name"]
            for where in [ev["run"], ev["job"], *ev.get("inputs", []), *ev.get("outputs", [])]:
                for group in ("facets", "inputFacets", "outputFacets"):
                    for key, facet in (where.get(group) or {}).items():
                        if key in facet_validators:  # the provider's own (airflow*) facets have no spec file
                            assert not list(facet_validators[key].iter_errors({key: facet})), key

    # -- second pass: nothing new, nothing written, nothing triggered --------------------------------------
    before, n_events, n_log = versions(ctx), len(events), len(batches)
    states = run_chain(bag)
    assert versions(ctx) == before
    assert len(asset_events()) == n_events
    assert ctx.lake.read("meta", "ingest_batches").num_rows == n_log  # the refused file is not logged again
    assert all(s == "skipped" for t, s in states["govlake_silver"].items() if t.startswith("conform__"))
    assert all(s == "skipped" for t, s in states["govlake_gold"].items() if t.startswith("build__"))
    assert states["govlake_governance"]["score"] == "skipped"
    assert {t for t, s in states["govlake_governance"].items() if s != "skipped"} == {"steward_report", "check"}
