"""The SQL sandbox is read-only for every role, and every statement is audited without leaking literals
(issue 11, points 1, 4 and 17).

The lake here is written directly as real Delta tables (no ingest), so each attack can be checked against a
byte-for-byte digest of the whole lake taken before it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from govlake.errors import AccessDenied, QueryError
from govlake.security import keyed_digest
from govlake.access.sql import AUDIT_PURPOSE, SqlSession, mask_statement, render_csv
from tests.factories import ric_number

GOVLAKE = [sys.executable, "-m", "govlake.cli"]
ID = ric_number("440106", "19900307", "123")
NAME, ADDRESS = "张三", "广州市天河区体育西路1号"
AUDIT_DIR = os.path.join("meta", "sql_audit")


@pytest.fixture()
def lake(ctx):
    """gold (with list and map columns), silver, quarantine, bronze (raw PII) and meta, two files each."""
    n = 2000
    gold = pa.table({
        "district_code": [f"4401{i % 11 + 3:02d}" for i in range(n)],
        "birth_year": [1950 + i % 60 for i in range(n)],
        "tags": [["户籍", "来穗"][: i % 3] for i in range(n)],
        "attrs": pa.array([[("k", str(i))] for i in range(n)], pa.map_(pa.string(), pa.string())),
        "note": ["=HYPERLINK(\"http://x\")" if i == 0 else "ok" for i in range(n)],
    })
    for half in (gold.slice(0, n // 2), gold.slice(n // 2)):
        ctx.lake.append("gold", "population", half)
    ctx.lake.append("silver", "hukou_population", pa.table({"id_number_pid": ["p1", "p2"], "name_masked": ["张*", "李*"]}))
    ctx.lake.append("quarantine", "hukou_population", pa.table({"_failures": ["id_check"]}))
    ctx.lake.append("bronze", "hukou_population", pa.table({"公民身份号码": [ID], "姓名": [NAME], "住址": [ADDRESS]}))
    ctx.lake.append("meta", "ingest_batches", pa.table({"batch_id": ["b1"], "rows": [1]}))
    return ctx


def lake_files(root: str) -> dict[str, str]:
    """sha256 of every file in the lake, by relative path."""
    out = {}
    for base, _, files in os.walk(root):
        for f in files:
            full = os.path.join(base, f)
            out[os.path.relpath(full, root)] = hashlib.sha256(Path(full).read_bytes()).hexdigest()
    return out


def assert_untouched(before: dict[str, str], root: str) -> None:
    """Every file is byte-identical; the only new files are the audit table's own appends."""
    after = lake_files(root)
    assert {p: h for p, h in after.items() if p in before} == before
    assert all(p.startswith(AUDIT_DIR) for p in set(after) - set(before)), set(after) - set(before)


def audit_rows(ctx) -> list[dict]:
    """Audit rows in the order they were written (Delta files are not read back in order)."""
    rows = ctx.lake.read("meta", "sql_audit").to_pylist()
    return sorted(rows, key=lambda r: (r["at"] is not None, r["at"] or 0, r.get("statement_index") or 0))


def gold_file(ctx) -> str:
    return ctx.lake.table("gold", "population").file_uris()[0]


