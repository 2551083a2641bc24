"""多源校核: the same person or legal entity delivered by several nodes, compared item by item.

Driven by the 一数一源 registry (catalog/data_items.yaml): for every data item and every pair of its
sources in silver, the subjects present in both are joined on their key (pseudonymized ID numbers, credit
codes) and their values compared. Personal values are compared as pseudonyms or raw inside the engine and
shown only masked. Two gold tables come out of it:

- ``gold.source_conflicts``: one row per disagreement, both values (masked), both nodes, and the
  authoritative node and value (一数一源), so stewards know which source must correct;
- ``gold.crosscheck_summary``: per item and pair of sources, subjects compared and conflicts (the
  consistency dimension of the quality scores).

Both are rebuilt only when a source's Delta version changes.
"""

from __future__ import annotations

from itertools import combinations

from govlake.context import Context
from govlake.engine.base import Engine, sql_str
from govlake.jobs.gold.models import GoldResult, rebuild
from govlake.jobs.quality.suites import gold_suite
from govlake.registry import DataItem, ItemSource
from govlake.status import GoldStatus
from govlake.tables import CROSSCHECK_SUMMARY, SILVER, SOURCE_CONFLICTS


def _side(ctx: Context, engine: Engine, src: ItemSource) -> str:
    """SELECT of one source: subject key, comparable value, masked display value, node."""
    d = engine.dialect
    v = d.varchar()
    c = ctx.contract(src.dataset)
    f = c.field(src.field)
    rel = f"silver__{src.dataset}"
    key = f"{src.key}_pid" if c.field(src.key).hidden else f"CAST({d.ident(src.key)} AS {v})"
    # Gold is read by analysts: a personal value beside the person's pseudonym (a masked surname, a gender
    # code, a birth year) would add to gold.population what it withholds. Stewards find both values in
    # silver by the pseudonym.
    compare = f"{src.field}_pid" if f.hidden else f"CAST({d.ident(src.field)} AS {v})"
    shown = "'（已脱敏）'" if f.is_pii else compare
    return f"SELECT {key} AS k, {compare} AS c, {shown} AS shown, _node AS node FROM {rel}"


def _authority(item: DataItem, key: str) -> str:
    whens = " ".join(f"WHEN {key} LIKE {sql_str(p + '%')} THEN {sql_str(n)}" for p, n in item.authority_by_key_prefix)
    fallback = sql_str(item.authority or item.authority_default) if item.has_authority else "NULL"
    return f"CASE {whens} ELSE {fallback} END" if whens else fallback


def _pairs(ctx: Context, item: DataItem) -> list[tuple[ItemSource, ItemSource]]:
    present = [s for s in item.sources if ctx.lake.exists(*SILVER.ref(s.dataset))]
    return list(combinations(present, 2))


def conflicts_sql(ctx: Context, engine: Engine, items: list[DataItem]) -> str:
    parts = []
    for item in items:
        for a, b in _pairs(ctx, item):
            auth = _authority(item, "a.k")
            parts.append(
                f"SELECT {sql_str(item.item)} AS item, {sql_str(item.title)} AS item_title, {sql_str(item.subject)} AS subject, "
                f"a.k AS subject_key, {sql_str(a.dataset)} AS dataset_a, a.node AS node_a, a.shown AS value_a, "
                f"{sql_str(b.dataset)} AS dataset_b, b.node AS node_b, b.shown AS value_b, "
                f"{auth} AS authoritative_node, CASE WHEN a.node = {auth} THEN a.shown WHEN b.node = {auth} THEN b.shown END "
                f"AS authoritative_value, {sql_str(item.basis)} AS basis "
                f"FROM ({_side(ctx, engine, a)}) a JOIN ({_side(ctx, engine, b)}) b ON a.k = b.k "
                f"WHERE a.c IS NOT NULL AND b.c IS NOT NULL AND a.c <> b.c"
            )
    return " UNION ALL ".join(parts)


def summary_sql(ctx: Context, engine: Engine, items: list[DataItem]) -> str:
    parts = []
    for item in items:
        for a, b in _pairs(ctx, item):
            parts.append(
                f"SELECT {sql_str(item.item)} AS item, {sql_str(item.title)} AS item_title, "
                f"{sql_str(a.dataset)} AS dataset_a, {sql_str(b.dataset)} AS dataset_b, "
                f"count(*) AS compared, CAST(coalesce(sum(CASE WHEN a.c <> b.c THEN 1 ELSE 0 END), 0) AS BIGINT) AS conflicts, "
                f"{sql_str(item.authority or item.authority_default or '')} AS authoritative_node "
                f"FROM ({_side(ctx, engine, a)}) a JOIN ({_side(ctx, engine, b)}) b ON a.k = b.k "
                f"WHERE a.c IS NOT NULL AND b.c IS NOT NULL"
            )
    return " UNION ALL ".join(parts)


def crosscheck(ctx: Context, engine: Engine, run_id: str | None = None) -> list[GoldResult]:
    items = list(ctx.registry.data_items.values())
    sources = sorted({SILVER.qualified(s.dataset) for i in items for s in i.sources if ctx.lake.exists(*SILVER.ref(s.dataset))})
    if not any(_pairs(ctx, i) for i in items):
        return [GoldResult(SOURCE_CONFLICTS.name, GoldStatus.WAITING, message="尚无两个以上来源的数据项可比对")]
    return [
        rebuild(ctx, engine, t.name, sources, build, t.description, suite=gold_suite(ctx, t.name), run_id=run_id)
        for t, build in ((SOURCE_CONFLICTS, lambda: conflicts_sql(ctx, engine, items)),
                         (CROSSCHECK_SUMMARY, lambda: summary_sql(ctx, engine, items)))
    ]
