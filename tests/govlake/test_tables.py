"""The table declarations (govlake/tables.py) against the tables the real pipeline writes.

Writers take their schema from the declarations, and readers, suites, descriptions and DAG Assets their
names: a declaration that drifted from what is written would mislead every one of them.
"""

from __future__ import annotations


import pytest

from govlake.descriptions import column_descriptions, table_description
from govlake.tables import BRONZE, QUARANTINE, SILVER, TABLES, audited_gold, declared, governance_gold
from tests.conftest import build_lake


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory):
    ctx = build_lake(tmp_path_factory.mktemp("tables"), rows=300)
    from govlake.access.sql import SqlSession

    SqlSession(ctx.lake, "steward").query("SELECT count(*) FROM meta.ingest_batches")  # audited in the control plane, not the lake
    return ctx


@pytest.mark.slow
def test_every_written_table_has_the_declared_columns_and_types(lake) -> None:
    written = {f"{layer}.{name}" for layer in ("meta", "gold") for name in lake.lake.list_tables(layer)}
    # Everything but a held batch's waiver is written by one demo-sized run.
    assert set(TABLES) - written <= {"meta.batch_waivers"}, sorted(set(TABLES) - written)
    assert "meta.sql_audit" not in written  # the SQL audit lives in the control plane (issue 13)
    for qualified, table in TABLES.items():
        if qualified not in written:
            continue
        schema = lake.lake.arrow_schema(*table.ref)
        assert schema.names == table.column_names, qualified
        if all(c.type for c in table.columns):
            assert [(f.name, f.type) for f in schema] == [(f.name, f.type) for f in table.schema], qualified
        if table.layer == "gold":  # the jobs set the Delta description of what analysts read
            assert lake.lake.table(*table.ref).metadata().description == table.description, qualified


@pytest.mark.slow
def test_per_dataset_tables_carry_the_layer_columns(lake) -> None:
    name = "hukou_population"
    for layer in (BRONZE, SILVER, QUARANTINE):
        names = set(lake.lake.arrow_schema(*layer.ref(name)).names)
        assert {c.name for c in layer.columns} <= names, layer.layer
        description = lake.lake.table(*layer.ref(name)).metadata().description
        assert description == layer.description(lake.contract(name).title)


def test_declarations_are_consistent() -> None:
    assert len({t.qualified for t in TABLES.values()}) == len(TABLES)
    assert all(t.layer in ("meta", "gold") for t in TABLES.values())
    assert {t.name for t in audited_gold()} == {"source_conflicts", "crosscheck_summary", "quality_scores", "lineage_edges"}
    assert all(t in governance_gold() for t in audited_gold())
    assert declared("gold", "population") is None  # a gold model is declared in schemas/gold/, not here
    with pytest.raises(ValueError, match="key columns"):
        type(TABLES["meta.stage_builds"])("meta", "x", "", TABLES["meta.stage_builds"].columns, key=("nope",))


def test_column_descriptions_come_from_the_declarations(ctx) -> None:
    for table in TABLES.values():
        assert column_descriptions(ctx, table.layer, table.name) == table.descriptions
        assert table_description(ctx, table.layer, table.name) == table.description  # not written yet: declared
    silver = column_descriptions(ctx, "silver", "hukou_population")
    assert silver["_warnings"] == SILVER.descriptions["_warnings"]
    assert column_descriptions(ctx, "quarantine", "hukou_population")["_record"] == "报送原记录（个人信息已脱敏）"