# -- point 1: no role can create, change or delete a file ------------------------------------------------
def attacks(ctx, cwd: Path) -> list[tuple[str, str]]:
    root = ctx.settings.lake_root
    forged = json.dumps({"add": {"path": "x.parquet", "size": 1, "modificationTime": 0, "dataChange": True}})
    return [
        ("analyst", f"COPY (SELECT * FROM gold.population LIMIT 1) TO '{gold_file(ctx)}' (FORMAT parquet)"),
        ("analyst", f"COPY (SELECT * FROM gold.population) TO '{root}/gold/population' "
                    "(FORMAT parquet, PARTITION_BY (district_code), OVERWRITE true)"),
        ("analyst", f"COPY (SELECT '{forged}' AS add) TO '{root}/gold/population/_delta_log/00000000000000000002.json' (FORMAT json)"),
        ("steward", f"COPY (SELECT 'x' AS status) TO '{root}/meta/sql_audit/forged.parquet' (FORMAT parquet)"),
        ("steward", "INSERT INTO meta.sql_audit (status) VALUES ('ok')"),
        ("steward", "DELETE FROM meta.sql_audit"),
        ("steward", "DROP VIEW meta.sql_audit"),
        ("admin", f"COPY (SELECT 1 AS a) TO '{root}/bronze/hukou_population/x.parquet'"),
        ("analyst", f"COPY (SELECT 1 AS a) TO '{cwd}/.tmp/x.csv'"),
        ("analyst", "COPY (SELECT 1 AS a) TO '.tmp/x.csv'"),
        ("analyst", f"EXPORT DATABASE '{root}/gold/population'"),
        ("analyst", f"ATTACH '{root}/gold/x.duckdb' AS x"),
        ("analyst", "INSTALL spatial"),
        ("analyst", "LOAD spatial"),
        ("analyst", "SET enable_external_access = true"),
        ("analyst", "RESET temp_directory"),
        ("analyst", "CREATE TABLE main.kept AS SELECT 1"),
        ("analyst", "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')"),
        ("analyst", f"EXPLAIN ANALYZE COPY (SELECT 1 AS a) TO '{root}/gold/y.csv'"),
        ("analyst", f"SELECT 1; COPY (SELECT 1 AS a) TO '{root}/gold/z.csv'"),
        ("analyst", "PRAGMA enable_profiling"),
        ("analyst", f"SELECT * FROM read_parquet('{ctx.lake.table('bronze', 'hukou_population').file_uris()[0]}')"),
        ("steward", f"SELECT * FROM read_parquet('{ctx.lake.table('bronze', 'hukou_population').file_uris()[0]}')"),
        ("steward", f"SELECT * FROM read_text('{ctx.settings.lake_root}/_secrets/pseudonym.key')"),
    ]


def test_every_write_attack_is_refused_and_the_lake_is_byte_identical(lake, tmp_path: Path, monkeypatch) -> None:
    cwd = tmp_path / "cwd"
    (cwd / ".tmp").mkdir(parents=True)
    monkeypatch.chdir(cwd)
    root = lake.settings.lake_root
    before = lake_files(root)
    for role, sql in attacks(lake, cwd):
        s = SqlSession(lake.lake, role)
        with pytest.raises((AccessDenied, QueryError)) as refused:
            s.query(sql)
        assert "Traceback" not in str(refused.value)
        s.close()
    assert_untouched(before, root)
    assert list((cwd / ".tmp").iterdir()) == []
    assert lake.lake.read("gold", "population").num_rows == 2000


def test_the_duckdb_session_itself_can_write_no_file(lake, tmp_path: Path, monkeypatch) -> None:
    """Defense in depth: even a statement that passed admission finds no writable (or readable) path."""
    cwd = tmp_path / "cwd"
    (cwd / ".tmp").mkdir(parents=True)
    monkeypatch.chdir(cwd)
    root = lake.settings.lake_root
    before = lake_files(root)
    for role in ("analyst", "steward", "admin"):
        s = SqlSession(lake.lake, role)
        for sql in (f"COPY (SELECT 1 AS a) TO '{gold_file(lake)}' (FORMAT parquet)",
                    f"COPY (SELECT 1 AS a, 2 AS b) TO '{root}/gold/population' (FORMAT parquet, PARTITION_BY (a), OVERWRITE true)",
                    f"COPY (SELECT 1 AS a) TO '{cwd}/.tmp/spill.csv'",
                    f"ATTACH '{root}/meta/x.duckdb' AS x",
                    f"SELECT * FROM read_parquet('{gold_file(lake)}')"):
            with pytest.raises(duckdb.PermissionException):
                s.con.execute(sql)
        assert s.con.execute("SELECT current_setting('temp_directory')").fetchone()[0] == ""
        s.close()
    assert_untouched(before, root)
    assert list((cwd / ".tmp").iterdir()) == []


