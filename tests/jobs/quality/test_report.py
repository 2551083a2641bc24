"""The stewards' report on a real lake: HTML, Excel and GX Data Docs agree with what the pipeline recorded,
show failing rules with counts and masked samples, and never contain a raw personal value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from openpyxl import load_workbook

from govlake.jobs.ingest.bronze import ingest_file
from govlake.jobs.pipeline import run_pending
from govlake.jobs.quality.report import build_report, safe_record, sparkline
from tests.conftest import write_csv
from tests.factories import bad_check, ric_number, uscc_code

ME = ["统一社会信用代码", "企业名称", "市场主体类型", "法定代表人", "法定代表人证件号码", "注册资本（万元）", "成立日期",
      "行政区划代码", "登记状态", "行业代码"]
HUKOU = ["公民身份号码", "姓名", "性别", "出生日期", "户籍地行政区划", "住址", "登记日期"]
REP_NAME = "欧阳建国"
ADDRESS = "广州市天河区体育西路103号"


def me_rows(n: int, bad_codes: int, offset: int = 0) -> list[list[str]]:
    rows = []
    for i in range(n):
        code = uscc_code("91", "440106", f"MA5R{offset + i:05d}")
        if i < bad_codes:
            code = bad_check(code)
        rows.append([code, f"广州{offset + i}号有限公司", "有限责任公司", REP_NAME, ric_number("440106", "19800101", f"{i % 900:03d}"),
                     "100", "2015-06-01", "440106", "存续", "I65"])
    return rows


def hukou_rows(n: int, bad: int) -> list[list[str]]:
    rows = []
    for i in range(n):
        rid = ric_number("440104", "19750505", f"{i:03d}")
        rows.append([bad_check(rid) if i < bad else rid, f"司马{i}", "男", "1975-05-05", "440104", ADDRESS, "2000-01-01"])
    return rows


@pytest.fixture()
def lake_with_findings(ctx, engine, tmp_path: Path):
    """Two runs of market_entities (2 then 1 invalid credit codes) and one held hukou delivery."""
    me1 = write_csv(tmp_path / "market_entities__scjgj__20261101__1.csv", ME, me_rows(20, 2))
    ingest_file(ctx, me1, "scjgj", "market_entities")
    first = run_pending(ctx, engine, ["market_entities"])
    me2 = write_csv(tmp_path / "market_entities__scjgj__20261102__2.csv", ME, me_rows(10, 1, offset=100))
    ingest_file(ctx, me2, "scjgj", "market_entities")
    hk = write_csv(tmp_path / "hukou_population__gaj__20261102__1.csv", HUKOU, hukou_rows(6, 4))
    ingest_file(ctx, hk, "gaj", "hukou_population")
    second = run_pending(ctx, engine, ["market_entities", "hukou_population"])
    return {"runs": [first.run_id, second.run_id], "held": second.held}


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_report_shows_rules_counts_samples_trend_and_held_batch(ctx, lake_with_findings, tmp_path: Path) -> None:
    out = build_report(ctx, tmp_path / "report", data_docs=False)
    html = out["html"].read_text(encoding="utf-8")
    text = _text(html)
    assert "数据质量报告" in text and "质量排名" in text
    section = html[html.index('data-node="scjgj" data-dataset="market_entities"'):]
    section = section[:section.index("</section>")]
    row = re.search(r'<tr data-rule="uscc.cn_uscc">(.*?)</tr>', section, re.S).group(1)
    cells = [_text(c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    assert cells[3] == "3"  # 2 + 1 invalid codes over two runs
    assert cells[4] == f"{100 * 3 / 30:.2f}%"
    assert row.count('class="sample"') == 3  # the samples come from the quarantine, masked
    # Two runs scored: the node x dataset trend has two points.
    trend = re.search(r"评分趋势<br>(<svg.*?</svg>)", section, re.S).group(1)
    assert trend.count("<circle") == 2
    # The held hukou batch is listed with how to release it.
    assert lake_with_findings["held"] and "暂停发布的批次" in html and "govlake quality release hukou_population" in html
    drill = (tmp_path / "report" / "quarantine" / "market_entities.html").read_text(encoding="utf-8")
    assert drill.count("uscc.cn_uscc") == 3


def test_excel_workbook_has_the_same_findings(ctx, lake_with_findings, tmp_path: Path) -> None:
    out = build_report(ctx, tmp_path / "report", data_docs=False)
    wb = load_workbook(out["excel"])
    assert {"评分", "失败规则", "隔离明细", "表结构变化", "暂停发布批次", "多源校核"} <= set(wb.sheetnames)
    rows = list(wb["失败规则"].iter_rows(values_only=True))
    header, body = rows[0], rows[1:]
    found = {(r[header.index("数据集")], r[header.index("规则")]): r[header.index("失败行数")] for r in body}
    assert found[("市场主体登记信息", "uscc.cn_uscc")] == 3
    held = list(wb["暂停发布批次"].iter_rows(values_only=True))[1:]
    assert [r[2] for r in held] == [b for _, b in lake_with_findings["held"]]
    q = list(wb["隔离明细"].iter_rows(values_only=True))[1:]
    assert sum(1 for r in q if r[0] == "市场主体登记信息") == 3


@pytest.mark.slow
def test_no_raw_personal_value_in_any_output(ctx, lake_with_findings, tmp_path: Path) -> None:
    out = build_report(ctx, tmp_path / "report", data_docs=True)
    assert out["data_docs"] is not None and out["data_docs"].exists()
    raw_ids = {r[4] for r in me_rows(30, 0)} | {r[0] for r in hukou_rows(6, 0)} | {r[0] for r in hukou_rows(6, 6)}
    names = {REP_NAME, ADDRESS} | {f"司马{i}" for i in range(6)}
    texts = [p.read_text(encoding="utf-8", errors="ignore") for p in (tmp_path / "report").rglob("*.html")]
    wb = load_workbook(out["excel"])
    texts += [" ".join(str(c) for row in ws.iter_rows(values_only=True) for c in row if c is not None) for ws in wb]
    blob = "\n".join(texts)
    for secret in raw_ids | names:
        assert secret not in blob, secret
    # GX Data Docs carry the validation of the market_entities batches, with the engine's counts.
    pages = list((tmp_path / "report").rglob("validations/silver/market_entities/**/*.html"))
    assert len(pages) == 2
    assert any("unexpected" in p.read_text(encoding="utf-8") for p in pages)


def test_safe_record_masks_personal_fields_the_contract_only_classifies(ctx) -> None:
    rec = safe_record(ctx, "hukou_population", '{"公民身份号码": "440104********0011", "姓名": "司*", "性别": "1", '
                                               '"出生日期": "1975-05-05", "户籍地行政区划": "440104"}')
    assert rec["出生日期"] == "1975-**-**" and rec["性别"] == "*"
    assert rec["户籍地行政区划"] == "440104"  # not personal: shown as delivered
    assert rec["公民身份号码"] == "440104********0011"  # already masked at conform time


def test_sparkline_scales_scores() -> None:
    svg = sparkline([("r1", 0.0), ("r2", 100.0)], width=100, height=40)
    ys = [float(y) for y in re.findall(r'cy="([0-9.]+)"', svg)]
    assert ys[0] > ys[1]  # 0 is drawn low, 100 high
    assert "无" in sparkline([])


FORMULA = '=HYPERLINK("http://x","y")'


def test_report_writes_delivered_names_and_headers_as_text(ctx, engine, tmp_path: Path) -> None:
    """Issue 11, point 6: file names and unknown column headers are chosen by whoever delivers; in
    质量报告.xlsx they were live formulas. Now no cell is a formula, and each shows what was delivered."""
    import zipfile

    from govlake.exports import is_formula_like
    from govlake.redaction import scrub

    names = ['=HYPERLINK("x","y").csv', "+1+2.csv", "-3-4.csv", "@SUM(A1).csv", "<img src=x onerror=alert(1)>.csv"]
    headers = [FORMULA, "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)", "<script>alert(1)</script>"]
    for k, (name, extra) in enumerate(zip(names, headers)):
        rows = [r + [f"@{extra}"] for r in me_rows(3, 1, offset=10 * k)]  # one quarantined row per file
        ingest_file(ctx, write_csv(tmp_path / name, ME + [extra], rows), "scjgj", "market_entities")
    run_pending(ctx, engine, ["market_entities"])
    out = build_report(ctx, tmp_path / "report", data_docs=False)

    wb = load_workbook(out["excel"])
    cells = [c for ws in wb for row in ws.iter_rows() for c in row if c.value is not None]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    risky = [c for c in cells if is_formula_like(c.value)]
    assert all(c.data_type == "s" and c.quotePrefix for c in risky)
    texts = {c.value for c in cells}
    assert set(names) <= texts  # the drift, quarantine and held sheets name the file exactly as delivered
    drift = {r[2]: r[3] for r in list(wb["表结构变化"].iter_rows(values_only=True))[1:]}
    # Unknown headers are unclassified text: shown as the batch log keeps them, redacted (quoted parts masked).
    assert all(drift[n] == scrub(h) for n, h in zip(names, headers))
    assert any(scrub(h) != h for h in headers) and all(is_formula_like(scrub(h)) == is_formula_like(h) for h in headers)
    with zipfile.ZipFile(out["excel"]) as z:
        assert not [n for n in z.namelist() if n.startswith("xl/worksheets/") and b"<f>" in z.read(n)]

    html = out["html"].read_text(encoding="utf-8")
    assert "<img" not in html and "<script" not in html  # escaped in the drift table
    assert "&lt;img src=x onerror=alert(1)&gt;.csv" in html
    assert "script-src" not in html and "default-src 'none'" in html  # the report's own CSP allows no script
