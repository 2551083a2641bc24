"""The SQL sandbox is read-only for every role, and every statement is audited without leaking literals
(issue 11, points 1, 4 and 17).

The lake here is written directly as real Delta tables (no ingest), so each attack can be checked against a
byte-for-byte digest of the whole lake taken before it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from govlake.control import audit
from govlake.errors import AccessDenied, QueryError
from govlake.security import keyed_digest
from govlake.access.sql import (AUDIT_PURPOSE, QueryInterrupted, SqlSession, mask_statement, render_csv,
                                 run_interruptible)
from tests.factories import ric_number

GOVLAKE = [sys.executable, "-m", "govlake.cli"]
ID = ric_number("440106", "19900307", "123")
NAME, ADDRESS = "张三", "广州市天河区体育西路1号"
AUDIT_DIR = ("_control", "_secrets/audit.head")  # the control-plane database (SQLite beside a local lake) and the audit head anchor


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
    """Every file is byte-identical but the control database's; the only new files are in its folder."""
    after = lake_files(root)
    assert {p: h for p, h in after.items() if p in before and not p.startswith(AUDIT_DIR)} == {
        p: h for p, h in before.items() if not p.startswith(AUDIT_DIR)}
    assert all(p.startswith(AUDIT_DIR) for p in set(after) - set(before)), set(after) - set(before)


def audit_rows(ctx) -> list[dict]:
    """The SQL audit events of the control plane's audit log, in the order they were written."""
    return sorted(audit.rows(ctx.settings, action="sql", limit=100_000), key=lambda r: r["seq"])


def lake_owner_name() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


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
        ("steward", f"COPY (SELECT 'x' AS outcome) TO '{root}/_control/control.db' (FORMAT csv)"),
        ("steward", f"ATTACH '{root}/_control/control.db' AS c (TYPE sqlite)"),
        ("steward", "INSERT INTO meta.ingest_batches (batch_id) VALUES ('b2')"),
        ("steward", "DELETE FROM meta.ingest_batches"),
        ("steward", "DROP VIEW meta.ingest_batches"),
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
    assert s.query("PRAGMA table_info('gold.population')").table.num_rows == 6  # + the _objection marker
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
    assert [r["outcome"] for r in rows] == ["error", "ok"] and rows[1]["rows"] == 1
    text = json.dumps(rows, ensure_ascii=False, default=str)
    for secret in (ID, NAME, "体育西路", "19900307", ID[:6] + ID[-4:]):
        assert secret not in text
    plain = {hashlib.sha256(q.encode()).hexdigest() for q in (sql, sql.replace(f'"{ADDRESS}"', f"'{ADDRESS}'"))}
    assert not plain & {v for r in rows for v in r.values() if isinstance(v, str)}  # an unkeyed digest could be brute-forced
    assert rows[1]["digest"] == keyed_digest(lake.settings, AUDIT_PURPOSE, sql.replace(f'"{ADDRESS}"', f"'{ADDRESS}'"))
    assert rows[1]["detail"].startswith("SELECT count ( * ) FROM gold . population WHERE district_code = ?")
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
    assert [r["outcome"] for r in rows] == ["denied", "error", "skipped", "denied", "skipped"]
    assert rows[0]["tables"] == ["silver.hukou_population"] and rows[0]["user_name"] == lake_owner_name()
    assert rows[1]["detail"] is None and rows[1]["digest"]  # unparsable: only the keyed digest
    assert [r["detail"].split(" ")[0] for r in rows[2:]] == ["SELECT", "COPY", "SELECT"]
    assert len({r["request_id"] for r in rows[2:]}) == 1 and rows[1]["request_id"] != rows[2]["request_id"]
    assert audit.verify(lake.settings).ok
    s.close()


def test_audit_failure_withholds_the_result(lake) -> None:
    from govlake.control.db import control_engine

    s = SqlSession(lake.lake, "analyst")
    with control_engine(lake.settings).begin() as con:  # the audit log can no longer be written
        con.exec_driver_sql("DROP TABLE audit_log")
    with pytest.raises(QueryError, match="无法写入 SQL 审计记录"):
        s.query("SELECT count(*) FROM gold.population")
    s.close()


def test_the_sql_audit_is_in_the_control_plane_not_the_lake(lake) -> None:
    SqlSession(lake.lake, "analyst").query("SELECT 1")
    assert "sql_audit" not in lake.lake.list_tables("meta")  # readable (and once writable) by SQL: no more
    (row,) = audit_rows(lake)
    assert (row["action"], row["outcome"], row["user_name"], row["auth"]) == ("sql", "ok", lake_owner_name(), "local-owner")
    assert audit.verify(lake.settings).ok


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