def test_reads_and_session_temp_tables_still_work(lake) -> None:
    s = SqlSession(lake.lake, "analyst")
    assert s.query("SELECT count(*) AS n FROM gold.population WHERE district_code >= '440110'").table.column("n")[0].as_py() > 0
    assert "district_code" in s.query("DESCRIBE gold.population").table.column("column_name").to_pylist()
    assert s.query("SHOW TABLES").table.num_rows >= 1
    assert s.query("PRAGMA table_info('gold.population')").table.num_rows == 5
    assert s.query("EXPLAIN SELECT * FROM gold.population").table.num_rows >= 1
    assert s.query("WITH d AS (FROM gold.population) SELECT count(*) FROM d").table.num_rows == 1
    out = s.query("CREATE TEMP TABLE t AS SELECT district_code, count(*) AS n FROM gold.population GROUP BY 1; "
                  "INSERT INTO t VALUES ('x', 1); DELETE FROM t WHERE n = 1; SELECT sum(n) AS total FROM t").table
    assert out.column("total")[0].as_py() == 2000
    s.query("DROP TABLE t")
    with pytest.raises(AccessDenied, match="只读"):
        s.query("INSERT INTO gold.population (district_code) VALUES ('1')")
    with pytest.raises(AccessDenied, match="只读"):
        s.query("DROP VIEW __gold__population")  # the dataset alias is not the user's temp object
    s.close()


# -- point 4: audit every statement, keyed digests only, fail closed ------------------------------------
def test_audit_is_keyed_and_stores_no_literal(lake) -> None:
    sql = (f"SELECT count(*) FROM gold.population WHERE district_code = '{ID}' OR note = '{NAME}' "
           f"OR note = \"{ADDRESS}\" OR birth_year = 19900307 -- {NAME}")
    s = SqlSession(lake.lake, "analyst")
    with pytest.raises(QueryError) as err:  # "ADDRESS" is taken as a column name by DuckDB: audited as an error
        s.query(sql)
    assert ADDRESS not in str(err.value)  # the message does not echo it either
    s.query(sql.replace(f'"{ADDRESS}"', f"'{ADDRESS}'"))
    rows = audit_rows(lake)[-2:]
    assert [r["status"] for r in rows] == ["error", "ok"] and rows[1]["rows"] == 1
    text = json.dumps(rows, ensure_ascii=False, default=str)
    for secret in (ID, NAME, "体育西路", "19900307", ID[:6] + ID[-4:]):
        assert secret not in text
    plain = {hashlib.sha256(q.encode()).hexdigest() for q in (sql, sql.replace(f'"{ADDRESS}"', f"'{ADDRESS}'"))}
    assert not plain & {v for r in rows for v in r.values()}  # an unkeyed digest could be brute-forced
    assert rows[1]["query_hmac"] == keyed_digest(lake.settings, AUDIT_PURPOSE, sql.replace(f'"{ADDRESS}"', f"'{ADDRESS}'"))
    assert rows[1]["query_masked"].startswith("SELECT count ( * ) FROM gold . population WHERE district_code = ?")
    s.close()


def test_refused_and_unparsable_statements_are_audited(lake) -> None:
    s = SqlSession(lake.lake, "analyst")
    with pytest.raises(AccessDenied, match="无权读取 silver.hukou_population"):
        s.query("SELECT * FROM silver.hukou_population")
    with pytest.raises(QueryError, match="SQL 语法错误"):
        s.query("SELECT $$a")
    with pytest.raises(AccessDenied, match="不允许 COPY"):
        s.query("SELECT 1 AS a; COPY (SELECT 1) TO 'x.csv'; SELECT 2")
    rows = audit_rows(lake)
    assert [(r["status"], r["statement_type"]) for r in rows] == [
        ("denied", "SELECT"), ("error", "UNKNOWN"), ("skipped", "SELECT"), ("denied", "COPY"), ("skipped", "SELECT")]
    assert rows[1]["reason"] == "parse_error" and rows[1]["query_masked"] is None and rows[1]["query_hmac"]
    assert len({r["request_id"] for r in rows[2:]}) == 1 and [r["statement_index"] for r in rows[2:]] == [0, 1, 2]
    s.close()


