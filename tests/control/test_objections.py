"""数据异议 on a real lake and a real control DB: routing to the authority, refusal of raw ID numbers, the
state machine and who may move it, reconciliation after a re-delivery, and the quality score it costs."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from govlake.control import identities
from govlake.control import objections as obj
from govlake.control.audit import rows as audit_rows
from govlake.control.audit import verify
from govlake.control.db import control_engine
from govlake.control.objections import ObjectionError, ObjectionStatus
from govlake.control.principal import Principal
from govlake.control.schema import metadata
from govlake.errors import AccessDenied
from govlake.jobs.ingest.bronze import ingest
from govlake.jobs.pipeline import run_pending
from tests.conftest import write_csv
from tests.factories import uscc_code
from tests.jobs.gold.test_integrate import P1, pid, seed_people

ME_HEADER = ["统一社会信用代码", "企业名称", "成立日期", "行政区划代码", "登记状态"]
FIRM = uscc_code("91", org="MA59AAAA1")      # registered by 市场监管 (first character 9)
SCHOOL = uscc_code("52", org="MA59BBBB2")    # registered by 民政 (first character 5)


def deliver_entities(ctx, path: Path, rows: list[list[str]]) -> None:
    assert ingest(ctx, [write_csv(path, ME_HEADER, rows)], "scjgj", "market_entities")[0].ok


@pytest.fixture()
def lake(ctx, engine, tmp_path: Path):
    """Two market entities and three people, through the real pipeline."""
    deliver_entities(ctx, tmp_path / "me.csv", [
        [FIRM, "广州甲科技有限公司", "2015-01-01", "440106", "存续"],
        [SCHOOL, "广州某民办学校", "2016-01-01", "440106", "存续"],
    ])
    seed_people(ctx, tmp_path)
    run_pending(ctx, engine)
    return ctx


def user(ctx, name: str, node: str, role: str) -> Principal:
    owner = Principal.lake_owner(ctx.registry.city.code)
    made = identities.add_user(ctx.settings, ctx.registry, name, node, role, "Objection-test-9x!", by=owner)
    return identities.principal_for(ctx.settings, ctx.registry, made["id"], "password")


def control_text(ctx) -> str:
    """Every value of every control-plane table, as one string."""
    with control_engine(ctx.settings).connect() as con:
        return "\n".join(str(list(con.execute(sa.select(t)))) for t in metadata.sorted_tables)


def test_objection_on_gold_population_goes_to_the_person_authority(lake) -> None:
    ana = user(lake, "ana", "wjw", "analyst")  # a department analyst: reads gold, not silver
    ref = pid(lake, P1)
    row = obj.file_objection(lake.settings, lake.registry, ana, "gold.population", ref, "gender", "性别登记有误")
    assert (row["source_node"], row["item"], row["dataset"]) == ("gaj", "person.gender", "hukou_population")
    assert row["status"] == ObjectionStatus.SUBMITTED and row["value_digest"] and row["key_digest"]
    assert obj.open_refs(lake.settings, "gold.population") == {"person_pid": {ref}}
    assert obj.open_refs(lake.settings, "gold.legal_entities") == {}
    assert obj.open_counts(lake.settings) == {"gaj": 1}
    assert obj.open_counts(lake.settings, by="dataset") == {"hukou_population": 1}
    # Ours is the audit row's text, and the chain still verifies.
    filed = audit_rows(lake.settings, action="objection.file")
    assert filed[0]["outcome"] == "ok" and "性别登记有误" not in (filed[0]["detail"] or "")
    assert verify(lake.settings).ok


def test_objection_on_market_entities_routes_by_registration_authority(lake) -> None:
    admin = user(lake, "center", "440100", "admin")
    firm = obj.file_objection(lake.settings, lake.registry, admin, "silver.market_entities", FIRM, "entity_name", "名称有误")
    school = obj.file_objection(lake.settings, lake.registry, admin, "silver.market_entities", SCHOOL, "entity_name",
                                "该单位为民办学校，名称应以民政登记为准")
    assert (firm["source_node"], firm["item"]) == ("scjgj", "legal_entity.name")
    assert (school["source_node"], school["item"]) == ("mzj", "legal_entity.name")  # by_key_prefix "5" → 民政
    # A field that is no shared item goes to the contract's owner.
    status = obj.file_objection(lake.settings, lake.registry, admin, "silver.market_entities", SCHOOL, "status", "已注销")
    assert (status["source_node"], status["item"]) == ("scjgj", None)


def test_unknown_record_and_field_are_clear_errors(lake) -> None:
    admin = user(lake, "center", "440100", "admin")
    with pytest.raises(ObjectionError, match="没有"):
        obj.file_objection(lake.settings, lake.registry, admin, "silver.market_entities", uscc_code("91", org="MA59DDDD4"),
                           "entity_name", "x")
    with pytest.raises(ObjectionError, match="没有字段"):
        obj.file_objection(lake.settings, lake.registry, admin, "silver.market_entities", FIRM, "entity_nam", "x")
    with pytest.raises(ObjectionError, match="不是假名"):
        obj.file_objection(lake.settings, lake.registry, admin, "gold.population", "张三", "gender", "x")
    with pytest.raises(ObjectionError, match="银层或金层"):
        obj.file_objection(lake.settings, lake.registry, admin, "bronze.hukou_population", "x", None, "x")
    ana = user(lake, "ana", "wjw", "analyst")  # no grant on market_entities: cannot read it, cannot dispute it
    with pytest.raises(AccessDenied):
        obj.file_objection(lake.settings, lake.registry, ana, "silver.market_entities", FIRM, "entity_name", "x")
    assert obj.open_counts(lake.settings) == {}


def test_a_raw_id_number_is_refused_and_never_stored(lake) -> None:
    ana = user(lake, "ana", "wjw", "analyst")
    admin = user(lake, "center", "440100", "admin")
    with pytest.raises(ObjectionError, match="假名"):
        obj.file_objection(lake.settings, lake.registry, ana, "gold.population", P1, "gender", "性别有误")
    with pytest.raises(ObjectionError, match="假名"):  # not even where the key is a non-personal code
        obj.file_objection(lake.settings, lake.registry, admin, "silver.market_entities", P1, "entity_name", "x")
    # The pseudonym works; an ID number written into the reason is masked before it is stored.
    obj.file_objection(lake.settings, lake.registry, ana, "gold.population", pid(lake, P1), "gender", f"应为女，证件号 {P1}")
    text = control_text(lake)
    assert P1 not in text and P1[:14] not in text
    assert [r["outcome"] for r in audit_rows(lake.settings, action="objection.file")] == ["ok", "denied", "denied"]


def test_states_move_only_legally_and_only_by_the_source_steward(lake) -> None:
    ana = user(lake, "ana", "wjw", "analyst")
    other = user(lake, "market", "scjgj", "steward")
    police = user(lake, "police", "gaj", "steward")
    oid = obj.file_objection(lake.settings, lake.registry, ana, "gold.population", pid(lake, P1), "gender", "有误")["id"]
    for who in (ana, other):
        with pytest.raises(AccessDenied):
            obj.advance(lake.settings, lake.registry, who, oid, "已受理")
    with pytest.raises(ObjectionError, match="不能改为"):
        obj.advance(lake.settings, lake.registry, police, oid, "已更正")  # 核实 comes first
    row = obj.advance(lake.settings, lake.registry, police, oid, "已受理")
    assert row["status"] == "已受理" and row["handled_by"] == "police"
    assert obj.advance(lake.settings, lake.registry, police, oid, "verifying")["status"] == "核实中"
    with pytest.raises(ObjectionError, match="理由"):
        obj.advance(lake.settings, lake.registry, police, oid, "已驳回")
    done = obj.advance(lake.settings, lake.registry, police, oid, "已驳回", note="经核实与户籍登记一致")
    assert done["status"] == "已驳回" and done["resolution"] == "经核实与户籍登记一致"
    assert obj.open_refs(lake.settings, "gold.population") == {}
    with pytest.raises(ObjectionError, match="已办结"):
        obj.advance(lake.settings, lake.registry, police, oid, "核实中")
    outcomes = [r["outcome"] for r in audit_rows(lake.settings, action="objection.advance")]
    assert outcomes.count("ok") == 3 and outcomes.count("denied") == 5


def test_deadlines_come_from_the_registry_in_working_days(lake) -> None:
    from datetime import datetime, timezone

    ana = user(lake, "ana", "wjw", "analyst")
    row = obj.file_objection(lake.settings, lake.registry, ana, "gold.population", pid(lake, P1), None, "整条记录有误")
    assert obj.deadline(lake.settings, ObjectionStatus.SUBMITTED).workdays == 2
    friday = datetime(2026, 11, 27, 2, 0, tzinfo=timezone.utc)  # 10:00 Friday in Guangzhou
    assert obj.due_for(lake.settings, ObjectionStatus.SUBMITTED, friday).date().isoformat() == "2026-12-01"
    assert not obj.overdue(lake.settings)
    late = obj.overdue(lake.settings, now=datetime(2027, 1, 1, tzinfo=timezone.utc))
    assert [r["id"] for r in late] == [row["id"]]


def test_a_redelivery_that_changes_the_value_closes_the_objection(lake, engine, tmp_path: Path) -> None:
    admin = user(lake, "center", "440100", "admin")
    oid = obj.file_objection(lake.settings, lake.registry, admin, "silver.market_entities", FIRM, "entity_name",
                             "名称少了“股份”")["id"]
    # A delivery that leaves the disputed value as it was keeps the objection open.
    deliver_entities(lake, tmp_path / "me2.csv", [[uscc_code("91", org="MA59CCCC3"), "广州乙贸易有限公司", "2017-01-01",
                                                   "440104", "存续"]])
    run_pending(lake, engine)
    assert obj.get(lake.settings, oid)["status"] == ObjectionStatus.SUBMITTED
    assert obj.reconcile(lake) == []
    # The source re-delivers the record with the name corrected: the next run closes it.
    deliver_entities(lake, tmp_path / "me3.csv", [[FIRM, "广州甲科技股份有限公司", "2015-01-01", "440106", "存续"]])
    report = run_pending(lake, engine)
    assert [s.summary.get("corrected") for s in report.steps if s.summary.get("stage") == "objections"] == [[oid]]
    row = obj.get(lake.settings, oid)
    assert (row["status"], row["resolution"], row["handled_by"]) == ("已更正", "重新交付已更正", "govlake")
    assert obj.reconcile(lake) == []  # idempotent
    assert obj.open_refs(lake.settings, "silver.market_entities") == {}
    assert [r["outcome"] for r in audit_rows(lake.settings, action="objection.corrected")] == ["ok"]


def test_open_objections_lower_the_dataset_quality_score(lake, engine) -> None:
    from govlake.jobs.quality.scoring import score_run
    from govlake.tables import QUALITY_SCORES

    scores = lake.lake.read(*QUALITY_SCORES.ref).to_pylist()
    run_id = scores[0]["run_id"]
    batches = sorted({r["batch_id"] for r in lake.lake.read("meta", "conform_batches").to_pylist() if r["run_id"] == run_id})

    def dataset_score(name: str) -> tuple[float, float]:
        score_run(lake, engine, run_id, batches)  # a re-scored run replaces its rows
        row = next(r for r in lake.lake.read(*QUALITY_SCORES.ref).to_pylist()
                   if r["scope"] == "dataset" and r["dataset"] == name)
        return row["validity"], row["score"]

    before, others = dataset_score("market_entities"), dataset_score("hukou_population")
    admin = user(lake, "center", "440100", "admin")
    obj.file_objection(lake.settings, lake.registry, admin, "silver.market_entities", FIRM, "entity_name", "名称有误")
    after = dataset_score("market_entities")
    assert after[0] == pytest.approx(before[0] - 1 / 2) and after[1] < before[1]  # one of two records disputed
    assert dataset_score("hukou_population") == others  # other datasets untouched


def test_cli_lists_and_advances_as_the_lake_owner(lake, govlake) -> None:
    import json

    ana = user(lake, "ana", "wjw", "analyst")
    oid = obj.file_objection(lake.settings, lake.registry, ana, "gold.population", pid(lake, P1), "gender", "有误")["id"]
    out = govlake("objection", "list", "--node", "gaj", "--format", "json")
    assert out.returncode == 0, out.stderr
    assert [(r["id"], r["status"]) for r in json.loads(out.stdout)] == [(oid, "已提交")]
    bad = govlake("objection", "advance", str(oid), "已更正")
    assert bad.returncode == 2 and "不能改为" in bad.stderr and "Traceback" not in bad.stderr
    ok = govlake("objection", "advance", str(oid), "已受理")
    assert ok.returncode == 0 and "已受理" in ok.stdout, ok.stderr
    rec = govlake("objection", "reconcile")
    assert rec.returncode == 0 and "没有" in rec.stdout
    assert obj.get(lake.settings, oid)["status"] == "已受理"


def test_filing_is_no_oracle_for_records_out_of_scope(lake) -> None:
    """Another district's person and a pseudonym nobody has get the same answer: otherwise filing would tell
    a district user which pseudonyms exist elsewhere."""
    table = lake.lake.dataset(lake.lake.table("gold", "population")).to_table(columns=["person_pid", "district_code"])
    ref, home = table.column("person_pid")[0].as_py(), table.column("district_code")[0].as_py()
    elsewhere = next(d for d in ("440103", "440104", "440105") if d != home)
    ana = user(lake, "ana.elsewhere", elsewhere, "analyst")
    answers = []
    for candidate in (ref, "0" * 64):
        with pytest.raises(ObjectionError) as caught:
            obj.file_objection(lake.settings, lake.registry, ana, "gold.population", candidate, "gender", "有误")
        answers.append(str(caught.value))
    assert answers[0] == answers[1]
