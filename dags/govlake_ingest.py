"""Ingestion: one DAG per delivering node (1+11+N), generated from catalog/nodes.yaml and the contracts.

``govlake_ingest_<node>``: discover the files in ``<landing>/<node>/<dataset>/`` → ingest them, one mapped
task per dataset folder (each file lands whole in ``bronze.<dataset>`` or is refused with a reason) →
summarize. An ingest task that wrote to bronze emits an event for that ``bronze.<dataset>`` Asset through
the node's AssetAlias (the datasets are only known at run time), which schedules ``govlake_silver``.
"""

from __future__ import annotations

import os
import sys

if os.path.dirname(os.path.abspath(__file__)) not in sys.path:  # bundle parsing adds the DAG folder, a plain DagBag not
    sys.path.append(os.path.dirname(os.path.abspath(__file__)))

from airflow.sdk import DAG, AssetAlias, Param, TriggerRule, get_current_context, get_parsing_context, task

from govlake_common import DOC_FOOTER, POOL, START, asset, default_args, findings_check, jobs, layout, \
    govlake_job

_schedule = os.environ.get("GOVLAKE_INGEST_SCHEDULE", "@hourly").strip()
SCHEDULE = None if _schedule.lower() in ("", "none", "manual") else _schedule  # cron or preset; none = trigger only


@task(task_id="discover", multiple_outputs=False)
@govlake_job
def discover(node: str) -> list[dict]:
    """List the waiting deliveries (reads the landing folder only)."""
    return jobs.discover(node)


@task(task_id="ingest", pool=POOL, map_index_template="{{ govlake_delivery }}", multiple_outputs=False)
@govlake_job
def ingest(delivery: dict, alias: str) -> dict:
    """Ingest one dataset folder of this node; refused files are reported, not raised."""
    ctx = get_current_context()
    ctx["govlake_delivery"] = delivery["dataset"]  # the mapped instance's label in the UI
    result = jobs.ingest_delivery(delivery["node"], delivery["dataset"], delivery["files"],
                                  problem=delivery.get("problem"),
                                  retry_refused=bool(ctx["params"].get("retry_refused")))
    if result["ingested"]:
        ctx["outlet_events"][AssetAlias(alias)].add(
            asset("bronze", delivery["dataset"]),
            extra={"node": delivery["node"], "rows": result["rows"],
                   "batches": [f["batch_id"] for f in result["ingested"]]},
        )
    return result


@task(task_id="summarize", trigger_rule=TriggerRule.ALL_DONE, multiple_outputs=False)
def summarize() -> dict:
    """One line per refused file (WARNING); in strict mode newly refused files fail the run."""
    pulled = get_current_context()["ti"].xcom_pull(task_ids="ingest") or []
    results = [pulled] if isinstance(pulled, dict) else list(pulled)  # one mapped instance comes back bare
    summary = jobs.summarize_deliveries([r for r in results if r])
    findings_check([f"{f['dataset']}: {f['file']}: {f['message'].splitlines()[0] if f['message'] else ''}"
                    for f in summary["refused"]], "refused files")
    return summary


def build(node: str, datasets: tuple[str, ...]) -> DAG:
    lay = layout()
    title = lay.node_titles[node]
    kind = lay.node_kinds[node]
    alias = f"govlake-bronze-{node}"
    with DAG(
        dag_id=f"govlake_ingest_{node}",
        description=f"{title}（{node}）报送文件导入原始层 bronze",
        schedule=SCHEDULE,
        start_date=START,
        catchup=False,
        max_active_runs=1,
        default_args=default_args("ingest"),
        tags=["govlake", "ingest", "bronze", kind, f"node:{node}"],
        params={"retry_refused": Param(False, type="boolean",
                                       description="Try again files whose identical content was refused before "
                                                   "(after a contract change). 重新尝试此前拒收的文件。")},
        doc_md=f"""
### 导入原始层 · {title}（`{node}`）

Ingests what node `{node}` delivered to `{lay.landing}/{node}/<dataset>/` into bronze. Datasets this node
delivers: {", ".join(f"`{d}`" for d in datasets)}.

1. **discover** lists every file per dataset folder (hidden files and unfinished uploads are left alone).
2. **ingest** (mapped, one instance per dataset folder) lands each file whole in `bronze.<dataset>` or
   refuses it with a reason recorded in `meta.ingest_batches`. Re-delivered content is a no-op; content
   refused before is not tried again unless the run's param `retry_refused` is true.
3. **summarize** lists refused files as warnings (the task still succeeds unless `GOVLAKE_STRICT=1`).

A dataset with newly ingested batches emits an event for its `bronze.<dataset>` Asset (alias `{alias}`),
which schedules `govlake_silver`.
{DOC_FOOTER}""",
    ) as dag:
        results = ingest.override(outlets=[AssetAlias(alias)]).partial(alias=alias).expand(delivery=discover(node))
        results >> summarize()
    return dag


_only = get_parsing_context().dag_id  # a worker running one task needs only its own DAG
for _node, _datasets in layout().deliveries.items():
    if _only is None or _only == f"govlake_ingest_{_node}":
        globals()[f"govlake_ingest_{_node}"] = build(_node, _datasets)
