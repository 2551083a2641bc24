"""Gold tables from real silver tables: people integrated across gaj and lsj, no raw PII, idempotent rebuilds."""

from __future__ import annotations

import re
from pathlib import Path

from govlake.jobs.ingest.bronze import ingest
from govlake.jobs.pipeline import run_pending
from tests.conftest import write_csv
from tests.factories import ric_number, uscc_code

HUKOU = ["公民身份号码", "姓名", "性别", "出生日期", "户籍地行政区划", "住址", "登记日期"]
MIGRANT = ["公民身份号码", "姓名", "性别", "出生日期", "户籍地行政区划", "居住地行政区划", "居住地址", "居住证有效期起", "居住证有效期止", "登记日期"]
P1, P2, P3 = ric_number(seq="101"), ric_number(address="430102", seq="202"), ric_number(address="450102", seq="303")


def seed_people(ctx, tmp_path: Path) -> None:
    h = write_csv(tmp_path / "h.csv", HUKOU, [
        [P1, "张三", "男", "1990-03-07", "440106", "广州市天河区体育西路1号", "2020-01-02"],
        [P2, "李四", "女", "1990-03-07", "440104", "广州市越秀区北京路2号", "2020-01-02"],
    ])
    m = write_csv(tmp_path / "m.csv", MIGRANT, [
        [P2, "李肆", "女", "1990-03-07", "430102", "440111", "广州市白云区某路3号", "2022-01-01", "2027-01-01", "2022-01-01"],
        [P3, "王五", "男", "1990-03-07", "450102", "海珠区", "广州市海珠区某路4号", "2023-05-01", "2028-05-01", "2023-05-01"],
    ])
    assert ingest(ctx, [h], "gaj", "hukou_population")[0].ok
    assert ingest(ctx, [m], "lsj", "migrant_population")[0].ok


def pid(ctx, value: str) -> str:
    """The pseudonym the lake gives a value (HMAC-SHA256 with the lake's key, as the conform SQL computes it)."""
    import hashlib
    import hmac

    from govlake.security import pseudonym_key

    return hmac.new(pseudonym_key(ctx.settings), value.encode(), hashlib.sha256).hexdigest()


def test_population_integrates_both_sources_without_raw_pii(ctx, engine, tmp_path: Path) -> None:
    seed_people(ctx, tmp_path)
    report = run_pending(ctx, engine)
    assert {g.table: g.status for g in report.gold}["population"] == "built"
    rows = {r["person_pid"]: r for r in ctx.lake.read("gold", "population").to_pylist()}
    assert len(rows) == 3
    both = rows[pid(ctx, P2)]
    assert both["population_type"] == "户籍且有来穗登记" and both["authoritative_node"] == "gaj"
    assert both["district_code"] == "440111" and both["source_nodes"] == "gaj,lsj"
    only_m = rows[pid(ctx, P3)]
    assert only_m["population_type"] == "来穗人员" and only_m["district_code"] == "440105"
    # Three people, each alone in their district: nothing that could single them out is published.
    assert {(r["gender"], r["birth_decade"]) for r in rows.values()} == {(None, None)}
    # No identifier, masked or raw, no name or address anywhere in gold.
    assert not [c for c in ctx.lake.read("gold", "population").column_names if c.endswith("_masked")]
    text = str(ctx.lake.read("gold", "population").to_pylist())
    for raw in (P1, P2, P3, P1[:6] + "*", "张", "李", "体育西路"):
        assert raw not in text
    assert not re.search(r"\d{17}[\dX]", text)


def test_gold_rebuild_only_when_sources_change(ctx, engine, tmp_path: Path) -> None:
    seed_people(ctx, tmp_path)
    run_pending(ctx, engine)
    v = ctx.lake.table("gold", "population").version()
    again = run_pending(ctx, engine)
    assert {g.table: g.status for g in again.gold}["population"] == "unchanged"
    assert ctx.lake.table("gold", "population").version() == v
    extra = write_csv(tmp_path / "h2.csv", HUKOU, [[ric_number(seq="405"), "赵六", "男", "1985-01-01", "440113", "番禺", "2020-01-02"]])
    ingest(ctx, [extra], "gaj", "hukou_population")
    third = run_pending(ctx, engine)
    assert {g.table: g.status for g in third.gold}["population"] == "built"
    assert ctx.lake.read("gold", "population").num_rows == 4


