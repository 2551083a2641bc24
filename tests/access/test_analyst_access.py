"""Analyst access: descriptions from the declarations on every view, and an exported DuckDB database file
that the DuckDB CLI or any SQL client can open."""

from __future__ import annotations

from pathlib import Path

import duckdb
from click.testing import CliRunner

from govlake.cli import main
from govlake.jobs.ingest.bronze import ingest_file
from govlake.jobs.pipeline import run_pending
from govlake.models import load_models
from tests.conftest import write_csv
from tests.factories import ric_number

HUKOU = ["公民身份号码", "姓名", "性别", "出生日期", "户籍地行政区划", "住址", "登记日期"]
MIGRANT = ["公民身份号码", "姓名", "性别", "出生日期", "户籍地行政区划", "居住地行政区划", "居住地址", "居住证有效期起",
           "居住证有效期止", "登记日期"]


def _lake(ctx, engine, tmp_path: Path) -> str:
    rows = [[ric_number("440113", "19660606", f"{i:03d}"), f"番禺{i}", "女", "1966-06-06", "440113", "广州", "1990-01-01"]
            for i in range(6)]
    ingest_file(ctx, write_csv(tmp_path / "hukou_population__gaj__20261110__1.csv", HUKOU, rows), "gaj", "hukou_population")
    m = [[ric_number("430102", "19900101", "001"), "来穗甲", "男", "1990-01-01", "430102", "440113", "广州", "2022-01-01",
          "2027-01-01", "2022-01-01"]]
    ingest_file(ctx, write_csv(tmp_path / "migrant_population__lsj__20261110__1.csv", MIGRANT, m), "lsj", "migrant_population")
    run_pending(ctx, engine)
    return ctx.settings.lake_root


def test_exported_duckdb_file_has_the_roles_tables_with_descriptions(ctx, engine, tmp_path: Path) -> None:
    lake = _lake(ctx, engine, tmp_path)
    path = tmp_path / "analyst.duckdb"
    out = CliRunner().invoke(main, ["sql", "--lake", lake, "--export-duckdb", str(path)])
    assert out.exit_code == 0, out.output
    con = duckdb.connect(str(path), read_only=True)
    views = {(s, v): c for s, v, c in con.execute(
        "SELECT schema_name, view_name, comment FROM duckdb_views() WHERE NOT internal").fetchall()}
    assert {s for s, _ in views} == {"gold"}  # analysts see gold only
    assert ("gold", "quality_scores") in views and views[("gold", "catalog_resources")].startswith("一张图")
    assert con.execute("SELECT count(*) FROM gold.catalog_items").fetchone()[0] == \
        sum(len(c.fields) for c in ctx.registry.contracts.values())
    cols = dict(con.execute("SELECT column_name, comment FROM duckdb_columns() WHERE table_name = 'population'").fetchall())
    model = load_models(ctx.settings.schemas_dir)["population"]
    assert views[("gold", "population")] == f"{model.title}：{model.description}"
    assert cols.pop("_objection").startswith("数据异议")  # the marker every silver and gold view carries (issue 13)
    assert {c.name: c.description for c in model.columns} == cols
    assert con.execute("SELECT count(*) FROM gold.population WHERE district_code = '440113'").fetchone()[0] == 7
    con.close()


def test_steward_export_and_session_carry_contract_descriptions(ctx, engine, tmp_path: Path) -> None:
    lake = _lake(ctx, engine, tmp_path)
    path = tmp_path / "steward.duckdb"
    assert CliRunner().invoke(main, ["sql", "--lake", lake, "--role", "steward", "--export-duckdb", str(path)]).exit_code == 0
    con = duckdb.connect(str(path), read_only=True)
    cols = dict(con.execute("SELECT column_name, comment FROM duckdb_columns() "
                            "WHERE schema_name = 'silver' AND table_name = 'hukou_population'").fetchall())
    assert cols["id_number_pid"].startswith("公民身份号码的假名") and cols["district_code"].startswith("户籍地行政区划")
    assert con.execute("SELECT count(*) FROM silver.hukou_population").fetchone()[0] == 6
    assert "id_number" not in cols  # raw identifiers never reach silver, so not the export either
    con.close()
    live = CliRunner().invoke(main, ["sql", "--lake", lake, "--format", "json",
                                     "SELECT comment FROM duckdb_columns() WHERE table_name = 'quality_scores' AND column_name = 'score'"])
    assert live.exit_code == 0 and "综合得分" in live.output
