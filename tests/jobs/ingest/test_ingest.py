"""Ingest into real bronze Delta tables: every row lands, or the whole file is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from govlake.errors import RegistryError
from govlake.jobs.ingest.bronze import ingest, ingest_file
from tests.conftest import write_csv

HEADER = ["公民身份号码", "姓名", "性别", "出生日期", "户籍地行政区划", "住址", "登记日期"]
ROWS = [
    ["440106199003071234", "张三", "男", "1990-03-07", "440106", "广州市天河区体育西路1号", "2020-01-02"],
    ["11010519491231002X", "李四", "女", "1949/12/31", "越秀区", "广州市越秀区北京路2号", "2021年3月5日"],
    ["440104200001010011", "王五", "男", "2000-01-01", "440104", "广州市越秀区中山路3号", "20200102"],
]


def bronze(ctx) -> list[dict]:
    return ctx.lake.read("bronze", "hukou_population").to_pylist()


def test_csv_rows_land_verbatim_with_metadata(ctx, tmp_path: Path) -> None:
    f = write_csv(tmp_path / "h.csv", HEADER, ROWS)
    [r] = ingest(ctx, [f], "gaj", "hukou_population")
    assert (r.status, r.rows) == ("ingested", 3)
    rows = sorted(bronze(ctx), key=lambda x: x["_row_number"])
    assert [x["_row_number"] for x in rows] == [1, 2, 3]
    assert rows[1]["district_code"] == "越秀区" and rows[1]["registered_on"] == "2021年3月5日"  # as delivered
    for x in rows:
        assert x["_node"] == "gaj" and x["_source_file"] == str(f) and x["_batch_id"] == r.batch_id
        assert len(x["_content_hash"]) == 64 and x["_ingested_at"] is not None


def test_gb18030_csv_is_detected(ctx, tmp_path: Path) -> None:
    f = write_csv(tmp_path / "h_gbk.csv", HEADER, ROWS, encoding="gb18030")
    [r] = ingest(ctx, [f], "gaj", "hukou_population")
    assert r.status == "ingested"
    assert {x["name"] for x in bronze(ctx)} == {"张三", "李四", "王五"}
    log = ctx.lake.read("meta", "ingest_batches").to_pylist()
    assert log[0]["encoding"] == "gb18030"


def test_ragged_rows_land_with_raw_text(ctx, tmp_path: Path) -> None:
    f = tmp_path / "ragged.csv"
    f.write_text(",".join(HEADER) + "\n" + ",".join(ROWS[0]) + "\n440106,短行\n" + ",".join(ROWS[2]) + ",多出来的列\n"
                 + ",".join(ROWS[1]) + "\n", encoding="utf-8")
    [r] = ingest(ctx, [f], "gaj", "hukou_population")
    assert (r.rows, r.ragged_rows) == (4, 2)
    by_row = {x["_row_number"]: x for x in bronze(ctx)}
    assert sorted(by_row) == [1, 2, 3, 4]
    assert by_row[2]["_raw"] == "440106,短行" and by_row[2]["id_number"] is None
    assert by_row[3]["_raw"].endswith("多出来的列")
    assert by_row[4]["name"] == "李四" and by_row[4]["_raw"] is None


def test_same_file_twice_is_a_noop_that_says_so(ctx, tmp_path: Path) -> None:
    f = write_csv(tmp_path / "h.csv", HEADER, ROWS)
    ingest(ctx, [f], "gaj", "hukou_population")
    copy = tmp_path / "renamed.csv"
    copy.write_bytes(f.read_bytes())
    [again] = ingest(ctx, [copy], "gaj", "hukou_population")
    assert again.status == "duplicate" and "已于" in again.message
    assert len(bronze(ctx)) == 3


def test_file_without_key_column_is_refused_whole(ctx, tmp_path: Path) -> None:
    f = write_csv(tmp_path / "wrong.csv", ["统一社会信用代码", "企业名称"], [["91440101MA59XXXX1X", "某公司"]])
    [r] = ingest(ctx, [f], "gaj", "hukou_population")
    assert r.status == "refused"
    assert "公民身份号码" in r.message and "wrong.csv" in r.message and "处理建议" in r.message
    assert not ctx.lake.exists("bronze", "hukou_population")
    log = ctx.lake.read("meta", "ingest_batches").to_pylist()
    assert [x["status"] for x in log] == ["refused"]


def test_encoding_break_midway_leaves_nothing_behind(ctx, tmp_path: Path) -> None:
    good = write_csv(tmp_path / "ok.csv", HEADER, ROWS)
    ingest(ctx, [good], "gaj", "hukou_population")
    body = (",".join(HEADER) + "\n" + "\n".join(",".join(r) for r in ROWS * 20000) + "\n").encode("utf-8")
    bad = tmp_path / "mixed.csv"
    bad.write_bytes(body + "440106199003071234,陈六,男,1990-03-07,440106,地址,2020-01-01\n".encode("gb18030"))
    [r] = ingest(ctx, [bad], "gaj", "hukou_population")
    assert r.status == "refused" and "编码" in r.message
    assert len(bronze(ctx)) == 3  # not one row of the 60,001 landed


def test_xlsx_with_title_rows_footer_and_excel_numbers(ctx, tmp_path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["广州市公安局 户籍人口信息 导出时间：2026-11-20"])
    ws.append([])
    ws.append(HEADER)
    ws.append(ROWS[0])
    ws.append([440106199003071234, "赵七", "男", "1990-03-07", 440106, "地址", "2020-01-02"])  # Excel number
    ws.append(["合计：2条"])
    ws.append(["制表人：张某", None, "审核人：李某"])
    f = tmp_path / "h.xlsx"
    wb.save(f)
    [r] = ingest(ctx, [f], "gaj", "hukou_population")
    assert (r.status, r.rows) == ("ingested", 2)
    rows = sorted(bronze(ctx), key=lambda x: x["_row_number"])
    assert rows[1]["id_number"] == "4.40106199003071e+17"  # what Excel holds, never "repaired"
    assert rows[1]["district_code"] == "440106"
    log = ctx.lake.read("meta", "ingest_batches").to_pylist()[0]
    skipped = json.loads(log["skipped_lines"])
    assert any("导出时间" in s for s in skipped) and any("合计" in s for s in skipped) and any("制表人" in s for s in skipped)


def test_jsonl_and_parquet(ctx, tmp_path: Path) -> None:
    jl = tmp_path / "h.jsonl"
    lines = [json.dumps(dict(zip(HEADER, r)), ensure_ascii=False) for r in ROWS[:2]] + ["{broken json"]
    jl.write_text("\n".join(lines) + "\n", encoding="utf-8")
    [a] = ingest(ctx, [jl], "gaj", "hukou_population")
    assert (a.rows, a.ragged_rows) == (3, 1)
    pf = tmp_path / "h.parquet"
    t = pa.table({h: [r[i] for r in ROWS] for i, h in enumerate(HEADER)})
    t = t.set_column(HEADER.index("户籍地行政区划"), "户籍地行政区划", pa.array([440106, 440104, 440104], pa.int64()))
    pq.write_table(t, pf)
    [b] = ingest(ctx, [pf], "gaj", "hukou_population")
    assert b.rows == 3
    texts = {x["district_code"] for x in bronze(ctx) if x["_batch_id"] == b.batch_id}
    assert texts == {"440106", "440104"}


def test_schema_drift_is_recorded_not_refused(ctx, tmp_path: Path) -> None:
    header = ["身份证号码", "姓名", "出生日期", "户籍地行政区划", "备注"]  # alias header, missing fields, extra column
    f = write_csv(tmp_path / "drift.csv", header, [["440106199003071234", "张三", "1990-03-07", "440106", "新增列"]])
    [r] = ingest(ctx, [f], "gaj", "hukou_population")
    assert r.status == "ingested" and "备注" in r.message and "性别" in r.message
    [row] = bronze(ctx)
    assert row["id_number"] == "440106199003071234" and json.loads(row["_extra"]) == {"备注": "新增列"}


def test_unknown_node_or_wrong_deliverer_is_a_clear_error(ctx, tmp_path: Path) -> None:
    f = write_csv(tmp_path / "h.csv", HEADER, ROWS)
    with pytest.raises(RegistryError, match="未知节点"):
        ingest(ctx, [f], "gaz", "hukou_population")
    with pytest.raises(RegistryError, match="不是数据集"):
        ingest(ctx, [f], "scjgj", "hukou_population")


def test_missing_file_and_unsupported_format(ctx, tmp_path: Path) -> None:
    assert ingest_file(ctx, tmp_path / "nope.csv", "gaj", "hukou_population").status == "refused"
    doc = tmp_path / "h.docx"
    doc.write_text("x")
    r = ingest_file(ctx, doc, "gaj", "hukou_population")
    assert r.status == "refused" and "不支持的文件格式" in r.message
