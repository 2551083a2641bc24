"""Shared wiring of the govlake DAG files (not a DAG file itself: listed in .airflowignore).

Cheap at import: Airflow's SDK, ``govlake.jobs.plan`` and ``govlake.jobs.tasks`` (whose layout reads only
YAML). The jobs, the engine and the lake are imported inside the tasks, at run time.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Callable

import pendulum
from airflow.sdk import Asset, get_current_context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from govlake.jobs import plan
from govlake.jobs import tasks as jobs

log = logging.getLogger("govlake.dags")

POOL = "govlake_lake"
"""Every task that writes to the lake runs in this pool. One slot (what ``make airflow`` and
infra/airflow/pools.json create) means one writer at a time: the meta tables are shared by all jobs, and
an S3 lake without a locking provider must not see two concurrent commits to one table."""

START = pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai")

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "govlake",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=15),
    "execution_timeout": timedelta(hours=6),
}

FLOW_PRIORITY = {plan.Flow.INGEST: 4, plan.Flow.SILVER: 3, plan.Flow.GOLD: 2, plan.Flow.GOVERNANCE: 1}


def default_args(flow: str) -> dict[str, Any]:
    """DEFAULT_ARGS with the stage's priority in the lake pool: upstream first. While files are being
    ingested, the Asset events they emit collect behind the active silver run and are conformed together
    by the next one, so a burst of deliveries (e.g. every node's hourly run) costs a few silver, gold and
    governance runs rather than one per file."""
    return DEFAULT_ARGS | {"priority_weight": FLOW_PRIORITY[plan.Flow(flow)], "weight_rule": "absolute"}


def layout() -> jobs.Layout:
    return jobs.layout()


def asset_of(ref: plan.TableRef) -> Asset:
    """The Asset of one Delta table, named by the table's URI (``file:///…/lake/<layer>/<name>``)."""
    return Asset(uri=layout().uri(ref), group=f"govlake.{ref.layer}", extra={"table": str(ref)})


def strict() -> bool:
    """``GOVLAKE_STRICT=1``: refused files, held batches and blocked gold builds fail the DAG run (so its
    failure alerting fires) instead of being reported as warnings."""
    return jobs.settings().strict


def govlake_run_id() -> str:
    """This DAG run's govlake run id (deterministic: a retried task records under the same one)."""
    ctx = get_current_context()
    dr = ctx["dag_run"]
    when = getattr(dr, "run_after", None) or dr.start_date or pendulum.now("UTC")
    return jobs.run_id_for(dr.dag_id, dr.run_id, when)


def nothing_written(result: dict, reason: str) -> None:
    """Finish a task that changed no table: its result stays in XCom, but it ends *skipped*, so that no
    Asset event is emitted and no downstream DAG is triggered for nothing."""
    get_current_context()["ti"].xcom_push(key="return_value", value=result)
    raise AirflowSkipException(reason)


def fail(message: str) -> None:
    """Fail without retrying: a retry would not change the outcome."""
    raise AirflowFailException(message)


def govlake_job(fn: Callable) -> Callable:
    """Wraps every task that runs a govlake job.

    - govlake's own errors (a declaration that does not load, a governance table failing its suite) come
      out the same on every attempt: fail at once instead of retrying. Anything else (the lake or a node
      unreachable, out of memory) is retried.
    - The job's OpenLineage runs (conform.<dataset>, gold.<table>, …) become children of this task's run:
      the task's parent and root ids are handed over the way OpenLineage integrations hand them to child
      jobs (``OPENLINEAGE_PARENT_ID``, ``OPENLINEAGE_ROOT_PARENT_ID``: ``namespace/job/run_id``).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from govlake.errors import GovlakeError

        try:
            with lineage_parent():
                return fn(*args, **kwargs)
        except GovlakeError as exc:
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc

    return wrapper


@contextmanager
def lineage_parent() -> Iterator[None]:
    """This task's OpenLineage ids in the environment while the job runs (nothing without the provider)."""
    try:
        from airflow.providers.openlineage.plugins.macros import lineage_parent_id, lineage_root_parent_id

        ti = get_current_context()["ti"]
        ids = {"OPENLINEAGE_PARENT_ID": lineage_parent_id(ti), "OPENLINEAGE_ROOT_PARENT_ID": lineage_root_parent_id(ti)}
    except Exception as exc:  # no provider, or called outside a task: the jobs' runs simply have no parent
        log.debug("no OpenLineage parent for the job runs: %s", exc)
        ids = {}
    before = {k: os.environ.get(k) for k in ids}
    os.environ.update(ids)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def findings_check(findings: list[str], what: str) -> dict:
    """Log data-quality findings as warnings; fail in strict mode."""
    for f in findings:
        log.warning("%s: %s", what, f)
    if findings and strict():
        fail(f"{len(findings)} {what} (GOVLAKE_STRICT is set)")
    return {"findings": findings}


DOC_FOOTER = """
**Environment** `GOVLAKE_LAKE` (lake root), `GOVLAKE_LANDING` (landing folder), `GOVLAKE_ENGINE`
(duckdb|spark), `GOVLAKE_STRICT` (findings fail the run), `GOVLAKE_PSEUDONYM_KEY` (required for object-store
lakes). Writers run in pool `govlake_lake`. See `dags/README.md`.
"""
