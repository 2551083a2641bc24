"""What the Airflow tasks call: thin, Airflow-free callables over the plan (``govlake.jobs.plan``), plus the
plan's layout for the current environment.

Two halves, both free of Airflow imports:

* **Layout** (:func:`layout`), read when the DAG files are parsed: the plan's :class:`~govlake.jobs.plan.Layout`
  (nodes and their datasets, datasets, gold models, what each step reads and writes) with this
  environment's lake and landing. It reads only the YAML registries, contracts, suites, models and
  indicators (about 0.5 s, cached per process); it never imports pyarrow, DuckDB or delta-rs and never
  touches the lake.
* **Callables**, run inside tasks: ``discover`` and ``ingest_delivery`` (the ingest stage, whose items are
  found in the landing at run time), ``ready_steps`` (what a branch follows) and ``run_step`` (any other
  step of the plan). Each opens its own Context (and engine), and returns a small JSON-serializable dict for
  XCom. Each is idempotent: run twice, the second run finds nothing to do (files already ingested or
  already refused, no pending batches, gold sources unchanged, runs already scored, inputs unchanged) and
  changes no table.

Where things are: :class:`govlake.project.Settings`, the one deployment definition the CLI and the dashboard
use too, built by :func:`settings` with ``deployed=True``: the DAG processor, the scheduler and the workers
each have their own working directory, so no location may depend on it. ``GOVLAKE_LAKE`` must be set
(absolute path or ``s3://bucket/prefix``); ``GOVLAKE_LANDING`` defaults to ``landing/`` next to a local lake,
``GOVLAKE_REPORTS`` to ``<lake>/_reports/quality`` (both must be set for an object-store lake);
``GOVLAKE_ENGINE`` is ``duckdb`` or ``spark``. Every variable: the table in govlake/project.py.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timezone
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from govlake.jobs.plan import Layout, TableRef, build_layout
from govlake.jobs.plan import table_uri as plan_table_uri
from govlake.status import IngestStatus
from govlake.tables import INGEST_BATCHES

log = logging.getLogger(__name__)

IGNORED_PREFIXES = (".", "~$", "_")
IGNORED_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload", ".filepart")
"""Landing entries that are not deliveries: hidden files, Office lock files, uploads still in progress."""


# -- where things are -------------------------------------------------------------------------------------

def settings(lake: str | None = None):  # -> govlake.project.Settings
    """The deployment's Settings as an Airflow process sees them: ``Settings.from_env(deployed=True)``, so a
    location is never resolved against the process' working directory (it differs between the DAG processor,
    the scheduler and the workers); a missing or relative one is refused with the variable to set."""
    from govlake.project import Settings

    return Settings.from_env(lake, deployed=True)


def project_dir() -> Path:
    return settings().project_dir


def lake_root() -> str:
    return settings().lake_root


def landing_dir(lake: str | None = None) -> Path:
    return settings(lake).landing_dir


def reports_dir(lake: str | None = None) -> Path:
    return settings(lake).reports_dir


def engine_kind() -> str:
    return settings().engine_kind


def table_uri(layer: str, name: str, lake: str | None = None) -> str:
    """The URI naming a Delta table (its Airflow Asset and OpenLineage dataset): ``Lake.uri`` as a URI,
    i.e. ``file:///abs/lake/<layer>/<name>`` for a local lake, ``s3://bucket/prefix/<layer>/<name>``."""
    return plan_table_uri(lake or lake_root(), TableRef(layer, name))


# -- the layout the DAGs are generated from ------------------------------------------------------------------

class _Declarations:
    """The parts of a Context the suites need (settings, registry, contracts), without opening the lake:
    ``govlake.context`` imports delta-rs and pyarrow, which the DAG processor should not pay for."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    @cached_property
    def registry(self):
        from govlake.registry import load_registry

        return load_registry(self.settings.catalog_dir, self.settings.schemas_dir)

    def contract(self, dataset: str):
        return self.registry.contracts[dataset]


def layout() -> Layout:
    """The plan's layout for the current environment (cached per project, lake and landing)."""
    where = settings()
    return _layout(str(where.project_dir), where.lake_root, str(where.landing_dir))


@lru_cache(maxsize=4)
def _layout(project: str, lake: str, landing: str) -> Layout:
    from govlake.project import Settings

    return build_layout(_Declarations(Settings(lake_root=lake, project_dir=Path(project))), lake, landing)


