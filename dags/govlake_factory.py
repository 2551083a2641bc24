"""The one DAG factory: every govlake DAG is generated here from the plan (``govlake.jobs.plan``).

Not a DAG file (listed in .airflowignore): the DAG files call :func:`flow_dag` or :func:`ingest_dags` with
their descriptions and docs. What the factory takes from the plan, and nothing else decides:

* membership: a DAG runs the steps of its flow (one task per step: ``<stage>`` or ``<stage>__<item>``);
* order: a task runs after the tasks of its DAG that write a data table it reads (:func:`plan.upstream`);
* Assets: a task's inlets and outlets are the data tables its step reads and writes (one Asset per table);
* schedule: a DAG runs on any update of a table its steps read that another flow writes (:func:`plan.triggers`).

Cheap at import, like the DAG files: Airflow's SDK and the plan's YAML layout; the jobs run inside tasks.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, AssetAlias, AssetAny, Param, TriggerRule, get_current_context, task

from govlake.jobs import plan
from govlake_common import DOC_FOOTER, POOL, START, asset_of, default_args, fail, findings_check, govlake_job, \
    govlake_run_id, jobs, layout, nothing_written


@task(multiple_outputs=False)
@govlake_job
def run_step(stage: str, item: str | None) -> dict:
    """Run one step of the plan: wrote its tables → success (Asset events); nothing to do → skipped (no
    event); an invariant or audit broken → failed without retry."""
    result = jobs.run_step(stage, item, govlake_run_id())
    if result.get("failure"):
        get_current_context()["ti"].xcom_push(key="return_value", value=result)
        fail(result["failure"])
    if result["status"] != str(plan.StepStatus.WROTE):
        nothing_written(result, result.get("reason") or "nothing to do")
    return result


@task.branch(task_id="plan")
@govlake_job
def follow_ready(stage: str) -> list[str]:
    """Follow only the steps of ``stage`` that have something to do: the others are skipped by the
    scheduler, without starting a task process or taking a slot of the lake pool. Writes nothing."""
    return jobs.ready_steps(stage)


@task(task_id="check", trigger_rule=TriggerRule.ALL_DONE, multiple_outputs=False)
def check(task_ids: list[str]) -> dict:
    """Data findings of the DAG's steps (held batches, blocked gold builds) as warnings (strict: fail)."""
    results = [r for r in get_current_context()["ti"].xcom_pull(task_ids=task_ids) or [] if r]
    found = findings_check([f for r in results for f in r.get("findings", [])], "findings")
    return found | {"wrote": sorted(f"{r['stage']}{'__' + r['item'] if r.get('item') else ''}" for r in results
                                    if r.get("status") == str(plan.StepStatus.WROTE))}


def _step_task(step: plan.Step, lay: plan.Layout) -> Any:
    title = lay.dataset_titles.get(step.item or "") or lay.gold_titles.get(step.item or "") or step.stage.title
    return run_step.override(
        task_id=step.task_id,
        pool=POOL if step.data_writes else None,
        trigger_rule=TriggerRule.ALL_DONE if step.stage.always else TriggerRule.NONE_FAILED,
        inlets=[asset_of(t) for t in step.data_reads],
        outlets=[asset_of(t) for t in step.data_writes],
        doc_md=f"{title}：{step.stage.doc}. Reads {', '.join(map(str, step.reads)) or '—'}; "
               f"writes {', '.join(map(str, step.writes)) or 'no table'}.",
    )(step.stage.name, step.item)


def flow_dag(flow: plan.Flow, *, description: str, tags: list[str], doc_md: str) -> DAG:
    """The DAG ``govlake_<flow>``: one task per step of the flow, wired and scheduled by the tables."""
    lay = layout()
    sequence = plan.steps(lay, flow)
    with DAG(
        dag_id=f"govlake_{flow}",
        description=description,
        schedule=AssetAny(*(asset_of(t) for t in plan.triggers(lay, flow))),
        start_date=START,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(str(flow)),
        tags=["govlake", str(flow), *tags],
        doc_md=doc_md + DOC_FOOTER,
    ) as dag:
        tasks = {s.task_id: _step_task(s, lay) for s in sequence}
        for task_id, ups in plan.upstream(sequence).items():
            for up in ups:
                tasks[up] >> tasks[task_id]
        branched = [st for st in dict.fromkeys(s.stage for s in sequence)  # fan-outs that can tell what is ready
                    if st.ready is not None and st.each is not plan.Fanout.ONCE]
        for st in branched:
            branch = follow_ready.override(task_id="plan" if len(branched) == 1 else f"plan__{st.name}")
            branch(st.name) >> [tasks[s.task_id] for s in sequence if s.stage is st]
        list(tasks.values()) >> check(list(tasks))
    return dag


# -- ingestion: one DAG per delivering node, the plan's delivery fan-out mapped at run time ----------------------

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
            asset_of(plan.TableRef("bronze", delivery["dataset"])),
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


def ingest_dag(node: str, *, schedule: str | None, description: str, tags: list[str], doc_md: str) -> DAG:
    """``govlake_ingest_<node>``: discover → ingest (mapped per dataset folder) → summarize. The bronze tables
    written are known only at run time: the task declares the node's AssetAlias and adds their events."""
    [stage] = [s for s in plan.STAGES if s.each is plan.Fanout.DELIVERY]
    alias = f"govlake-bronze-{node}"
    with DAG(
        dag_id=f"govlake_{stage.flow}_{node}",
        description=description,
        schedule=schedule,
        start_date=START,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(str(stage.flow)),
        tags=["govlake", str(stage.flow), *tags],
        params={"retry_refused": Param(False, type="boolean",
                                       description="Try again files whose identical content was refused before "
                                                   "(after a contract change). 重新尝试此前拒收的文件。")},
        doc_md=doc_md + DOC_FOOTER,
    ) as dag:
        results = ingest.override(task_id=stage.name, outlets=[AssetAlias(alias)]).partial(alias=alias).expand(
            delivery=discover(node))
        results >> summarize()
    return dag
