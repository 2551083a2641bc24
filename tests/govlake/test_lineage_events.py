"""OpenLineage events and the lineage graph on a real pipeline run.

Every event is validated against the official OpenLineage JSON Schemas, read from
../shared/reference/openlineage-spec/ (not copied into the project), including each facet against its own
facet schema."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from govlake.cli import main
from govlake.jobs.ingest.bronze import ingest_file
from govlake.lineage_graph import all_edges, walk
from govlake.jobs.pipeline import run_pending
from tests.conftest import PROJECT, write_csv
from tests.factories import ric_number, uscc_code

def _find_spec() -> Path:
    """The official OpenLineage JSON Schemas, provided beside the project (``../shared/reference``), found from
    this checkout's parents (a clone elsewhere still finds the workplace's copy), or $OPENLINEAGE_SPEC_DIR."""
    import os

    rel = Path("shared") / "reference" / "openlineage-spec"
    candidates = [Path(os.environ["OPENLINEAGE_SPEC_DIR"])] if os.environ.get("OPENLINEAGE_SPEC_DIR") else []
    candidates += [p / rel for p in PROJECT.parents] + [Path("/work") / rel]
    return next((c for c in candidates if (c / "OpenLineage.json").is_file()), candidates[0] if candidates else rel)


SPEC = _find_spec()
HUKOU = ["公民身份号码", "姓名", "性别", "出生日期", "户籍地行政区划", "住址", "登记日期"]
MIGRANT = ["公民身份号码", "姓名", "性别", "出生日期", "户籍地行政区划", "居住地行政区划", "居住地址", "居住证有效期起",
           "居住证有效期止", "登记日期"]
ME = ["统一社会信用代码", "企业名称", "市场主体类型", "法定代表人", "法定代表人证件号码", "注册资本（万元）", "成立日期",
      "行政区划代码", "登记状态", "行业代码"]
NAMES = ["诸葛孔明", "司马仲达", "上官婉儿"]
ADDRESS = "广州市越秀区北京路88号"

pytestmark = pytest.mark.skipif(not SPEC.is_dir(), reason="OpenLineage spec not present at ../shared/reference")


def _validators() -> tuple[Draft202012Validator, dict[str, Draft202012Validator]]:
    resources = []
    facet_schemas: dict[str, dict] = {}
    for path in [SPEC / "OpenLineage.json", *sorted((SPEC / "facets").glob("*.json"))]:
        doc = json.loads(path.read_text(encoding="utf-8"))
        resources.append((doc["$id"], Resource.from_contents(doc)))
        for key in doc.get("properties", {}):
            facet_schemas[key] = doc
    registry = Registry().with_resources(resources)
    core = json.loads((SPEC / "OpenLineage.json").read_text(encoding="utf-8"))
    event = Draft202012Validator({"$ref": core["$id"] + "#/$defs/RunEvent"}, registry=registry)
    facets = {k: Draft202012Validator(v, registry=registry) for k, v in facet_schemas.items()}
    return event, facets


def _people(tmp_path: Path) -> tuple[Path, list[str]]:
    ids = [ric_number("440105", "19810203", f"{i:03d}") for i in range(3)]
    rows = [[ids[i], NAMES[i], "男", "1981-02-03", "440105", ADDRESS, "2001-01-01"] for i in range(3)]
    rows.append(["12345", "无效", "男", "1981-02-03", "440105", ADDRESS, "2001-01-01"])
    return write_csv(tmp_path / "hukou_population__gaj__20261101__1.csv", HUKOU, rows), ids


@pytest.fixture()
def pipeline_run(ctx, engine, tmp_path: Path):
    hk, ids = _people(tmp_path)
    ingest_file(ctx, hk, "gaj", "hukou_population")
    me = write_csv(tmp_path / "market_entities__scjgj__20261101__1.csv", ME,
                   [[uscc_code("91", "440105", f"MA5T{i:05d}"), f"测试{i}公司", "有限责任公司", NAMES[i], ids[i], "10",
                     "2010-01-01", "440105", "存续", "I65"] for i in range(3)])
    ingest_file(ctx, me, "scjgj", "market_entities")
    mg = write_csv(tmp_path / "migrant_population__lsj__20261101__1.csv", MIGRANT,
                   [[ids[0], NAMES[0], "男", "1981-02-03", "440105", "440106", ADDRESS, "2022-01-01", "2027-01-01", "2022-01-01"]])
    ingest_file(ctx, mg, "lsj", "migrant_population")
    bad = tmp_path / "broken.csv"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    refused = ingest_file(ctx, bad, "gaj", "hukou_population")
    report = run_pending(ctx, engine, ["hukou_population", "migrant_population", "market_entities"])
    events = [json.loads(line) for line in ctx.lineage.events_path.read_text(encoding="utf-8").splitlines()]
    return {"events": events, "ids": ids, "report": report, "refused": refused}


def test_every_event_validates_against_the_openlineage_schemas(pipeline_run) -> None:
    event_validator, facet_validators = _validators()
    events = pipeline_run["events"]
    assert events
    checked_facets = set()
    for ev in events:
        errors = sorted(event_validator.iter_errors(ev), key=str)
        assert not errors, (ev["job"]["name"], errors[0].message)
        for where in [ev["run"], ev["job"], *ev.get("inputs", []), *ev.get("outputs", [])]:
            for group in ("facets", "inputFacets", "outputFacets"):
                for key, facet in (where.get(group) or {}).items():
                    validator = facet_validators[key]
                    errors = list(validator.iter_errors({key: facet}))
                    assert not errors, (key, errors[0].message)
                    checked_facets.add(key)
    assert {"schema", "columnLineage", "dataQualityAssertions", "outputStatistics", "jobType", "processing_engine",
            "errorMessage"} <= checked_facets


def test_each_run_starts_and_ends(pipeline_run) -> None:
    runs: dict[str, list[str]] = {}
    jobs: dict[str, str] = {}
    for ev in pipeline_run["events"]:
        runs.setdefault(ev["run"]["runId"], []).append(ev["eventType"])
        jobs[ev["run"]["runId"]] = ev["job"]["name"]
    for run_id, states in runs.items():
        assert states[0] == "START" and states[-1] in ("COMPLETE", "FAIL") and len(states) == 2, (jobs[run_id], states)
    names = set(jobs.values())
    assert {"ingest.hukou_population", "ingest.market_entities", "conform.hukou_population",
            "conform.market_entities", "gold.population", "gold.source_conflicts", "quality.score", "lineage.graph"} <= names
    failed = [jobs[r] for r, s in runs.items() if s[-1] == "FAIL"]
    assert failed == ["ingest.hukou_population"]  # the refused file, and nothing else


def test_conform_event_carries_lineage_assertions_and_counts(ctx, pipeline_run) -> None:
    done = [ev for ev in pipeline_run["events"] if ev["job"]["name"] == "conform.hukou_population" and ev["eventType"] == "COMPLETE"]
    assert len(done) == 1
    ev = done[0]
    (bronze,) = ev["inputs"]
    assert bronze["namespace"] == "file" and bronze["name"] == ctx.lake.uri("bronze", "hukou_population")
    assertions = {a["name"]: a for a in bronze["inputFacets"]["dataQualityAssertions"]["assertions"]}
    assert assertions["id_number.cn_ric"]["success"] is False and assertions["name.required"]["success"] is True
    silver = next(o for o in ev["outputs"] if o["name"].endswith("/silver/hukou_population"))
    result = next(r for r in pipeline_run["report"].conformed if r.dataset == "hukou_population")
    assert silver["outputFacets"]["outputStatistics"]["rowCount"] == result.silver_rows == 3
    fields = silver["facets"]["columnLineage"]["fields"]
    src = fields["id_number_pid"]["inputFields"][0]
    assert src["field"] == "id_number" and src["name"].endswith("/bronze/hukou_population")
    assert src["transformations"][0]["masking"] is True
    schema_cols = {f["name"] for f in silver["facets"]["schema"]["fields"]}
    assert {"id_number_pid", "name_masked", "district_code"} <= schema_cols


def test_gold_event_maps_gold_columns_to_silver(pipeline_run) -> None:
    ev = next(e for e in pipeline_run["events"] if e["job"]["name"] == "gold.population" and e["eventType"] == "COMPLETE")
    fields = ev["outputs"][0]["facets"]["columnLineage"]["fields"]
    sources = {tuple(f["name"].rsplit("/", 2)[-2:]) + (f["field"],) for f in fields["birth_decade"]["inputFields"]}
    assert sources == {("silver", "hukou_population", "birth_date"), ("silver", "migrant_population", "birth_date")}
    assert "name_masked" not in fields  # gold publishes no name, not even masked
    assert ev["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 3  # 3 people, one in both sources


def test_no_personal_value_in_any_event(ctx, pipeline_run) -> None:
    text = ctx.lineage.events_path.read_text(encoding="utf-8")
    for secret in [*pipeline_run["ids"], *NAMES, ADDRESS]:
        assert secret not in text


def test_http_transport_by_configuration(ctx, engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"path": self.path, "event": json.loads(body)})
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("OPENLINEAGE_URL", f"http://127.0.0.1:{server.server_port}")
        hk, _ = _people(tmp_path)
        from govlake.context import Context

        fresh = Context.from_env(ctx.settings.lake_root)  # settings are read when the client is first used
        ingest_file(fresh, hk, "gaj", "hukou_population")
    finally:
        server.shutdown()
    assert [r["event"]["eventType"] for r in received] == ["START", "COMPLETE"]
    assert all(r["path"] == "/api/v1/lineage" for r in received)  # Marquez's endpoint
    assert not fresh.lineage.events_path.exists()


def test_lineage_walks_upstream_and_downstream(ctx) -> None:
    edges = all_edges(ctx)
    down = walk(edges, "bronze.hukou_population", "birth_date")
    targets = {(s.table, s.column) for s in down}
    assert ("gold.population", "birth_decade") in targets and ("gold.source_conflicts", "value_a") in targets
    assert not any(t == "gold.legal_entities" for t, _ in targets)
    up = {s.table for s in walk(edges, "gold.legal_entities", direction="upstream")}
    assert {"silver.market_entities", "silver.social_organizations", "bronze.market_entities"} <= up


def test_lineage_cli_and_its_errors(ctx, pipeline_run) -> None:
    runner = CliRunner()
    lake = ctx.settings.lake_root
    out = runner.invoke(main, ["lineage", "silver.market_entities", "--lake", lake, "--format", "json"])
    assert out.exit_code == 0, out.output
    tables = {s["table"] for s in json.loads(out.output)}
    assert {"gold.legal_entities", "gold.district_profile"} <= tables
    bad = runner.invoke(main, ["lineage", "silver.market_entity", "--lake", lake])
    assert bad.exit_code == 2 and "silver.market_entities" in bad.output and "Traceback" not in bad.output
    assert ctx.lake.exists("gold", "lineage_edges")


def test_parent_run_handed_down_by_an_orchestrator(ctx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """OPENLINEAGE_PARENT_ID / OPENLINEAGE_ROOT_PARENT_ID (``namespace/job/run_id``, what the Airflow
    provider's macros produce) make the job's run a child; a value without a UUID run id is ignored."""
    import uuid

    from govlake.lineage_events import env_parent

    task, dag = str(uuid.uuid4()), str(uuid.uuid4())
    monkeypatch.setenv("OPENLINEAGE_PARENT_ID", f"airflow://prod/govlake_ingest_gaj.ingest/{task}")
    monkeypatch.setenv("OPENLINEAGE_ROOT_PARENT_ID", f"airflow://prod/govlake_ingest_gaj/{dag}")
    hk, _ = _people(tmp_path)
    ingest_file(ctx, hk, "gaj", "hukou_population")
    events = [json.loads(line) for line in ctx.lineage.events_path.read_text(encoding="utf-8").splitlines()]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    for e in events:
        parent = e["run"]["facets"]["parent"]
        assert (parent["job"]["namespace"], parent["job"]["name"]) == ("airflow://prod", "govlake_ingest_gaj.ingest")
        assert parent["run"]["runId"] == task
        root = parent["root"]
        assert (root["job"]["namespace"], root["job"]["name"], root["run"]["runId"]) == ("airflow://prod", "govlake_ingest_gaj", dag)
        if SPEC.is_dir():
            _, facet_validators = _validators()
            assert not list(facet_validators["parent"].iter_errors({"parent": parent}))
    monkeypatch.setenv("OPENLINEAGE_PARENT_ID", "airflow/govlake_ingest_gaj.ingest/not-a-uuid")
    assert env_parent() is None
    monkeypatch.delenv("OPENLINEAGE_PARENT_ID")
    assert env_parent() is None
