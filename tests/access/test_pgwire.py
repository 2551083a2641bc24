"""The PostgreSQL-wire endpoint with real clients: Debian's psql (a subprocess) and psycopg 3.

One small lake from the real pipeline, two users created with ``identities.add_user`` (an analyst of
district 440106 and a steward of 公安局 gaj), the endpoint on a free loopback port in a thread. Every
assertion is about what a client sees: refusals as ErrorResponses with SQLSTATE and the Chinese message,
row scope, catalog queries, parameters, tokens, and the audit rows the queries leave.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import psycopg
import pytest

from govlake.context import Context
from tests.conftest import PROJECT, build_lake

PSQL = shutil.which("psql")
ANALYST, STEWARD = "ana.tianhe", "stew.gaj"
ANALYST_PW, STEWARD_PW = "Tianhe-analyst-2026!", "Gaj-steward-pass-2026!"
DISTRICT = "440106"


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Context:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GOVLAKE_PROJECT", str(PROJECT))
        mp.setenv("GOVLAKE_PSEUDONYM_KEY", "test-key-not-secret")
        ctx = build_lake(tmp_path_factory.mktemp("pgwire"), rows=2_000)
        from govlake.control import identities
        from govlake.control.principal import Principal

        owner = Principal.lake_owner(ctx.registry.city.code)
        identities.add_user(ctx.settings, ctx.registry, ANALYST, DISTRICT, "analyst", ANALYST_PW, by=owner)
        identities.add_user(ctx.settings, ctx.registry, STEWARD, "gaj", "steward", STEWARD_PW, by=owner)
        ctx.token = identities.issue_token(ctx.settings, ANALYST, by=owner, label="tests")  # type: ignore[attr-defined]
        yield ctx


@pytest.fixture(scope="module")
def endpoint(lake: Context):
    from govlake.access.pgwire import PgWireServer

    server = PgWireServer(lake, "127.0.0.1", 0)
    server.start()
    yield server
    server.stop()


def connect(endpoint, user: str = ANALYST, password: str = ANALYST_PW, **kw) -> psycopg.Connection:
    return psycopg.connect(host="127.0.0.1", port=endpoint.port, user=user, password=password,
                           dbname="govlake", connect_timeout=10, sslmode="disable", **kw)


def psql(endpoint, sql: str, user: str = ANALYST, password: str = ANALYST_PW) -> subprocess.CompletedProcess:
    env = {**os.environ, "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "10"}
    return subprocess.run([PSQL, "-h", "127.0.0.1", "-p", str(endpoint.port), "-U", user, "-d", "govlake",
                           "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                          env=env, capture_output=True, text=True, timeout=60)


needs_psql = pytest.mark.skipif(PSQL is None, reason="psql not installed (.ci/run installs postgresql-client)")


# -- authentication ----------------------------------------------------------------------------------------
def test_wrong_password_refused_psycopg(endpoint) -> None:
    with pytest.raises(psycopg.OperationalError) as info:
        connect(endpoint, password="not-the-password")
    assert "用户名或密码错误" in str(info.value)
    with pytest.raises(psycopg.OperationalError):
        connect(endpoint, user="nobody.here", password="whatever-it-is")


@needs_psql
def test_wrong_password_refused_psql(endpoint) -> None:
    done = psql(endpoint, "SELECT 1", password="not-the-password")
    assert done.returncode == 2  # psql: connection to the server failed
    assert "28P01" in done.stderr or "用户名或密码错误" in done.stderr
    assert "Traceback" not in done.stderr


def test_token_authenticates(endpoint, lake) -> None:
    with connect(endpoint, password=lake.token) as con:
        assert con.execute("SELECT 1 + 1").fetchone() == (2,)


def test_protocol_garbage_gets_no_traceback(endpoint) -> None:
    with socket.create_connection(("127.0.0.1", endpoint.port), timeout=10) as s:
        s.sendall(struct.pack("!II", 8, 12345678))  # an unknown protocol version
        reply = s.recv(4096)
    assert reply[:1] == b"E" and b"0A000" in reply and b"Traceback" not in reply


# -- access -----------------------------------------------------------------------------------------------------
def test_analyst_cannot_read_silver(endpoint) -> None:
    with connect(endpoint) as con:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            con.execute("SELECT * FROM silver.hukou_population")
        assert "无权" in info.value.diag.message_primary
        con.rollback()
        assert con.execute("SELECT 1").fetchone() == (1,)  # the connection survives the refusal


@needs_psql
def test_analyst_cannot_read_silver_psql(endpoint) -> None:
    done = psql(endpoint, "SELECT * FROM silver.hukou_population")
    assert done.returncode != 0 and "无权" in done.stderr and "Traceback" not in done.stderr


def test_district_analyst_sees_only_their_district(endpoint) -> None:
    with connect(endpoint, autocommit=True) as con:
        rows = con.execute("SELECT district_code, count(*) FROM gold.population GROUP BY 1").fetchall()
    assert rows and {r[0] for r in rows} == {DISTRICT}
    assert all(isinstance(r[1], int) and r[1] > 0 for r in rows)


def test_steward_sees_more_than_one_district(endpoint) -> None:
    with connect(endpoint, STEWARD, STEWARD_PW, autocommit=True) as con:
        rows = con.execute("SELECT DISTINCT district_code FROM gold.population").fetchall()
    assert len(rows) > 1


def test_parameterised_query(endpoint) -> None:
    with connect(endpoint) as con:
        (mine,) = con.execute("SELECT count(*) FROM gold.population WHERE district_code = %s", [DISTRICT]).fetchone()
        (other,) = con.execute("SELECT count(*) FROM gold.population WHERE district_code = %s", ["440103"]).fetchone()
        quoted = con.execute("SELECT %s::VARCHAR AS v, %s::INTEGER + 1 AS n", ["it's $1", 41]).fetchone()
    assert mine > 0 and other == 0  # row scope applies under the parameter too
    assert quoted == ("it's $1", 42)


def test_types_map_to_postgres_oids(endpoint) -> None:
    sql = ("SELECT 1::SMALLINT a, 2::INTEGER b, 3::BIGINT c, 1.5::DOUBLE d, 12.34::DECIMAL(10,2) e, 'x' f, "
           "true g, DATE '2026-11-20' h, TIMESTAMP '2026-11-20 08:30:00' i, "
           "TIMESTAMPTZ '2026-11-20 08:30:00+00' j, NULL::INTEGER k, '\\xAA\\x01'::BLOB l, 'inf'::DOUBLE m, "
           "false n, [1, 2] o")
    with connect(endpoint) as con:
        cur = con.execute(sql)
        oids = [d.type_code for d in cur.description]
        row = cur.fetchone()
        binrow = con.cursor(binary=True).execute(sql).fetchone()
    assert oids == [21, 23, 20, 701, 1700, 25, 16, 1082, 1114, 1184, 23, 17, 701, 16, 114]
    import datetime as dt
    from decimal import Decimal

    expected = (1, 2, 3, 1.5, Decimal("12.34"), "x", True, dt.date(2026, 11, 20), dt.datetime(2026, 11, 20, 8, 30),
                dt.datetime(2026, 11, 20, 8, 30, tzinfo=dt.timezone.utc), None, b"\xaa\x01", float("inf"), False, [1, 2])
    assert row == expected
    assert binrow == expected


def test_query_ending_in_a_brace_is_sql_not_a_json_extension_call(endpoint) -> None:
    with connect(endpoint) as con:
        assert con.execute("SELECT {'a': 1}").fetchone() == ({"a": 1},)


def test_timeout_interrupts_with_57014_and_the_connection_goes_on(endpoint, monkeypatch) -> None:
    monkeypatch.setenv("GOVLAKE_SQL_TIMEOUT", "0.5")  # read per statement by the endpoint (same process)
    with connect(endpoint, autocommit=True) as con:
        with pytest.raises(psycopg.errors.QueryCanceled) as info:
            con.execute("SELECT sum(a.range * b.range) FROM range(200000) a, range(200000) b")
        assert "时间限制" in info.value.diag.message_primary
        monkeypatch.delenv("GOVLAKE_SQL_TIMEOUT")
        assert con.execute("SELECT 7").fetchone() == (7,)


@needs_psql
def test_ctrl_c_in_psql_cancels_the_running_query(endpoint) -> None:
    """psql turns Ctrl-C into a CancelRequest on a second socket (a separate process: psycopg's blocking
    cancel() would hold this process's GIL while the in-process server needs it to accept)."""
    import signal
    import time

    env = {**os.environ, "PGPASSWORD": ANALYST_PW}
    proc = subprocess.Popen([PSQL, "-h", "127.0.0.1", "-p", str(endpoint.port), "-U", ANALYST, "-d", "govlake", "-X",
                             "-c", "SELECT sum(a.range * b.range) FROM range(200000) a, range(200000) b"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "查询已中断" in err, err
    with connect(endpoint, autocommit=True) as con:
        assert con.execute("SELECT 8").fetchone() == (8,)


def test_no_sql_text_in_the_logs(endpoint, caplog) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    with connect(endpoint, autocommit=True) as con:
        con.execute("SELECT 'marker-张三-110101199001011234' AS v").fetchall()
        with pytest.raises(psycopg.Error):
            con.execute("SELECT nosuchcolumn FROM gold.population WHERE x = '张三'")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "张三" not in logged and "110101199001011234" not in logged


# -- what clients send ----------------------------------------------------------------------------------------
@needs_psql
def test_psql_lists_gold_tables(endpoint) -> None:
    done = psql(endpoint, r"\dt gold.*")
    assert done.returncode == 0, done.stderr
    assert "gold|population|table" in done.stdout
    assert "silver" not in done.stdout


@needs_psql
def test_psql_describes_a_table(endpoint) -> None:
    done = psql(endpoint, r"\d gold.population")
    assert done.returncode == 0, done.stderr
    assert "district_code|varchar" in done.stdout


def test_information_schema_lists_only_visible_layers(endpoint) -> None:
    with connect(endpoint) as con:
        rows = con.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall()
    schemas = {r[0] for r in rows}
    assert ("gold", "population") in rows
    assert "silver" not in schemas and "bronze" not in schemas


def test_session_commands_of_gui_clients(endpoint) -> None:
    with connect(endpoint) as con:  # psycopg opens a transaction (BEGIN) before the first statement
        con.execute("SET extra_float_digits = 3")
        con.execute("SET application_name = 'DBeaver 24.1'")
        assert con.execute("SHOW transaction isolation level").fetchone() == ("read committed",)
        assert con.execute("SELECT current_schema()").fetchone()[0]
        assert con.execute("SELECT version()").fetchone()[0]
        assert con.execute("SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname = 'gold'").fetchone() == ("gold",)
        con.commit()
        con.rollback()


def test_failed_transaction_needs_rollback(endpoint) -> None:
    with connect(endpoint) as con:
        with pytest.raises(psycopg.errors.SyntaxError):
            con.execute("SELEC 1")
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            con.execute("SELECT 1")
        con.rollback()
        assert con.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.slow
def test_large_result(endpoint) -> None:
    with connect(endpoint) as con:
        rows = con.execute("SELECT range AS n, range::VARCHAR AS s FROM range(200000)").fetchall()
    assert len(rows) == 200000 and rows[-1] == (199999, "199999")


def test_portal_rows_in_portions() -> None:
    """Execute with a row limit (pgjdbc's fetch size) sends the rest on the next Execute, nothing twice."""
    import pyarrow as pa

    from govlake.access.pgwire import ResultSet

    result = ResultSet.of(pa.table({"n": pa.array(range(20_000), pa.int64())}), "SELECT")
    sent = [b"".join(result.data_rows([0], 15_000)), b"".join(result.data_rows([0], 15_000))]
    assert [part.count(b"D\x00\x00\x00") for part in sent] == [15_000, 5_000] and result.done
    assert result.complete_tag() == "SELECT 20000"


# -- audit ----------------------------------------------------------------------------------------------------
def test_every_query_is_audited_with_the_user(endpoint, lake) -> None:
    from govlake.control import audit

    marker = "SELECT 4242 AS audited_marker"
    with connect(endpoint, autocommit=True) as con:
        con.execute(marker).fetchall()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            con.execute("SELECT * FROM silver.hukou_population")
    rows = audit.rows(lake.settings, user=ANALYST, action="sql", limit=20)
    outcomes = [r["outcome"] for r in rows]
    assert rows and all(r["user_name"] == ANALYST for r in rows)
    assert any(r["outcome"] == "denied" for r in rows), outcomes
    assert any("audited_marker" in (r["detail"] or "") and "4242" not in (r["detail"] or "") for r in rows)


def test_refuses_non_loopback_bind_unless_explicit(lake) -> None:
    from govlake.access.pgwire import PgWireServer
    from govlake.errors import ConfigError

    with pytest.raises(ConfigError):
        PgWireServer(lake, "0.0.0.0", 0)
    server = PgWireServer(lake, "127.0.0.1", 0)
    try:  # on a loopback bind, a client from elsewhere (a forwarded or proxied port) is dropped unserved
        assert server.verify_request(None, ("127.0.0.1", 50000)) and server.verify_request(None, ("::1", 50000, 0, 0))
        assert not server.verify_request(None, ("192.168.1.5", 50000))
    finally:
        server.server_close()


# -- govlake serve ------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_govlake_serve_runs_dashboard_and_sql_and_stops_on_ctrl_c(lake) -> None:
    import signal
    import time
    import urllib.request

    govlake = Path(os.sys.executable).parent / "govlake"
    web, sql = free_port(), free_port()
    env = {**os.environ, "GOVLAKE_PROJECT": str(PROJECT), "GOVLAKE_PSEUDONYM_KEY": "test-key-not-secret",
           "NO_COLOR": "1", "COLUMNS": "300"}
    proc = subprocess.Popen([str(govlake), "serve", "--port", str(web), "--sql-port", str(sql),
                             "--lake", lake.settings.lake_root], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(300):
            try:
                con = psycopg.connect(host="127.0.0.1", port=sql, user=ANALYST, password=ANALYST_PW,
                                      dbname="govlake", connect_timeout=5, sslmode="disable", autocommit=True)
                break
            except psycopg.OperationalError:
                assert proc.poll() is None, proc.stderr.read()
                time.sleep(0.2)
        else:
            pytest.fail("the SQL endpoint of govlake serve did not answer")
        with con:
            assert con.execute("SELECT count(DISTINCT district_code) FROM gold.population").fetchone() == (1,)
        with urllib.request.urlopen(f"http://127.0.0.1:{web}/login", timeout=10) as resp:
            assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert f"-p {sql}" in out and "数据治理驾驶舱" in out


def test_serve_refuses_sql_on_a_public_address_it_was_not_given(lake) -> None:
    """--host opens the dashboard wider (behind TLS); the SQL endpoint stays on loopback unless --sql-host."""
    from govlake.access.service import ServiceConfig, open_sql_endpoint

    endpoint = open_sql_endpoint(lake, ServiceConfig(host="0.0.0.0", behind_tls=True, sql_port=0))
    try:
        assert endpoint.host == "127.0.0.1" and endpoint.loopback_only
    finally:
        endpoint.server_close()


# -- grants change under a live connection -----------------------------------------------------------------
def test_a_grant_given_or_revoked_takes_effect_on_an_open_connection(endpoint, lake, monkeypatch) -> None:
    """A long-lived client (DBeaver keeps its connection for hours) must not keep a revoked grant: the
    connection re-reads its grants (at most every REVALIDATE_S; 0 here) and rebuilds its session."""
    from govlake.access import pgwire
    from govlake.control import identities, sharing

    monkeypatch.setattr(pgwire, "REVALIDATE_S", 0.0)
    query = "SELECT DISTINCT district_code FROM silver.air_quality_daily"
    with connect(endpoint) as con:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            con.execute(query)
        con.rollback()
        who = identities.principal_for(lake.settings, lake.registry, _user_id(lake, ANALYST), "password")
        granted = sharing.request_share(lake.settings, lake.registry, who, "air_quality_daily", None,
                                        "空气质量研判", "区级大气污染防治", "《大气污染防治法》", 30)
        assert granted["grant_id"] is not None  # 无条件共享: granted at once
        rows = con.execute(query).fetchall()  # readable now, on the same connection
        assert {r[0] for r in rows} <= {DISTRICT}  # the grant is scoped to the analyst's district
        from govlake.control.principal import Principal

        sharing.revoke(lake.settings, lake.registry, Principal.lake_owner(lake.registry.city.code),
                       granted["grant_id"], "测试撤销")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            con.execute(query)


def _user_id(lake: Context, name: str) -> int:
    from govlake.control import identities

    return next(u["id"] for u in identities.list_users(lake.settings) if u["name"] == name)
