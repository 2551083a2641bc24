"""The plan (govlake.jobs.plan) as ``govlake run`` walks it: a stage added as one entry is ordered by the
tables it reads, run by ``run_pending`` on a real lake, and not run again while its inputs are unchanged."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from govlake.jobs import plan
from govlake.jobs.ingest.bronze import ingest_file
from govlake.jobs.pipeline import run_pending

from ..conftest import write_csv
from ..factories import ric_number

HUKOU = ["公民身份号码", "姓名", "性别", "出生日期", "户籍地址区划", "户籍地址", "登记日期"]
EXTRA = plan.TableRef("gold", "score_digest")


def deliver(ctx, tmp_path: Path, day: str, n: int) -> None:
    rows = [[ric_number("440104", "19880808", f"{i:03d}"), f"市民{i}", "男", "1988-08-08", "440104", "广州", "2010-01-01"]
            for i in range(n)]
    ingest_file(ctx, write_csv(tmp_path / f"hukou_population__gaj__{day}__1.csv", HUKOU, rows), "gaj", "hukou_population")


@pytest.fixture()
def extra_stage(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """One more governance stage, declared as one entry: a digest of the quality scores."""
    calls: list[str] = []

    def digest(run: plan.StepRun, _: str | None) -> plan.StepOutcome:
        calls.append(run.run_id)
        n = run.ctx.lake.read("gold", "quality_scores").num_rows
        run.ctx.lake.overwrite(EXTRA.layer, EXTRA.name, pa.table({"score_rows": [n]}))
        return plan.StepOutcome(plan.StepStatus.WROTE, {"stage": "score_digest", "rows": n})

    stage = plan.Stage("score_digest", "评分摘要", plan.Flow.GOVERNANCE, plan.Fanout.ONCE,
                       reads=lambda lay, _: (plan.QUALITY_SCORES,), writes=lambda lay, _: (EXTRA,),
                       run=digest, rebuild=plan.Rebuild.INPUTS, engine=False)
    monkeypatch.setattr(plan, "STAGES", (*plan.STAGES, stage))
    return calls


def test_a_stage_is_one_entry_ordered_by_what_it_reads(ctx, extra_stage) -> None:
    lay = plan.build_layout(ctx, ctx.settings.lake_root, "")
    order = [s.task_id for s in plan.steps(lay)]
    assert order.index("score") < order.index("score_digest")
    gov = plan.steps(lay, plan.Flow.GOVERNANCE)
    assert plan.upstream(gov)["score_digest"] == ["score"]  # what its DAG task will wait for
    assert EXTRA not in plan.triggers(lay, plan.Flow.GOVERNANCE)  # written inside its own flow: no self-trigger


def test_govlake_run_walks_the_plan_and_rebuilds_on_changed_inputs(ctx, engine, tmp_path: Path, extra_stage) -> None:
    deliver(ctx, tmp_path, "20261110", 4)
    first = run_pending(ctx, engine, as_of=date(2026, 11, 11))
    assert extra_stage == [first.run_id]  # run by `govlake run`, after scoring
    assert ctx.lake.read("gold", "score_digest").to_pylist() == [{"score_rows": ctx.lake.read("gold", "quality_scores").num_rows}]
    catalog = {t: ctx.lake.table("gold", t).version() for t in ("catalog_resources", "duty_data_list", "indicator_values")}

    again = run_pending(ctx, engine, as_of=date(2026, 11, 11))  # nothing new: no governance output rewritten
    assert extra_stage == [first.run_id]
    assert {t: ctx.lake.table("gold", t).version() for t in catalog} == catalog
    reasons = {o.summary["stage"]: o.reason for o in again.steps}
    assert reasons["catalog"] == reasons["score_digest"] == "inputs unchanged since the last build"

    deliver(ctx, tmp_path, "20261111", 6)  # a new batch: new scores, so the digest and the catalog are rebuilt
    third = run_pending(ctx, engine, as_of=date(2026, 11, 12))
    assert extra_stage == [first.run_id, third.run_id]
    assert all(ctx.lake.table("gold", t).version() > v for t, v in catalog.items())


def test_the_report_is_the_last_stage_when_a_directory_is_given(ctx, engine, tmp_path: Path) -> None:
    deliver(ctx, tmp_path, "20261110", 3)
    report = run_pending(ctx, engine, as_of=date(2026, 11, 11), report_dir=tmp_path / "report")
    assert report.steps[-1].summary["stage"] == "steward_report" and report.steps[-1].changed
    assert (tmp_path / "report" / "index.html").is_file()
    quiet = run_pending(ctx, engine, as_of=date(2026, 11, 11))
    assert quiet.steps[-1].reason == "no report directory given"


def test_an_unknown_dataset_is_refused_with_a_suggestion(ctx, engine) -> None:
    from govlake.errors import GovlakeError

    with pytest.raises(GovlakeError, match="hukou_population"):
        run_pending(ctx, engine, ["hukou_populaton"])
