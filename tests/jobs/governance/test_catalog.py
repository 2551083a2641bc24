"""The 1+11+N catalog from a real pipeline run: nodes with health, resources with catalogue and technical
metadata, information items; search and exports."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from govlake.cli import main
from govlake.jobs.governance.catalog import build_catalog, export, search_rows
from govlake.jobs.ingest.bronze import ingest_file
from govlake.jobs.pipeline import run_pending
from govlake.tables import CATALOG_ITEMS as ITEMS, CATALOG_NODES as NODES, CATALOG_RESOURCES as RESOURCES
from tests.conftest import write_csv
from tests.factories import ric_number

HUKOU = ["公民身份号码", "姓名", "性别", "出生日期", "户籍地行政区划", "住址", "登记日期"]


@pytest.fixture()
def cataloged(ctx, engine, tmp_path: Path):
    rows = [[ric_number("440103", "19700101", f"{i:03d}"), f"居民{i}", "女", "1970-01-01", "440103", "广州", "2000-01-01"]
            for i in range(5)]
    f = write_csv(tmp_path / "hukou_population__gaj__20261110__1.csv", HUKOU, rows)
    ingest_file(ctx, f, "gaj", "hukou_population")
    run_pending(ctx, engine, as_of=date(2026, 11, 11))
    return ctx


def test_nodes_have_health_against_the_update_cycle(cataloged) -> None:
    ctx = cataloged
    nodes = {r["code"]: r for r in ctx.lake.read(*NODES.ref).to_pylist()}
    assert set(nodes) == set(ctx.registry.nodes) and len(nodes) == 1 + 11 + len(ctx.registry.departments)
    assert nodes["440100"]["health"] == "无报送职责"
    assert nodes["gaj"]["last_delivery"] == date(2026, 11, 10) and nodes["gaj"]["health"] == "正常"
    assert nodes["scjgj"]["health"] == "无数据" and nodes["scjgj"]["last_delivery"] is None
    assert nodes["gaj"]["quality_score"] is not None
    # A week later the daily 户籍 resource is late (更新周期 每日: at most two cycles + one day).
    build_catalog(ctx, date(2026, 11, 17))
    later = {r["code"]: r for r in ctx.lake.read(*NODES.ref).to_pylist()}
    assert later["gaj"]["health"] == "滞后" and "户籍人口基本信息" in later["gaj"]["stale_resources"]


def test_resources_carry_catalogue_and_technical_metadata(cataloged) -> None:
    ctx = cataloged
    res = {r["dataset"]: r for r in ctx.lake.read(*RESOURCES.ref).to_pylist()}
    assert set(res) == set(ctx.registry.contracts)
    hk, c = res["hukou_population"], ctx.contract("hukou_population")
    assert (hk["code"], hk["name"], hk["provider"], hk["share"], hk["open"], hk["update_cycle"]) == (
        c.catalog.code, c.title, "市公安局", c.catalog.share, c.catalog.open, c.catalog.update_cycle)
    assert hk["items"].split("、") == [f.title for f in c.fields]
    assert hk["silver_rows"] == ctx.lake.table("silver", "hukou_population").count() == 5
    assert hk["delta_version"] == ctx.lake.table("silver", "hukou_population").version()
    assert hk["grade"] == max(f.grade for f in c.fields) and hk["has_personal_info"] is True
    assert "id_number_pid" in {f["name"] for f in json.loads(hk["silver_schema"])}
    assert {"gold.population", "gold.quality_scores", "gold.source_conflicts"} <= set(hk["downstream"].split("、"))
    assert hk["upstream"] == "bronze.hukou_population"
    score = [r for r in ctx.lake.read("gold", "quality_scores").to_pylist() if r["scope"] == "dataset"
             and r["dataset"] == "hukou_population"]
    assert hk["quality_score"] == score[-1]["score"]
    assert res["market_entities"]["silver_rows"] is None and res["market_entities"]["freshness"] == "无数据"
    items = ctx.lake.read(*ITEMS.ref).to_pylist()
    assert len(items) == sum(len(c.fields) for c in ctx.registry.contracts.values())
    idn = next(i for i in items if i["dataset"] == "hukou_population" and i["field"] == "id_number")
    assert idn["pii"] == "敏感个人信息" and idn["grade"] == 3 and idn["is_key"] is True


def test_search_filters_and_exports(cataloged, tmp_path: Path) -> None:
    ctx = cataloged
    found = search_rows(ctx, RESOURCES, "人口")
    assert {r["dataset"] for r in found} == {"hukou_population", "migrant_population"}
    assert {r["dataset"] for r in search_rows(ctx, RESOURCES, "人口 来穗")} == {"migrant_population"}
    assert {r["dataset"] for r in search_rows(ctx, RESOURCES, node="scjgj")} == {"market_entities"}
    assert all(r["share"] == "无条件共享" for r in search_rows(ctx, RESOURCES, share="无条件共享"))
    x = export(found, "xlsx", tmp_path / "c.xlsx", RESOURCES)
    sheet = load_workbook(x).active
    header = [c.value for c in sheet[1]]
    assert sorted(sheet.cell(row=i, column=header.index("dataset") + 1).value for i in (2, 3)) == \
        ["hukou_population", "migrant_population"]
    c = export(found, "csv", tmp_path / "c.csv", RESOURCES)
    assert len(list(csv.DictReader(c.read_text(encoding="utf-8-sig").splitlines()))) == 2
    j = export(found, "json", tmp_path / "c.json", RESOURCES)
    assert {r["code"] for r in json.loads(j.read_text(encoding="utf-8"))} == {r["code"] for r in found}


def test_catalog_cli(cataloged) -> None:
    lake = cataloged.settings.lake_root
    runner = CliRunner()
    out = runner.invoke(main, ["catalog", "--lake", lake, "--nodes", "--format", "json"])
    assert out.exit_code == 0 and len(json.loads(out.output)) == len(cataloged.registry.nodes)
    bad = runner.invoke(main, ["catalog", "--lake", lake, "--node", "gaa"])
    assert bad.exit_code == 2 and "gaj" in bad.output and "Traceback" not in bad.output


HOSTILE = ['=HYPERLINK("http://x","y")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)", "\t=1"]


def _no_formula_cells(path: Path) -> list:
    from govlake.exports import is_formula_like

    wb = load_workbook(path)
    cells = [c for ws in wb for row in ws.iter_rows() for c in row if c.value is not None]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    assert all(c.data_type == "s" for c in cells if is_formula_like(c.value))
    return [c.value for c in cells]


def test_catalog_exports_write_formula_like_text_as_text(cataloged, tmp_path: Path) -> None:
    """Issue 11, point 6: catalogue texts (from contracts, or a forged gold row) never run in Excel."""
    rows = search_rows(cataloged, RESOURCES, "人口")
    rows[0] = dict(rows[0], name=HOSTILE[0], summary=HOSTILE[1], category=HOSTILE[2], provider=HOSTILE[3], items=HOSTILE[4])
    values = _no_formula_cells(export(rows, "xlsx", tmp_path / "c.xlsx", RESOURCES))
    assert set(HOSTILE) <= set(values)  # shown exactly, as text
    c = export(rows, "csv", tmp_path / "c.csv", RESOURCES)
    back = list(csv.DictReader(c.read_text(encoding="utf-8-sig").splitlines()))
    assert [back[0][k] for k in ("name", "summary", "category", "provider")] == ["'" + v for v in HOSTILE[:4]]
    assert back[0]["items"] == "'" + HOSTILE[4]
    assert back[1]["name"] == rows[1]["name"]  # ordinary text unchanged


def test_duties_export_writes_formula_like_text_as_text(cataloged, tmp_path: Path) -> None:
    import pyarrow as pa

    from govlake.tables import DUTY_FINDINGS as FINDINGS

    ctx = cataloged
    t = ctx.lake.read(*FINDINGS.ref)
    found = t.to_pylist()
    found[0].update(detail=HOSTILE[0], action=HOSTILE[3])
    ctx.lake.overwrite(*FINDINGS.ref, pa.Table.from_pylist(found, schema=t.schema))
    out = tmp_path / "d.xlsx"
    res = CliRunner().invoke(main, ["duties", "--lake", ctx.settings.lake_root, "--format", "xlsx", "--out", str(out)])
    assert res.exit_code == 0, res.output
    values = _no_formula_cells(out)
    assert HOSTILE[0] in values and HOSTILE[3] in values
