"""Run everything pending: walk the plan (``govlake.jobs.plan``) from conform on, in process. That is
conform every dataset with new bronze batches (referenced datasets first), rebuild affected gold, compare
the sources of shared data items (多源校核), score the runs not scored yet, rewrite the lineage graph, the
catalog, the duties-data list and the indicators when their inputs changed, and (given a report directory)
the stewards' report. The Airflow DAGs run the same steps, generated from the same plan.

This is what ``govlake run`` calls; it is idempotent (a second run finds nothing pending and no changed
sources). What it costs follows the new batches, table by table as ARCHITECTURE.md ("Gold") lists: MERGEs
rewrite only the files holding a delivered key and keyed gold models upsert the changed keys; random updates
of a base register still touch most of its files (copy-on-write: deletion vectors are not writable with
delta-rs yet). Ingestion, the plan's first stage, is ``govlake ingest``'s: it is given the files.

A run holds the lake's writer lock from start to end (see ``govlake.locking``): two runs at once would
both find the same batches pending and write them twice. It also scores every earlier run that was
interrupted before its scores were written, not only its own batches.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from graphlib import TopologicalSorter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from govlake.errors import GovlakeError
from govlake.jobs import plan

if TYPE_CHECKING:  # the jobs are imported by the steps that run them: a run with nothing to do needs few
    from govlake.context import Context
    from govlake.engine.base import Engine
    from govlake.jobs.conform.silver import ConformResult
    from govlake.jobs.gold.models import GoldResult


@dataclass
class RunReport:
    """Every step's outcome, in the order run; the views below are what ``govlake run`` prints."""

    run_id: str = ""
    steps: list[plan.StepOutcome] = field(default_factory=list)

    def results(self, *stages: str) -> list[Any]:
        return [o.result for o in self.steps if o.summary.get("stage") in stages and o.result is not None]

    @property
    def conformed(self) -> list[ConformResult]:
        return [r for r in self.results("conform") if r.batches]

    @property
    def gold(self) -> list[GoldResult]:
        return [g for rs in self.results("build", "crosscheck") for g in rs]

    @property
    def scored_runs(self) -> list[str]:  # this run and earlier runs scored by catch-up
        return [r for done in self.results("score") for r in done.scored_runs]

    @property
    def scoring_blocked(self) -> dict[str, GovlakeError]:  # run id -> why its scores were refused
        return {k: v for done in self.results("score") for k, v in done.blocked.items()}

    @property
    def balanced(self) -> bool:
        return all(r.balanced for r in self.conformed)

    @property
    def held(self) -> list[tuple[str, str]]:
        return [(r.dataset, b) for r in self.conformed for b in r.held]


def new_run_id() -> str:
    """Sortable and unique: the UTC time of the run plus a short random suffix."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def conform_order(ctx: Context, names: list[str]) -> list[str]:
    """Datasets whose existence checks reference others are conformed after them."""
    from govlake.jobs.quality.suites import reference_graph

    return list(TopologicalSorter(reference_graph(ctx, names)).static_order())


def run_pending(ctx: Context, engine: Engine, datasets: list[str] | None = None,
                on_step: Callable[[str], None] | None = None, run_id: str | None = None,
                as_of: date | None = None, report_dir: Path | None = None, full: bool = False) -> RunReport:
    """``datasets``: conform only these (the other stages run whole). ``as_of`` is the day freshness is
    judged on (default: today in Asia/Shanghai). ``report_dir``: also write the stewards' report there.
    ``full``: rebuild every gold table, 多源校核 and the governance outputs from whole sources instead of
    from what changed (silver stays: it is the record of every conformed batch)."""
    with ctx.lake.writer_lock("govlake run"):
        return _run_pending(ctx, engine, datasets, on_step, plan.StepRun(ctx, engine, run_id or new_run_id(),
                                                                         as_of, report_dir, full=full))


def _run_pending(ctx: Context, engine: Engine, datasets: list[str] | None, on_step: Callable[[str], None] | None,
                 run: plan.StepRun) -> RunReport:
    for d in datasets or []:
        ctx.contract(d)  # an unknown name fails here, with "did you mean"
    report = RunReport(run_id=run.run_id)
    lay = plan.build_layout(ctx, ctx.settings.lake_root, landing="")
    for step in plan.steps(lay, datasets=sorted(datasets) if datasets else None):
        if step.stage.run is None:  # ingestion: `govlake ingest`, given the files
            continue
        reason = plan.not_ready(step, run)
        if reason:
            report.steps.append(plan.skipped(step, run, reason))
            continue
        if on_step:
            on_step(step.title)
        outcome = plan.execute(step, run, checked=True)
        report.steps.append(outcome)
        if outcome.error is not None:
            raise outcome.error  # this run's own scores refused: the run fails (after the others were scored)
    return report
