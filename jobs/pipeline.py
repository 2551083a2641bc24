"""Run everything pending: conform every dataset with new bronze batches, rebuild affected gold, compare the
sources of shared data items (多源校核) and score the run's quality.

This is what ``govlake run`` and the Airflow DAGs call; it is idempotent (a second run finds nothing
pending and no changed sources) and costs in proportion to new batches, not to the lake.

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

from govlake.context import Context
from govlake.engine.base import Engine
from govlake.errors import GovlakeError
from govlake.jobs.conform.silver import ConformResult, conform
from govlake.jobs.gold.crosscheck import crosscheck
from govlake.jobs.gold.models import GoldResult, integrate
from govlake.jobs.quality.suites import reference_graph


@dataclass
class RunReport:
    run_id: str = ""
    conformed: list[ConformResult] = field(default_factory=list)
    gold: list[GoldResult] = field(default_factory=list)
    scored_runs: list[str] = field(default_factory=list)  # this run and earlier runs scored by catch-up
    scoring_blocked: dict[str, GovlakeError] = field(default_factory=dict)  # run id -> why its scores were refused

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
    return list(TopologicalSorter(reference_graph(ctx, names)).static_order())


def run_pending(ctx: Context, engine: Engine, datasets: list[str] | None = None,
                on_step: Callable[[str], None] | None = None, run_id: str | None = None,
                as_of: date | None = None) -> RunReport:
    """``as_of`` is the day freshness is judged on (default: today in Asia/Shanghai)."""
    with ctx.lake.writer_lock("govlake run"):
        return _run_pending(ctx, engine, datasets, on_step, run_id, as_of)


def _run_pending(ctx: Context, engine: Engine, datasets: list[str] | None, on_step: Callable[[str], None] | None,
                 run_id: str | None, as_of: date | None) -> RunReport:
    from govlake.jobs.governance.catalog import build_catalog
    from govlake.jobs.governance.duties import build_duties
    from govlake.jobs.governance.indicators import build_indicators
    from govlake.jobs.governance.lineage import build_lineage_table
    from govlake.jobs.quality.scoring import score_pending_runs, unscored_runs

    report = RunReport(run_id=run_id or new_run_id())
    names = conform_order(ctx, sorted(datasets or ctx.registry.contracts))
    for name in names:
        if on_step:
            on_step(f"标准化与校验 {name}")
        r = conform(ctx, engine, name, run_id=report.run_id)
        if r.batches:
            report.conformed.append(r)
    if on_step:
        on_step("构建金层")
    report.gold = integrate(ctx, engine, run_id=report.run_id)
    if on_step:
        on_step("多源校核")
    report.gold += crosscheck(ctx, engine, run_id=report.run_id)
    if unscored_runs(ctx):
        if on_step:
            on_step("质量评分")
        scoring = score_pending_runs(ctx, engine)
        report.scored_runs, report.scoring_blocked = scoring.scored_runs, scoring.blocked
        if report.run_id in scoring.blocked:
            raise scoring.blocked[report.run_id]  # this run's own scores refused: as before, the run fails
    if on_step:
        on_step("血缘图")
    build_lineage_table(ctx, engine, report.run_id)
    if report.conformed or not ctx.lake.exists("gold", "catalog_resources"):
        if on_step:
            on_step("编制数据资源目录与职能数据清单")
        build_catalog(ctx, as_of)
        build_duties(ctx)
        if on_step:
            on_step("计算指标")
        build_indicators(ctx, engine, as_of)
    return report
