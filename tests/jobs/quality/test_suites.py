"""Expectation suites: built from the contracts and the hand-written files, loadable by Great Expectations,
checked in up to date, refusing broken overlays by file name, and meaning in SQL what GX means in pandas."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from govlake.errors import ConfigError
from govlake.jobs.conform.silver import conform
from govlake.jobs.ingest.bronze import ingest_file
from govlake.jobs.conform.rules import CompiledContract
from govlake.jobs.quality.suites import (SEVERITIES, build_silver_suite, gold_suite, silver_suite, stale_suites,
                                 suite_path)
from govlake.security import pseudonym_key
from tests.conftest import PROJECT, write_csv
from tests.factories import bad_check, ric_number, uscc_code

gx = pytest.importorskip("great_expectations")
G = pytest.importorskip("govlake.gx")

DATASETS = sorted(p.stem for p in (PROJECT / "schemas" / "datasets").glob("*.yaml"))
# Gold tables with a suite: the declarative models plus the governance tables the jobs build.
GOLD = sorted([p.stem for p in (PROJECT / "schemas" / "gold").glob("*.yaml")]
              + ["source_conflicts", "crosscheck_summary", "quality_scores", "lineage_edges"])


def _suite(ctx, name: str):
    layer, table = name.split(".", 1)
    if layer == "silver":
        return silver_suite(ctx, table)
    return gold_suite(ctx, table)


# -- 1. every suite is a real GX suite ---------------------------------------------------------------------

@pytest.mark.parametrize("name", [f"silver.{d}" for d in DATASETS] + [f"gold.{g}" for g in GOLD])
def test_suite_loads_as_gx_expectation_suite(ctx, name: str) -> None:
    suite = _suite(ctx, name)
    doc = suite.to_gx_json()
    g = G.gx_suite(doc)
    assert isinstance(g, gx.ExpectationSuite) and g.name == name
    assert len(g.expectations) == len(suite.checks) > 0
    rules = [e.meta.get("rule") for e in g.expectations]
    assert all(rules) and len(set(rules)) == len(rules), Counter(rules).most_common(3)
    for e, ck in zip(g.expectations, suite.checks):
        assert e.meta["severity"] in SEVERITIES == ("error", "warn", "fatal")
        assert e.meta["severity"] == ck.severity
        assert e.meta["rule"] == ck.rule and e.expectation_type == ck.type
        # GX's own severity field follows ours: warn -> warning, error/fatal -> critical.
        sev = getattr(e.severity, "value", e.severity)
        assert sev == ("warning" if ck.severity == "warn" else "critical")
    if name.startswith("silver."):
        contract = ctx.contract(name.split(".", 1)[1])
        # Every required field is a not-null error rule, every key field also a fatal batch audit.
        for f in contract.fields:
            if f.required:
                assert suite.check(f"{f.name}.required").severity == "error"
        for k in contract.key:
            assert suite.check(f"{k}.required@batch").severity == "fatal"
            assert suite.check(f"{k}.required@batch").mostly == 0.5


# -- 2. the checked-in JSON files --------------------------------------------------------------------------

def test_a_suite_file_is_checked_in_for_every_contract_and_gold_model(ctx) -> None:
    exp = ctx.settings.expectations_dir
    assert DATASETS and GOLD
    missing = [n for n in [f"silver.{d}" for d in DATASETS] + [f"gold.{g}" for g in GOLD]
               if not suite_path(exp, n).is_file()]
    assert missing == []
    # and nothing checked in that has no source
    stray = {p.stem for p in (exp / "silver").glob("*.json")} - set(DATASETS)
    stray |= {p.stem for p in (exp / "gold").glob("*.json")} - set(GOLD)
    assert stray == set()


def test_checked_in_suites_are_up_to_date(ctx) -> None:
    assert stale_suites(ctx) == []


def test_stale_suites_notices_an_edited_overlay(ctx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The staleness check itself can fail: edit a hand-written file in a project copy and it is reported."""
    proj = tmp_path / "proj"
    for sub in ("schemas", "catalog", "expectations"):
        shutil.copytree(PROJECT / sub, proj / sub)
    monkeypatch.setenv("GOVLAKE_PROJECT", str(proj))
    from govlake.context import Context
    from govlake.jobs.quality.suites import write_all

    c2 = Context.from_env(str(tmp_path / "lake2"))
    write_all(c2)
    assert stale_suites(c2) == []
    overlay = proj / "expectations" / "silver" / "market_entities.yaml"
    overlay.write_text(overlay.read_text(encoding="utf-8").replace("max_value: 10000000", "max_value: 20000000"),
                       encoding="utf-8")
    assert stale_suites(c2) == ["silver.market_entities"]
    # silver_suite uses the fresh build, not the stale file
    assert silver_suite(c2, "market_entities").check("registered_capital.outlier").kwargs["max_value"] == 20000000


