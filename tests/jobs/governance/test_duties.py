"""The duties-data list (职能数据清单) from a real run: duty -> catalog -> data, 缺位 / 越位 / 一数一源."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

from click.testing import CliRunner
from openpyxl import load_workbook

from govlake.cli import main
from govlake.jobs.governance.catalog import build_catalog
from govlake.jobs.governance.duties import build_duties
from govlake.jobs.ingest.bronze import ingest_file
from govlake.jobs.pipeline import run_pending
from govlake.tables import DUTY_DATA_LIST as LIST, DUTY_FINDINGS as FINDINGS
from tests.conftest import PROJECT, write_csv
from tests.factories import ric_number

HUKOU = ["公民身份号码", "姓名", "性别", "出生日期", "户籍地行政区划", "住址", "登记日期"]
CHARGING = ["充电站编号", "充电站名称", "所在区", "站点地址", "运营商", "充电桩数量", "直流快充桩数量", "是否换电站", "投运日期", "经度", "纬度"]


def deliver_people(ctx, tmp_path: Path, n: int = 4) -> None:
    rows = [[ric_number("440104", "19880808", f"{i:03d}"), f"市民{i}", "男", "1988-08-08", "440104", "广州", "2010-01-01"]
            for i in range(n)]
    ingest_file(ctx, write_csv(tmp_path / "hukou_population__gaj__20261110__1.csv", HUKOU, rows), "gaj", "hukou_population")


def test_duty_list_links_duties_to_catalog_and_data(ctx, engine, tmp_path: Path) -> None:
    deliver_people(ctx, tmp_path)
    run_pending(ctx, engine, as_of=date(2026, 11, 11))
    rows = ctx.lake.read(*LIST.ref).to_pylist()
    assert {r["duty_id"] for r in rows} == set(ctx.registry.duties)
    hk = next(r for r in rows if r["duty_id"] == "gaj.household_registration" and r["dataset"] == "hukou_population")
    assert hk["relation"] == "产生" and hk["resource_code"] == ctx.contract("hukou_population").catalog.code
    assert hk["silver_rows"] == 4 and hk["freshness"] == "正常"
    needs = [r for r in rows if r["duty_id"] == "lsj.migrant_registration" and r["relation"] == "需要"]
    assert [r["dataset"] for r in needs] == ["hukou_population"]
    found = ctx.lake.read(*FINDINGS.ref).to_pylist()
    gaps = {(r["duty_id"], r["dataset"]) for r in found if r["kind"] == "缺位"}
    assert ("gaj.household_registration", "hukou_population") not in gaps  # delivered and fresh
    assert ("scjgj.market_registration", "market_entities") in gaps  # catalogued, no data
    assert ("ybj.medical_insurance_settlement", "medical_insurance_settlements") in gaps  # not catalogued
    assert not [r for r in found if r["kind"] == "越位"]
    assert any(r["kind"] == "一数一源" and "法定代表人" in r["detail"] for r in found)  # no designated authority


def test_stale_data_is_a_gap(ctx, engine, tmp_path: Path) -> None:
    deliver_people(ctx, tmp_path)
    run_pending(ctx, engine, as_of=date(2026, 12, 31))
    found = ctx.lake.read(*FINDINGS.ref).to_pylist()
    stale = [r for r in found if r["kind"] == "缺位" and r["dataset"] == "hukou_population"]
    assert len(stale) == 1 and "未按更新周期更新" in stale[0]["detail"] and stale[0]["node"] == "gaj"


def test_a_node_delivering_outside_its_duties_is_overreach(tmp_path: Path, monkeypatch) -> None:
    proj = tmp_path / "proj"
    for sub in ("schemas", "catalog", "expectations"):
        shutil.copytree(PROJECT / sub, proj / sub)
    duties = proj / "catalog" / "duties.yaml"
    # The charging-infrastructure duty moves to another department; fgw still delivers the stations.
    duties.write_text(duties.read_text(encoding="utf-8").replace(
        "{id: fgw.ev_charging_infrastructure, node: fgw,", "{id: fgw.ev_charging_infrastructure, node: gxj,"), encoding="utf-8")
    monkeypatch.setenv("GOVLAKE_PROJECT", str(proj))
    monkeypatch.setenv("GOVLAKE_PSEUDONYM_KEY", "k")
    from govlake.context import Context

    ctx = Context.from_env(str(tmp_path / "lake"))
    f = write_csv(tmp_path / "charging_stations__fgw__20261110__1.csv", CHARGING,
                  [["CS0001", "天河站", "440106", "广州市天河区某路", "南方电网", "10", "4", "否", "2022-01-01", "113.3", "23.1"]])
    assert ingest_file(ctx, f, "fgw", "charging_stations").status == "ingested"
    build_catalog(ctx, date(2026, 11, 11))
    build_duties(ctx)
    over = [r for r in ctx.lake.read(*FINDINGS.ref).to_pylist() if r["kind"] == "越位"]
    assert [(r["node"], r["dataset"]) for r in over] == [("fgw", "charging_stations")]


def test_duties_cli(ctx, engine, tmp_path: Path) -> None:
    deliver_people(ctx, tmp_path)
    run_pending(ctx, engine, as_of=date(2026, 11, 11))
    runner = CliRunner()
    lake = ctx.settings.lake_root
    out = runner.invoke(main, ["duties", "--lake", lake, "--findings", "--format", "json"])
    assert out.exit_code == 0, out.output
    kinds = {r["kind"] for r in json.loads(out.output)["findings"]}
    assert {"缺位", "一数一源"} <= kinds
    x = tmp_path / "d.xlsx"
    assert runner.invoke(main, ["duties", "--lake", lake, "--format", "xlsx", "--out", str(x)]).exit_code == 0
    assert load_workbook(x).sheetnames == ["职能数据清单", "问题清单"]
    gaj = runner.invoke(main, ["duties", "--lake", lake, "--node", "gaj", "--format", "json"])
    assert {r["node"] for r in json.loads(gaj.output)["duties"]} == {"gaj"}
