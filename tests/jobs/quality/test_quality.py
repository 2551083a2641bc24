"""Data quality end to end on real Delta tables: error rules quarantine, warn rules count, fatal rules hold a
batch until released, batch rules judge deliveries, 多源校核 finds conflicts, and every run is scored."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from govlake.jobs.conform.silver import conform
from govlake.jobs.ingest.bronze import ingest_file
from govlake.jobs.pipeline import run_pending
from govlake.jobs.quality.validate import release
from tests.conftest import write_csv
from tests.factories import bad_check, ric_number, uscc_code

ME_HEADER = ["统一社会信用代码", "企业名称", "市场主体类型", "法定代表人", "法定代表人证件号码", "注册资本（万元）",
             "成立日期", "行政区划代码", "登记状态", "行业代码"]
HUKOU = ["公民身份号码", "姓名", "性别", "出生日期", "户籍地行政区划", "住址", "登记日期"]
MIGRANT = ["公民身份号码", "姓名", "性别", "出生日期", "户籍地行政区划", "居住地行政区划", "居住地址",
           "居住证有效期起", "居住证有效期止", "登记日期"]
CREDIT = ["信息编号", "统一社会信用代码", "主体名称", "信息类别", "决定文书号", "决定日期", "公示截止日期", "决定机关", "所属区"]
HEADERS = {"market_entities": ME_HEADER, "hukou_population": HUKOU, "migrant_population": MIGRANT, "credit_records": CREDIT}
NODES = {"market_entities": "scjgj", "hukou_population": "gaj", "migrant_population": "lsj", "credit_records": "fgw"}
FUTURE = (date.today() + timedelta(days=400))
EXCEL = "4.40106199003071e+17"


def uscc(i: int, kind: str = "91") -> str:
    return uscc_code(kind, "440106", f"MA59Q{i:04d}")


def person(i: int, birth: str = "19900307", address: str = "440106") -> str:
    return ric_number(address, birth, f"{i:03d}")


def me_row(i: int, **kw: str) -> list[str]:
    r = dict(uscc=uscc(i), name=f"广州{i}号科技有限公司", type="有限责任公司", rep="张三", rep_id=person(900 + i % 99),
             capital="100", date="2015-06-01", district="440106", status="存续", industry="I65")
    r.update(kw)
    return [r["uscc"], r["name"], r["type"], r["rep"], r["rep_id"], r["capital"], r["date"], r["district"], r["status"],
            r["industry"]]


def hukou_row(i: int, **kw: str) -> list[str]:
    r = dict(id=person(i), name=f"居民{i}", gender="男", birth="1990-03-07", district="440106", address="广州市天河区某路1号",
             registered="2020-01-02")
    r.update(kw)
    return [r["id"], r["name"], r["gender"], r["birth"], r["district"], r["address"], r["registered"]]


def migrant_row(i: int, **kw: str) -> list[str]:
    r = dict(id=person(i, address="430102"), name=f"来穗{i}", gender="女", birth="1990-03-07", hukou="430102",
             residence="440111", address="广州市白云区某路3号", valid_from="2022-01-01", valid_to="2027-01-01",
             registered="2022-01-01")
    r.update(kw)
    return [r["id"], r["name"], r["gender"], r["birth"], r["hukou"], r["residence"], r["address"], r["valid_from"],
            r["valid_to"], r["registered"]]


def credit_row(i: int, code: str, **kw: str) -> list[str]:
    r = dict(id=f"XY{i:06d}", uscc=code, name=f"主体{i}", type="行政许可", no=f"穗许字〔2024〕{i}号", date="2024-03-01",
             valid_to="2027-03-01", authority="广州市市场监督管理局", district="440106")
    r.update(kw)
    return [r["id"], r["uscc"], r["name"], r["type"], r["no"], r["date"], r["valid_to"], r["authority"], r["district"]]


ROW = {"market_entities": me_row, "hukou_population": hukou_row, "migrant_population": migrant_row}


def deliver(ctx, tmp_path: Path, dataset: str, name: str, rows: list[list[str]], delivered_on: date | None = None) -> str:
    f = write_csv(tmp_path / name, HEADERS[dataset], rows)
    r = ingest_file(ctx, f, NODES[dataset], dataset, delivered_on=delivered_on)
    assert r.status == "ingested", r.message
    return r.batch_id


def table(ctx, layer: str, name: str) -> list[dict]:
    return ctx.lake.read(layer, name).to_pylist() if ctx.lake.exists(layer, name) else []


def results(ctx, dataset: str, rule: str) -> dict[str, dict]:
    """batch -> the latest meta.validation_results row of ``rule``."""
    out: dict[str, dict] = {}
    for r in sorted(table(ctx, "meta", "validation_results"), key=lambda r: r["validated_at"]):
        if r["dataset"] == dataset and r["rule"] == rule:
            out[r["batch_id"]] = r
    return out


def accounting(ctx, dataset: str) -> dict[str, dict]:
    return {r["batch_id"]: r for r in table(ctx, "meta", "conform_batches") if r["dataset"] == dataset}


# -- 5. error rules ----------------------------------------------------------------------------------------

ERROR_CASES = [
    # (dataset, overrides of the bad row, the rules it must fail and nothing else)
    pytest.param("market_entities", {"uscc": bad_check(uscc(77))}, {"uscc.cn_uscc"}, id="me-credit-code-check"),
    pytest.param("market_entities", {"uscc": uscc(77)[:-1] + "I"}, {"uscc.cn_uscc"}, id="me-credit-code-charset"),
    pytest.param("market_entities", {"district": "440300"}, {"district_code.gz_district"}, id="me-district-440300"),
    pytest.param("market_entities", {"district": "深圳市"}, {"district_code.gz_district"}, id="me-district-shenzhen"),
    pytest.param("market_entities", {"date": FUTURE.isoformat()}, {"establish_date.future"}, id="me-date-future"),
    pytest.param("market_entities", {"date": "1949-09-30"}, {"establish_date.too_early"}, id="me-date-before-1949"),
    pytest.param("market_entities", {"name": ""}, {"entity_name.required"}, id="me-name-missing"),
    pytest.param("market_entities", {"name": "　 "}, {"entity_name.required"}, id="me-name-blank"),
    pytest.param("hukou_population", {"id": bad_check(person(77))}, {"id_number.cn_ric"}, id="hukou-check-char"),
    pytest.param("hukou_population", {"id": person(77, birth="19900230")}, {"id_number.cn_ric"}, id="hukou-id-feb30"),
    pytest.param("hukou_population", {"birth": "1990-02-30"}, {"birth_date.date"}, id="hukou-birth-feb30"),
    pytest.param("hukou_population", {"id": EXCEL}, {"id_number.excel_number", "id_number.cn_ric"}, id="hukou-excel"),
    pytest.param("migrant_population", {"id": bad_check(person(77, address="430102"))}, {"id_number.cn_ric"},
                 id="migrant-check-char"),
    pytest.param("migrant_population", {"id": person(77, birth="19900230", address="430102")}, {"id_number.cn_ric"},
                 id="migrant-id-feb30"),
    pytest.param("migrant_population", {"birth": "19900230"}, {"birth_date.date"}, id="migrant-birth-feb30"),
    pytest.param("migrant_population", {"id": EXCEL}, {"id_number.excel_number", "id_number.cn_ric"}, id="migrant-excel"),
]


@pytest.mark.parametrize(("dataset", "bad", "expected"), ERROR_CASES)
def test_error_rule_quarantines_the_bad_row_only(ctx, engine, tmp_path: Path, dataset: str, bad: dict, expected: set) -> None:
    make = ROW[dataset]
    rows = [make(1), make(2), make(77, **bad), make(3)]
    batch = deliver(ctx, tmp_path, dataset, "d.csv", rows)
    res = conform(ctx, engine, dataset)
    assert res.held == [] and res.balanced and (res.silver_rows, res.quarantined) == (3, 1)
    silver = {r["_row_number"]: r for r in table(ctx, "silver", dataset)}
    assert set(silver) == {1, 2, 4}
    assert all(list(r["_warnings"]) == [] for r in silver.values())
    [q] = table(ctx, "quarantine", dataset)
    assert q["_row_number"] == 3 and q["_batch_id"] == batch and q["_status"] == "open"
    assert set(q["_failures"]) == expected
    # the same rules are what the validation record counts for the batch
    for rule in expected:
        r = results(ctx, dataset, rule)[batch]
        assert (r["unexpected_count"], r["element_count"], r["severity"], r["success"]) == (1, 4, "error", False)


# -- 6. warn rules -----------------------------------------------------------------------------------------

def test_warn_rule_keeps_the_row_and_counts_it(ctx, engine, tmp_path: Path) -> None:
    batch = deliver(ctx, tmp_path, "migrant_population", "m.csv", [
        migrant_row(1),
        migrant_row(2, valid_from="2024-06-01", valid_to="2023-06-01"),  # 止 before 起
        migrant_row(3, valid_from="2024-06-01", valid_to="2024-06-01"),  # same day: or_equal
    ])
    res = conform(ctx, engine, "migrant_population")
    assert (res.silver_rows, res.quarantined, res.warned) == (3, 0, 1)
    silver = {r["_row_number"]: r for r in table(ctx, "silver", "migrant_population")}
    assert list(silver[2]["_warnings"]) == ["permit_valid_to.after_from"]
    assert list(silver[1]["_warnings"]) == [] and list(silver[3]["_warnings"]) == []
    r = results(ctx, "migrant_population", "permit_valid_to.after_from")[batch]
    assert (r["severity"], r["unexpected_count"], r["element_count"]) == ("warn", 1, 3)
    assert accounting(ctx, "migrant_population")[batch]["warned"] == 1
    assert table(ctx, "quarantine", "migrant_population") == []


# -- 7/8. fatal rules hold a batch ---------------------------------------------------------------------------

def held_file_rows() -> tuple[list[list[str]], set[int], set[int]]:
    """6 rows, 4 with invalid ID numbers (more than half): rows 1..6, good = {2, 5}."""
    rows = [hukou_row(11, id=bad_check(person(11))), hukou_row(12), hukou_row(13, id=person(13, birth="19900230")),
            hukou_row(14, id=EXCEL), hukou_row(15), hukou_row(16, id=bad_check(person(16)))]
    return rows, {2, 5}, {1, 3, 4, 6}


def test_fatal_rule_holds_the_batch_until_released(ctx, engine, tmp_path: Path) -> None:
    rows, good, bad = held_file_rows()
    batch = deliver(ctx, tmp_path, "hukou_population", "held.csv", rows)
    res = conform(ctx, engine, "hukou_population")
    assert res.held == [batch] and res.balanced
    acc = accounting(ctx, "hukou_population")[batch]
    assert acc["status"] == "held" and "id_number.cn_ric@batch" in json.loads(acc["held_by"])
    assert acc["bronze_rows"] == acc["silver_rows"] + acc["quarantined"] + acc["superseded"] == 6
    assert acc["silver_rows"] == 0
    assert [r for r in table(ctx, "silver", "hukou_population") if r["_batch_id"] == batch] == []
    q = table(ctx, "quarantine", "hukou_population")
    assert sorted(r["_row_number"] for r in q) == [1, 2, 3, 4, 5, 6]
    assert all("batch:id_number.cn_ric@batch" in r["_failures"] for r in q)
    assert {r["_row_number"] for r in q if "id_number.cn_ric" in r["_failures"]} == bad
    fatal = results(ctx, "hukou_population", "id_number.cn_ric@batch")[batch]
    assert (fatal["severity"], fatal["unexpected_count"], fatal["element_count"], fatal["success"]) == ("fatal", 4, 6, False)
    assert ctx.lake.read("bronze", "hukou_population").num_rows == 6

    out = release(ctx, "hukou_population", batch, reason="核实无误", by="steward1")
    assert out["batch_id"] == batch
    [w] = table(ctx, "meta", "batch_waivers")
    assert (w["batch_id"], w["reason"], w["released_by"]) == (batch, "核实无误", "steward1")
    again = conform(ctx, engine, "hukou_population")
    assert again.batches == [batch] and again.held == [] and again.balanced
    assert (again.silver_rows, again.quarantined) == (2, 4)
    acc = accounting(ctx, "hukou_population")[batch]
    assert acc["status"] == "published" and acc["silver_rows"] == 2
    assert {r["_row_number"] for r in table(ctx, "silver", "hukou_population")} == good
    q = table(ctx, "quarantine", "hukou_population")
    assert sorted(r["_row_number"] for r in q) == sorted(bad)  # the first attempt's rows were replaced
    assert all(not any(f.startswith("batch:") for f in r["_failures"]) for r in q)
    assert all("id_number.cn_ric" in r["_failures"] for r in q)
    fatal = results(ctx, "hukou_population", "id_number.cn_ric@batch")[batch]
    assert fatal["unexpected_count"] == 4 and fatal["success"] is True and "放行" in fatal["observed"]  # recorded, waived
    assert conform(ctx, engine, "hukou_population").batches == []  # released and published: done


def test_a_batch_that_lost_most_keys_is_held_by_the_key_audit(ctx, engine, tmp_path: Path) -> None:
    """Blank ID numbers pass the GB 11643 check (nulls are not judged) but fail the fatal key audit."""
    batch = deliver(ctx, tmp_path, "hukou_population", "nokeys.csv",
                    [hukou_row(1), hukou_row(2, id=""), hukou_row(3, id=" "), hukou_row(4, id="")])
    res = conform(ctx, engine, "hukou_population")
    assert res.held == [batch] and res.balanced and res.silver_rows == 0
    acc = accounting(ctx, "hukou_population")[batch]
    assert acc["status"] == "held" and json.loads(acc["held_by"]) == ["id_number.required@batch"]
    q = {r["_row_number"]: r for r in table(ctx, "quarantine", "hukou_population")}
    assert set(q) == {1, 2, 3, 4}
    assert q[1]["_failures"] == ["batch:id_number.required@batch"]
    assert set(q[2]["_failures"]) == {"id_number.required", "batch:id_number.required@batch"}


def test_release_refuses_a_batch_that_is_not_held(ctx, engine, tmp_path: Path) -> None:
    from govlake.errors import RegistryError

    batch = deliver(ctx, tmp_path, "hukou_population", "ok.csv", [hukou_row(1), hukou_row(2)])
    conform(ctx, engine, "hukou_population")
    with pytest.raises(RegistryError):
        release(ctx, "hukou_population", batch, reason="x", by="steward1")


@pytest.mark.parametrize("same_run", [True, False], ids=["same-run", "later-run"])
def test_a_held_batch_does_not_block_later_deliveries(ctx, engine, tmp_path: Path, same_run: bool) -> None:
    rows, _, _ = held_file_rows()
    held = deliver(ctx, tmp_path, "hukou_population", "held.csv", rows)
    if not same_run:
        assert conform(ctx, engine, "hukou_population").held == [held]
    good = deliver(ctx, tmp_path, "hukou_population", "good.csv", [hukou_row(21), hukou_row(22), hukou_row(23)])
    res = conform(ctx, engine, "hukou_population")
    assert res.held == ([held] if same_run else [])
    acc = accounting(ctx, "hukou_population")
    assert acc[held]["status"] == "held" and acc[good]["status"] == "published"
    assert (acc[good]["silver_rows"], acc[good]["quarantined"]) == (3, 0)
    silver = table(ctx, "silver", "hukou_population")
    assert len(silver) == 3 and {r["_batch_id"] for r in silver} == {good}
    q = table(ctx, "quarantine", "hukou_population")
    assert len(q) == 6 and {r["_batch_id"] for r in q} == {held}


# -- 9. referential integrity --------------------------------------------------------------------------------

def test_credit_records_warn_when_the_entity_is_not_registered(ctx, engine, tmp_path: Path) -> None:
    deliver(ctx, tmp_path, "market_entities", "me.csv", [me_row(1), me_row(2)])
    conform(ctx, engine, "market_entities")
    batch = deliver(ctx, tmp_path, "credit_records", "cr.csv", [
        credit_row(1, uscc(1)), credit_row(2, uscc(3)), credit_row(3, " " + uscc(2).lower()), credit_row(4, uscc(4, kind="52")),
    ])
    res = conform(ctx, engine, "credit_records")
    assert (res.silver_rows, res.quarantined, res.warned) == (4, 0, 2)
    silver = {r["record_id"]: r for r in table(ctx, "silver", "credit_records")}
    assert "uscc.in_legal_entities" not in silver["XY000001"]["_warnings"]
    assert "uscc.in_legal_entities" not in silver["XY000003"]["_warnings"]  # standardized before the lookup
    assert "uscc.in_legal_entities" in silver["XY000002"]["_warnings"]
    assert "uscc.in_legal_entities" in silver["XY000004"]["_warnings"]
    r = results(ctx, "credit_records", "uscc.in_legal_entities")[batch]
    assert (r["severity"], r["unexpected_count"], r["element_count"]) == ("warn", 2, 4)


def test_reference_check_is_not_evaluated_before_the_referenced_data_exists(ctx, engine, tmp_path: Path) -> None:
    batch = deliver(ctx, tmp_path, "credit_records", "cr.csv", [credit_row(1, uscc(1)), credit_row(2, uscc(3))])
    res = conform(ctx, engine, "credit_records")
    assert (res.silver_rows, res.warned) == (2, 0)
    assert all("uscc.in_legal_entities" not in r["_warnings"] for r in table(ctx, "silver", "credit_records"))
    r = results(ctx, "credit_records", "uscc.in_legal_entities")[batch]
    assert r["unexpected_count"] == 0 and r["success"] is True and r["observed"]


# -- 10. batch rules: timeliness and volume ----------------------------------------------------------------

@pytest.mark.parametrize("via", ["argument", "file-name"])
def test_timeliness_flags_only_the_late_delivery(ctx, engine, tmp_path: Path, via: str) -> None:
    # market_entities is 每日: allowed gap = 2 cycles x 1 day + 1 grace day = 3 days.
    days = [date(2026, 3, 1), date(2026, 3, 4), date(2026, 3, 12)]
    batches = []
    for i, d in enumerate(days):
        if via == "argument":
            batches.append(deliver(ctx, tmp_path, "market_entities", f"d{i}.csv", [me_row(10 * i + 1)], delivered_on=d))
        else:
            batches.append(deliver(ctx, tmp_path, "market_entities", f"market_entities__scjgj__{d:%Y%m%d}__001.csv",
                                   [me_row(10 * i + 1)]))
    log = {r["batch_id"]: r["delivered_on"] for r in table(ctx, "meta", "ingest_batches")}
    assert [log[b] for b in batches] == days
    res = conform(ctx, engine, "market_entities")
    assert res.held == [] and res.silver_rows == 3  # warn: late data is still published
    t = results(ctx, "market_entities", "batch.timeliness")
    assert [t[b]["success"] for b in batches] == [True, True, False]
    assert t[batches[2]]["severity"] == "warn" and t[batches[2]]["unexpected_count"] == 1
    assert "8 天" in t[batches[2]]["observed"]  # 8 days since the previous delivery


@pytest.mark.parametrize(("third", "ok"), [(1, False), (90, True), (2500, False)])
def test_volume_against_the_nodes_history(ctx, engine, tmp_path: Path, third: int, ok: bool) -> None:
    b1 = deliver(ctx, tmp_path, "market_entities", "v1.csv", [me_row(i) for i in range(100)])
    b2 = deliver(ctx, tmp_path, "market_entities", "v2.csv", [me_row(i, name=f"第二期{i}") for i in range(100)])
    b3 = deliver(ctx, tmp_path, "market_entities", "v3.csv", [me_row(1000 + i) for i in range(third)])
    res = conform(ctx, engine, "market_entities")
    assert res.held == [] and res.balanced
    v = results(ctx, "market_entities", "batch.volume")
    assert v[b1]["success"] and v[b2]["success"]  # not enough history to judge yet
    assert v[b3]["success"] is ok and v[b3]["unexpected_count"] == (0 if ok else 1) and v[b3]["severity"] == "warn"
    assert accounting(ctx, "market_entities")[b3]["status"] == "published"


# -- 11. 多源校核 --------------------------------------------------------------------------------------------

P = [ric_number("440106", "19900307", "501"), ric_number("440104", "19851120", "602"), ric_number("440111", "19700101", "703")]


def test_cross_source_conflicts_are_found_masked_with_the_authority(ctx, engine, tmp_path: Path) -> None:
    deliver(ctx, tmp_path, "hukou_population", "h.csv", [
        hukou_row(1, id=P[0], name="张三丰", gender="男", birth="1990-03-07"),
        hukou_row(2, id=P[1], name="李四光", gender="女", birth="1985-11-20"),
        hukou_row(3, id=P[2], name="王五岳", gender="男", birth="1970-01-01"),
    ])
    deliver(ctx, tmp_path, "migrant_population", "m.csv", [
        migrant_row(1, id=P[0], name="张三丰", gender="1", birth="1990/3/7"),
        migrant_row(2, id=P[1], name="李四广", gender="女", birth="19851120"),
        migrant_row(3, id=P[2], name="王五岳", gender="女", birth="1970-01-01"),
    ])
    report = run_pending(ctx, engine)
    assert report.balanced and report.held == []
    t = ctx.lake.read("gold", "source_conflicts")
    conflicts = t.to_pylist()
    assert sorted(r["item"] for r in conflicts) == ["person.gender", "person.name"]
    from tests.jobs.gold.test_integrate import pid

    by_item = {r["item"]: r for r in conflicts}
    assert by_item["person.name"]["subject_key"] == pid(ctx, P[1])
    assert by_item["person.gender"]["subject_key"] == pid(ctx, P[2])
    for r in conflicts:
        assert r["authoritative_node"] == "gaj" and {r["node_a"], r["node_b"]} == {"gaj", "lsj"}
    g = by_item["person.gender"]
    # Personal values are not published beside the pseudonym (gold.population withholds small groups' gender).
    assert g["value_a"] == g["value_b"] == g["authoritative_value"] == "（已脱敏）"
    text = str(conflicts)
    for raw in P + ["张三丰", "李四光", "李四广", "王五岳"]:
        assert raw not in text
    summary = {r["item"]: r for r in ctx.lake.read("gold", "crosscheck_summary").to_pylist()
               if {r["dataset_a"], r["dataset_b"]} == {"hukou_population", "migrant_population"}}
    assert {k: (v["compared"], v["conflicts"]) for k, v in summary.items()} == {
        "person.name": (3, 1), "person.gender": (3, 1), "person.birth_date": (3, 0)}
    pop = {r["person_pid"]: r for r in ctx.lake.read("gold", "population").to_pylist()}
    person = pop[by_item["person.gender"]["subject_key"]]
    assert person["authoritative_node"] == "gaj"  # gaj's value wins ...
    assert person["gender"] is None  # ... but three people are too few for gold to publish their gender


# -- 12. quality scores --------------------------------------------------------------------------------------

def _scores(ctx, dataset: str) -> dict[str, dict]:
    return {r["run_id"]: r for r in table(ctx, "gold", "quality_scores") if r["scope"] == "dataset" and r["dataset"] == dataset}


def test_quality_scores_per_run_with_history(ctx, engine, tmp_path: Path) -> None:
    deliver(ctx, tmp_path, "market_entities", "q1.csv", [
        me_row(1), me_row(2), me_row(3), me_row(4, district="440300"), me_row(5, uscc=bad_check(uscc(5))),
    ])
    r1 = run_pending(ctx, engine)
    s1 = _scores(ctx, "market_entities")
    assert set(s1) == {r1.run_id}
    first = s1[r1.run_id]
    assert first["rows"] == 5 and first["batches"] == 1
    assert first["validity"] == pytest.approx(1 - 2 / 5)
    assert 0 <= first["score"] <= 100
    node_rows = [r for r in table(ctx, "gold", "quality_scores") if r["scope"] == "node_dataset" and r["run_id"] == r1.run_id]
    assert [(r["node"], r["dataset"]) for r in node_rows] == [("scjgj", "market_entities")]

    deliver(ctx, tmp_path, "market_entities", "q2.csv", [me_row(11), me_row(12), me_row(13), me_row(14, name="")])
    r2 = run_pending(ctx, engine)
    assert r2.run_id != r1.run_id
    s2 = _scores(ctx, "market_entities")
    assert set(s2) == {r1.run_id, r2.run_id}  # history kept
    assert s2[r1.run_id]["validity"] == pytest.approx(1 - 2 / 5)
    assert s2[r2.run_id]["validity"] == pytest.approx(1 - 1 / 4) and s2[r2.run_id]["rows"] == 4
    assert s2[r2.run_id]["score"] > s2[r1.run_id]["score"]  # validity up 0.15 (weight 0.3), completeness down 0.025
    r3 = run_pending(ctx, engine)  # nothing pending: nothing scored
    assert _scores(ctx, "market_entities").keys() == {r1.run_id, r2.run_id} and r3.conformed == []


def test_consistency_is_about_the_runs_own_rows(ctx, engine, tmp_path: Path) -> None:
    deliver(ctx, tmp_path, "hukou_population", "h.csv", [
        hukou_row(1, id=P[0], name="张三丰"), hukou_row(2, id=P[1], name="李四光"), hukou_row(3, id=P[2], gender="男")])
    deliver(ctx, tmp_path, "migrant_population", "m.csv", [
        migrant_row(1, id=P[0], name="张三丰"), migrant_row(2, id=P[1], name="李四广"),
        migrant_row(3, id=P[2], name=hukou_row(3)[1], gender="女")])
    r1 = run_pending(ctx, engine)
    first = _scores(ctx, "hukou_population")[r1.run_id]
    assert len(table(ctx, "gold", "source_conflicts")) >= 2
    assert first["consistency"] < 1
    deliver(ctx, tmp_path, "hukou_population", "h2.csv", [hukou_row(50)])  # one new, clean, uncontested person
    r2 = run_pending(ctx, engine)
    second = _scores(ctx, "hukou_population")[r2.run_id]
    assert (second["rows"], second["validity"]) == (1, 1.0)
    assert second["consistency"] == pytest.approx(1.0)


# -- 13. corrected re-delivery -------------------------------------------------------------------------------

@pytest.mark.parametrize(("dataset", "bad", "fixed", "rule", "column", "value"), [
    ("hukou_population", {"birth": "1990-02-30"}, {"birth": "1990-02-28"}, "birth_date.date", "birth_date", "1990-02-28"),
    ("migrant_population", {"registered": "2022-13-01"}, {"registered": "2022-12-01"}, "registered_on.date",
     "registered_on", "2022-12-01"),
    ("market_entities", {"date": "2999-01-01"}, {"date": "2019-01-01"}, "establish_date.future", "establish_date",
     "2019-01-01"),
])
def test_corrected_redelivery_resolves_the_quarantined_row(ctx, engine, tmp_path: Path, dataset: str, bad: dict,
                                                           fixed: dict, rule: str, column: str, value: str) -> None:
    make = ROW[dataset]
    deliver(ctx, tmp_path, dataset, "first.csv", [make(1), make(2, **bad)])
    conform(ctx, engine, dataset)
    [q] = table(ctx, "quarantine", dataset)
    assert q["_status"] == "open" and rule in q["_failures"]
    assert len(table(ctx, "silver", dataset)) == 1
    fix = deliver(ctx, tmp_path, dataset, "fixed.csv", [make(2, **fixed)])
    res = conform(ctx, engine, dataset)
    assert res.resolved == 1
    [q] = table(ctx, "quarantine", dataset)
    assert q["_status"] == "resolved" and q["_resolved_by"] == fix
    silver = table(ctx, "silver", dataset)
    assert len(silver) == 2
    [row] = [r for r in silver if r["_batch_id"] == fix]
    assert str(row[column]) == value


def test_an_unrelated_later_row_does_not_resolve_a_quarantined_one(ctx, engine, tmp_path: Path) -> None:
    deliver(ctx, tmp_path, "hukou_population", "first.csv", [hukou_row(1, birth="1990-02-30")])
    conform(ctx, engine, "hukou_population")
    deliver(ctx, tmp_path, "hukou_population", "other.csv", [hukou_row(2)])
    assert conform(ctx, engine, "hukou_population").resolved == 0
    [q] = table(ctx, "quarantine", "hukou_population")
    assert q["_status"] == "open"
