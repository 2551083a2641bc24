"""Indicators from real silver tables: values by period and district, the city roll-up, thresholds and
progress against the plan's baseline and targets."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from govlake.cli import main
from govlake.errors import ConfigError
from govlake.jobs.governance.indicators import Indicator, load_indicators
from govlake.jobs.ingest.bronze import ingest_file
from govlake.jobs.pipeline import run_pending
from govlake.tables import INDICATOR_PROGRESS as PROGRESS, INDICATOR_VALUES as VALUES
from tests.conftest import PROJECT, write_csv

CASES = ["办件编号", "受理区", "事项编码", "事项名称", "申请人类型", "申请人证件号码", "受理时间", "办结时间", "是否使用电子证照", "办理渠道"]


def case(i: int, district: str, month: str, e_license: str) -> list[str]:
    return [f"BJ{i:06d}", district, "11440100MB2C90001", "事项", "", "", f"2026-{month}-05 09:00:00",
            f"2026-{month}-06 10:00:00", e_license, "穗好办"]


@pytest.fixture()
def lake_with_cases(ctx, engine, tmp_path: Path):
    rows = [case(1, "440106", "10", "是"), case(2, "440106", "10", "是"), case(3, "440106", "10", "否"),
            case(4, "440106", "11", "是"), case(5, "440111", "11", "否"), case(6, "440111", "11", "否")]
    # Each district node delivers its own cases (service_cases is delivered by districts).
    for node in ("440106", "440111"):
        mine = [r for r in rows if r[1] == node]
        f = write_csv(tmp_path / f"service_cases__{node}__20261120__1.csv", CASES, mine)
        assert ingest_file(ctx, f, node, "service_cases").status == "ingested"
    run_pending(ctx, engine, as_of=date(2026, 11, 20))
    return ctx


def test_values_by_period_and_district_with_city_rollup(lake_with_cases) -> None:
    ctx = lake_with_cases
    vals = {(v["period"], v["district_code"]): v for v in ctx.lake.read(*VALUES.ref).to_pylist()
            if v["indicator_id"] == "e_license_usage_rate"}
    assert vals[("2026-10", "440106")]["value"] == pytest.approx(200 / 3, abs=1e-3)
    assert vals[("2026-11", "440106")]["value"] == 100.0 and vals[("2026-11", "440111")]["value"] == 0.0
    city = vals[("2026-11", None)]
    assert (city["numerator"], city["denominator"]) == (1.0, 3.0) and city["district_name"] == "全市"
    assert city["level"] == "告警"  # 33.3 % < alert threshold 40 %
    assert vals[("2026-11", "440106")]["level"] == "正常" and vals[("2026-11", "440111")]["level"] == "告警"


def test_progress_against_baseline_and_targets(lake_with_cases) -> None:
    ctx = lake_with_cases
    prog = {p["indicator_id"]: p for p in ctx.lake.read(*PROGRESS.ref).to_pylist()}
    e = prog["e_license_usage_rate"]
    assert (e["baseline_2022"], e["target_2025"], e["target_2027"]) == (35, 80, 90)  # 表 1
    assert e["period"] == "2026-11" and e["value"] == pytest.approx(100 / 3, abs=1e-3)
    assert e["progress_2025"] == pytest.approx(100 * (100 / 3 - 35) / (80 - 35), abs=0.01) and e["met_2025"] is False
    assert e["districts_in_alert"] == "白云区"
    agg = prog["public_data_aggregation_rate"]  # 1 of the catalogued resources has data
    assert agg["value"] == pytest.approx(100 / len(ctx.registry.contracts), abs=1e-3)
    assert prog["base_stations_5g"]["value"] is None and prog["base_stations_5g"]["level"] == "无数据"
    ids = {i.id for i in load_indicators(ctx.settings.catalog_dir)}
    assert {"public_data_aggregation_rate", "e_license_usage_rate", "e_social_security_card_coverage",
            "emr_application_rate", "base_stations_5g", "charging_facilities_per_10k", "smart_campuses",
            "hotline_on_time_rate", "air_quality_good_rate"} <= ids == set(prog)


def test_threshold_levels() -> None:
    ind = Indicator("x", "x", "%", "每月", "", (), "", warn=90, alert=80)
    assert [ind.level(v) for v in (95, 85, 70, None)] == ["正常", "预警", "告警", "无数据"]
    low = Indicator("y", "y", "分钟", "每月", "", (), "", warn=30, alert=60, higher_is_better=False)
    assert [low.level(v) for v in (20, 40, 70)] == ["正常", "预警", "告警"]


def test_sql_must_declare_its_sources(tmp_path: Path) -> None:
    cat = tmp_path / "catalog"
    shutil.copytree(PROJECT / "catalog", cat)
    p = cat / "indicators.yaml"
    p.write_text(p.read_text(encoding="utf-8").replace("sources: [silver.service_cases]", "sources: []"), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_indicators(cat)
    assert "silver.service_cases" in str(err.value) and "indicators.yaml" in str(err.value)


def test_indicators_cli(lake_with_cases) -> None:
    lake = lake_with_cases.settings.lake_root
    out = CliRunner().invoke(main, ["indicators", "--lake", lake, "--district", "440111", "--format", "json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert {r["district_code"] for r in rows} == {"440111"} and any(r["indicator_id"] == "e_license_usage_rate" for r in rows)
