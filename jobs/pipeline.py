"""Run everything pending: conform every dataset with new bronze batches, then rebuild affected gold.

This is what ``govlake run`` and the Airflow DAGs call; it is idempotent (a second run finds nothing
pending and no changed sources) and costs in proportion to new batches, not to the lake.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from govlake.context import Context
from govlake.engine.base import Engine
from govlake.jobs.conform import ConformResult, conform
from govlake.jobs.integrate import GoldResult, integrate


@dataclass
class RunReport:
    conformed: list[ConformResult] = field(default_factory=list)
    gold: list[GoldResult] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return all(r.balanced for r in self.conformed)


def run_pending(ctx: Context, engine: Engine, datasets: list[str] | None = None,
                on_step: Callable[[str], None] | None = None) -> RunReport:
    report = RunReport()
    names = datasets or sorted(ctx.registry.contracts)
    for name in names:
        if on_step:
            on_step(f"标准化 {name}")
        r = conform(ctx, engine, name)
        if r.batches:
            report.conformed.append(r)
    if on_step:
        on_step("构建金层")
    report.gold = integrate(ctx, engine)
    return report