# -- issue 12 red-team: side-effect functions, every type escaped, interrupts, export audited -------------
SIDE_EFFECT_CALLS = [
    ("SELECT * FROM enable_logging(level='trace', storage='file', storage_path='{tmp}/log'); SELECT 1", "enable_logging"),
    ("SELECT * FROM main.enable_logging()", "enable_logging"),
    ('SELECT * FROM "ENABLE_LOGGING"()', "enable_logging"),
    ("CALL disable_logging()", None),  # not a read at all
    ("SELECT * FROM truncate_duckdb_logs()", "truncate_duckdb_logs"),
    ("SELECT * FROM checkpoint()", "checkpoint"),
    ("FROM force_checkpoint()", "force_checkpoint"),
    ("SELECT * FROM read_csv('{tmp}/x.csv')", "read_csv"),
    ("SELECT * FROM glob('{tmp}/*')", "glob"),
    ("SELECT * FROM sniff_csv('{tmp}/x.csv')", "sniff_csv"),
    ("SELECT * FROM parquet_metadata('{tmp}/x.parquet')", "parquet_metadata"),
    ("SELECT * FROM duckdb_secrets()", "duckdb_secrets"),
    ("SELECT current_setting('temp_directory')", "current_setting"),
    ("SELECT ('temp_directory').current_setting()", "current_setting"),
    ("SELECT write_log('x')", "write_log"),
    ("SELECT * FROM query('SELECT 1')", "query"),
    ("SELECT * FROM query_table('gold.population')", "query_table"),
    ("CREATE TEMP TABLE t AS SELECT * FROM read_text('{tmp}/x.csv')", "read_text"),
    ("EXPLAIN SELECT * FROM pragma_storage_info('gold.population')", "pragma_storage_info"),
]


def test_side_effect_functions_are_refused_before_execution(lake, tmp_path: Path) -> None:
    tmp_path = tmp_path / "files"
    tmp_path.mkdir()
    (tmp_path / "x.csv").write_text("a\n1\n")
    s = SqlSession(lake.lake, "admin")
    for sql, name in SIDE_EFFECT_CALLS:
        with pytest.raises((AccessDenied, QueryError)) as refused:
            s.query(sql.format(tmp=tmp_path))
        if name is not None:
            assert isinstance(refused.value, AccessDenied) and f"{name}()" in str(refused.value), sql
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.csv"]  # no log file appeared
    denied = [r for r in audit_rows(lake) if r["outcome"] == "denied"]
    assert len(denied) == len(SIDE_EFFECT_CALLS)
    # side-effect free functions, casts with a length, alias column lists and read pragmas still work
    out = s.query("SELECT count(*) AS n, sum(x)::DECIMAL(18, 2) AS s FROM range(10) t(x) "
                  "CROSS JOIN generate_series(1, 2) g(y) CROSS JOIN unnest([1]) u(z)").table
    assert out.column("n")[0].as_py() == 20
    assert s.query("SELECT * FROM duckdb_tables()").table.num_rows >= 0
    assert s.query("PRAGMA table_info('gold.population')").table.num_rows == 6
    assert s.query("SELECT histogram(birth_year) AS h, upper(district_code) FROM gold.population GROUP BY 2").table.num_rows == 11
    s.close()


def test_cli_refuses_enable_logging_instead_of_aborting(lake, tmp_path: Path) -> None:
    tmp_path = tmp_path / "files"
    tmp_path.mkdir()
    sql = f"SELECT * FROM enable_logging(level='trace',storage='file',storage_path='{tmp_path}/x'); SELECT 1"
    out = cli(lake, sql)
    assert out.returncode == AccessDenied.exit_code, (out.returncode, out.stderr)  # was 134 (C++ terminate)
    assert "enable_logging()" in out.stderr and "Traceback" not in out.stderr and "terminate" not in out.stderr
    assert list(tmp_path.iterdir()) == []


ALL_TYPES_FORMULAS = """
SELECT '=1+1'::BLOB AS b, ('=9')::ENUM('=9', 'b') AS e, '=2'::VARCHAR AS v, uuid() AS u,
       make_date(-44, 3, 15) AS d, make_timestamp(-44, 3, 15, 10, 0, 0) AS ts,
       make_timestamptz(-44, 3, 15, 10, 0, 0, 'UTC') AS tz, '0101'::BIT AS bits,
       '12:00'::TIME AS t, INTERVAL '-1 day' AS i, ['=3'] AS l, {'k': '=4'} AS s, MAP {'=5': '=6'} AS m,
       ['=7']::VARCHAR[1] AS a, union_value(k := '=8') AS un, 'x\\xFF'::BLOB AS bad, '@SUM(A1)'::BLOB AS at,
       -3.5 AS num, -3::HUGEINT AS h, true AS flag, NULL AS n, '-1'::JSON AS j,
       to_json('=10') AS j2, 1.5::DECIMAL(10, 2) AS dec, 2.5::FLOAT AS f
"""


