"""Role-scoped SQL over a real lake: what each role sees, clear refusals, and no way around the scope."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from govlake.cli import main
from govlake.control import audit
from govlake.errors import AccessDenied, QueryError
from govlake.jobs.pipeline import run_pending
from govlake.access.sql import SqlSession
from tests.jobs.gold.test_integrate import seed_people


@pytest.fixture()
def lake(ctx, engine, tmp_path: Path):
    seed_people(ctx, tmp_path)
    run_pending(ctx, engine)
    return ctx


def tables_for(ctx, role: str) -> set[str]:
    s = SqlSession(ctx.lake, role)
    # the temp catalog holds the session's Arrow dataset aliases behind the views
    t = s.query("SELECT table_schema || '.' || table_name AS t FROM information_schema.tables WHERE table_catalog <> 'temp'").table
    s.close()
    return set(t.column("t").to_pylist())


def test_each_role_sees_its_layers(lake) -> None:
    analyst, steward, admin = (tables_for(lake, r) for r in ("analyst", "steward", "admin"))
    assert "gold.population" in analyst and all(t.startswith("gold.") for t in analyst)
    assert {"silver.hukou_population", "quarantine.hukou_population", "meta.ingest_batches"} <= steward
    assert not any(t.startswith("bronze.") for t in steward)
    assert "bronze.hukou_population" in admin


def test_refused_table_gets_a_clear_message(lake) -> None:
    s = SqlSession(lake.lake, "analyst")
    with pytest.raises(AccessDenied, match="无权读取 silver.hukou_population"):
        s.query("SELECT * FROM silver.hukou_population")
    with pytest.raises(QueryError, match="不存在"):
        s.query("SELECT * FROM gold.populaton")


def test_files_cannot_be_read_around_the_role(lake) -> None:
    bronze_file = lake.lake.table("bronze", "hukou_population").file_uris()[0]
    s = SqlSession(lake.lake, "steward")
    with pytest.raises(AccessDenied):
        s.query(f"SELECT * FROM read_parquet('{bronze_file}')")
    with pytest.raises(AccessDenied, match="只读"):
        s.query("SET enable_external_access = true")


def test_queries_are_audited_with_literals_masked(lake) -> None:
    s = SqlSession(lake.lake, "analyst")
    s.query("SELECT count(*) FROM gold.population WHERE district_code <> '440106199003071234' AND district_code <> '张三'")
    (row,) = audit.rows(lake.settings, action="sql")
    assert row["role"] == "analyst" and row["outcome"] == "ok" and row["rows"] == 1 and row["auth"] == "local-owner"
    assert row["tables"] == ["gold.population"] and "sql_audit" not in lake.lake.list_tables("meta")
    assert "440106199003071234" not in row["detail"] and "张三" not in row["detail"]


def test_cli_formats_and_exit_codes(lake) -> None:
    runner = CliRunner()
    root = lake.settings.lake_root
    out = runner.invoke(main, ["sql", "--lake", root, "--format", "json", "SELECT population_type, count(*) AS n FROM gold.population GROUP BY 1 ORDER BY 1"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert {d["population_type"]: d["n"] for d in data} == {"户籍人口": 1, "户籍且有来穗登记": 1, "来穗人员": 1}
    csv_out = runner.invoke(main, ["sql", "--lake", root, "--format", "csv", "SELECT count(*) AS n FROM gold.population"])
    assert csv_out.output.splitlines() == ['"n"', "3"]
    denied = runner.invoke(main, ["sql", "--lake", root, "SELECT * FROM bronze.hukou_population"])
    assert denied.exit_code != 0 and "无权读取" in denied.output and "Traceback" not in denied.output
