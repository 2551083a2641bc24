"""The access policy (govlake/control/policy.py): who sees which tables, rows and columns, decided in one
place from the principal, its grants and the dataset contracts (issue 13, point 2)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from govlake.control.policy import TableAccess, column_grade, refusal, resolve
from govlake.control.principal import Grant, Principal
from govlake.errors import AccessDenied

SOON = datetime.now(timezone.utc) + timedelta(days=30)


@pytest.fixture()
def lake(ctx):
    """One small real Delta table per layer, silver with a column no contract declares."""
    ctx.lake.append("gold", "population", pa.table({"district_code": ["440106", "440104", "440106"], "n": [1, 2, 3]}))
    ctx.lake.append("gold", "catalog_resources", pa.table({"dataset": ["hukou_population"]}))
    ctx.lake.append("silver", "hukou_population", pa.table({
        "id_number_pid": ["p1", "p2"], "name_masked": ["张*", "李*"], "district_code": ["440106", "440104"],
        "registered_on": pa.array([None, None], pa.date32()), "_batch_id": ["b1", "b1"], "mystery": ["x", "y"]}))
    ctx.lake.append("quarantine", "hukou_population", pa.table({"_failures": ["id_check"], "_record": ["{}"]}))
    ctx.lake.append("meta", "ingest_batches", pa.table({"batch_id": ["b1", "b2"], "node": ["gaj", "lsj"]}))
    ctx.lake.append("bronze", "hukou_population", pa.table({"公民身份号码": ["x"]}))
    return ctx


def person(name: str, node: str, role: str = "analyst", *grants: Grant, district: str | None = None) -> Principal:
    return Principal(name, node, role, "password", 1, grants=tuple(grants), district=district)


def silver_grant(**kw) -> Grant:
    base = dict(id=7, dataset="hukou_population", layer="silver", columns=None, max_grade=4, row_scope=None,
                purpose="测试", expires_at=SOON)
    return Grant(**{**base, **kw})


def test_grades_follow_the_contract_and_fail_safe(ctx) -> None:
    c = ctx.registry.contracts["hukou_population"]
    assert column_grade("id_number_pid", "silver", c) == column_grade("id_number_masked", "silver", c) == 3
    assert column_grade("name_masked", "silver", c) == 2 and column_grade("district_code", "silver", c) == 1
    assert column_grade("_batch_id", "silver", c) == 1  # the layer's bookkeeping
    assert column_grade("_record", "quarantine", c) == 3  # a record's content: the contract's highest
    assert column_grade("mystery", "silver", c) == 3  # nobody graded it: the highest (fail safe)


def test_every_user_reads_gold_only_admins_bronze(lake) -> None:
    analyst = resolve(person("a", "fgw"), lake.lake, lake.registry)
    assert set(analyst) == {("gold", "population"), ("gold", "catalog_resources")}
    assert all(a.unrestricted for a in analyst.values())
    admin = resolve(person("root", "440100", "admin"), lake.lake, lake.registry)
    assert ("bronze", "hukou_population") in admin and all(a.unrestricted for a in admin.values())
    assert len(admin) == 6


def test_district_users_are_row_scoped_where_a_district_column_exists(lake) -> None:
    access = resolve(person("t", "440106", district="440106"), lake.lake, lake.registry)
    pop = access[("gold", "population")]
    assert pop.row_filter == (("district_code",), "440106")
    assert access[("gold", "catalog_resources")].row_filter is None  # no district column: nothing to scope
    assert pop.apply(lake.lake.read("gold", "population")).column("n").to_pylist() == [1, 3]


def test_stewards_see_their_own_datasets_and_their_node_in_meta(lake) -> None:
    gaj = resolve(person("s", "gaj", "steward"), lake.lake, lake.registry)
    assert gaj[("silver", "hukou_population")].unrestricted and ("quarantine", "hukou_population") in gaj
    assert gaj[("meta", "ingest_batches")].row_filter == (("node",), "gaj")
    assert ("bronze", "hukou_population") not in gaj
    lsj = resolve(person("s2", "lsj", "steward"), lake.lake, lake.registry)
    assert ("silver", "hukou_population") not in lsj and ("meta", "ingest_batches") in lsj
    owner = resolve(Principal.lake_owner("440100").narrowed("steward"), lake.lake, lake.registry)
    assert owner[("silver", "hukou_population")].unrestricted and owner[("meta", "ingest_batches")].unrestricted


def test_a_grant_masks_above_its_grade_and_omits_unlisted_columns(lake) -> None:
    graded = resolve(person("g", "jyj", "analyst", silver_grant(max_grade=1)), lake.lake, lake.registry)
    acc = graded[("silver", "hukou_population")]
    assert acc.columns is None and acc.grant_ids == (7,) and ("quarantine", "hukou_population") not in graded
    assert acc.masked == {"id_number_pid", "name_masked", "mystery"}
    out = acc.apply(lake.lake.read("silver", "hukou_population"))
    assert out.column("name_masked").to_pylist() == ["***", "***"] and out.column("district_code").to_pylist() == ["440106", "440104"]
    listed = resolve(person("g", "jyj", "analyst", silver_grant(columns=("district_code", "name"), max_grade=2)),
                     lake.lake, lake.registry)[("silver", "hukou_population")]
    assert listed.columns == ("name_masked", "district_code", "_batch_id") and not listed.masked
    scoped = resolve(person("g", "jyj", "analyst", silver_grant(row_scope="440104")), lake.lake, lake.registry)
    assert scoped[("silver", "hukou_population")].row_filter == (("district_code",), "440104")


def test_expired_or_foreign_grants_give_nothing(lake) -> None:
    expired = silver_grant(expires_at=datetime.now(timezone.utc) - timedelta(minutes=1))
    assert ("silver", "hukou_population") not in resolve(person("e", "jyj", "analyst", expired), lake.lake, lake.registry)
    other_district = silver_grant(row_scope="440104")
    tianhe = person("t", "440106", "analyst", other_district, district="440106")
    assert ("silver", "hukou_population") not in resolve(tianhe, lake.lake, lake.registry)


def test_refusals_name_the_share_attribute_and_the_way_to_apply(lake) -> None:
    who = person("a", "fgw")
    conditional = str(refusal(who, "silver", "hukou_population", lake.registry))
    assert "有条件共享" in conditional and "我的申请" in conditional and "hukou_population" in conditional
    c = lake.registry.contracts["hukou_population"]
    closed = replace(c, catalog=replace(c.catalog, share="不予共享", share_basis="《某某条例》第十条"))
    registry = replace(lake.registry, contracts={**lake.registry.contracts, "hukou_population": closed})
    text = str(refusal(who, "silver", "hukou_population", registry))
    assert "不予共享" in text and "《某某条例》第十条" in text and "我的申请" not in text
    assert "原始层" in str(refusal(who, "bronze", "hukou_population", lake.registry))
    with pytest.raises(AccessDenied, match="未知角色：intern"):
        resolve(person("x", "fgw", "intern"), lake.lake, lake.registry)


def test_apply_keeps_shape_and_masks_by_type() -> None:
    acc = TableAccess("silver", "t", columns=("a", "b", "d"), masked=frozenset({"b", "d"}),
                      row_filter=(("district_code", "home_district_code"), "440106"))
    table = pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"], "c": [0, 0, 0], "d": pa.array([1.0, 2.0, 3.0]),
                      "district_code": ["440106", None, "440104"], "home_district_code": ["440104", "440106", None]})
    out = acc.apply(table)
    assert out.column_names == ["a", "b", "d"] and out.column("a").to_pylist() == [1, 2]  # either column matches
    assert out.column("b").to_pylist() == ["***", "***"] and out.column("d").to_pylist() == [None, None]
    assert out.schema.field("d").type == pa.float64()
