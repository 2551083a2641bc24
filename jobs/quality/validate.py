"""Validation: batch audits before publishing, and the validation record kept per run.

Row rules (``error`` / ``warn``) are evaluated inside the conform pass (jobs/conform/rules.py). What cannot be
decided row by row is decided here, per delivered batch, before anything of it is published to silver:

- ``fatal`` row rules with a ``mostly`` threshold, counted per batch in one aggregate query;
- batch rules from the ingest log: row count against the node's earlier deliveries (volume anomaly) and
  the delivery date against the declared 更新周期 (timeliness).

A batch failing a ``fatal`` rule is *held*: its rows go to quarantine with the rule's name (nothing is
lost, the books still balance) and silver is untouched until the node re-delivers or a steward releases
the batch (``govlake quality release``). Every outcome, for every batch and rule, is appended to
``meta.validation_results`` with the run id; the steward report and GX Data Docs are built from it.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from govlake.context import Context
from govlake.contracts import CYCLE_DAYS
from govlake.engine.base import sql_str
from govlake.jobs.quality.suites import Check, Suite
from govlake.status import BatchStatus
from govlake.tables import BATCH_WAIVERS, CONFORM_BATCHES, INGEST_BATCHES, VALIDATION_RESULTS


@dataclass
class Outcome:
    """One rule on one batch (silver) or on the whole table (gold)."""

    check: Check
    element_count: int
    unexpected_count: int
    observed: str = ""
    evaluated: bool = True

    @property
    def success(self) -> bool:
        if not self.evaluated or self.element_count == 0:
            return True
        if self.check.mostly >= 1.0:
            return self.unexpected_count == 0
        return (self.element_count - self.unexpected_count) / self.element_count >= self.check.mostly

    @property
    def unexpected_percent(self) -> float:
        return 100.0 * self.unexpected_count / self.element_count if self.element_count else 0.0

    def row(self, **context: Any) -> dict[str, Any]:
        c = self.check
        return {**context, "rule": c.rule, "expectation_type": c.type, "column": c.column, "severity": c.severity,
                "element_count": self.element_count, "unexpected_count": self.unexpected_count,
                "unexpected_percent": round(self.unexpected_percent, 4), "mostly": c.mostly, "success": self.success,
                "observed": self.observed, "description": c.description}


@dataclass
class BatchAudit:
    """What the audit found for the pending batches of one dataset."""

    outcomes: dict[str, list[Outcome]] = field(default_factory=dict)

    def held(self) -> dict[str, list[str]]:
        """Batch -> the fatal rules it failed."""
        out: dict[str, list[str]] = {}
        for b, outs in self.outcomes.items():
            failed = [o.check.rule for o in outs if o.check.severity == "fatal" and not o.success]
            if failed:
                out[b] = failed
        return out


def batch_log(ctx: Context, dataset: str) -> list[dict]:
    """The dataset's accepted deliveries, oldest first (the history volume and timeliness are judged on)."""
    if not ctx.lake.exists(*INGEST_BATCHES.ref):
        return []
    t = ctx.lake.read(*INGEST_BATCHES.ref, filter_sql=f"status = 'ingested' AND dataset = {sql_str(dataset)}")
    rows = t.to_pylist()
    for r in rows:
        r.setdefault("delivered_on", None)
        if r["delivered_on"] is None:
            r["delivered_on"] = r["ingested_at"].date()
    return sorted(rows, key=lambda r: (r["delivered_on"], r["ingested_at"]))


def waived(ctx: Context, dataset: str) -> set[str]:
    if not ctx.lake.exists(*BATCH_WAIVERS.ref):
        return set()
    t = ctx.lake.read(*BATCH_WAIVERS.ref, columns=["batch_id"], filter_sql=f"dataset = {sql_str(dataset)}")
    return set(t.column("batch_id").to_pylist())


def batch_rule_outcomes(ctx: Context, suite: Suite, dataset: str, batches: list[str]) -> BatchAudit:
    """The batch rules (volume, timeliness), judged from the ingest log before any row is read."""
    audit = BatchAudit({b: [] for b in batches})
    log = batch_log(ctx, dataset)
    by_id = {r["batch_id"]: r for r in log}
    cycle = ctx.contract(dataset).catalog.update_cycle
    for b in batches:
        entry = by_id.get(b)
        if entry is None:
            continue
        history = [r for r in log if r["node"] == entry["node"] and r["batch_id"] != b
                   and (r["delivered_on"], r["ingested_at"]) < (entry["delivered_on"], entry["ingested_at"])]
        for c in suite.batch_checks():
            audit.outcomes[b].append(_batch_rule(c, entry, history, cycle))
    return audit


def add_fatal_row_outcomes(audit: BatchAudit, suite: Suite, rows: dict[str, int], counts: dict[tuple[str, str], int]) -> None:
    """Fatal row rules per batch, from the counts gathered while the conform pass streamed."""
    for c in suite.row_checks(("fatal",)):
        name = suite.twin_of(c) or c.rule
        for b in audit.outcomes:
            audit.outcomes[b].append(Outcome(c, rows.get(b, 0), counts.get((b, name), 0)))


