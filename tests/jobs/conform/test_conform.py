"""Conform into real silver/quarantine Delta tables: typing, standardization, upserts, accounting."""

from __future__ import annotations

import re
from pathlib import Path

from govlake.jobs.conform.silver import conform
from govlake.jobs.ingest.bronze import ingest
from tests.conftest import write_csv
from tests.factories import bad_check, ric_number, uscc_code

ME_HEADER = ["统一社会信用代码", "企业名称", "市场主体类型", "法定代表人", "法定代表人证件号码", "注册资本（万元）",
             "成立日期", "行政区划代码", "登记状态", "行业代码"]
A, B, C = uscc_code(org="MA59ABCD1"), uscc_code(org="MA59ABCD2"), uscc_code(org="MA59ABCD3")
REP = ric_number()


def me_row(code: str, name: str = "广州某某科技有限公司", date: str = "2015-06-01", district: str = "440106",
           capital: str = "100", rep_id: str = REP) -> list[str]:
    return [code, name, "有限责任公司", "张三", rep_id, capital, date, district, "存续", "I65"]


def load(ctx, engine, tmp_path: Path, name: str, rows: list[list[str]]):
    f = write_csv(tmp_path / name, ME_HEADER, rows)
    [r] = ingest(ctx, [f], "scjgj", "market_entities")
    assert r.status == "ingested"
    return conform(ctx, engine, "market_entities")


def silver(ctx) -> dict[str, dict]:
    return {r["uscc"]: r for r in ctx.lake.read("silver", "market_entities").to_pylist()}


def quarantine(ctx) -> list[dict]:
    return ctx.lake.read("quarantine", "market_entities").to_pylist()


def test_typing_standardization_and_pseudonymized_pii(ctx, engine, tmp_path: Path) -> None:
    res = load(ctx, engine, tmp_path, "a.csv", [
        me_row(A, date="2015/6/1", district="天河区", capital="１,２00"),
        me_row(" " + B.lower() + " ", date="2015年6月1日", district="广州市海珠区"),
    ])
    assert res.balanced and (res.silver_rows, res.quarantined) == (2, 0)
    s = silver(ctx)
    assert set(s) == {A, B}
    a = s[A]
    assert str(a["establish_date"]) == "2015-06-01" and a["district_code"] == "440106" and str(a["registered_capital"]) == "1200.0000"
    assert a["entity_type"] == "1100" and a["status"] == "1" and s[B]["district_code"] == "440105"
    assert "legal_rep_id_number" not in a and a["legal_rep_name_masked"] == "张*"
    assert a["legal_rep_id_number_masked"] == REP[:6] + "*" * 12  # the region code only: nothing to rebuild from
    assert re.fullmatch(r"[0-9a-f]{64}", a["legal_rep_id_number_pid"])


def test_failing_rows_go_to_quarantine_with_every_rule(ctx, engine, tmp_path: Path) -> None:
    res = load(ctx, engine, tmp_path, "bad.csv", [
        me_row(A),
        me_row(bad_check(B), name="", date="2999-01-01", district="440300"),
        me_row(C, date="1900-01-01", rep_id="4.40106199003071e+17"),
    ])
    assert (res.silver_rows, res.quarantined, res.superseded) == (1, 2, 0) and res.balanced
    by_row = {r["_row_number"]: r for r in quarantine(ctx)}
    q = {bad_check(B): by_row[2], C: by_row[3]}
    assert set(q[bad_check(B)]["_failures"]) == {"uscc.cn_uscc", "entity_name.required", "establish_date.future",
                                                 "district_code.gz_district"}
    # A value that breaks its own field's rules is unclassified text: only its shape is kept.
    assert q[bad_check(B)]["uscc"] != bad_check(B) and set(q[bad_check(B)]["uscc"]) <= set("9*")
    assert q[bad_check(B)]["district_code"] == "999999" and q[C]["uscc"] == C  # valid values stay legible
    assert set(q[C]["_failures"]) == {"establish_date.too_early", "legal_rep_id_number.excel_number", "legal_rep_id_number.cn_ric"}
    rec = q[C]["_record"]
    assert "4.40106199003071e+17" not in rec and REP not in str(q)  # raw PII never in quarantine
    assert q[C]["_row_number"] == 3 and q[C]["_source_file"].endswith("bad.csv")


def test_latest_delivery_wins_and_last_row_in_file_wins(ctx, engine, tmp_path: Path) -> None:
    r1 = load(ctx, engine, tmp_path, "d1.csv", [me_row(A, name="旧名称"), me_row(A, name="同文件后一行"), me_row(B)])
    assert (r1.silver_rows, r1.superseded) == (2, 1) and r1.balanced
    assert silver(ctx)[A]["entity_name"] == "同文件后一行"
    r2 = load(ctx, engine, tmp_path, "d2.csv", [me_row(A, name="新一期报送")])
    assert (r2.silver_rows, r2.superseded, r2.bronze_rows) == (1, 0, 1)
    s = silver(ctx)
    assert s[A]["entity_name"] == "新一期报送" and len(s) == 2


def test_rerun_is_idempotent_and_books_balance_per_batch(ctx, engine, tmp_path: Path) -> None:
    load(ctx, engine, tmp_path, "a.csv", [me_row(A), me_row(A), me_row(bad_check(B))])
    again = conform(ctx, engine, "market_entities")
    assert again.batches == []
    acc = ctx.lake.read("meta", "conform_batches").to_pylist()
    assert len(acc) == 1
    [a] = acc
    assert a["bronze_rows"] == a["silver_rows"] + a["quarantined"] + a["superseded"] == 3
    bronze_n = ctx.lake.read("bronze", "market_entities").num_rows
    assert bronze_n == sum(x["bronze_rows"] for x in acc)