# -- run-time helpers ------------------------------------------------------------------------------------------

def context(lake: str | None = None):  # -> govlake.context.Context
    from govlake.context import Context

    return Context.from_env(lake, deployed=True)


def run_id_for(dag_id: str, airflow_run_id: str, when: datetime) -> str:
    """The govlake run id of an Airflow DAG run: sortable like ``pipeline.new_run_id`` (UTC time of the run,
    then a short suffix) and deterministic, so a retried task records under the same run id."""
    suffix = hashlib.sha256(f"{dag_id}|{airflow_run_id}".encode()).hexdigest()[:6]
    return when.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + suffix


def _first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


# -- ingestion ------------------------------------------------------------------------------------------------

def _is_delivery(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(IGNORED_PREFIXES) and not p.name.lower().endswith(IGNORED_SUFFIXES)


def discover(node: str, landing: str | Path | None = None) -> list[dict]:
    """The deliveries waiting in ``<landing>/<node>/<dataset>/``: one entry per dataset folder, files sorted
    by name (the naming convention ``<dataset>__<node>__<YYYYMMDD>__<seq>`` sorts them in delivery order).

    Every regular file counts, whatever its extension: a format govlake cannot read is refused by ingest
    with a reason, rather than ignored forever. A folder naming a dataset the node is not registered to
    deliver becomes an entry with a ``problem`` (its files are reported as refused, nothing is written).
    Reads the landing directory only, never the lake."""
    base = Path(landing or landing_dir()) / node
    if not base.is_dir():
        log.info("landing folder %s does not exist: nothing delivered by %s", base, node)
        return []
    lay = layout()
    allowed = set(lay.deliveries.get(node, ()))
    out = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(IGNORED_PREFIXES)):
        files = sorted(str(p.resolve()) for p in folder.iterdir() if _is_delivery(p))
        if not files:
            continue
        entry: dict[str, Any] = {"node": node, "dataset": folder.name, "files": files}
        if folder.name not in lay.dataset_titles:
            entry["problem"] = f"未登记的数据集：{folder.name}（目录 {folder}）"
        elif folder.name not in allowed:
            entry["problem"] = f"节点 {node} 不是数据集 {folder.name} 的报送节点（目录 {folder}）"
        out.append(entry)
    stray = sorted(p.name for p in base.iterdir() if _is_delivery(p))
    if stray:
        log.warning("files directly under %s are not in a <dataset>/ folder and are not ingested: %s", base, stray)
    return out


def _known_refusals(ctx: Any, node: str, dataset: str) -> dict[str, set[str]]:
    """source_file -> content hashes already refused for this node and dataset (from meta.ingest_batches)."""
    from govlake.engine.base import sql_str

    if not ctx.lake.exists(*INGEST_BATCHES.ref):
        return {}
    t = ctx.lake.read(*INGEST_BATCHES.ref, columns=["source_file", "content_hash"],
                      filter_sql=f"status = 'refused' AND node = {sql_str(node)} AND dataset = {sql_str(dataset)}")
    out: dict[str, set[str]] = {}
    for r in t.to_pylist():
        out.setdefault(r["source_file"], set()).add(r["content_hash"])
    return out


def ingest_delivery(node: str, dataset: str, files: list[str], problem: str | None = None,
                    retry_refused: bool = False, lake: str | None = None) -> dict:
    """Ingest one node's files for one dataset, in order; each file lands whole in bronze or is refused.

    Returns ``{node, dataset, files, rows, ingested: [{file, batch_id, rows, drift}], duplicates,
    refused: [{file, message, known}]}``. Idempotent: identical content is recognised (``duplicates``), and
    content already refused for this node and dataset is reported (``known: true``) without being tried and
    logged again, unless ``retry_refused`` (e.g. after a contract gained a header alias)."""
    out: dict[str, Any] = {"node": node, "dataset": dataset, "files": len(files), "rows": 0, "ingested": [],
                           "duplicates": 0, "refused": []}
    if problem:
        out["refused"] = [{"file": f, "message": problem, "known": False} for f in files]
        for f in files:
            log.warning("refused %s: %s", f, problem)
        return out
    from govlake.jobs.ingest.bronze import content_hash, ingest

    ctx = context(lake)
    known = {} if retry_refused else _known_refusals(ctx, node, dataset)
    todo = []
    for f in files:
        if f in known and content_hash(Path(f)) in known[f]:
            out["refused"].append({"file": f, "known": True,
                                   "message": "此前已拒收同一内容（见 meta.ingest_batches），未重复导入"})
        else:
            todo.append(Path(f))
    for r in ingest(ctx, todo, node, dataset) if todo else []:
        if r.status == IngestStatus.INGESTED:
            out["ingested"].append({"file": r.file, "batch_id": r.batch_id, "rows": r.rows, "drift": r.message})
            out["rows"] += r.rows
            log.info("ingested %s: %d rows into bronze.%s (batch %s)", r.file, r.rows, dataset, r.batch_id)
        elif r.status == IngestStatus.DUPLICATE:
            out["duplicates"] += 1
            log.info("already ingested %s: %s", r.file, _first_line(r.message))
        else:
            out["refused"].append({"file": r.file, "message": r.message, "known": False})
            log.warning("refused %s: %s", r.file, _first_line(r.message))
    return out