def test_audit_failure_withholds_the_result(lake) -> None:
    Path(lake.settings.lake_root, "meta", "sql_audit").write_text("not a table")  # the audit cannot be created
    s = SqlSession(lake.lake, "analyst")
    with pytest.raises(QueryError, match="无法写入 SQL 审计记录"):
        s.query("SELECT count(*) FROM gold.population")
    s.close()


def test_legacy_audit_rows_are_kept_when_new_columns_arrive(lake) -> None:
    legacy = pa.table({"at": pa.array([None], pa.timestamp("us", tz="UTC")), "user": ["u"], "role": ["analyst"],
                       "status": ["ok"], "query_masked": ["SELECT ?"], "query_sha256": ["00"]})
    lake.lake.append("meta", "sql_audit", legacy)
    SqlSession(lake.lake, "analyst").query("SELECT 1")
    rows = audit_rows(lake)
    assert rows[0]["query_sha256"] == "00" and rows[1]["query_sha256"] is None and rows[1]["query_hmac"]


def test_masking_cross_checks_duckdb_tokens() -> None:
    assert mask_statement("SELECT $$张三$$, x'ff', E'a\\'b', 1e5 /* 440106199003071234 */") == "SELECT ? , x ? , ? , ?"
    assert mask_statement('SELECT "张三" FROM t', known={"t"}) == 'SELECT "?" FROM t'
    assert mask_statement("SELECT $$a") is None


# -- point 17: nested values, export refuses to clobber, CLI never shows a traceback ---------------------
def cli(ctx, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GOVLAKE_LAKE": ctx.settings.lake_root}
    return subprocess.run([*GOVLAKE, "sql", *args], env=env, capture_output=True, text=True, timeout=120)


def test_csv_and_table_render_lists_and_maps_as_json(lake) -> None:
    out = cli(lake, "--format", "csv", "SELECT tags, attrs FROM gold.population ORDER BY birth_year, attrs['k'] LIMIT 3")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == '"tags","attrs"' and '{""k"": ""0""}' in out.stdout
    table = cli(lake, "SELECT tags, attrs, '[/]' AS \"[b]\" FROM gold.population WHERE attrs['k'] = '2'")
    assert table.returncode == 0, table.stderr
    assert '["户籍", "来穗"]' in table.stdout and '{"k": "2"}' in table.stdout and "[/]" in table.stdout
    s = SqlSession(lake.lake, "analyst")
    assert render_csv(s.query("SELECT tags FROM gold.population WHERE tags = []").table).splitlines()[1] == '"[]"'
    formula = render_csv(s.query("SELECT note AS \"=cmd\" FROM gold.population WHERE note LIKE '=%'").table)
    assert formula.splitlines() == ['"\'=cmd"', '"\'=HYPERLINK(""http://x"")"']  # text, not a live formula
    s.close()


@pytest.mark.slow
def test_cli_errors_are_chinese_without_traceback(lake) -> None:
    for args in (["SELECT $$a"], ["SELECT * FROM silver.hukou_population"],
                 [f"COPY (SELECT 1) TO '{gold_file(lake)}'"], ["--role", "steward", "SELECT nope FROM meta.ingest_batches"]):
        out = cli(lake, *args)
        assert out.returncode != 0 and "Traceback" not in out.stderr + out.stdout and "错误" in out.stderr, out.stderr


def test_export_duckdb_refuses_to_clobber(lake, tmp_path: Path) -> None:
    target = tmp_path / "analyst.duckdb"
    target.write_bytes(b"precious")
    refused = cli(lake, "--export-duckdb", str(target))
    assert refused.returncode != 0 and "已存在" in refused.stderr and "Traceback" not in refused.stderr
    assert target.read_bytes() == b"precious"
    folder = tmp_path / "dir"
    (folder / "keep").mkdir(parents=True)
    for extra in ([], ["--force"]):
        out = cli(lake, "--export-duckdb", str(folder), *extra)
        assert out.returncode != 0 and "目录" in out.stderr and (folder / "keep").is_dir()
    assert cli(lake, "--export-duckdb", str(target), "--force").returncode == 0
    con = duckdb.connect(str(target), read_only=True)
    assert con.execute("SELECT count(*) FROM gold.population").fetchone()[0] == 2000
    con.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp file left