# -- 3. broken hand-written files --------------------------------------------------------------------------

def _overlay_case(name: str):
    """(dataset, file relative to the expectations dir, edit(doc) -> doc, text expected in the message)."""
    def add(e):
        return lambda doc: {**doc, "expectations": list(doc.get("expectations") or []) + [e]}

    cases = {
        "unknown_type": ("hukou_population", "silver/hukou_population.yaml",
                         add({"rule": "id_number.typo", "type": "expect_column_values_to_be_valid_cn_rik",
                              "kwargs": {"column": "id_number"}}), "expect_column_values_to_be_valid_cn_rik"),
        "unknown_severity": ("hukou_population", "silver/hukou_population.yaml",
                             add({"rule": "name.required2", "type": "expect_column_values_to_not_be_null",
                                  "kwargs": {"column": "name"}, "severity": "critical"}), "critical"),
        "unknown_severity_override": ("market_entities", "silver/market_entities.yaml",
                                      lambda doc: {**doc, "severity": {"uscc.cn_uscc": "blocker"}}, "blocker"),
        "override_of_missing_rule": ("market_entities", "silver/market_entities.yaml",
                                     lambda doc: {**doc, "severity": {"uscc.cn_uscc_typo": "warn"}}, "uscc.cn_uscc_typo"),
        "unknown_column": ("migrant_population", "silver/migrant_population.yaml",
                           add({"rule": "id_numbr.required", "type": "expect_column_values_to_not_be_null",
                                "kwargs": {"column": "id_numbr"}}), "id_numbr"),
        "unknown_pair_column": ("credit_records", "silver/credit_records.yaml",
                                add({"rule": "x.after", "type": "expect_column_pair_values_a_to_be_greater_than_b",
                                     "kwargs": {"column_A": "valid_to", "column_B": "decided_on"}}), "decided_on"),
        "unknown_type_in_defaults": ("schools", "defaults.yaml",
                                     lambda doc: {**doc, "silver": list(doc["silver"]) + [
                                         {"rule": "batch.size", "type": "expect_table_row_count_to_be_between",
                                          "kwargs": {"min_value": 1}}]}, "expect_table_row_count_to_be_between"),
    }
    return cases[name]


OVERLAY_CASES = ["unknown_type", "unknown_severity", "unknown_severity_override", "override_of_missing_rule",
                 "unknown_column", "unknown_pair_column", "unknown_type_in_defaults"]


