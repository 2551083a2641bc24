"""The lineage graph: which table and column each table and column is computed from (血缘分析).

Lineage is declared, not guessed: bronze fields come from the delivered files (the contract's header
aliases), silver and quarantine columns from bronze fields (the contract: a pseudonym or a masked value of
a personal field is still derived from that field), gold columns from the ``from`` lists of the gold models,
the cross-source tables from ``catalog/data_items.yaml`` and the scores from the tables they count. The same
declarations feed the OpenLineage ``columnLineage`` facets (govlake/lineage_events.py), so the graph in
``gold.lineage_edges`` and the events can never disagree.

``govlake lineage TABLE [--upstream|--downstream] [--column COL]`` walks the graph: what a table or column
depends on, and what breaks downstream if a source or column changes.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass

import pyarrow as pa

from govlake.context import Context
from govlake.contracts import Contract
from govlake.errors import RegistryError, did_you_mean
from govlake.models import load_models

EDGES = "lineage_edges"
META_COLUMNS = ("_batch_id", "_node", "_row_number", "_ingested_at")
SCORE_SOURCES = ("meta.conform_batches", "meta.validation_results")


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
    edges: list[Edge] = []
    for col, (src, how) in silver_column_sources(c).items():
        edges.append(Edge(f"bronze.{ds}", src, f"silver.{ds}", col, f"conform.{ds}", how))
        edges.append(Edge(f"bronze.{ds}", src, f"quarantine.{ds}", col, f"conform.{ds}", how))
    for col in META_COLUMNS:
        edges.append(Edge(f"bronze.{ds}", col, f"silver.{ds}", col, f"conform.{ds}", "IDENTITY"))
    for f in c.fields:
        edges.append(Edge(f"bronze.{ds}", f.name, f"quarantine.{ds}", "_record", f"conform.{ds}", "MASKED" if f.is_pii else "IDENTITY"))
    return edges


def model_edges(ctx: Context) -> list[Edge]:
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


def governance_edges(ctx: Context) -> list[Edge]:
    from govlake.jobs.gold.crosscheck import CONFLICTS, SUMMARY
    from govlake.jobs.quality.scoring import SCORES

    edges: list[Edge] = []
    for item in ctx.registry.data_items.values():
        for s in item.sources:
            c = ctx.contract(s.dataset)
            f = c.field(s.field)
            value_cols = [f"{s.field}_masked"] if f.hidden else [s.field]
            key_col = f"{s.key}_pid" if c.field(s.key).hidden else s.key
            if c.has_pid(f):
                value_cols.append(f"{s.field}_pid")  # compared as pseudonyms
            for col in value_cols:
                for out in ("value_a", "value_b", "authoritative_value"):
                    edges.append(Edge(f"silver.{s.dataset}", col, f"gold.{CONFLICTS}", out, "crosscheck", "MASKED"))
            edges.append(Edge(f"silver.{s.dataset}", key_col, f"gold.{CONFLICTS}", "subject_key", "crosscheck", "IDENTITY"))
            edges.append(Edge(f"silver.{s.dataset}", None, f"gold.{SUMMARY}", None, "crosscheck", "AGGREGATED"))
    for ds in sorted(ctx.registry.contracts):
        for layer in ("silver", "quarantine"):
            edges.append(Edge(f"{layer}.{ds}", None, f"gold.{SCORES}", None, "quality.score", "AGGREGATED"))
    for ref in SCORE_SOURCES:
        edges.append(Edge(ref, None, f"gold.{SCORES}", None, "quality.score", "AGGREGATED"))
    edges.append(Edge(f"gold.{CONFLICTS}", None, f"gold.{SCORES}", None, "quality.score", "AGGREGATED"))
    return edges


def all_edges(ctx: Context) -> list[Edge]:
    edges: list[Edge] = []
    for name in sorted(ctx.registry.contracts):
        edges += contract_edges(ctx.contract(name))
    edges += model_edges(ctx)
    edges += governance_edges(ctx)
    return sorted(set(edges), key=lambda e: (e.target, e.target_column or "", e.source, e.source_column or ""))


EDGE_SCHEMA = pa.schema([("source", pa.string()), ("source_column", pa.string()), ("target", pa.string()),
                         ("target_column", pa.string()), ("job", pa.string()), ("transformation", pa.string())])


def build_lineage_table(ctx: Context, engine=None, run_id: str | None = None) -> dict:
    """Write gold.lineage_edges (replaced whole; it is small and fully declared), as job ``lineage.graph``,
    only when the declared edges changed; with an engine, its gold suite audits them before publishing.
    Returns ``{"edges": n, "changed": bool}``."""
    from govlake.lineage_events import DatasetRef

    out = DatasetRef("gold", EDGES)
    with ctx.lineage.run("lineage.graph", [], [out], description="由契约、金层模型与一数一源登记表生成血缘图"):
        n, changed = _write_edges(ctx, engine, run_id)
        out.rows = n if changed else 0
    return {"edges": n, "changed": changed}


def _write_edges(ctx: Context, engine, run_id: str | None) -> tuple[int, bool]:
    edges = all_edges(ctx)
    t = pa.Table.from_pylist([e.__dict__ for e in edges], schema=EDGE_SCHEMA)
    if ctx.lake.exists("gold", EDGES):
        current = ctx.lake.read("gold", EDGES)
        if current.num_rows == t.num_rows and current.sort_by([(n, "ascending") for n in EDGE_SCHEMA.names]).equals(
                t.sort_by([(n, "ascending") for n in EDGE_SCHEMA.names])):
            return t.num_rows, False  # unchanged: no new version, nothing to audit again
    if engine is not None:
        from govlake.errors import PipelineError
        from govlake.jobs.gold.models import audit_arrow

        blocking = audit_arrow(ctx, engine, EDGES, t, run_id)
        if blocking:
            raise PipelineError(f"血缘图未通过校验（{'、'.join(blocking)}）", hint="检查契约与金层模型中的字段来源声明")
    ctx.lake.overwrite("gold", EDGES, t, description="血缘关系：每个表和字段由哪些上游表和字段计算而来（表级与字段级）")
    return t.num_rows, True


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


def lineage_edges(ctx: Context) -> list[Edge]:
    """The graph from the lake if built, else straight from the declarations."""
    if ctx.lake.exists("gold", EDGES):
        return [Edge(**r) for r in ctx.lake.read("gold", EDGES).to_pylist()]
    return all_edges(ctx)
