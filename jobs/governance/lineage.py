"""The lineage graph as a gold table: ``gold.lineage_edges`` (血缘分析).

The graph itself is declared, and built by the library (govlake/lineage_graph.py) from the contracts, the
gold models and the 一数一源 registry; the OpenLineage events use the same edges. This job only writes it
to the lake, audited by its gold suite, when the declarations changed, and reads it back for the CLI, the
catalog and the dashboard.
"""

from __future__ import annotations

from govlake.context import Context
from govlake.errors import PipelineError
from govlake.jobs.gold.models import audit_arrow
from govlake.lineage_graph import Edge, all_edges
from govlake.tables import LINEAGE_EDGES


def build_lineage_table(ctx: Context, engine=None, run_id: str | None = None) -> dict:
    """Write gold.lineage_edges (replaced whole; it is small and fully declared), as job ``lineage.graph``,
    only when the declared edges changed; with an engine, its gold suite audits them before publishing.
    Returns ``{"edges": n, "changed": bool}``."""
    from govlake.lineage_events import DatasetRef

    out = DatasetRef(*LINEAGE_EDGES.ref)
    with ctx.lineage.run("lineage.graph", [], [out], description="由契约、金层模型与一数一源登记表生成血缘图"):
        n, changed = _write_edges(ctx, engine, run_id)
        out.rows = n if changed else 0
    return {"edges": n, "changed": changed}


def edges_unchanged(ctx: Context) -> bool:
    """Whether gold.lineage_edges holds exactly the declared edges: the lineage step's "nothing to do" check
    (one small read by delta-rs, no engine, no lock, no lineage event)."""
    return _stored(ctx) == _sorted([e.__dict__ for e in all_edges(ctx)])


def _sorted(rows: list[dict]) -> list[tuple]:
    """Edge rows as comparable tuples, in one order (NULL columns, i.e. table-level edges, first)."""
    cols = LINEAGE_EDGES.column_names
    return sorted((tuple(r[c] for c in cols) for r in rows), key=lambda t: [(v is not None, v or "") for v in t])


def _stored(ctx: Context) -> list[tuple] | None:
    if not ctx.lake.exists(*LINEAGE_EDGES.ref):
        return None
    return _sorted(ctx.lake.rows(*LINEAGE_EDGES.ref, LINEAGE_EDGES.column_names))


def _write_edges(ctx: Context, engine, run_id: str | None) -> tuple[int, bool]:
    rows = [e.__dict__ for e in all_edges(ctx)]
    if _stored(ctx) == _sorted(rows):
        return len(rows), False  # unchanged: no new version, nothing to audit again
    t = LINEAGE_EDGES.from_rows(rows)
    if engine is not None:
        blocking = audit_arrow(ctx, engine, LINEAGE_EDGES.name, t, run_id)
        if blocking:
            raise PipelineError(f"血缘图未通过校验（{'、'.join(blocking)}）", hint="检查契约与金层模型中的字段来源声明")
    ctx.lake.overwrite(*LINEAGE_EDGES.ref, t, description=LINEAGE_EDGES.description)
    return t.num_rows, True


def lineage_edges(ctx: Context) -> list[Edge]:
    """The graph from the lake if built, else straight from the declarations."""
    if ctx.lake.exists(*LINEAGE_EDGES.ref):
        return [Edge(**r) for r in ctx.lake.read(*LINEAGE_EDGES.ref).to_pylist()]
    return all_edges(ctx)