def test_legal_entities_take_the_authoritative_source(ctx, engine, tmp_path: Path) -> None:
    me = write_csv(tmp_path / "me.csv", ["统一社会信用代码", "企业名称", "成立日期", "行政区划代码", "登记状态"], [
        [uscc_code("91", org="MA59AAAA1"), "广州甲科技有限公司", "2015-01-01", "440106", "存续"],
        [uscc_code("52", org="MA59BBBB2"), "（误报）某民办学校", "2016-01-01", "440106", "存续"],
    ])
    so = write_csv(tmp_path / "so.csv", ["统一社会信用代码", "社会组织名称", "成立登记日期", "住所所在区", "登记状态"], [
        [uscc_code("52", org="MA59BBBB2"), "广州某民办学校", "2016-01-01", "440106", "存续"],
    ])
    assert ingest(ctx, [me], "scjgj", "market_entities")[0].ok
    assert ingest(ctx, [so], "mzj", "social_organizations")[0].ok
    seed_people(ctx, tmp_path)  # district_profile also needs gold.population
    run_pending(ctx, engine)
    rows = {r["uscc"]: r for r in ctx.lake.read("gold", "legal_entities").to_pylist()}
    assert len(rows) == 2
    school = rows[uscc_code("52", org="MA59BBBB2")]
    assert (school["name"], school["source_node"], school["source_count"]) == ("广州某民办学校", "mzj", 2)
    prof = {r["district_code"]: r for r in ctx.lake.read("gold", "district_profile").to_pylist()}
    assert prof["440106"]["active_market_entities"] == 1 and prof["440106"]["social_organizations"] == 1


def test_gold_that_fails_its_suite_keeps_the_previous_version(tmp_path: Path, monkeypatch) -> None:
    """Write, audit, publish on gold: a build failing an error expectation is not committed."""
    import shutil

    from tests.conftest import PROJECT

    proj = tmp_path / "proj"
    for sub in ("schemas", "catalog", "expectations"):
        shutil.copytree(PROJECT / sub, proj / sub)
    monkeypatch.setenv("GOVLAKE_PROJECT", str(proj))
    monkeypatch.setenv("GOVLAKE_PSEUDONYM_KEY", "k")
    from govlake.context import Context

    ctx = Context.from_env(str(tmp_path / "lake"))
    seed_people(ctx, tmp_path)
    with ctx.engine() as engine:
        assert {g.table: g.status for g in run_pending(ctx, engine).gold}["population"] == "built"
        version = ctx.lake.table("gold", "population").version()
        # A stricter (hand-written) gold rule that today's data breaks: born before 1980 only.
        overlay = proj / "expectations" / "gold" / "population.yaml"
        overlay.write_text(overlay.read_text(encoding="utf-8").replace("max_value: 2100", "max_value: 1980"), encoding="utf-8")
        # Six men of the 1990s in one district: a group large enough for their birth decade to be published.
        more = write_csv(tmp_path / "h2.csv", HUKOU, [[ric_number(birth=f"199{i}0101", seq="555"), "赵六", "男", f"199{i}-01-01",
                                                       "440106", "广州", "2020-01-02"] for i in range(6)])
        assert ingest(ctx, [more], "gaj", "hukou_population")[0].ok
        gold = {g.table: g for g in run_pending(ctx, engine).gold}
    assert gold["population"].status == "blocked" and "birth_decade.range" in gold["population"].message
    assert ctx.lake.table("gold", "population").version() == version  # previous version still published
    results = ctx.lake.read("meta", "validation_results", filter_sql="dataset = 'population' AND rule = 'birth_decade.range'")
    assert [r["success"] for r in results.to_pylist()] == [True, False] or \
        sorted(r["success"] for r in results.to_pylist()) == [False, True]