def test_corrected_redelivery_leaves_quarantine(ctx, engine, tmp_path: Path) -> None:
    load(ctx, engine, tmp_path, "a.csv", [me_row(A, date="2021-02-30")])
    assert [r["_status"] for r in quarantine(ctx)] == ["open"]
    fixed = load(ctx, engine, tmp_path, "a_fixed.csv", [me_row(A, date="2021-02-28")])
    assert fixed.resolved == 1
    [q] = quarantine(ctx)
    assert q["_status"] == "resolved" and q["_resolved_by"] == fixed.batches[0]
    assert str(silver(ctx)[A]["establish_date"]) == "2021-02-28"


def test_ragged_row_is_quarantined_not_lost(ctx, engine, tmp_path: Path) -> None:
    f = tmp_path / "r.csv"
    f.write_text(",".join(ME_HEADER) + "\n" + ",".join(me_row(A)) + "\n只有,三列,而已\n", encoding="utf-8")
    ingest(ctx, [f], "scjgj", "market_entities")
    res = conform(ctx, engine, "market_entities")
    assert (res.silver_rows, res.quarantined) == (1, 1)
    [q] = quarantine(ctx)
    assert q["_failures"] == ["row.ragged"] and q["_raw"] == "**,**,**"  # its shape only: unclassified text


def test_redelivery_with_another_date_spelling_resolves_a_date_keyed_row(ctx, engine, tmp_path: Path) -> None:
    header = ["监测站点编码", "监测站点名称", "所在区", "监测日期", "空气质量指数"]
    bad = write_csv(tmp_path / "aq1.csv", header, [["GZ01", "天河体育中心", "440106", "2026/3/5", "900"]])
    good = write_csv(tmp_path / "aq2.csv", header, [["GZ01", "天河体育中心", "440106", "2026-03-05", "88"]])
    ingest(ctx, [bad], "sthjj", "air_quality_daily")
    conform(ctx, engine, "air_quality_daily")
    ingest(ctx, [good], "sthjj", "air_quality_daily")
    res = conform(ctx, engine, "air_quality_daily")
    assert res.resolved == 1
    [q] = ctx.lake.read("quarantine", "air_quality_daily").to_pylist()
    assert q["_status"] == "resolved" and q["_key"] == "GZ01|2026-03-05"


def test_two_spellings_of_one_key_in_one_run_are_one_row(ctx, engine, tmp_path: Path) -> None:
    """2026/3/5 and 2026-03-05 are one date: delivered in two files conformed together they are one key, the
    later delivery wins and the other counts as superseded (ranking by the delivered spelling sent both to
    the MERGE, which refused the whole run: "matched a target row with multiple source rows")."""
    header = ["监测站点编码", "监测站点名称", "所在区", "监测日期", "空气质量指数"]
    ingest(ctx, [write_csv(tmp_path / "aq0.csv", header, [["GZ01", "天河体育中心", "440106", "2026-03-05", "70"]])],
           "sthjj", "air_quality_daily")
    conform(ctx, engine, "air_quality_daily")  # the key is in silver: the next run merges into it
    for i, (day, aqi) in enumerate([("2026/3/5", "80"), ("2026-03-05", "90")]):
        ingest(ctx, [write_csv(tmp_path / f"aq{i + 1}.csv", header, [["GZ01", "天河体育中心", "440106", day, aqi]])],
               "sthjj", "air_quality_daily")
    res = conform(ctx, engine, "air_quality_daily")
    assert res.balanced and (res.silver_rows, res.superseded) == (1, 1)
    [row] = ctx.lake.read("silver", "air_quality_daily").to_pylist()
    assert row["aqi"] == 90


def test_slices_cut_large_batches_and_group_small_ones(ctx, engine, tmp_path: Path, monkeypatch) -> None:
    """With slices of 3 rows, two pending deliveries (7 rows and 2 rows) are cut into several engine
    queries; every row is still counted once, the last row per key wins across slice boundaries, and the
    failing rows of every slice reach quarantine."""
    import govlake.jobs.conform.silver as conform_job
    from govlake.jobs.conform.silver import slice_filters

    assert slice_filters([("a", 7), ("b", 2), ("c", 1)], 3) == [
        "_batch_id = 'a' AND _row_number >= 1 AND _row_number < 4",
        "_batch_id = 'a' AND _row_number >= 4 AND _row_number < 7",
        "_batch_id = 'a' AND _row_number >= 7 AND _row_number < 10",
        "_batch_id IN ('b', 'c')",
    ]
    monkeypatch.setattr(conform_job, "SLICE_ROWS", 3)
    codes = [uscc_code(org=f"MA59ABX{i:02d}") for i in range(5)]
    rows = [me_row(c) for c in codes] + [me_row(bad_check(A)), me_row(codes[0], name="同文件最后一行")]
    write_csv(tmp_path / "big.csv", ME_HEADER, rows)
    write_csv(tmp_path / "small.csv", ME_HEADER, [me_row(B), me_row(codes[1], date="1800-01-01")])
    for name in ("big.csv", "small.csv"):
        [r] = ingest(ctx, [tmp_path / name], "scjgj", "market_entities")
        assert r.status == "ingested"
    r = conform(ctx, engine, "market_entities")
    assert (r.bronze_rows, r.silver_rows, r.quarantined, r.superseded) == (9, 6, 2, 1) and r.balanced
    s = silver(ctx)
    assert set(s) == set(codes) | {B}
    assert s[codes[0]]["entity_name"] == "同文件最后一行"
    assert {q["_failures"][0].split(".")[0] for q in quarantine(ctx)} == {"uscc", "establish_date"}