def test_csv_escapes_formulas_in_every_type(lake) -> None:
    import csv

    from govlake.exports import is_formula_like

    s = SqlSession(lake.lake, "analyst")
    table = s.query(ALL_TYPES_FORMULAS).table
    rows = list(csv.reader(io.StringIO(render_csv(table))))
    cells = dict(zip(rows[0], rows[1]))
    assert not [c for c in rows[0] + rows[1] if is_formula_like(c)], cells
    assert cells["b"] == "'=1+1" and cells["e"] == "'=9" and cells["at"] == "'@SUM(A1)"
    assert cells["num"] == "-3.5" and cells["h"] == "-3" and cells["j"] == "-1"  # numbers stay numbers
    assert cells["d"].startswith("'-") and cells["bad"].startswith("x")
    # DuckDB's own table of every type renders without error and without a live formula
    every = render_csv(s.query("SELECT * FROM test_all_types()").table)
    assert not [c for row in csv.reader(io.StringIO(every)) for c in row if is_formula_like(c)]
    s.close()


def sql_process(ctx, sql: str, **env: str) -> subprocess.Popen:
    full = {**os.environ, "GOVLAKE_LAKE": ctx.settings.lake_root, **env}
    return subprocess.Popen([*GOVLAKE, "sql", sql], env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


ENDLESS = "SELECT count(*) FROM range(1000000000000)"


def _until_busy(proc: subprocess.Popen, cpu_s: float = 5.0, limit_s: float = 180.0) -> None:
    """Wait until the CLI has started and its query runs: the process has used more CPU than starting the
    CLI takes (about 2.3 s of CPU for a whole ``govlake sql 'SELECT 1'``). A fixed sleep was too short on a
    loaded CI machine: the signal arrived during the imports."""
    tick = os.sysconf("SC_CLK_TCK")
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and proc.poll() is None:
        with open(f"/proc/{proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        if (int(fields[11]) + int(fields[12])) / tick >= cpu_s:
            return
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code", "cause"), [(signal.SIGINT, 130, "sigint"), (signal.SIGTERM, 143, "sigterm")])
def test_signals_interrupt_the_query_and_are_audited(lake, sig, code, cause) -> None:
    proc = sql_process(lake, ENDLESS)
    _until_busy(proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "查询已中断" in err and "Traceback" not in err
    last = audit_rows(lake)[-1]
    assert (last["outcome"], last["detail"].split(" ")[0]) == ("interrupted", "SELECT")


def test_signal_in_process_interrupts_run_interruptible(lake) -> None:
    s = SqlSession(lake.lake, "analyst")
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    started = time.monotonic()
    with pytest.raises(QueryInterrupted, match="查询已中断") as stopped:
        run_interruptible(s, ENDLESS, timeout=0)
    assert stopped.value.exit_code == 130 and time.monotonic() - started < 30
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler was restored
    assert audit_rows(lake)[-1]["outcome"] == "interrupted"
    s.close()


@pytest.mark.slow
def test_statement_timeout_interrupts_and_names_the_limit(lake) -> None:
    proc = sql_process(lake, ENDLESS, GOVLAKE_SQL_TIMEOUT="1")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 124, err
    assert "时间限制（1 秒）" in err and "GOVLAKE_SQL_TIMEOUT" in err and "Traceback" not in err
    last = audit_rows(lake)[-1]
    assert last["outcome"] == "timeout"


def test_export_duckdb_is_audited(lake, tmp_path: Path) -> None:
    target = tmp_path / "张三的导出.duckdb"
    assert cli(lake, "--export-duckdb", str(target)).returncode == 0
    assert cli(lake, "--export-duckdb", str(target)).returncode != 0  # refused: the file exists
    ok, refused = audit_rows(lake)[-2:]
    assert (ok["outcome"], ok["rows"], ok["role"], ok["tables"]) == ("ok", 1, "analyst", ["gold.population"])
    assert refused["outcome"] == "error"
    assert ok["detail"] == refused["detail"] == "EXPORT DUCKDB ?" and "张三" not in json.dumps([ok, refused], ensure_ascii=False, default=str)
    assert ok["digest"] == keyed_digest(lake.settings, AUDIT_PURPOSE, f"EXPORT DUCKDB '{target}'")
