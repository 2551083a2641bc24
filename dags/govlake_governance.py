"""Governance: 多源校核 (cross-source check), quality scores per run, lineage graph and the stewards' report.

Scheduled by the silver Assets. Everything here is computed from silver, quarantine and the meta tables,
none of it from the gold models: triggering on gold would only add runs with nothing new (and a silver
update that feeds no gold model, or whose model build is waiting or blocked, must still be scored).
"""

from __future__ import annotations

import os
import sys

if os.path.dirname(os.path.abspath(__file__)) not in sys.path:  # bundle parsing adds the DAG folder, a plain DagBag not
    sys.path.append(os.path.dirname(os.path.abspath(__file__)))

from airflow.sdk import DAG, AssetAny, TriggerRule, get_current_context, task

from govlake_common import DOC_FOOTER, POOL, START, asset, default_args, fail, govlake_run_id, jobs, layout, \
    govlake_job, nothing_written


@task(task_id="crosscheck", pool=POOL, multiple_outputs=False)
@govlake_job
def crosscheck() -> dict:
    """Rebuild gold.source_conflicts / gold.crosscheck_summary when a compared silver table changed."""
    result = jobs.crosscheck_sources(govlake_run_id())
    if not result["built"]:
        nothing_written(result, "cross-source check: sources unchanged")
    return result


@task(task_id="score", pool=POOL, trigger_rule=TriggerRule.NONE_FAILED, multiple_outputs=False)
@govlake_job
def score() -> dict:
    """Score every conform run not scored yet (after the cross-source check, whose conflicts count).
    Scores that fail their gold suite are not published and fail the task (no retry), after the other
    runs were scored."""
    result = jobs.score_pending()
    if result["blocked"]:
        get_current_context()["ti"].xcom_push(key="return_value", value=result)
        fail(f"quality scores of {len(result['blocked'])} run(s) failed their gold suite: {result['blocked']}")
    if not result["scored_runs"]:
        nothing_written(result, "every conform run is already scored")
    return result


@task(task_id="lineage_graph", pool=POOL, multiple_outputs=False)
@govlake_job
def lineage_graph() -> dict:
    result = jobs.lineage_graph(govlake_run_id())
    if not result["changed"]:
        nothing_written(result, "lineage declarations unchanged")
    return result


@task(task_id="steward_report", trigger_rule=TriggerRule.ALL_DONE, multiple_outputs=False)
@govlake_job
def steward_report() -> dict:
    """Rewrite the stewards' report (HTML, Excel, GX Data Docs). It only reads the lake, so it runs even when
    an earlier task failed: the stewards still see what was published."""
    return jobs.steward_report()


lay = layout()
with DAG(
    dag_id="govlake_governance",
    description="多源校核、质量评分、血缘图与数据管理员质量报告",
    schedule=AssetAny(*(asset("silver", d) for d in lay.datasets)),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=default_args("governance"),
    tags=["govlake", "governance", "quality", "gold"],
    doc_md=f"""
### 数据治理 · governance

Runs when a silver table changes (in parallel with `govlake_gold`: nothing here reads the gold models).

* **crosscheck** (多源校核): compares every pair of sources of the shared data items (`catalog/data_items.yaml`)
  → `gold.source_conflicts`, `gold.crosscheck_summary`.
* **score**: every conform run (one `govlake_silver` run, or one `govlake run`) not yet in
  `gold.quality_scores` is scored on completeness, validity, uniqueness, timeliness and consistency.
* **lineage_graph**: `gold.lineage_edges` from the declarations (a new version only when they changed).
* **steward_report**: `{jobs.reports_dir(lay.lake)}/index.html`, `质量报告.xlsx` and GX Data Docs
  (`GOVLAKE_REPORTS`).

Tasks that change no table are *skipped* (no Asset event).
{DOC_FOOTER}""",
) as dag:
    checked = crosscheck.override(inlets=[asset("silver", d) for d in lay.compared],
                                  outlets=[asset("gold", "source_conflicts"), asset("gold", "crosscheck_summary")])()
    scored = score.override(outlets=[asset("gold", "quality_scores")])()
    edges = lineage_graph.override(outlets=[asset("gold", "lineage_edges")])()
    checked >> scored >> steward_report()