def summarize_deliveries(results: list[dict]) -> dict:
    """One node's ingestion in figures, with every refused file (newly refused ones separately)."""
    results = [r for r in results if r]
    refused = [dict(f, dataset=r["dataset"]) for r in results for f in r["refused"]]
    return {
        "datasets": sorted(r["dataset"] for r in results),
        "files": sum(r["files"] for r in results),
        "ingested": sum(len(r["ingested"]) for r in results),
        "duplicates": sum(r["duplicates"] for r in results),
        "rows": sum(r["rows"] for r in results),
        "refused": [f for f in refused if not f["known"]],
        "known_refused": [f for f in refused if f["known"]],
    }


# -- silver, gold, governance: the plan's steps------------------------------------------------------------------------

def _step(stage: str, item: str | None) -> Any:  # -> plan.Step
    from govlake.jobs import plan

    task_id = stage if item is None else f"{stage}__{item}"
    for s in plan.steps(layout()):
        if s.task_id == task_id:
            return s
    raise KeyError(f"no step {task_id} in the plan")


def ready_steps(stage: str, lake: str | None = None) -> list[str]:
    """Task ids of the steps of a fan-out ``stage`` that have something to do (``plan.not_ready``): what the
    DAG's branch follows. Reads the lake, writes nothing."""
    from govlake.jobs import plan

    ctx = context(lake)
    probe = plan.StepRun(ctx, None, run_id="")
    return [s.task_id for s in plan.steps(layout()) if s.stage.name == stage and not plan.not_ready(s, probe)]


def run_step(stage: str, item: str | None, run_id: str, lake: str | None = None) -> dict:
    """Run one step of the plan (``plan.execute``) in its own Context and engine, under the lake's writer lock
    when it writes tables; returns its JSON summary (XCom) with its findings and any failure.

    Checked first without lock or engine: a step with nothing to do (no pending batches, runs already scored,
    inputs unchanged) returns ``status: nothing`` and touches nothing."""
    from contextlib import ExitStack

    from govlake.jobs import plan

    step = _step(stage, item)
    ctx = context(lake)
    report = ctx.settings.reports_dir
    reason = plan.not_ready(step, plan.StepRun(ctx, None, run_id, report_dir=report))
    if reason:
        log.info("%s: nothing to do (%s)", step.task_id, reason)
        return {"stage": stage, "item": item, "run_id": run_id, "status": str(plan.StepStatus.NOTHING),
                "reason": reason, "findings": [], "failure": None}
    with ExitStack() as stack:
        if step.writes:
            stack.enter_context(ctx.lake.writer_lock(f"airflow {step.task_id}"))
        engine = stack.enter_context(ctx.engine(engine_kind())) if step.stage.engine else None
        outcome = plan.execute(step, plan.StepRun(ctx, engine, run_id, report_dir=report))
    for f in outcome.findings:
        log.warning("%s: %s", step.task_id, f)
    log.info("%s: %s %s", step.task_id, outcome.status, outcome.reason)
    return outcome.summary | {"findings": outcome.findings, "failure": outcome.failure}


__all__ = [
    "Layout", "context", "discover", "engine_kind", "ingest_delivery", "lake_root", "landing_dir", "layout",
    "project_dir", "ready_steps", "reports_dir", "run_id_for", "run_step", "settings", "summarize_deliveries", "table_uri",
]
