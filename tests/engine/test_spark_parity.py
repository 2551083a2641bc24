"""Engine parity: the same deliveries conformed and integrated by DuckDB and by Spark give identical lakes.

Every Dialect primitive is also checked against DuckDB on the same inputs (both engines evaluate the
input through their own ``register_arrow`` + ``fetch``), and the Spark write path (executor Parquet files
committed by delta-rs) against delta-rs' own writes. One SparkSession serves the whole module.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import shutil
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

pytest.importorskip("pyspark")
if shutil.which("java") is None:  # pragma: no cover - environment
    pytest.skip("Spark needs a Java runtime", allow_module_level=True)

from govlake.context import Context  # noqa: E402
from govlake.engine.base import Dialect  # noqa: E402
from govlake.jobs.conform.silver import conform  # noqa: E402
from govlake.jobs.ingest.bronze import ingest  # noqa: E402
from govlake.jobs.gold.models import integrate  # noqa: E402
from govlake.jobs.conform.rules import DATE_FORMATS, TS_FORMATS, ric_digits, ric_valid, uscc_valid  # noqa: E402
from govlake.jobs.quality.suites import EXCEL_NUMBER, PHONE, PROVINCES  # noqa: E402
from govlake.models import load_models  # noqa: E402
from tests.conftest import PROJECT, write_csv  # noqa: E402
from tests.factories import bad_check, ric_number, uscc_code  # noqa: E402

pytestmark = [pytest.mark.spark, pytest.mark.slow]

KEY = "test-key-not-secret"
FULL = str.maketrans("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", "０１２３４５６７８９ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ")

ME = ("统一社会信用代码", "企业名称", "市场主体类型", "法定代表人", "法定代表人证件号码", "注册资本（万元）",
      "成立日期", "行政区划代码", "登记状态", "行业代码")
HUKOU = ("公民身份号码", "姓名", "性别", "出生日期", "户籍地行政区划", "住址", "登记日期")
MIGRANT = ("公民身份号码", "姓名", "性别", "出生日期", "户籍地行政区划", "居住地行政区划", "居住地址", "居住证有效期起",
           "居住证有效期止", "登记日期")
SO = ("统一社会信用代码", "社会组织名称", "成立登记日期", "住所所在区", "登记状态")
HOTLINE = ("工单编号", "承办区", "承办单位", "诉求类别", "受理渠道", "受理时间", "办理时限", "办结时间", "工单状态", "满意度",
           "来电号码")
AQ = ("监测站点编码", "监测站点名称", "所在区", "监测日期", "空气质量指数", "PM2.5")

A, B, C, D_, E, F = (uscc_code(org=f"MA59ABCD{i}") for i in range(1, 7))
SCHOOL = uscc_code("52", org="MA59BBBB2")
REP, REP2 = ric_number(), ric_number(address="440104", birth="19851231", seq="456")
P1, P2, P3, P4 = (ric_number(seq="101"), ric_number(address="430102", seq="202"), ric_number(address="450102", seq="303"),
                  ric_number(address="440113", birth="20000229", seq="404"))


def me(code: str, name: str = "广州某某科技有限公司", date_: str = "2015-06-01", district: str = "440106",
       capital: str = "100", rep_id: str = REP, kind: str = "有限责任公司", status: str = "存续", industry: str = "I65") -> list[str]:
    return [code, name, kind, "张三", rep_id, capital, date_, district, status, industry]


ROUND1 = {
    ("scjgj", "market_entities", "me1.csv", ME): [
        me(A, date_="2021/3/5", district="天河区", capital="１,２00"),                      # full-width digits, name→code
        me(" " + B.lower() + " ", date_="2021年3月5日", district="广州市海珠区", kind="1100"),  # trim/upper, CJK date
        me(bad_check(C), name='引号"与\\反斜杠', date_="2999-01-01", district="440300"),      # many failures, JSON escapes
        me(A, name="同文件后一行", date_="2021/03/05"),                                       # repeated key: last row wins
        me(D_, rep_id=bad_check(REP), date_="2021-02-30", capital="abc"),                   # bad id check, impossible date
        me(E, rep_id="4.40106199003071e+17", date_="20210305", industry="Z99"),             # Excel number, pattern
        me(F.translate(FULL), date_="2021.3.5", district="越秀区", capital="-5", status="注销"),  # full-width code, range
        me(SCHOOL, name="（误报）某民办学校", date_="2016-01-01", rep_id=REP2.lower()[:-1] + REP2[-1].lower()),
        ["只有", "三列", "而已"],                                                              # ragged
        me(uscc_code(org="MA59ABCD7"), name="", date_="1900-01-01", district="", capital="1.23456"),
        me(uscc_code(org="MA59ABCD8"), date_="2021-3-5 x", rep_id=" " + REP2.translate(FULL) + " "),
    ],
    ("gaj", "hukou_population", "h1.csv", HUKOU): [
        [P1, "张三", "男", "1990-03-07", "440106", "广州市天河区体育西路1号", "2020-01-02"],
        [P2, "李四", "2", "1990/3/7", "越秀区", "广州市越秀区北京路2号", "2020年1月2日"],
        [bad_check(P3), "王五", "男", "1990-03-07", "440104", "某路", "2020-01-02"],
        [P4.translate(FULL), "赵六", "女", "2000年2月29日", "番禺区", "番禺", "2099-01-01"],
        [P1, "张三（更正）", "男", "1990-03-07", "440106", "广州市天河区体育西路1号", "2020-01-03"],
        ["", "无名", "男", "1990-13-01", "440999", "", ""],
    ],
    ("lsj", "migrant_population", "m1.csv", MIGRANT): [
        [P2, "李肆", "女", "1990-03-07", "430102", "440111", "广州市白云区某路3号", "2022-01-01", "2027-01-01", "2022-01-01"],
        [P3, "王五", "男", "1990-03-07", "450102", "海珠区", "广州市海珠区某路4号", "2023/5/1", "2028/5/1", "2023年5月1日"],
        [ric_number(address="440111", seq="505"), "钱七", "男", "1995-05-05", "999999", "440111", "某地", "1999-01-01",
         "2028-01-01", "2023-01-01"],
    ],
    ("mzj", "social_organizations", "so1.csv", SO): [
        [SCHOOL, "广州某民办学校", "2016-01-01", "440106", "存续"],
        [uscc_code("51", org="MA59CCCC3"), "广州某协会", "2018/7/1", "天河区", "存续"],
    ],
    ("sthjj", "air_quality_daily", "aq1.csv", AQ): [
        ["GZ01", "天河体育中心", "440106", "2026-01-30", "88", "35.5"],
        ["GZ01", "天河体育中心", "440106", "2026/1/31", "120", "80"],
        ["GZ01", "天河体育中心", "440106", "2026年2月1日", "45", "12.25"],
        ["GZ02", "海珠湖", "海珠区", "2026-02-01", "900", "1"],
    ],
    ("440106", "hotline_tickets", "ht1.csv", HOTLINE): [  # timestamps in every accepted spelling, and not
        ["GD-001", "天河区", "区城管局", "城市管理", "电话", "2024-03-05 09:01:02", "2024/3/8 18:00", "2024年3月6日 10时20分30秒",
         "已办结", "满意", "13800138000"],
        ["gd-002", "440106", "区住建局", "01", "网站", "2024-03-05T09:01:02", "2024-03-08 18:00", "2024/3/6 1:2:3", "2", "",
         "020-12345678"],
        ["GD-003", "天河区", "", "城市管理", "微信", "2024-03-05 25:00:00", "2014-12-31 23:59:59", "2999-01-01 00:00:00",
         "办结", "很满意", "12345"],
        ["GD-004", "天河区", "", "", "", "2024年3月5日 9:01:02", "", "2024-03-06 10:20", "", "", ""],
    ],
}
ROUND2 = {
    ("scjgj", "market_entities", "me2.csv", ME): [
        me(D_, date_="2021-02-28"),                                # corrected re-delivery: leaves quarantine
        me(A, name="新一期报送", date_="2021-03-05", capital="1200.5"),  # latest delivery wins (MERGE)
        me(uscc_code(org="MA59ABCD9"), district="火星区"),             # a new failure into an existing quarantine
    ],
    ("gaj", "hukou_population", "h2.csv", HUKOU): [
        [P3, "王五", "男", "1990-03-07", "440105", "广州市海珠区某路4号", "2021-06-01"],
    ],
}


ROUND3 = {  # a day's incremental delivery: updates of earlier keys, appends of new events, a correction
    ("440106", "hotline_tickets", "ht2.csv", HOTLINE): [
        ["GD-001", "天河区", "区城管局", "城市管理", "电话", "2024-03-05 09:01:02", "2024/3/8 18:00", "2024-03-07 10:00:00",
         "已办结", "不满意", "13800138000"],                                                 # an update of a ticket
        ["GD-005", "天河区", "区水务局", "城市管理", "电话", "2024-03-09 08:00:00", "2024-03-12 18:00", "", "办理中", "",
         "13900139000"],                                                                     # a new ticket (append)
    ],
    ("sthjj", "air_quality_daily", "aq2.csv", AQ): [
        ["GZ01", "天河体育中心", "440106", "2026-02-02", "60", "20"],                         # a new day (append)
        ["GZ02", "海珠湖", "海珠区", "2026/2/1", "61", "1"],                                  # the quarantined day corrected
    ],
    ("scjgj", "market_entities", "me3.csv", ME): [
        me(B, date_="2021-03-05", district="440105", status="注销"),                          # an update (status)
    ],
}


def deliver(ctx: Context, folder: Path, files: dict) -> None:
    for (node, dataset, name, header), rows in files.items():
        [r] = ingest(ctx, [write_csv(folder / name, list(header), rows)], node, dataset)
        assert r.status == "ingested", r.message


DATASETS = sorted({k[1] for k in ROUND1})


def run(ctx: Context, engine) -> None:
    for dataset in DATASETS:
        res = conform(ctx, engine, dataset)
        assert res.balanced, res
    integrate(ctx, engine)


@pytest.fixture(scope="module")
def env():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GOVLAKE_PROJECT", str(PROJECT))
        mp.setenv("GOVLAKE_PSEUDONYM_KEY", KEY)
        yield


def _engine_on_fresh_lake(tmp_path_factory, kind: str):
    eng = Context.from_env(str(tmp_path_factory.mktemp(f"{kind}-unit") / "lake")).engine(kind)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def spark_engine(env, tmp_path_factory):
    yield from _engine_on_fresh_lake(tmp_path_factory, "spark")


@pytest.fixture(scope="module")
def duck_engine(env, tmp_path_factory):
    yield from _engine_on_fresh_lake(tmp_path_factory, "duckdb")


@pytest.fixture(scope="module")
def lakes(env, spark_engine, tmp_path_factory):
    """Two lakes with identical bronze (ingested once, then copied), conformed and integrated three times
    (a first load, a correction round, an incremental day of updates and appends): DuckDB on one, Spark
    on the other."""
    base = tmp_path_factory.mktemp("parity")
    files = base / "deliveries"
    files.mkdir()
    duck_ctx, spark_ctx = Context.from_env(str(base / "duck")), Context.from_env(str(base / "spark"))
    deliver(duck_ctx, files, ROUND1)
    shutil.copytree(base / "duck", base / "spark")
    with duck_ctx.engine("duckdb") as duck, spark_ctx.engine("spark") as spark:
        run(duck_ctx, duck)
        run(spark_ctx, spark)
        # Round two: the same bronze commits (copied, so the delivery timestamps agree too).
        deliver(duck_ctx, files, ROUND2)
        for part in ("bronze", "meta/ingest_batches"):
            shutil.copytree(base / "duck" / part, base / "spark" / part, dirs_exist_ok=True)
        run(duck_ctx, duck)
        run(spark_ctx, spark)
        # Round three: an incremental day (each engine's MERGE rewrites only the files it must).
        deliver(duck_ctx, files, ROUND3)
        for part in ("bronze", "meta/ingest_batches"):
            shutil.copytree(base / "duck" / part, base / "spark" / part, dirs_exist_ok=True)
        run(duck_ctx, duck)
        run(spark_ctx, spark)
    return duck_ctx, spark_ctx


# -- comparing tables -------------------------------------------------------------------------------
def norm(v):
    if isinstance(v, (Decimal, float)):
        return round(float(v), 6)
    if isinstance(v, list):
        return [norm(x) for x in v]
    return v


def rows_of(ctx: Context, layer: str, table: str, drop: tuple[str, ...] = (), numeric: bool = False) -> list[dict]:
    t = ctx.lake.read(layer, table)
    rows = [{k: v for k, v in r.items() if k not in drop} for r in t.to_pylist()]
    if numeric:
        rows = [{k: norm(v) for k, v in r.items()} for r in rows]
    return sorted(rows, key=lambda r: repr(sorted(r.items())))


def assert_same_table(duck_ctx: Context, spark_ctx: Context, layer: str, table: str, *, drop: tuple[str, ...] = (),
                      same_types: bool = True) -> list[dict]:
    d, s = duck_ctx.lake.table(layer, table), spark_ctx.lake.table(layer, table)
    assert d is not None and s is not None, f"{layer}.{table} missing"
    ds, ss = pa.schema(d.schema().to_arrow()), pa.schema(s.schema().to_arrow())
    assert ds.names == ss.names, f"{layer}.{table} columns differ"
    if same_types:
        assert ds.equals(ss), f"{layer}.{table} types differ:\n{ds}\n---\n{ss}"
    dr = rows_of(duck_ctx, layer, table, drop, numeric=not same_types)
    sr = rows_of(spark_ctx, layer, table, drop, numeric=not same_types)
    assert len(dr) == len(sr), f"{layer}.{table}: {len(dr)} rows on DuckDB, {len(sr)} on Spark"
    for a, b in zip(dr, sr):
        assert a == b, f"{layer}.{table} differs:\nduckdb: {a}\nspark:  {b}"
    assert d.count() == s.count() == len(dr)  # file statistics are written by both paths
    return dr


@pytest.mark.parametrize("dataset", DATASETS)
def test_silver_is_identical(lakes, dataset: str) -> None:
    rows = assert_same_table(*lakes, "silver", dataset)
    assert rows


@pytest.mark.parametrize("dataset", DATASETS)
def test_quarantine_is_identical(lakes, dataset: str) -> None:
    if dataset == "social_organizations":
        assert not lakes[0].lake.exists("quarantine", dataset) or rows_of(lakes[0], "quarantine", dataset) == []
    assert_same_table(*lakes, "quarantine", dataset)


def test_the_nasty_rows_went_where_they_should(lakes) -> None:
    """A few anchors, so that parity is not two engines agreeing on nothing."""
    _, spark_ctx = lakes
    silver = {r["uscc"]: r for r in spark_ctx.lake.read("silver", "market_entities").to_pylist()}
    assert silver[A]["entity_name"] == "新一期报送" and str(silver[A]["registered_capital"]) == "1200.5000"
    assert silver[B]["establish_date"] == date(2021, 3, 5) and silver[B]["district_code"] == "440105"
    assert silver[D_]["establish_date"] == date(2021, 2, 28)
    assert uscc_code(org="MA59ABCD8") not in silver  # '2021-3-5 x': both engines' casts would cut the ' x' off
    q = {r["_row_number"]: r for r in spark_ctx.lake.read("quarantine", "market_entities").to_pylist()
         if r["_source_file"].endswith("me1.csv")}
    assert set(q[3]["_failures"]) == {"uscc.cn_uscc", "establish_date.future", "district_code.gz_district"}
    assert '"企业名称":"引号\\"与\\\\反斜杠"' in q[3]["_record"]
    assert q[5]["_status"] == "resolved" and set(q[5]["_failures"]) >= {"establish_date.date", "legal_rep_id_number.cn_ric"}
    assert q[9]["_failures"] == ["row.ragged"]
    assert q[11]["_failures"] == ["establish_date.date"] and q[11]["_status"] == "open"
    assert REP not in str(q) and "4.40106199003071e+17" not in str(q)


def test_the_incremental_day_updated_and_appended(lakes) -> None:
    _, spark_ctx = lakes
    aq = {(r["station_code"], r["obs_date"]): r["aqi"] for r in spark_ctx.lake.read("silver", "air_quality_daily").to_pylist()}
    assert aq[("GZ01", date(2026, 2, 2))] == 60 and aq[("GZ02", date(2026, 2, 1))] == 61
    silver = {r["uscc"]: r for r in spark_ctx.lake.read("silver", "market_entities").to_pylist()}
    assert silver[B]["status"] == "3"  # 注销: the update replaced the earlier 存续


def test_meta_tables_agree(lakes) -> None:
    assert_same_table(*lakes, "meta", "conform_batches", drop=("conformed_at", "engine"))
    assert_same_table(*lakes, "meta", "validation_results", drop=("validated_at",))
    engines = {r["engine"] for r in lakes[1].lake.read("meta", "conform_batches").to_pylist()}
    assert engines == {"spark"}


GOLD = sorted(load_models(PROJECT / "schemas"))


@pytest.mark.parametrize("table", GOLD)
def test_gold_is_identical(lakes, table: str) -> None:
    # Values and types must agree: the models pin engine-dependent types (sums to BIGINT, rounding to DOUBLE).
    rows = assert_same_table(*lakes, "gold", table, same_types=True)
    assert rows


def test_gold_commits_record_their_sources(lakes) -> None:
    for ctx in lakes:
        meta = [h for h in ctx.lake.table("gold", "population").history(1)]
        assert "silver.hukou_population" in meta[0]["govlake"]


# -- dialect primitives, one by one -------------------------------------------------------------------
def both(duck_engine, spark_engine, build, values: list, type_=pa.string()) -> tuple[list, list]:
    data = pa.table({"i": pa.array(range(len(values)), pa.int64()), "v": pa.array(values, type_)})
    out = []
    for eng in (duck_engine, spark_engine):
        eng.register_arrow("inp", data)
        out.append(eng.fetch(f"SELECT i, {build(eng.dialect, 'v')} AS r FROM inp ORDER BY i").column("r").to_pylist())
        eng.drop("inp")
    return out[0], out[1]


def assert_both(duck_engine, spark_engine, build, values: list, type_=pa.string()) -> list:
    d, s = both(duck_engine, spark_engine, build, values, type_)
    diffs = [(v, a, b) for v, a, b in zip(values, d, s) if a != b]
    assert not diffs, "value, duckdb, spark:\n" + "\n".join(map(repr, diffs))
    return d


DATES = ["2021/3/5", "2021/03/05", "2021年3月5日", "2021年03月05日", "2021-02-30", "2020-02-29", "2021-13-01", "21/3/5",
         "0021/3/5", "2021/003/05", "12021/3/5", " 2021/3/5 ", "\t2021/3/5", "2021 /3/5", "2021/3/5x", "20210305",
         "1990037", "199037", "2021.3.5", "2021.03.05", "2021-03-05 1:2:3", "2021-03-05  01:02:03", "2021-03-0501:02:03",
         "2021-03-05 23:59:59", "2021-03-05 23:59:60", "2021-03-05 24:00:00", "2021-03-05T01:02:03", "2021-03-05 01:02",
         "2021/3/5 1:2", "2021年3月5日 1时2分3秒", "2021年3月5日1时2分3秒", "2021-3-5 x", "2021 03 05", "2021-03-5x",
         "+2021-3-05", "02021-3-5", "2021\\3\\5 ", "2021-1-1\tx", "２０２１/3/5", "", "abc", None]


@pytest.mark.parametrize("fmt", ("%Y%m%d", *DATE_FORMATS))
def test_parse_date(duck_engine, spark_engine, fmt: str) -> None:
    assert_both(duck_engine, spark_engine, lambda d, e: d.parse_date(e, fmt), DATES)


@pytest.mark.parametrize("fmt", TS_FORMATS)
def test_parse_timestamp(duck_engine, spark_engine, fmt: str) -> None:
    assert_both(duck_engine, spark_engine, lambda d, e: d.parse_timestamp(e, fmt), DATES)


def test_try_cast(duck_engine, spark_engine) -> None:
    # Years beyond 9999 (DuckDB has them, Spark and Python do not) are left out.
    assert_both(duck_engine, spark_engine, lambda d, e: d.try_cast(e, "DATE"), [v for v in DATES if v != "12021/3/5"])
    # DuckDB 2 takes a tail after the date only when the whole text is a TIMESTAMP (time, offset or zone).
    tails = [" 01:02:03Z", " 01:02:03+08", " 01:02:03+0800", " 01:02:03+08:00:00", " 01:02:03+8", " 01:02:03+080",
             " 01:02:03 Asia/Shanghai", " 01:02:03 x y", " 01:02:03\t", " 01:02:03 \t", " 01:02", " 01:", " 1:2",
             " 01:02.5", " 24:00:01", " 24:00:00.0000001", " 0000000001:02", " 00000000001:02", "T\t01:02", "\t01:02"]
    assert_both(duck_engine, spark_engine, lambda d, e: d.try_cast(e, "DATE"), ["2021-03-05" + t for t in tails])
    # Numeric casts agree on what rules.py lets through its regex guards (DuckDB would round "1.5" to a
    # BIGINT 2 where Spark gives NULL; the typed() guard never casts such text to an integer).
    nums = ["1", "+5", "-12", "1200", "007", "abc", "", None, "123456789012345678"]
    assert_both(duck_engine, spark_engine, lambda d, e: d.try_cast(e, "BIGINT"), nums)
    decs = ["1", "+5", "-12.3456", "1200.5", "0.0001", "12345678901234", "abc", None]
    assert_both(duck_engine, spark_engine, lambda d, e: d.try_cast(e, d.decimal(4)), decs)


def test_what_spark_cannot_represent_is_null_not_an_error(spark_engine) -> None:
    """Year 0 (DuckDB: 1 BC), years past 9999 and DuckDB's special words give NULL on Spark, never an exception.
    (DuckDB's try_strptime even reads 'epoch' and 'infinity' as 1900-01-01: a DuckDB quirk not copied.)"""
    odd = ["0/3/5", "0000/1/1", "00000305", "0000年1月1日", "0-1-1", "0000-01-01", "12021-3-5", "epoch", "infinity", "-2021-3-5"]
    d = spark_engine.dialect
    spark_engine.register_arrow("odd", pa.table({"v": odd}))
    exprs = [d.parse_date("v", f) for f in ("%Y%m%d", *DATE_FORMATS)] + [d.parse_timestamp("v", f) for f in TS_FORMATS]
    exprs.append(d.try_cast("v", "DATE"))
    out = spark_engine.fetch(f"SELECT {', '.join(f'{e} AS c{i}' for i, e in enumerate(exprs))} FROM odd")
    spark_engine.drop("odd")
    assert all(v is None for col in out.columns for v in col.to_pylist())


def test_regex_full(duck_engine, spark_engine) -> None:
    patterns = [PROVINCES + "[0-9]{15}[0-9X]", EXCEL_NUMBER, "^[A-T](\\d{2,4})?$", "[0-9]{8}", "1[3-9][0-9]{9}",
                "0[0-9]{2,3}-?[0-9]{7,8}", "a|ab", "[+-]?[0-9]{1,14}(\\.[0-9]{1,4})?"]
    values = [REP, bad_check(REP), "4.40106199003071e+17", "4.4E17", "I65", "I6", "Z99", "A1234", "20210305",
              "13800138000", "020-12345678", "ab", "a", "abc", "ab\n", "12.5", "-1.23456", "", None]
    for p in patterns:
        assert_both(duck_engine, spark_engine, lambda d, e: d.regex_full(e, p), values)


def test_regex_search_has_python_re_search_semantics(duck_engine, spark_engine) -> None:
    """GX's regex expectations use re.search; the compiled rules must agree with it on both engines."""
    import re

    patterns = [EXCEL_NUMBER, PHONE, "^[A-T](\\d{2,4})?$", "[0-9]{8}", "a|ab", "^" + PROVINCES + "[0-9]{4}$"]
    values = ["4.40106199003071e+17", "4.4E17", "13800138000", "020-12345678", "I65", "I6", "Z99", "x20210305y",
              "ab", "abc", "440106", "990106", "", "ab\n"]
    for p in patterns:
        got = assert_both(duck_engine, spark_engine, lambda d, e: d.regex_search(e, p), values + [None])
        assert got[:-1] == [re.search(p, v) is not None for v in values], p


def test_hmac_hex_is_byte_identical(duck_engine, spark_engine) -> None:
    values = [REP, REP2, "张三", "", "a'b\\c", "😀", None]
    d = assert_both(duck_engine, spark_engine, lambda dl, e: dl.hmac_hex(e, KEY.encode()), values)
    assert d[0] == hmac.new(KEY.encode(), REP.encode(), hashlib.sha256).hexdigest()
    long_key = b"k" * 100  # longer than a block: hashed first (RFC 2104)
    d = assert_both(duck_engine, spark_engine, lambda dl, e: dl.hmac_hex(e, long_key), values)
    assert d[2] == hmac.new(long_key, "张三".encode(), hashlib.sha256).hexdigest()


def test_json_object_text(duck_engine, spark_engine) -> None:
    values = ["普通", 'a"b', "a\\b", "line\nbreak\ttab\r", "\x01\x1f\x7f", "\u2028", "😀", "/", "", None]
    build = lambda d, e: d.json_object([("统一社会信用代码", e), ("注册资本（万元）", "CAST(NULL AS " + d.varchar() + ")"),  # noqa: E731
                                        ("企业名称", f"upper({e})")])
    d = assert_both(duck_engine, spark_engine, build, values)
    assert d[0] == '{"统一社会信用代码":"普通","注册资本（万元）":null,"企业名称":"普通"}'


def test_arrays_and_text_primitives(duck_engine, spark_engine) -> None:
    values = ["a", "", "中文", "ＡＢ", None]
    build = lambda d, e: d.array_len(d.compact(d.array([e, "CAST(NULL AS " + d.varchar() + ")", f"upper({e})"])))  # noqa: E731
    assert_both(duck_engine, spark_engine, build, values)
    assert_both(duck_engine, spark_engine, lambda d, e: d.compact(d.array([e, "NULL", "'x'"])), values)
    assert_both(duck_engine, spark_engine, lambda d, e: d.array_len(d.compact(d.array([]))), values)
    assert_both(duck_engine, spark_engine, lambda d, e: d.is_ascii(e), values + ["é", "abc def"])
    masked = [REP, "13800138000", "x" + REP + "y 13912345678", "44010619900307123x", "", None]
    assert_both(duck_engine, spark_engine,
                lambda d, e: d.replace_all(d.replace_all(e, "([0-9]{6})[0-9]{8}([0-9]{3}[0-9Xx])", "\\1********\\2"),
                                           "(1[3-9][0-9])[0-9]{4}([0-9]{4})", "\\1****\\2"), masked)
    assert_both(duck_engine, spark_engine, lambda d, e: d.replace_all(e, "(b+)", "$\\1\\\\"), ["abbc", "ac", None])
    assert_both(duck_engine, spark_engine, lambda d, e: f"CAST({d.current_date()} AS {d.varchar()})", ["x"])
    assert_both(duck_engine, spark_engine, lambda d, e: f"{d.ident('v')} || {d.ident('v')}", ["x", None])


def test_ric_digits_and_check_characters(duck_engine, spark_engine) -> None:
    rng = random.Random(7)
    ids = [ric_number(birth=f"19{rng.randrange(30, 99)}0{rng.randrange(1, 9)}1{rng.randrange(0, 9)}",
                      seq=f"{rng.randrange(0, 1000):03d}") for _ in range(60)]
    ids += [bad_check(x) for x in ids[:20]] + ["11" + "0" * 16, "9" * 18]
    assert_both(duck_engine, spark_engine, lambda d, e: ric_digits(d, e), ids)
    ids += ["44010619900230123X", "440106299003071234", "abc", "", None, "4401061990030712", REP.lower()]
    assert_both(duck_engine, spark_engine, lambda d, e: ric_valid(d, e), ids)
    codes = [uscc_code(org=f"MA59{rng.choice('ABCDEFGH')}{rng.randrange(100, 999)}{rng.randrange(1, 9)}") for _ in range(40)]
    codes += [bad_check(x) for x in codes[:15]] + ["91440106MA59ABCDIO", "abc", "", None]
    assert_both(duck_engine, spark_engine, lambda d, e: uscc_valid(d, e), codes)


# -- the engine seam itself ----------------------------------------------------------------------------
TYPED = ("SELECT CAST(1 AS BIGINT) AS n, 'é' AS s, CAST('1.5' AS DECIMAL(18, 4)) AS dec, DATE '2021-03-05' AS d, "
         "TRUE AS b, {arr} AS l, CAST(NULL AS {v}) AS nothing")


def test_fetch_and_stream_hand_out_the_same_arrow_types(duck_engine, spark_engine) -> None:
    out = []
    for eng in (duck_engine, spark_engine):
        d = eng.dialect
        sql = TYPED.format(arr=d.array(["'x'", "NULL"]), v=d.varchar())
        fetched = eng.fetch(sql)
        streamed = eng.stream(sql).read_all()
        assert fetched.to_pylist() == streamed.to_pylist()
        out.append(fetched)
        empty = eng.stream(sql + " WHERE FALSE").read_all()
        assert empty.num_rows == 0 and empty.schema.names == fetched.schema.names
    duck, spark = out
    assert duck.to_pylist() == spark.to_pylist()
    assert [f.type for f in duck.schema if f.name != "l"] == [f.type for f in spark.schema if f.name != "l"]
    assert all(f.nullable for f in spark.schema)


def write_sequence(eng, src: pa.Table) -> None:
    """overwrite (new table), append, overwrite-where matching rows, overwrite-where matching nothing."""
    eng.register_arrow("src", src)
    lake = eng.lake
    try:
        eng.write_delta("gold", "w", "SELECT * FROM src WHERE g = 0", mode="overwrite",
                        commit=lake.commit("app-1", job="test"), description="测试表")
        eng.write_delta("gold", "w", "SELECT * FROM src WHERE g = 1", mode="append")
        eng.write_delta("gold", "w", "SELECT k, g, ts, CAST(amount * 2 AS DECIMAL(18, 4)) AS amount FROM src WHERE g = 1",
                        mode="overwrite", predicate="g = 1")
        eng.write_delta("gold", "w", "SELECT * FROM src WHERE g = 2 AND k < 'k100'", mode="overwrite", predicate="g = 2")
    finally:
        eng.drop("src")
    assert lake.txn_version("gold", "w", "app-1") == 1
    assert lake.table("gold", "w").metadata().description == "测试表"
    assert lake.table("gold", "w").count() == 200 + 100 // 3  # file statistics carry the row counts


def test_writes_commit_parallel_files_atomically(duck_engine, spark_engine) -> None:
    """The same writes through both engines give the same table; Spark's are executor files + one commit each."""
    now = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    src = pa.table({"k": pa.array([f"k{i:03d}" for i in range(300)]), "g": pa.array([i % 3 for i in range(300)], pa.int64()),
                    "ts": pa.array([now] * 300, pa.timestamp("us", tz="UTC")),
                    "amount": pa.array([Decimal(i) / 4 for i in range(300)], pa.decimal128(18, 4))})
    write_sequence(spark_engine, src)
    history = spark_engine.lake.table("gold", "w").history()
    assert [h["operation"] for h in history][::-1] == ["CREATE TABLE", "WRITE", "WRITE", "WRITE"]
    write_sequence(duck_engine, src)
    duck_rows = duck_engine.lake.read("gold", "w").to_pylist()
    spark_rows = spark_engine.lake.read("gold", "w").to_pylist()
    assert sorted(duck_rows, key=lambda r: r["k"]) == sorted(spark_rows, key=lambda r: r["k"])
    assert pa.schema(duck_engine.lake.table("gold", "w").schema().to_arrow()).equals(
        pa.schema(spark_engine.lake.table("gold", "w").schema().to_arrow()))


def test_time_travel_and_empty_tables(spark_engine) -> None:
    spark_engine.register_arrow("src", pa.table({"k": ["a", "b"], "n": pa.array([1, 2], pa.int64())}))
    spark_engine.write_delta("gold", "tt", "SELECT * FROM src", mode="overwrite")
    spark_engine.write_delta("gold", "tt", "SELECT * FROM src", mode="append")
    spark_engine.drop("src")
    assert spark_engine.register_delta("w0", "gold", "tt", version=0)
    assert spark_engine.scalar("SELECT count(*) FROM w0") == 2
    assert spark_engine.register_delta("now", "gold", "tt")
    assert spark_engine.scalar("SELECT count(*) FROM now") == 4
    spark_engine.write_delta("gold", "empty", "SELECT * FROM w0 WHERE FALSE", mode="overwrite")
    assert spark_engine.register_delta("e", "gold", "empty")
    assert spark_engine.fetch("SELECT * FROM e").schema.names == ["k", "n"]
    assert spark_engine.scalar("SELECT count(*) FROM e") == 0
    assert not spark_engine.register_delta("nope", "gold", "missing")
    for v in ("w0", "now", "e"):
        spark_engine.drop(v)


def test_dialect_is_the_spark_one(spark_engine) -> None:
    assert spark_engine.dialect.name == "spark" and type(spark_engine.dialect) is not Dialect


# -- silver on the executors ------------------------------------------------------------------------------
def test_silver_is_written_by_the_executors_and_merged_copy_on_write(env, tmp_path_factory) -> None:
    """The conform pass runs on the executors: they split the rows and write silver's files, for a new table
    and for the MERGE into an existing one; the driver pulls only probes, counts and the rows set aside.
    (Before, every silver row was fetched to the driver and streamed into delta-rs from there.)"""
    base = tmp_path_factory.mktemp("executors")
    ctx = Context.from_env(str(base / "lake"))
    codes = [uscc_code(org=f"MA5{i:06d}") for i in range(400)]
    rounds = [[me(c, name="第一期") for c in codes[:300]], [me(c, name="第二期") for c in codes[200:]]]
    pulled: list[int] = []
    with ctx.engine("spark") as eng:
        real_fetch = eng.fetch

        def fetch(sql: str) -> pa.Table:
            t = real_fetch(sql)
            pulled.append(t.num_rows)
            return t

        eng.fetch = fetch
        eng.stream = lambda sql: pytest.fail("the conform pass must not stream rows to the driver")
        for n, rows in enumerate(rounds):
            deliver(ctx, base, {("scjgj", "market_entities", f"many{n}.csv", ME): rows})
            res = conform(ctx, eng, "market_entities")
            assert res.balanced and (res.silver_rows, res.quarantined) == (len(rows), 0)
    assert max(pulled) < 50, pulled
    silver = {r["uscc"]: r["entity_name"] for r in ctx.lake.read("silver", "market_entities").to_pylist()}
    assert silver == {c: "第一期" if i < 200 else "第二期" for i, c in enumerate(codes)}
    last = ctx.lake.table("silver", "market_entities").history(1)[0]
    assert last["operation"] == "WRITE"  # the executors' rewrite, committed by delta-rs (no delta-rs MERGE)
