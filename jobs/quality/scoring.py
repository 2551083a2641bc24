"""Quality scores per run on the standard dimensions, per node × dataset, dataset, node and district.

Measured on the rows delivered in the run's batches (so each run's score is about what arrived in it, and
the history in ``gold.quality_scores`` shows the trend):

- completeness (完整性): share of filled cells over the contract's fields, in silver and quarantine rows;
- validity (有效性): share of delivered rows that passed every ``error`` rule (1 − (quarantined + disputed) /
  delivered). GB/T 36344's accuracy (准确性) has no column of its own: each open 数据异议 on a dataset (an
  official says a value is wrong; govlake.control.objections) counts as one more failed record here, spread
  over the run's batches of that dataset, until the source node corrects or rejects it;
- uniqueness (唯一性): 1 − repeats of a business key inside one delivery / delivered (a later delivery
  updating a key is not a defect);
- timeliness (及时性): share of deliveries on time against the declared 更新周期 (rule ``batch.timeliness``);
- consistency (一致性): 1 − (rows with a ``warn`` finding + subjects in a 多源校核 conflict) / delivered.

The score is the weighted mean of the dimensions that apply (weights in ``WEIGHTS``), on a 0–100 scale.
Districts are scored from the rows whose district field names them (validity, completeness, consistency)
and from the deliveries of their own district node (timeliness, uniqueness).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from govlake.context import Context
from govlake.engine.base import Engine, sql_str
from govlake.errors import GovlakeError, PipelineError
from govlake.jobs.gold.models import audit_arrow
from govlake.jobs.quality.validate import batch_log
from govlake.tables import CONFORM_BATCHES, QUALITY_SCORES, SCORE_DIMENSIONS, SOURCE_CONFLICTS, VALIDATION_RESULTS

if TYPE_CHECKING:  # imported where used: the score step's "nothing to do" check (unscored_runs) needs no pyarrow
    import pyarrow as pa

log = logging.getLogger(__name__)

DIMENSIONS = SCORE_DIMENSIONS  # the score columns of gold.quality_scores (govlake/tables.py)
DIMENSION_TITLES = {"completeness": "完整性", "validity": "有效性", "uniqueness": "唯一性", "timeliness": "及时性",
                    "consistency": "一致性"}
WEIGHTS = {"completeness": 0.2, "validity": 0.3, "uniqueness": 0.15, "timeliness": 0.15, "consistency": 0.2}
SCOPES = {"node_dataset": "节点 × 数据集", "dataset": "数据集", "node": "节点", "district": "区"}


@dataclass
class Tally:
    """Counts that add up across batches and scopes."""

    rows: int = 0
    quarantined: int = 0
    superseded: int = 0
    warned: int = 0
    conflicts: int = 0
    disputed: int = 0  # open objections (数据异议) against the dataset, as failed records
    cells: int = 0
    filled: int = 0
    deliveries: int = 0
    on_time: int = 0
    batches: set = field(default_factory=set)

    def add(self, other: "Tally") -> None:
        for k in ("rows", "quarantined", "superseded", "warned", "conflicts", "disputed", "cells", "filled", "deliveries",
                  "on_time"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.batches |= other.batches

    def dimensions(self) -> dict[str, float | None]:
        r = self.rows
        return {
            "completeness": self.filled / self.cells if self.cells else None,
            "validity": max(0.0, 1 - (self.quarantined + self.disputed) / r) if r else None,
            "uniqueness": 1 - self.superseded / r if r else None,
            "timeliness": self.on_time / self.deliveries if self.deliveries else None,
            "consistency": max(0.0, 1 - (self.warned + self.conflicts) / r) if r else None,
        }


def weighted_score(dims: dict[str, float | None]) -> float | None:
    present = {k: v for k, v in dims.items() if v is not None}
    if not present:
        return None
    total = sum(WEIGHTS[k] for k in present)
    return round(100 * sum(WEIGHTS[k] * v for k, v in present.items()) / total, 2)


def _district_field(ctx: Context, dataset: str) -> str | None:
    for f in ctx.contract(dataset).fields:
        if f.check == "gz_district" or "district_code" in f.standardize:
            return f.name
    return None


def _row_tallies(ctx: Context, engine: Engine, dataset: str, batches: list[str]) -> dict[tuple[str, str | None], Tally]:
    """(batch, district) -> rows seen in silver and quarantine, with filled cells and warnings."""
    c = ctx.contract(dataset)
    dfield = _district_field(ctx, dataset)
    cols = [f"{f.name}_masked" if f.hidden else f.name for f in c.fields]
    filled = " + ".join(f"CASE WHEN {engine.dialect.ident(x)} IS NULL THEN 0 ELSE 1 END" for x in cols)
    district = engine.dialect.ident(dfield) if dfield else "NULL"
    in_b = f"_batch_id IN ({', '.join(map(sql_str, batches))})"
    out: dict[tuple[str, str | None], Tally] = defaultdict(Tally)
    for layer in ("silver", "quarantine"):
        if not engine.register_delta(f"score_{layer}", layer, dataset):
            continue
        warned = f"CASE WHEN {engine.dialect.array_len('_warnings')} > 0 THEN 1 ELSE 0 END" if layer == "silver" else "0"
        t = engine.fetch(
            f"SELECT _batch_id AS b, CAST({district} AS {engine.dialect.varchar()}) AS d, count(*) AS n, "
            f"CAST(sum({filled}) AS BIGINT) AS filled, CAST(sum({warned}) AS BIGINT) AS warned "
            f"FROM score_{layer} WHERE {in_b} GROUP BY 1, 2"
        )
        engine.drop(f"score_{layer}")
        for r in t.to_pylist():
            tally = out[(r["b"], r["d"])]
            tally.rows += r["n"]
            tally.cells += r["n"] * len(cols)
            tally.filled += r["filled"] or 0
            tally.warned += r["warned"] or 0
            if layer == "quarantine":
                tally.quarantined += r["n"]
    return out


def unscored_runs(ctx: Context) -> dict[str, list[str]]:
    """Conform runs (run id -> batch ids, from meta.conform_batches) with no rows in gold.quality_scores.

    The books are written per dataset as each is conformed, the scores once at the end of a run, so a run
    killed in between has books and no scores: it stays here until scored. A run's scores are one append
    (after deleting any earlier attempt's), so a run with score rows is scored completely."""
    runs: dict[str, list[str]] = {}
    for r in ctx.lake.rows(*CONFORM_BATCHES.ref, ["run_id", "batch_id"]):
        runs.setdefault(r["run_id"], []).append(r["batch_id"])
    if runs:
        for r in ctx.lake.rows(*QUALITY_SCORES.ref, ["run_id"], distinct=True):
            runs.pop(r["run_id"], None)
    return {k: sorted(set(v)) for k, v in sorted(runs.items())}


@dataclass
class CatchUp:
    """What :func:`score_pending_runs` did: runs scored, score rows written, runs whose scores were refused."""

    scored_runs: list[str] = field(default_factory=list)
    rows: int = 0
    blocked: dict[str, GovlakeError] = field(default_factory=dict)


def score_pending_runs(ctx: Context, engine: Engine) -> CatchUp:
    """Score every conform run not scored yet, oldest first: the current run and any earlier run that was
    interrupted before its scoring (``govlake run`` and Airflow's ``score_pending`` both call this).

    One ``score_run`` per run id, so each run's scores cover every dataset it conformed and re-scoring a run
    replaces it. A run whose scores fail their gold suite is reported in ``blocked`` (and tried again next
    time) without keeping the other runs from being scored."""
    out = CatchUp()
    for run, batches in unscored_runs(ctx).items():
        try:
            out.rows += score_run(ctx, engine, run, batches).num_rows
        except GovlakeError as exc:
            out.blocked[run] = exc
            log.warning("scores of run %s not published: %s", run, exc)
            continue
        out.scored_runs.append(run)
        log.info("scored run %s (%d batches)", run, len(batches))
    return out


def score_run(ctx: Context, engine: Engine, run_id: str, batches: list[str]) -> pa.Table:
    """Score the batches conformed in ``run_id`` and append the scores to gold.quality_scores
    (OpenLineage job ``quality.score``)."""
    import pyarrow as pa

    if not batches:
        return pa.Table.from_pylist([], schema=QUALITY_SCORES.schema)
    from govlake.lineage_events import DatasetRef

    inputs = [DatasetRef(*e.source.split(".", 1)) for e in ctx.lineage.edges if e.target == QUALITY_SCORES.qualified
              and ctx.lake.exists(*e.source.split(".", 1))]
    out = DatasetRef(*QUALITY_SCORES.ref)
    with ctx.lineage.run("quality.score", inputs, [out], engine=engine.name,
                         description="按五个质量维度为本次运行的批次评分"):
        table = _score_run(ctx, engine, run_id, batches)
        out.rows = table.num_rows
    return table


def _score_run(ctx: Context, engine: Engine, run_id: str, batches: list[str]) -> pa.Table:
    import pyarrow as pa

    from govlake.control.objections import open_counts  # the control plane (SQLAlchemy) only when scoring

    in_b = ", ".join(map(sql_str, batches))
    acc = ctx.lake.read(*CONFORM_BATCHES.ref, filter_sql=f"batch_id IN ({in_b})").to_pylist()
    timely = {}
    if ctx.lake.exists(*VALIDATION_RESULTS.ref):
        for r in ctx.lake.read(*VALIDATION_RESULTS.ref, columns=["batch_id", "rule", "success", "observed"],
                               filter_sql=f"batch_id IN ({in_b}) AND rule = 'batch.timeliness'").to_pylist():
            timely[r["batch_id"]] = bool(r["success"])

    by_ds: dict[str, list[str]] = defaultdict(list)
    for a in acc:
        by_ds[a["dataset"]].append(a["batch_id"])
    conflicts = _conflicts_by_dataset(ctx, engine, by_ds)
    disputed = open_counts(ctx.settings, by="dataset")
    node_of: dict[str, str] = {}
    by_scope: dict[tuple[str, str | None, str | None, str | None], Tally] = defaultdict(Tally)
    datasets = sorted({a["dataset"] for a in acc})
    for ds in datasets:
        node_of.update({r["batch_id"]: r["node"] for r in batch_log(ctx, ds)})
        ds_batches = [a for a in acc if a["dataset"] == ds]
        rows = _row_tallies(ctx, engine, ds, [a["batch_id"] for a in ds_batches])
        per_batch: dict[str, Tally] = {}
        for a in ds_batches:
            b = a["batch_id"]
            t = Tally(rows=a["bronze_rows"], superseded=a.get("repeats") or 0, deliveries=1, on_time=int(timely.get(b, True)),
                      batches={b})
            for (rb, _), rt in rows.items():
                if rb == b:
                    t.cells += rt.cells
                    t.filled += rt.filled
                    t.warned += rt.warned
            # The books say how many were quarantined (held batches included); rows tally may lag a merge.
            t.quarantined = a["quarantined"]
            per_batch[b] = t
        ds_total = sum((t.rows for t in per_batch.values()), 0)
        for t, n in zip(per_batch.values(), apportion(disputed.get(ds, 0), [t.rows for t in per_batch.values()])):
            t.disputed = n
        for b, t in per_batch.items():
            node = node_of.get(b)
            if ds_total:
                t.conflicts = round(conflicts.get(ds, 0) * t.rows / ds_total)
            for key in (("node_dataset", ds, node, None), ("dataset", ds, None, None), ("node", None, node, None)):
                by_scope[key].add(t)
            if node and ctx.registry.nodes.get(node) and ctx.registry.nodes[node].kind == "district":
                by_scope[("district", None, None, node)].add(Tally(superseded=t.superseded, deliveries=1, on_time=t.on_time,
                                                                   batches={b}))
        for (b, district), rt in rows.items():
            if district and district in ctx.registry.nodes:
                by_scope[("district", None, None, district)].add(
                    Tally(rows=rt.rows, quarantined=rt.quarantined, warned=rt.warned, cells=rt.cells, filled=rt.filled))
    now = datetime.now(timezone.utc)
    out = []
    for (scope, ds, node, district), t in sorted(by_scope.items(), key=lambda kv: tuple(x or "" for x in kv[0])):
        dims = t.dimensions()
        out.append({"run_id": run_id, "scored_at": now, "scope": scope, "dataset": ds, "node": node, "district": district,
                    "label": _label(ctx, ds, node, district), "rows": t.rows, "batches": len(t.batches),
                    **{k: None if v is None else round(v, 6) for k, v in dims.items()}, "score": weighted_score(dims)})
    table = pa.Table.from_pylist(out, schema=QUALITY_SCORES.schema)
    blocking = audit_arrow(ctx, engine, QUALITY_SCORES.name, table, run_id) if table.num_rows else []
    if blocking:
        raise PipelineError(f"质量评分未通过金层校验（{'、'.join(blocking)}），本次评分未发布",
                            hint="查看 meta.validation_results 中 dataset = 'quality_scores' 的记录")
    if table.num_rows:
        if ctx.lake.exists(*QUALITY_SCORES.ref):
            ctx.lake.delete(*QUALITY_SCORES.ref, f"run_id = {sql_str(run_id)}")  # a re-scored run replaces itself
        ctx.lake.append(*QUALITY_SCORES.ref, table, description=QUALITY_SCORES.description)
    return table


def apportion(total: int, weights: list[int]) -> list[int]:
    """``total`` split over ``weights`` in proportion, in whole numbers that add up to ``total`` (largest
    remainder), so one objection on a dataset delivered in two batches still counts once."""
    w = sum(weights)
    if not total or not w:
        return [0] * len(weights)
    shares = [total * x / w for x in weights]
    out = [int(s) for s in shares]
    for i in sorted(range(len(weights)), key=lambda i: shares[i] - out[i], reverse=True)[: total - sum(out)]:
        out[i] += 1
    return out


def _label(ctx: Context, ds: str | None, node: str | None, district: str | None) -> str:
    parts = []
    if node:
        parts.append(ctx.registry.nodes[node].name if node in ctx.registry.nodes else node)
    if district:
        parts.append(ctx.registry.nodes[district].name if district in ctx.registry.nodes else district)
    if ds:
        parts.append(ctx.contract(ds).title)
    return " · ".join(parts)


def _conflicts_by_dataset(ctx: Context, engine: Engine, batches_by_ds: dict[str, list[str]]) -> dict[str, int]:
    """Per dataset, subjects delivered in this run's batches that are in a cross-source conflict."""
    if not ctx.lake.exists(*SOURCE_CONFLICTS.ref):
        return {}
    keys: dict[str, str] = {}
    for item in ctx.registry.data_items.values():
        for s in item.sources:
            f = ctx.contract(s.dataset).field(s.key)
            keys[s.dataset] = f"{s.key}_pid" if f.hidden else s.key
    out: dict[str, int] = {}
    engine.register_delta("score_conflicts", *SOURCE_CONFLICTS.ref)
    for ds, batches in batches_by_ds.items():
        if ds not in keys or not engine.register_delta("score_run_rows", "silver", ds):
            continue
        v = engine.dialect.varchar()
        out[ds] = engine.scalar(
            f"SELECT count(DISTINCT c.subject_key) FROM score_conflicts c JOIN (SELECT DISTINCT CAST({keys[ds]} AS {v}) AS k "
            f"FROM score_run_rows WHERE _batch_id IN ({', '.join(map(sql_str, batches))})) r ON c.subject_key = r.k "
            f"WHERE c.dataset_a = {sql_str(ds)} OR c.dataset_b = {sql_str(ds)}") or 0
        engine.drop("score_run_rows")
    engine.drop("score_conflicts")
    return out
