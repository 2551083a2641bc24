"""Gold: rebuild the gold models (schemas/gold/*.yaml), one task per model, in dependency order.

Scheduled by any event of a silver Asset a model reads. A model is rebuilt only when one of its sources has a
new Delta version; otherwise its task is skipped and emits no Asset event.
"""

from __future__ import annotations

import os
import sys

if os.path.dirname(os.path.abspath(__file__)) not in sys.path:  # bundle parsing adds the DAG folder, a plain DagBag not
    sys.path.append(os.path.dirname(os.path.abspath(__file__)))

from airflow.sdk import DAG, AssetAny, TriggerRule, get_current_context, task

from govlake_common import DOC_FOOTER, POOL, START, asset, default_args, findings_check, govlake_run_id, jobs, \
    layout, govlake_job, nothing_written


@task(pool=POOL, trigger_rule=TriggerRule.NONE_FAILED, multiple_outputs=False)
@govlake_job
def build(table: str) -> dict:
    """Build one gold model: built → Asset event; unchanged / waiting / blocked → skipped."""
    result = jobs.build_gold(table, govlake_run_id())
    if result["status"] != "built":
        nothing_written(result, f"gold.{table} {result['status']}: {result['message']}")
    return result


@task(task_id="check", trigger_rule=TriggerRule.ALL_DONE, multiple_outputs=False)
def check(task_ids: list[str]) -> dict:
    """Gold builds blocked by their suite (the previous version stays published) as warnings."""
    results = [r for r in get_current_context()["ti"].xcom_pull(task_ids=task_ids) or [] if r]
    blocked = [f"gold.{r['table']}: {r['message']}" for r in results if r["status"] == "blocked"]
    return findings_check(blocked, "blocked gold builds") | {
        "built": sorted(r["table"] for r in results if r["status"] == "built")}


lay = layout()
sources = sorted({d for t in lay.gold_tables for d in lay.gold_sources[t]})
with DAG(
    dag_id="govlake_gold",
    description="标准层 → 主题层：按 schemas/gold 模型重建（来源表有新版本时）",
    schedule=AssetAny(*(asset("silver", d) for d in sources)),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=default_args("gold"),
    tags=["govlake", "gold"],
    doc_md=f"""
### 主题层 · gold models

Runs when a silver table that a gold model reads is updated ({", ".join(f"`silver.{d}`" for d in sources)}).
One task per model in `schemas/gold/`, ordered by their `gold.*` sources: `build__<table>` rebuilds
`gold.<table>` in one overwrite transaction when one of its sources has a new Delta version, after its
suite passed (write, audit, publish).

*skipped* = nothing to publish (sources unchanged, a source still empty, or the build was **blocked** by
its suite: the previous version stays; **check** lists blocked builds, failing only with `GOVLAKE_STRICT=1`).
{DOC_FOOTER}""",
) as dag:
    built = {
        t: build.override(task_id=f"build__{t}",
                          inlets=[asset("silver", d) for d in lay.gold_sources[t]] + [asset("gold", g) for g in lay.gold_after[t]],
                          outlets=[asset("gold", t)], doc_md=f"{lay.gold_titles[t]}：gold.{t}")(t)
        for t in lay.gold_tables
    }
    for t, deps in lay.gold_after.items():
        for dep in deps:
            built[dep] >> built[t]
    list(built.values()) >> check([b.operator.task_id for b in built.values()])