def excuse(audit: BatchAudit, excused: set[str]) -> None:
    """A steward released these batches: their fatal findings are recorded but do not hold them."""
    for b in excused & set(audit.outcomes):
        audit.outcomes[b] = [Outcome(o.check, o.element_count, o.unexpected_count,
                                     (o.observed + "；" if o.observed else "") + "已由数据管理员放行", evaluated=False)
                             if o.check.severity == "fatal" and not o.success else o for o in audit.outcomes[b]]


def _batch_rule(c: Check, entry: dict, history: list[dict], cycle: str) -> Outcome:
    if c.type == "expect_table_row_count_to_be_consistent_with_history":
        window = int(c.kwargs.get("window", 5))
        past = [r["rows"] for r in history[-window:] if r["rows"]]
        if len(past) < int(c.kwargs.get("min_history", 2)):
            return Outcome(c, 1, 0, f"历史交付不足 {c.kwargs.get('min_history', 2)} 次，未比较", evaluated=False)
        median = statistics.median(past)
        ratio = entry["rows"] / median if median else 1.0
        bad = ratio < float(c.kwargs.get("min_ratio", 0.1)) or ratio > float(c.kwargs.get("max_ratio", 10))
        return Outcome(c, 1, int(bad), f"本批 {entry['rows']} 行，前 {len(past)} 次交付中位数 {median:g} 行，比值 {ratio:.2f}")
    if c.type == "expect_delivery_to_be_timely":
        days = CYCLE_DAYS.get(cycle, 30)
        allowed = days * float(c.kwargs.get("max_cycles", 2)) + float(c.kwargs.get("grace_days", 1))
        if not history:
            return Outcome(c, 1, 0, "首次交付")
        gap = (entry["delivered_on"] - history[-1]["delivered_on"]).days
        return Outcome(c, 1, int(gap > allowed), f"距上次交付 {gap} 天，更新周期{cycle}，允许 {allowed:g} 天")
    raise ValueError(c.type)


def freshness(delivered_on: date | None, cycle: str, as_of: date, max_cycles: float = 2) -> tuple[str, int | None]:
    """正常 / 滞后 / 无数据, and the age in days, of a node+dataset's last delivery on ``as_of``."""
    if delivered_on is None:
        return "无数据", None
    age = (as_of - delivered_on).days
    return ("正常" if age <= CYCLE_DAYS.get(cycle, 30) * max_cycles + 1 else "滞后"), age


def write_results(ctx: Context, rows: list[dict], replace: str | None) -> None:
    """Append outcomes; ``replace`` (a predicate) drops an earlier attempt's rows for the same batches."""
    if not rows:
        return
    import pyarrow as pa  # here, not at the top: the gold step's "nothing to do" path imports this module

    now = datetime.now(timezone.utc)
    t = pa.Table.from_pylist([{**r, "validated_at": r.get("validated_at") or now} for r in rows], schema=VALIDATION_RESULTS.schema)
    if replace and ctx.lake.exists(*VALIDATION_RESULTS.ref):
        ctx.lake.delete(*VALIDATION_RESULTS.ref, replace)
    ctx.lake.append(*VALIDATION_RESULTS.ref, t)


def release(ctx: Context, dataset: str, batch_id: str, reason: str, by: str) -> dict:
    """A steward publishes a held batch anyway: the waiver is recorded and the batch re-runs on the next
    ``govlake run`` with its fatal rules recorded but not holding it. Row rules still apply."""
    with ctx.lake.writer_lock(f"govlake quality release {dataset}"):
        return _release(ctx, dataset, batch_id, reason, by)


def _release(ctx: Context, dataset: str, batch_id: str, reason: str, by: str) -> dict:
    import pyarrow as pa

    from govlake.errors import RegistryError

    acc = ctx.lake.read(*CONFORM_BATCHES.ref, filter_sql=f"dataset = {sql_str(dataset)} AND batch_id = {sql_str(batch_id)}") \
        if ctx.lake.exists(*CONFORM_BATCHES.ref) else pa.table({})
    rows = acc.to_pylist()
    if not rows or not any(r.get("status") == BatchStatus.HELD for r in rows):
        raise RegistryError(f"批次 {batch_id} 不是 {dataset} 中被暂停发布的批次",
                            hint="用 govlake quality report 或 govlake sql --role steward 查看 meta.conform_batches 中 status='held' 的批次")
    now = datetime.now(timezone.utc)
    ctx.lake.append(*BATCH_WAIVERS.ref, BATCH_WAIVERS.from_rows([{
        "dataset": dataset, "batch_id": batch_id, "rules": json.dumps(json.loads(rows[-1].get("held_by") or "[]"), ensure_ascii=False),
        "reason": reason, "released_by": by, "released_at": now}]))
    ctx.lake.delete(*CONFORM_BATCHES.ref, f"dataset = {sql_str(dataset)} AND batch_id = {sql_str(batch_id)}")
    return {"dataset": dataset, "batch_id": batch_id, "released_at": now}