@pytest.mark.parametrize("case", OVERLAY_CASES)
def test_broken_overlay_raises_config_error_naming_the_file(ctx, tmp_path: Path, case: str) -> None:
    dataset, rel, edit, token = _overlay_case(case)
    exp = tmp_path / "expectations"
    shutil.copytree(PROJECT / "expectations", exp)
    contract = ctx.contract(dataset)
    # The untouched copy builds, so whatever fails below fails because of the edit.
    before = build_silver_suite(contract, ctx.registry, exp)
    assert before.checks == silver_suite(ctx, dataset).checks
    path = exp / rel
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    path.write_text(yaml.safe_dump(edit(doc or {}), allow_unicode=True, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        build_silver_suite(contract, ctx.registry, exp)
    err = info.value
    assert str(path) in (err.where or "") or str(path) in err.message
    assert token in str(err)


# -- 4. GX parity: the SQL the engine runs means what the GX expectation says ------------------------------

GX_ROW_TYPES = {
    "expect_column_values_to_not_be_null", "expect_column_values_to_be_null", "expect_column_values_to_match_regex",
    "expect_column_values_to_not_match_regex", "expect_column_values_to_be_in_set",
    "expect_column_values_to_be_valid_cn_ric", "expect_column_values_to_be_valid_cn_uscc",
    "expect_column_values_to_be_castable_to_type",
}
TODAY = date.today()
FUTURE = (TODAY + timedelta(days=400)).strftime("%Y%m%d")
EXCEL = "4.40106199003071e+17"

ME_HEADER = ["统一社会信用代码", "企业名称", "市场主体类型", "法定代表人", "法定代表人证件号码", "注册资本（万元）",
             "成立日期", "行政区划代码", "登记状态", "行业代码"]
HUKOU_HEADER = ["公民身份号码", "姓名", "性别", "出生日期", "户籍地行政区划", "住址", "登记日期"]


def _market_rows() -> list[list[str]]:
    def u(i: int) -> str:
        return uscc_code("91", "440106", f"MA59G{i:04d}")

    def rep(i: int) -> str:
        return ric_number("440106", "19800101", f"{i:03d}")

    good = [
        [u(1), "广州一号科技有限公司", "有限责任公司", "张三", rep(1), "100", "2015-06-01", "440106", "存续", "I65"],
        [" " + u(2).lower() + " ", "广州二号商贸有限公司", "1200", "李四", rep(2), "1,200", "2015/6/1", "天河区", "1", "C"],
        [u(3), "广州三号餐饮店", "个体户", "王五", rep(3), "１２３.５", "2015年6月1日", "广州市海珠区", "注销", "h62"],
        [u(4), "广州四号合伙企业", "合伙企业", "赵六", "", "0.0001", "20150601", "越秀", "已吊销", "L7212"],
        [uscc_code("92", "440111", "MA59G0005"), "广州五号农民专业合作社", "合作社", "钱七", rep(5), "", "2000.01.01",
         "440111", "3", ""],
    ]
    good += [[u(10 + i), f"广州常规{i}号有限公司", "有限责任公司", "孙八", rep(10 + i), str(10 * i + 1), "2010-01-0" + str(1 + i % 9),
              ["440103", "440104", "440113", "440118"][i % 4], "存续", "I65"] for i in range(15)]
    bad = [
        [bad_check(u(40)), "校验码错一", "有限责任公司", "甲", rep(40), "10", "2012-01-01", "440106", "存续", "I65"],
        [bad_check(u(41)), "校验码错二", "有限责任公司", "乙", rep(41), "10", "2012-01-01", "440106", "存续", "I65"],
        [u(42)[:9] + "I" + u(42)[10:], "字符集错", "有限责任公司", "丙", rep(42), "10", "2012-01-01", "440106", "存续", "I65"],
        ["", "缺代码", "有限责任公司", "丁", rep(43), "10", "2012-01-01", "440106", "存续", "I65"],
        [u(44), "证件校验码错", "有限责任公司", "戊", bad_check(rep(44)), "10", "2012-01-01", "440106", "存续", "I65"],
        [u(45), "证件日期不存在", "有限责任公司", "己", ric_number("440106", "19900230", "045"), "10", "2012-01-01", "440106", "存续", "I65"],
        [u(46), "证件日期在未来", "有限责任公司", "庚", ric_number("440106", FUTURE, "046"), "10", "2012-01-01", "440106", "存续", "I65"],
        [u(47), "证件被Excel转换", "有限责任公司", "辛", EXCEL, "10", "2012-01-01", "440106", "存续", "I65"],
        [u(48), "深圳区划", "有限责任公司", "壬", rep(48), "10", "2012-01-01", "440300", "存续", "I65"],
        [u(49), "深圳名称", "有限责任公司", "癸", rep(49), "10", "2012-01-01", "深圳市", "存续", "I65"],
        [u(50), "未知类型", "无限公司", "子", rep(50), "10", "2012-01-01", "440106", "存续", "I65"],
        [u(51), "未知状态", "有限责任公司", "丑", rep(51), "10", "2012-01-01", "440106", "歇业", "I65"],
        [u(52), "", "有限责任公司", "寅", rep(52), "10", "2012-01-01", "440106", "存续", "I65"],
        [u(53), "资本非数值", "有限责任公司", "卯", rep(53), "一百万", "2012-01-01", "440106", "存续", "I65"],
        [u(54), "资本五位小数", "有限责任公司", "辰", rep(54), "100.12345", "2012-01-01", "440106", "存续", "I65"],
        [u(55), "成立日期在未来", "有限责任公司", "巳", rep(55), "10", "2999-01-01", "440106", "存续", "I65"],
        [u(56), "成立日期不存在", "有限责任公司", "午", rep(56), "10", "2021-02-30", "440106", "存续", "I65"],
        [u(57), "成立日期过早", "有限责任公司", "未", rep(57), "10", "1900-01-01", "440106", "存续", "I65"],
        [u(58), "行业代码错", "有限责任公司", "申", rep(58), "10", "2012-01-01", "440106", "存续", "65I"],
        [u(59), "多处错误", "无限公司", "酉", EXCEL, "abc", "19900230", "福田区", "歇业", "ZZ"],
    ]
    return good + bad


def _hukou_rows() -> list[list[str]]:
    def p(i: int, birth: str = "19900307") -> str:
        return ric_number("440106", birth, f"{i:03d}")

    x_check = next(v for v in (ric_number("440106", "19850101", f"{s:03d}") for s in range(200)) if v.endswith("X"))
    good = [
        [p(1), "张三", "男", "1990-03-07", "440106", "广州市天河区体育西路1号", "2020-01-02"],
        [" " + x_check.lower() + " ", "李四", "女", "1985/1/1", "天河区", "广州市天河区某路2号", "2020年1月2日"],
        [p(3), "王五", "1", "19900307", "越秀", "", ""],
        [p(4), "赵六", "F", "1990.03.07", "广州市海珠区", "广州市海珠区某路4号", "2020/01/02"],
        [p(5), "钱七", "未说明的性别", "1990-03-07", "440113", "番禺", "2021-05-06"],
    ]
    good += [[p(10 + i), f"居民{i}", ["男", "女", "1", "2"][i % 4], "1990-03-07", ["440103", "440111", "440118"][i % 3],
              f"广州市某区某路{i}号", "2019-0" + str(1 + i % 9) + "-15"] for i in range(20)]
    bad = [
        [bad_check(p(40)), "校验码错一", "男", "1990-03-07", "440106", "地址", "2020-01-02"],
        [bad_check(p(41)), "校验码错二", "女", "1990-03-07", "440106", "地址", "2020-01-02"],
        [p(42, "19900230"), "出生日期不存在", "男", "1990-03-07", "440106", "地址", "2020-01-02"],
        [p(43, FUTURE), "出生日期在未来", "男", "1990-03-07", "440106", "地址", "2020-01-02"],
        [EXCEL, "Excel转换", "男", "1990-03-07", "440106", "地址", "2020-01-02"],
        ["", "缺号码", "男", "1990-03-07", "440106", "地址", "2020-01-02"],
        [p(46), "", "男", "1990-03-07", "440106", "地址", "2020-01-02"],
        [p(47), "性别未知码", "未知", "1990-03-07", "440106", "地址", "2020-01-02"],
        [p(48), "出生日期不存在", "男", "1990-02-30", "440106", "地址", "2020-01-02"],
        [p(49), "出生日期在未来", "男", "2999-01-01", "440106", "地址", "2020-01-02"],
        [p(50), "区划在深圳", "男", "1990-03-07", "440300", "地址", "2020-01-02"],
        [p(51), "区划为名称", "男", "1990-03-07", "深圳市", "地址", "2020-01-02"],
        [p(52), "登记日期乱码", "女", "1990-03-07", "440106", "地址", "二〇二〇年"],
        [p(53), "缺出生日期", "女", "", "", "地址", "2020-01-02"],
        [p(54), "出生过早", "女", "1899-12-31", "440106", "地址", "1899-12-31"],
    ]
    return good + bad


PARITY = {
    "market_entities": ("scjgj", ME_HEADER, _market_rows,
                        {"uscc.cn_uscc", "uscc.required", "legal_rep_id_number.cn_ric", "legal_rep_id_number.excel_number",
                         "district_code.gz_district", "entity_type.codes", "status.codes", "entity_name.required",
                         "registered_capital.decimal", "establish_date.date", "industry_code.pattern"}),
    "hukou_population": ("gaj", HUKOU_HEADER, _hukou_rows,
                         {"id_number.cn_ric", "id_number.excel_number", "id_number.required", "name.required",
                          "gender.codes", "birth_date.date", "birth_date.required", "district_code.gz_district",
                          "district_code.required", "registered_on.date"}),
}


def _gx_batch(frame):
    context = gx.get_context(mode="ephemeral")
    bd = (context.data_sources.add_pandas("parity").add_dataframe_asset("rows")
          .add_batch_definition_whole_dataframe("all"))
    return bd.get_batch(batch_parameters={"dataframe": frame})


@pytest.mark.filterwarnings("ignore:This pattern is interpreted as a regular expression")
@pytest.mark.parametrize("dataset", sorted(PARITY))
def test_sql_rules_agree_with_gx_on_the_same_rows(ctx, engine, tmp_path: Path, dataset: str) -> None:
    import pandas as pd

    node, header, make_rows, must_fire = PARITY[dataset]
    rows = make_rows()
    assert 35 <= len(rows) <= 45
    f = write_csv(tmp_path / f"{dataset}.csv", header, rows)
    assert ingest_file(ctx, f, node, dataset).status == "ingested"
    contract = ctx.contract(dataset)
    suite = silver_suite(ctx, dataset)

    # SQL: the compiled rules over the delivered bronze rows, one flag per rule.
    engine.register_arrow("parity_src", ctx.lake.read("bronze", dataset))
    cc = CompiledContract(contract, ctx.registry, engine.dialect, pseudonym_key(ctx.settings), suite)
    rules = [r for r in cc.rules() if suite.check(r.name).type in GX_ROW_TYPES]
    assert {r.name for r in rules} >= must_fire
    flags = ", ".join(f"CASE WHEN {r.fails} THEN 1 ELSE 0 END AS f{i}" for i, r in enumerate(rules))
    std_cols = ", ".join(f"s__{x.name}" for x in contract.fields)
    t = engine.fetch(f"SELECT _row_number, _raw, {std_cols}, {flags} "
                     f"FROM ({cc.typed_sql('(' + cc.std_sql('parity_src') + ')')}) v ORDER BY _row_number")
    assert t.num_rows == len(rows)
    data = t.to_pylist()
    sql_fails = {r.name: {d["_row_number"] for d in data if d[f"f{i}"]} for i, r in enumerate(rules)}

    # GX: the suite's own expectation objects, validated by GX on the same standardized values.
    index = [d["_row_number"] for d in data]
    frame = pd.DataFrame({c: pd.Series([d[c if c == "_raw" else f"s__{c}"] for d in data], index=index, dtype=object)
                          for c in [*contract.field_names, "_raw"]})
    batch = _gx_batch(frame)
    by_rule = {e.meta["rule"]: e for e in G.gx_suite(suite.to_gx_json()).expectations}
    gx_fails = {}
    for r in rules:
        res = batch.validate(by_rule[r.name], result_format="COMPLETE")
        assert res.exception_info.get("raised_exception") is not True, (r.name, res.exception_info)
        gx_fails[r.name] = set(res.result.get("unexpected_index_list") or [])
        assert res.result["unexpected_count"] == len(sql_fails[r.name]), r.name

    assert sql_fails == gx_fails
    fired = {name for name, rows_ in gx_fails.items() if rows_}
    assert fired >= must_fire, must_fire - fired

    # And conform quarantines exactly the rows the SQL (and GX) said fail each error rule.
    res = conform(ctx, engine, dataset)
    assert res.held == [] and res.balanced
    q = ctx.lake.read("quarantine", dataset).to_pylist()
    for r in rules:
        if r.severity == "error":
            assert {x["_row_number"] for x in q if r.name in x["_failures"]} == sql_fails[r.name], r.name
    # Only GX-checkable rules are compared above; the others (ranges, dates in the future) may add rows here.
    failing = set().union(*(v for k, v in sql_fails.items() if suite.check(k).severity == "error"))
    quarantined = {x["_row_number"] for x in q}
    assert quarantined >= failing and len(quarantined) == res.quarantined
    silver_rows = {x["_row_number"] for x in ctx.lake.read("silver", dataset).to_pylist()}
    assert silver_rows == set(range(1, len(rows) + 1)) - quarantined


# Date spellings a node may deliver: does the engine type them exactly when GX's castable says it can?
DATE_SPELLINGS = [
    pytest.param("2015-06-01", id="iso"),
    pytest.param("2015/6/1", id="slash-unpadded"),
    pytest.param("2015年6月1日", id="chinese"),
    pytest.param("20150601", id="compact"),
    pytest.param("2015.06.01", id="dotted"),
    pytest.param("2015-06-01 12:00:00", id="with-time"),
    pytest.param("2015-02-30", id="impossible"),
    pytest.param("19900230", id="compact-impossible"),
    pytest.param("2015-13-01", id="month-13"),
    pytest.param("2015-6-1", id="dash-unpadded"),
    pytest.param("2015611", id="seven-digits"),
]


@pytest.mark.parametrize("spelling", DATE_SPELLINGS)
def test_date_castable_parity(ctx, engine, spelling: str) -> None:
    import pyarrow as pa

    contract = ctx.contract("market_entities")
    cc = CompiledContract(contract, ctx.registry, engine.dialect, b"k")
    engine.register_arrow("spell", pa.table({"v": [spelling]}))
    sql_ok = engine.fetch(f"SELECT ({cc.typed(contract.field('establish_date'), 'v')}) IS NOT NULL AS ok FROM spell"
                          ).column("ok").to_pylist()[0]
    assert sql_ok == G.castable(spelling, "date")
