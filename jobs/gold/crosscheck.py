"""多源校核: the same person or legal entity delivered by several nodes, compared item by item.

Driven by the 一数一源 registry (catalog/data_items.yaml): for every data item and every pair of its
sources in silver, the subjects present in both are joined on their key (pseudonymized ID numbers, credit
codes) and their values compared. Personal values are compared as pseudonyms or raw inside the engine and
shown only masked. Two gold tables come out of it:

- ``gold.source_conflicts``: one row per disagreement, both values (masked), both nodes, and the
  authoritative node and value (一数一源), so stewards know which source must correct;
- ``gold.crosscheck_summary``: per item and pair of sources, subjects compared and conflicts (the
  consistency dimension of the quality scores).

Both follow the delivery (issue 14): a build after conform batches compares only the subjects those batches
delivered (the keys of their rows, on either side of a pair). The conflicts of those subjects are replaced
by their comparison now; the summary's counts move by the difference between their comparison now and at
the source versions of the last build (Delta time travel). The tables are small (one row per conflict, one
per pair), so each build rewrites them whole; what it does not do is join the sources whole. A first build, a
source new to the comparison, a commit that is not a conform batch, a change of the registry (recorded as a
fingerprint of the comparison) or ``govlake run --full`` compares everything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from itertools import combinations

from govlake.context import Context
from govlake.engine.base import Engine, sql_str
from govlake.jobs.gold.models import GoldResult, rebuild
from govlake.jobs.gold.published import last_build, new_batches
from govlake.jobs.quality.suites import gold_suite
from govlake.registry import DataItem, ItemSource
from govlake.status import GoldStatus
from govlake.tables import CROSSCHECK_SUMMARY, SILVER, SOURCE_CONFLICTS, LakeTable


def _side(ctx: Context, engine: Engine, src: ItemSource, rel: str | None = None, keys: str | None = None,
          batches: list[str] | None = None) -> str:
    """SELECT of one source: subject key, comparable value, masked display value, node. ``rel``: the relation
    (default ``silver__<dataset>``); ``keys``: only the subjects in that relation's ``k``; ``batches``: only
    the rows those conform batches delivered."""
    d = engine.dialect
    v = d.varchar()
    c = ctx.contract(src.dataset)
    f = c.field(src.field)
    rel = rel or f"silver__{src.dataset}"
    key = f"{src.key}_pid" if c.field(src.key).hidden else f"CAST({d.ident(src.key)} AS {v})"
    # Gold is read by analysts: a personal value beside the person's pseudonym (a masked surname, a gender
    # code, a birth year) would add to gold.population what it withholds. Stewards find both values in
    # silver by the pseudonym.
    compare = f"{src.field}_pid" if f.hidden else f"CAST({d.ident(src.field)} AS {v})"
    shown = "'（已脱敏）'" if f.is_pii else compare
    where = []
    if keys:
        where.append(f"{key} IN (SELECT k FROM {keys})")
    if batches is not None:
        where.append(f"_batch_id IN ({', '.join(map(sql_str, batches))})" if batches else "FALSE")
    cond = f" WHERE {' AND '.join(where)}" if where else ""
    return f"SELECT {key} AS k, {compare} AS c, {shown} AS shown, _node AS node FROM {rel}{cond}"


def _authority(item: DataItem, key: str) -> str:
    whens = " ".join(f"WHEN {key} LIKE {sql_str(p + '%')} THEN {sql_str(n)}" for p, n in item.authority_by_key_prefix)
    fallback = sql_str(item.authority or item.authority_default) if item.has_authority else "NULL"
    return f"CASE {whens} ELSE {fallback} END" if whens else fallback


def _pairs(ctx: Context, item: DataItem) -> list[tuple[ItemSource, ItemSource]]:
    present = [s for s in item.sources if ctx.lake.exists(*SILVER.ref(s.dataset))]
    return list(combinations(present, 2))


Pair = tuple[DataItem, ItemSource, ItemSource]
Scope = dict[tuple[str, str, str], tuple[str, str]]
"""(item, dataset_a, dataset_b) -> (keys relation, version suffix): the pairs a build compares again, each
restricted to the subjects in its keys relation, read from ``silver__<dataset><suffix>``."""


def pairs(ctx: Context, items: list[DataItem]) -> list[Pair]:
    return [(item, a, b) for item in items for a, b in _pairs(ctx, item)]


def _id(item: DataItem, a: ItemSource, b: ItemSource) -> tuple[str, str, str]:
    return item.item, a.dataset, b.dataset


def _sides(ctx: Context, engine: Engine, a: ItemSource, b: ItemSource, scope: tuple[str, str] | None) -> str:
    keys, suffix = scope or (None, "")
    return (f"FROM ({_side(ctx, engine, a, f'silver__{a.dataset}{suffix}', keys)}) a "
            f"JOIN ({_side(ctx, engine, b, f'silver__{b.dataset}{suffix}', keys)}) b ON a.k = b.k")


def _conflict(ctx: Context, engine: Engine, item: DataItem, a: ItemSource, b: ItemSource,
              scope: tuple[str, str] | None = None) -> str:
    auth = _authority(item, "a.k")
    return (f"SELECT {sql_str(item.item)} AS item, {sql_str(item.title)} AS item_title, {sql_str(item.subject)} AS subject, "
            f"a.k AS subject_key, {sql_str(a.dataset)} AS dataset_a, a.node AS node_a, a.shown AS value_a, "
            f"{sql_str(b.dataset)} AS dataset_b, b.node AS node_b, b.shown AS value_b, "
            f"{auth} AS authoritative_node, CASE WHEN a.node = {auth} THEN a.shown WHEN b.node = {auth} THEN b.shown END "
            f"AS authoritative_value, {sql_str(item.basis)} AS basis "
            f"{_sides(ctx, engine, a, b, scope)} WHERE a.c IS NOT NULL AND b.c IS NOT NULL AND a.c <> b.c")


def _count(ctx: Context, engine: Engine, item: DataItem, a: ItemSource, b: ItemSource,
           scope: tuple[str, str] | None = None) -> str:
    return (f"SELECT {sql_str(item.item)} AS item, {sql_str(item.title)} AS item_title, "
            f"{sql_str(a.dataset)} AS dataset_a, {sql_str(b.dataset)} AS dataset_b, "
            f"count(*) AS compared, CAST(coalesce(sum(CASE WHEN a.c <> b.c THEN 1 ELSE 0 END), 0) AS BIGINT) AS conflicts, "
            f"{sql_str(item.authority or item.authority_default or '')} AS authoritative_node "
            f"{_sides(ctx, engine, a, b, scope)} WHERE a.c IS NOT NULL AND b.c IS NOT NULL")


def _in_pair(key: tuple[str, str, str]) -> str:
    item, da, db = map(sql_str, key)
    return f"item = {item} AND dataset_a = {da} AND dataset_b = {db}"


def conflicts_sql(ctx: Context, engine: Engine, items: list[DataItem], scope: Scope | None = None,
                  published: str | None = None) -> str:
    """Every conflict; with a ``scope``, the ``published`` table's conflicts outside it plus the scope's
    pairs compared again for their subjects."""
    if scope is None:
        return " UNION ALL ".join(_conflict(ctx, engine, *p) for p in pairs(ctx, items))
    kept = " AND ".join(f"NOT ({_in_pair(k)} AND subject_key IN (SELECT k FROM {keys}))" for k, (keys, _) in scope.items())
    parts = [f"SELECT * FROM {published}" + (f" WHERE {kept}" if kept else "")]
    parts += [_conflict(ctx, engine, *p, scope[_id(*p)]) for p in pairs(ctx, items) if _id(*p) in scope]
    return " UNION ALL ".join(parts)  # positionally: the published table was written by this SQL (same fingerprint)


def summary_sql(ctx: Context, engine: Engine, items: list[DataItem], scope: Scope | None = None,
                published: str | None = None, before: Scope | None = None) -> str:
    """Per pair, subjects compared and conflicts; with a ``scope``, the ``published`` counts of its pairs
    moved by their subjects' counts now minus their counts at the last build (``before``)."""
    parts = []
    for p in pairs(ctx, items):
        k = _id(*p)
        if scope is None or k not in scope:
            parts.append(_count(ctx, engine, *p) if scope is None else
                         f"SELECT item, item_title, dataset_a, dataset_b, compared, conflicts, authoritative_node "
                         f"FROM {published} WHERE {_in_pair(k)}")
            continue
        now, then = _count(ctx, engine, *p, scope[k]), _count(ctx, engine, *p, before[k])
        was = lambda c: f"(SELECT coalesce(sum({c}), 0) FROM {published} WHERE {_in_pair(k)})"  # noqa: E731
        parts.append(f"SELECT n.item, n.item_title, n.dataset_a, n.dataset_b, "
                     f"CAST({was('compared')} - o.compared + n.compared AS BIGINT) AS compared, "
                     f"CAST({was('conflicts')} - o.conflicts + n.conflicts AS BIGINT) AS conflicts, "
                     f"n.authoritative_node FROM ({now}) n CROSS JOIN ({then}) o")
    return " UNION ALL ".join(parts)


