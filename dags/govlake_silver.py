"""Silver: conform pending bronze batches into silver and quarantine, one task per dataset (from the contracts).

Scheduled by any ``bronze.<dataset>`` Asset event. One DAG run is one govlake run: every dataset conformed
in it records under the same run id, which is what ``gold.quality_scores`` scores as a unit (so node and
district scores cover all the datasets that arrived together). Datasets whose rules check references into
other datasets (e.g. credit records → market entities) run after those.
"""

from __future__ import annotations

import os
import sys

if os.path.dirname(os.path.abspath(__file__)) not in sys.path:  # bundle parsing adds the DAG folder, a plain DagBag not
    sys.path.append(os.path.dirname(os.path.abspath(__file__)))

from airflow.sdk import DAG, AssetAny, TriggerRule, get_current_context, task

from govlake_common import DOC_FOOTER, POOL, START, asset, default_args, fail, findings_check, govlake_run_id, \
    jobs, layout, govlake_job, nothing_written


@task.branch(task_id="plan")
@govlake_job
def plan() -> list[str]:
    """Follow only the datasets with pending batches: the others are skipped by the scheduler, without
    starting a task process or taking a slot of the lake pool. Reads two meta tables, writes nothing."""
    pending = jobs.pending_datasets()
    return [f"conform__{d}" for d in pending]


@task(pool=POOL, trigger_rule=TriggerRule.NONE_FAILED, multiple_outputs=False)
@govlake_job
def conform(dataset: str) -> dict:
    """Conform this dataset's pending batches; skipped (no Asset event) when none is pending."""
    result = jobs.conform_dataset(dataset, govlake_run_id())
    if result["status"] == "nothing":
        nothing_written(result, f"no pending bronze batches of {dataset}")
    if not result["balanced"]:
        fail(f"books of {dataset} do not balance: bronze {result['bronze_rows']} != silver {result['silver_rows']} "
             f"+ quarantined {result['quarantined']} + superseded {result['superseded']} (batches {result['batches']})")
    return result


@task(task_id="check", trigger_rule=TriggerRule.ALL_DONE, multiple_outputs=False)
def check(task_ids: list[str]) -> dict:
    """Held batches as warnings (strict mode: they fail the run)."""
    results = get_current_context()["ti"].xcom_pull(task_ids=task_ids) or []
    held = [f"{r['dataset']} batch {b}: govlake quality release {r['dataset']} {b} --reason ..."
            for r in results if r for b in r.get("held", [])]
    conformed = [r for r in results if r and r.get("status") == "conformed"]
    out = findings_check(held, "held batches")
    return out | {"conformed": sorted(r["dataset"] for r in conformed),
                  "batches": sum(len(r["batches"]) for r in conformed),
                  "silver_rows": sum(r["silver_rows"] for r in conformed),
                  "quarantined": sum(r["quarantined"] for r in conformed)}


lay = layout()
with DAG(
    dag_id="govlake_silver",
    description="原始层 → 标准层与隔离区：类型化、标准化、校验、假名化（每个数据集一个任务）",
    schedule=AssetAny(*(asset("bronze", d) for d in lay.datasets)),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=default_args("silver"),
    tags=["govlake", "silver", "quality"],
    doc_md=f"""
### 标准层 · conform bronze → silver / quarantine

Runs when any `bronze.<dataset>` Asset is updated. **plan** picks the datasets with pending batches
(`meta.ingest_batches` − `meta.conform_batches`); the others are skipped. One task per dataset
({len(lay.datasets)} contracts): `conform__<dataset>` types, standardizes, validates (the dataset's GX suite, in one engine pass) and
pseudonymizes the pending batches, MERGEs valid rows into `silver.<dataset>` and sets failing rows aside in
`quarantine.<dataset>`; the books per batch go to `meta.conform_batches`
(`bronze_rows = silver_rows + quarantined + superseded`, or the task fails without retry).

A task with nothing pending is *skipped* and emits no Asset event. A batch held by a fatal rule is a
finding, not a failure: **check** lists it with the release command (fails only with `GOVLAKE_STRICT=1`).
All datasets of one run share one govlake run id; `govlake_governance` scores each run.
{DOC_FOOTER}""",
) as dag:
    conformed = {
        d: conform.override(task_id=f"conform__{d}", inlets=[asset("bronze", d)],
                            outlets=[asset("silver", d), asset("quarantine", d)],
                            doc_md=f"{lay.dataset_titles[d]}：bronze.{d} → silver.{d} / quarantine.{d}")(d)
        for d in lay.datasets
    }
    plan() >> list(conformed.values())
    for d, deps in lay.conform_after.items():
        for dep in deps:
            conformed[dep] >> conformed[d]
    list(conformed.values()) >> check([t.operator.task_id for t in conformed.values()])
