"""Grants enforced below the SQL surface (issue 13, point 2): row scope, column grades, grant column lists,
expiry, owner-node stewards, the audit of who read what, and the DuckDB export, on a lake built by the real
pipeline, with users and grants in the real control plane."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from govlake.access.sql import SqlSession, export_duckdb
from govlake.control import audit
from govlake.control.db import control_engine
from govlake.control.identities import add_user, principal_for
from govlake.control.principal import Grant, Principal
from govlake.control.schema import grants
from govlake.errors import AccessDenied
from tests.conftest import build_lake

PASSWORD = "Grant-Tests-2026"
DISTRICT = "440106"  # 天河区


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory):
    return build_lake(tmp_path_factory.mktemp("grants"), rows=600)


def owner(ctx) -> Principal:
    return Principal.lake_owner(ctx.registry.city.code)


def user(ctx, name: str, node: str, role: str = "analyst") -> Principal:
    """A user in the control plane (created once per lake), as authentication would hand it over."""
    from govlake.control.identities import list_users

    existing = {u["name"]: u for u in list_users(ctx.settings)}
    uid = existing[name]["id"] if name in existing else add_user(
        ctx.settings, ctx.registry, name, node, role, PASSWORD, by=owner(ctx))["id"]
    return principal_for(ctx.settings, ctx.registry, uid, "password")


def grant(ctx, who: Principal, dataset: str = "hukou_population", *, columns: list[str] | None = None,
          max_grade: int = 4, days: float = 30, row_scope: str | None = None) -> int:
    now = datetime.now(timezone.utc)
    with control_engine(ctx.settings).begin() as con:
        return con.execute(grants.insert().values(
            user_id=who.user_id, dataset=dataset, layer="silver", columns=columns, max_grade=max_grade,
            row_scope=row_scope, purpose="测试", granted_by="owner", granted_at=now,
            expires_at=now + timedelta(days=days))).inserted_primary_key[0]


def query(ctx, who: Principal, sql: str) -> list[dict]:
    s = SqlSession(ctx.lake, who, registry=ctx.registry)
    try:
        return s.query(sql).table.to_pylist()
    finally:
        s.close()


BY_DISTRICT = "SELECT district_code, count(*) AS n FROM gold.population GROUP BY 1 ORDER BY 1"


def test_analyst_cannot_read_silver_and_is_told_how_to_apply(lake) -> None:
    analyst = user(lake, "fgw_analyst", "fgw")
    with pytest.raises(AccessDenied) as denied:
        query(lake, analyst, "SELECT count(*) FROM silver.hukou_population")
    text = str(denied.value)
    assert "无权读取 silver.hukou_population" in text and "有条件共享" in text
    assert "我的申请" in text and "hukou_population" in text and "用途" in text
    with pytest.raises(AccessDenied, match="原始层"):
        query(lake, analyst, "SELECT count(*) FROM bronze.hukou_population")
    with pytest.raises(AccessDenied, match="meta 层"):
        query(lake, analyst, "SELECT count(*) FROM meta.ingest_batches")


def test_district_user_sees_only_their_district_and_no_alias_gets_around_it(lake) -> None:
    everyone = query(lake, owner(lake), BY_DISTRICT)
    assert len(everyone) > 3 and DISTRICT in {r["district_code"] for r in everyone}  # the test can fail
    tianhe = user(lake, "tianhe_analyst", DISTRICT)
    assert tianhe.district == DISTRICT
    mine = query(lake, tianhe, BY_DISTRICT)
    assert mine == [r for r in everyone if r["district_code"] == DISTRICT]
    assert query(lake, tianhe, f"SELECT count(*) AS n FROM gold.population WHERE district_code <> '{DISTRICT}'") == [{"n": 0}]
    for alias in ('SELECT * FROM "__gold__population"', "SELECT count(*) FROM __gold__population",
                  "SELECT * FROM temp.main.__gold__population", 'SELECT * FROM "__GOLD__population"'):
        with pytest.raises(AccessDenied, match="内部对象"):
            query(lake, tianhe, alias)


def test_grant_grade_masks_fields_above_it(lake) -> None:
    analyst = user(lake, "grade1_analyst", "jyj")
    gid = grant(lake, analyst, max_grade=1)
    rows = query(lake, user(lake, "grade1_analyst", "jyj"), "SELECT * FROM silver.hukou_population")
    full = query(lake, owner(lake).narrowed("admin"), "SELECT * FROM silver.hukou_population")
    assert len(rows) == len(full) > 0
    assert list(rows[0]) == list(full[0])  # every column still there, in order
    assert {r["name_masked"] for r in rows} == {"***"} and {r["id_number_pid"] for r in rows} == {"***"}
    assert {r["address_masked"] for r in rows} == {"***"} and {r["birth_date"] for r in rows} == {None}
    assert {r["name_masked"] for r in full} != {"***"} and {r["birth_date"] for r in full} != {None}
    assert sorted(r["district_code"] for r in rows) == sorted(r["district_code"] for r in full)  # grade 1: real
    assert gid > 0


def test_grant_column_list_omits_the_other_columns(lake) -> None:
    analyst = user(lake, "columns_analyst", "jtj")
    grant(lake, analyst, columns=["district_code", "name"], max_grade=2)
    rows = query(lake, user(lake, "columns_analyst", "jtj"), "SELECT * FROM silver.hukou_population LIMIT 5")
    cols = set(rows[0])
    assert {"district_code", "name_masked"} <= cols
    assert not {"id_number_pid", "id_number_masked", "gender", "birth_date", "address_masked"} & cols
    assert {r["name_masked"] for r in rows} != {"***"}  # grade 2 within the grant
    with pytest.raises(Exception, match="id_number_pid"):
        query(lake, user(lake, "columns_analyst", "jtj"), "SELECT id_number_pid FROM silver.hukou_population")


def test_expired_grant_is_refused(lake) -> None:
    analyst = user(lake, "expired_analyst", "swj")
    gid = grant(lake, analyst, days=-1)
    reloaded = user(lake, "expired_analyst", "swj")
    assert reloaded.grants == ()
    with pytest.raises(AccessDenied, match="需持有有效授权"):
        query(lake, reloaded, "SELECT count(*) FROM silver.hukou_population")
    stale = Grant(gid, "hukou_population", "silver", None, 4, None, "测试", datetime.now(timezone.utc) - timedelta(seconds=1))
    holding = Principal(reloaded.name, reloaded.node, "analyst", "password", reloaded.user_id, grants=(stale,))
    with pytest.raises(AccessDenied, match="需持有有效授权"):  # the policy checks expiry itself too
        query(lake, holding, "SELECT count(*) FROM silver.hukou_population")


def test_owner_node_steward_sees_everything_other_stewards_do_not(lake) -> None:
    gaj = user(lake, "gaj_steward", "gaj", "steward")
    rows = query(lake, gaj, "SELECT name_masked, id_number_pid FROM silver.hukou_population")
    assert rows and "***" not in {r["name_masked"] for r in rows} and None not in {r["id_number_pid"] for r in rows}
    assert query(lake, gaj, "SELECT count(*) AS n FROM quarantine.hukou_population")[0]["n"] >= 0
    meta_nodes = {r["node"] for r in query(lake, gaj, "SELECT DISTINCT node FROM meta.ingest_batches")}
    assert meta_nodes == {"gaj"}  # a steward's meta rows are their node's
    other = user(lake, "lsj_steward", "lsj", "steward")
    with pytest.raises(AccessDenied, match="silver.hukou_population"):
        query(lake, other, "SELECT count(*) FROM silver.hukou_population")
    assert query(lake, other, "SELECT count(*) AS n FROM silver.migrant_population")[0]["n"] > 0


def test_audit_rows_carry_the_principal_tables_and_grants(lake) -> None:
    analyst = user(lake, "audited_analyst", "zsj")
    gid = grant(lake, analyst, max_grade=2)
    analyst = user(lake, "audited_analyst", "zsj")
    query(lake, analyst, "SELECT count(*) FROM silver.hukou_population h JOIN gold.population p ON p.person_pid = h.id_number_pid")
    with pytest.raises(AccessDenied):
        query(lake, analyst, "SELECT count(*) FROM silver.migrant_population WHERE name_masked = '张三'")
    denied, ok = audit.rows(lake.settings, user="audited_analyst", action="sql", limit=2)
    assert (ok["outcome"], ok["user_name"], ok["node"], ok["auth"]) == ("ok", "audited_analyst", "zsj", "password")
    assert ok["tables"] == ["gold.population", "silver.hukou_population"] and ok["grant_ids"] == [gid] and ok["rows"] == 1
    assert denied["outcome"] == "denied" and denied["tables"] == ["silver.migrant_population"]
    assert "张三" not in (denied["detail"] or "") and denied["digest"]
    assert audit.verify(lake.settings).ok


def test_export_under_a_district_principal_holds_only_their_district(lake, tmp_path: Path) -> None:
    tianhe = user(lake, "tianhe_exporter", DISTRICT)
    target = tmp_path / "tianhe.duckdb"
    counts = export_duckdb(lake.lake, str(target), tianhe, registry=lake.registry)
    assert set(counts) == {"gold"} and counts["gold"] > 0
    con = duckdb.connect(str(target), read_only=True)
    try:
        assert con.execute("SELECT DISTINCT district_code FROM gold.population").fetchall() == [(DISTRICT,)]
        schemas = {r[0] for r in con.execute("SELECT schema_name FROM duckdb_schemas()").fetchall()}
        assert not {"silver", "bronze", "meta", "quarantine"} & schemas
    finally:
        con.close()
    whole = tmp_path / "owner.duckdb"
    export_duckdb(lake.lake, str(whole), owner(lake).narrowed("analyst"), registry=lake.registry)
    con = duckdb.connect(str(whole), read_only=True)
    try:
        assert con.execute("SELECT count(DISTINCT district_code) FROM gold.population").fetchone()[0] > 1
    finally:
        con.close()
    last = audit.rows(lake.settings, user="tianhe_exporter", action="sql", limit=1)[0]
    assert last["outcome"] == "ok" and "gold.population" in last["tables"] and last["detail"] == "EXPORT DUCKDB ?"


def test_open_objections_mark_their_records_in_silver_and_gold_views(lake) -> None:
    from govlake.control.objections import file_objection

    tianhe = user(lake, "tianhe_objector", DISTRICT)
    (pid,) = query(lake, tianhe, "SELECT person_pid FROM gold.population ORDER BY person_pid LIMIT 1")[0].values()
    file_objection(lake.settings, lake.registry, tianhe, "gold.population", pid, "gender", "性别登记有误")
    marked = query(lake, tianhe, "SELECT person_pid, _objection FROM gold.population WHERE _objection IS NOT NULL")
    assert marked == [{"person_pid": pid, "_objection": "有异议"}]

    gaj = user(lake, "gaj_objector", "gaj", "steward")
    (ref,) = query(lake, gaj, "SELECT id_number_pid FROM silver.hukou_population ORDER BY 1 LIMIT 1")[0].values()
    file_objection(lake.settings, lake.registry, gaj, "silver.hukou_population", ref, "name", "姓名有误")
    graded = user(lake, "marker_analyst", "wjw")
    grant(lake, graded, max_grade=1)  # the key column comes back masked, the marker still shows
    rows = query(lake, user(lake, "marker_analyst", "wjw"),
                 "SELECT id_number_pid, _objection FROM silver.hukou_population WHERE _objection IS NOT NULL")
    assert rows == [{"id_number_pid": "***", "_objection": "有异议"}]
