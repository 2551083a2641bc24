"""The declared lineage graph: which table and column each table and column is computed from (血缘分析).

Lineage is declared, not guessed: bronze fields come from the delivered files (the contract's header
aliases), silver and quarantine columns from bronze fields (the contract: a pseudonym or a masked value of
a personal field is still derived from that field), gold columns from the ``from`` lists of the gold models,
the cross-source tables from ``catalog/data_items.yaml`` and the scores from the tables they count.

This is library code, built from declarations only (contracts, gold models, registries, govlake/tables.py):
the OpenLineage ``columnLineage`` facets (govlake/lineage_events.py) and the job that writes
``gold.lineage_edges`` (jobs/governance/lineage.py) both read it, so the graph in the lake and the events
can never disagree, and the library never imports a job to learn it.

``govlake lineage TABLE [--upstream|--downstream] [--column COL]`` walks the graph: what a table or column
depends on, and what breaks downstream if a source or column changes.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from govlake.contracts import Contract
from govlake.errors import RegistryError, did_you_mean
from govlake.models import load_models
from govlake.tables import (
    BRONZE, CONFORM_BATCHES, CROSSCHECK_SUMMARY, QUALITY_SCORES, QUARANTINE, SILVER, SOURCE_CONFLICTS, VALIDATION_RESULTS,
)

if TYPE_CHECKING:
    from govlake.context import Context

# The ingest columns silver keeps as delivered (bronze -> silver IDENTITY edges).
_BRONZE_COLUMNS = {c.name for c in BRONZE.columns}
META_COLUMNS = tuple(c.name for c in SILVER.columns if c.name in _BRONZE_COLUMNS)
SCORE_SOURCES = (CONFORM_BATCHES.qualified, VALIDATION_RESULTS.qualified)


@dataclass(frozen=True)
class Edge:
    source: str  # "<layer>.<table>"
    source_column: str | None
    target: str
    target_column: str | None
    job: str
    transformation: str  # IDENTITY | TRANSFORMED | MASKED | AGGREGATED (OpenLineage transformation types)


def silver_column_sources(c: Contract) -> dict[str, tuple[str, str]]:
    """silver column -> (bronze field, transformation)."""
    out: dict[str, tuple[str, str]] = {}
    for f in c.fields:
        if f.hidden:
            if c.has_pid(f):
                out[f"{f.name}_pid"] = (f.name, "MASKED")
            out[f"{f.name}_masked"] = (f.name, "MASKED")
        else:
            out[f.name] = (f.name, "TRANSFORMED" if f.type != "string" or f.standardize else "IDENTITY")
    return out


def contract_edges(c: Contract) -> list[Edge]:
    ds = c.dataset
    bronze, silver, quarantine, job = BRONZE.qualified(ds), SILVER.qualified(ds), QUARANTINE.qualified(ds), f"conform.{ds}"
    edges: list[Edge] = []
    for col, (src, how) in silver_column_sources(c).items():
        edges.append(Edge(bronze, src, silver, col, job, how))
        edges.append(Edge(bronze, src, quarantine, col, job, how))
    for col in META_COLUMNS:
        edges.append(Edge(bronze, col, silver, col, job, "IDENTITY"))
    for f in c.fields:
        edges.append(Edge(bronze, f.name, quarantine, "_record", job, "MASKED" if f.is_pii else "IDENTITY"))
    return edges


def model_edges(ctx: "Context") -> list[Edge]:
    edges: list[Edge] = []
    for m in load_models(ctx.settings.schemas_dir).values():
        target = f"gold.{m.table}"
        covered: set[str] = set()
        for col in m.columns:
            for ref in col.sources:
                layer, table, column = ref.split(".", 2)
                edges.append(Edge(f"{layer}.{table}", column, target, col.name, f"gold.{m.table}", "TRANSFORMED"))
                covered.add(f"{layer}.{table}")
        for ref in m.sources:
            if ref not in covered:  # a source read without a declared column (e.g. only joined or counted)
                edges.append(Edge(ref, None, target, None, f"gold.{m.table}", "AGGREGATED"))
    return edges


def governance_edges(ctx: "Context") -> list[Edge]:
    conflicts, summary, scores = SOURCE_CONFLICTS.qualified, CROSSCHECK_SUMMARY.qualified, QUALITY_SCORES.qualified
    edges: list[Edge] = []
    for item in ctx.registry.data_items.values():
        for s in item.sources:
            c = ctx.contract(s.dataset)
            f = c.field(s.field)
            value_cols = [f"{s.field}_masked"] if f.hidden else [s.field]
            key_col = f"{s.key}_pid" if c.field(s.key).hidden else s.key
            if c.has_pid(f):
                value_cols.append(f"{s.field}_pid")  # compared as pseudonyms
            silver = SILVER.qualified(s.dataset)
            for col in value_cols:
                for out in ("value_a", "value_b", "authoritative_value"):
                    edges.append(Edge(silver, col, conflicts, out, "crosscheck", "MASKED"))
            edges.append(Edge(silver, key_col, conflicts, "subject_key", "crosscheck", "IDENTITY"))
            edges.append(Edge(silver, None, summary, None, "crosscheck", "AGGREGATED"))
    for ds in sorted(ctx.registry.contracts):
        for layer in (SILVER, QUARANTINE):
            edges.append(Edge(layer.qualified(ds), None, scores, None, "quality.score", "AGGREGATED"))
    for ref in SCORE_SOURCES:
        edges.append(Edge(ref, None, scores, None, "quality.score", "AGGREGATED"))
    edges.append(Edge(conflicts, None, scores, None, "quality.score", "AGGREGATED"))
    return edges


def all_edges(ctx: "Context") -> list[Edge]:
    edges: list[Edge] = []
    for name in sorted(ctx.registry.contracts):
        edges += contract_edges(ctx.contract(name))
    edges += model_edges(ctx)
    edges += governance_edges(ctx)
    return sorted(set(edges), key=lambda e: (e.target, e.target_column or "", e.source, e.source_column or ""))


# -- walking the graph -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    depth: int
    table: str
    column: str | None
    via: str  # the job
    transformation: str


def known_tables(edges: list[Edge]) -> set[str]:
    return {e.source for e in edges} | {e.target for e in edges}


def walk(edges: list[Edge], table: str, column: str | None = None, direction: str = "downstream") -> list[Step]:
    """Breadth-first over the edges from ``table`` (and ``column``), upstream or downstream.

    Column walks follow column edges and table-level edges (a table read as a whole depends on every column
    of its source); table walks follow every edge.
    """
    tables = known_tables(edges)
    if table not in tables:
        raise RegistryError(f"血缘图中没有表 {table}", hint=did_you_mean(table, tables) or "表名形如 silver.market_entities、gold.population")
    if column is not None:
        cols = {e.source_column for e in edges if e.source == table} | {e.target_column for e in edges if e.target == table}
        if column not in cols:
            raise RegistryError(f"表 {table} 没有字段 {column}", hint=did_you_mean(column, {c for c in cols if c}) or
                                f"可用字段：{', '.join(sorted(c for c in cols if c))}")
    down = direction == "downstream"
    index: dict[str, list[Edge]] = defaultdict(list)
    for e in edges:
        index[e.source if down else e.target].append(e)
    start = (table, column)
    seen = {start}
    out: list[Step] = []
    queue = deque([(start, 0)])
    while queue:
        (t, col), depth = queue.popleft()
        for e in index[t]:
            here, there = (e.source_column, e.target_column) if down else (e.target_column, e.source_column)
            if col is not None and here is not None and here != col:
                continue
            nxt = (e.target if down else e.source, there if col is not None else None)
            if nxt in seen:
                continue
            seen.add(nxt)
            out.append(Step(depth + 1, nxt[0], nxt[1], e.job, e.transformation))
            queue.append((nxt, depth + 1))
    return out