def crosscheck(ctx: Context, engine: Engine, run_id: str | None = None, full: bool = False) -> list[GoldResult]:
    items = list(ctx.registry.data_items.values())
    sources = sorted({SILVER.qualified(s.dataset) for i in items for s in i.sources if ctx.lake.exists(*SILVER.ref(s.dataset))})
    if not pairs(ctx, items):
        return [GoldResult(SOURCE_CONFLICTS.name, GoldStatus.WAITING, message="尚无两个以上来源的数据项可比对")]
    declared = fingerprint(ctx, items)
    return [Delivered(ctx, engine, items, sources, declared, full).build(t, make, run_id)
            for t, make in ((SOURCE_CONFLICTS, conflicts_sql), (CROSSCHECK_SUMMARY, summary_sql))]


def fingerprint(ctx: Context, items: list[DataItem]) -> str:
    """What the comparison is made of: the registry's items and, per source field, whether it is compared
    as a pseudonym and shown masked. Cheap (no engine: a run with nothing new opens none)."""
    parts = [repr(i) for i in items]
    for i in items:
        for s in i.sources:
            c = ctx.contract(s.dataset)
            parts += [f"{s.dataset}.{n}:{c.field(n).hidden}:{c.field(n).is_pii}" for n in (s.key, s.field)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


class Delivered:
    """One build of a cross-check table: which pairs and subjects the new conform batches touch (a
    :data:`Scope`), the views the scoped SQL reads, then write-audit-publish (:func:`rebuild`)."""

    def __init__(self, ctx: Context, engine: Engine, items: list[DataItem], sources: list[str], declared: str,
                 full: bool) -> None:
        self.ctx, self.engine, self.items, self.sources, self.declared, self.full = ctx, engine, items, sources, declared, full
        self.views: list[str] = []

    def build(self, table: LakeTable, make: Callable[..., str], run_id: str | None) -> GoldResult:
        versions = {ref: self.ctx.lake.table(*ref.split(".", 1)).version() for ref in self.sources}
        prior = last_build(self.ctx, table.name)
        same = prior is not None and prior.get("declared") == self.declared
        if same and not self.full and prior.get("sources") == versions:
            return GoldResult(table.name, GoldStatus.UNCHANGED, message="上游未变化，跳过")
        changed = new_batches(self.ctx, table.name, prior, versions) if same and not self.full else None
        try:
            if changed is None:
                sql = lambda: make(self.ctx, self.engine, self.items)  # noqa: E731
            else:
                scope, before = self.prepare(table.name, changed, versions, prior["sources"])
                extra = {"before": before} if table is CROSSCHECK_SUMMARY else {}
                sql = lambda: make(self.ctx, self.engine, self.items, scope, PUBLISHED, **extra)  # noqa: E731
            return rebuild(self.ctx, self.engine, table.name, self.sources, sql, table.description,
                           suite=gold_suite(self.ctx, table.name), run_id=run_id, force=True,
                           meta={"declared": self.declared, "mode": "full" if changed is None else "incremental"})
        finally:
            for v in self.views:
                self.engine.drop(v)
            self.views.clear()

    def _view(self, name: str, dataset: str, version: int) -> None:
        if name not in self.views:
            self.engine.register_delta(name, *SILVER.ref(dataset), version=version)
            self.views.append(name)

    def prepare(self, table: str, changed: dict[str, list[str]], versions: dict[str, int],
                recorded: dict[str, int]) -> tuple[Scope, Scope]:
        """Per pair with new rows on a side: the subjects those rows name (``__cc_keys_<i>``); the sources at
        the recorded versions (``silver__<dataset>__before``); the published table (:data:`PUBLISHED`)."""
        e = self.engine
        scope: Scope = {}
        before: Scope = {}
        for i, (item, a, b) in enumerate(pairs(self.ctx, self.items)):
            new = {s.dataset: changed.get(SILVER.qualified(s.dataset), []) for s in (a, b)}
            if not any(new.values()):
                continue
            for s in (a, b):
                self._view(f"__cc_now__{s.dataset}", s.dataset, versions[SILVER.qualified(s.dataset)])
                self._view(f"silver__{s.dataset}__before", s.dataset, recorded[SILVER.qualified(s.dataset)])
            keys = f"__cc_keys_{i}"
            e.materialize(keys, " UNION ".join(
                f"SELECT k FROM ({_side(self.ctx, e, s, f'__cc_now__{s.dataset}', batches=new[s.dataset])}) x"
                for s in (a, b)))
            self.views.append(keys)
            scope[_id(item, a, b)] = (keys, "")
            before[_id(item, a, b)] = (keys, "__before")
        e.register_delta(PUBLISHED, "gold", table)
        self.views.append(PUBLISHED)
        return scope, before


PUBLISHED = "__cc_published"
