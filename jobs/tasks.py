"""What the Airflow tasks call: thin, Airflow-free callables over the jobs, plus the DAG layout.

Two halves, both free of Airflow imports:

* **Layout** (:func:`layout`), read when the DAG files are parsed: which nodes deliver which datasets, the
  order datasets are conformed in, the gold models and their sources, and the URI of every Delta table
  (the Airflow Asset of that table). It reads only the YAML registries, contracts and suites (about 0.5 s,
  cached per process); it never imports pyarrow, DuckDB or delta-rs and never touches the lake.
* **Callables** (``discover`` … ``steward_report``), run inside tasks: each opens its own Context (and
  engine), calls one job, and returns a small JSON-serializable dict for XCom. Each is idempotent: run
  twice, the second run finds nothing to do (files already ingested or already refused, no pending
  batches, gold sources unchanged, runs already scored) and changes no table.

Where things are (the same at parse time and at run time, whatever the process's working directory):

======================  ===================================================================================
``GOVLAKE_LAKE``        lake root (local path or ``s3://bucket/prefix``); default ``<project>/lake``
``GOVLAKE_LANDING``     landing directory ``<landing>/<node>/<dataset>/<files>``; default ``landing/`` next
                        to a local lake (``<project>/landing`` for an object-store lake)
``GOVLAKE_REPORTS``     stewards' report directory; default ``<lake>/_reports/quality`` (local lake)
``GOVLAKE_ENGINE``      ``duckdb`` (default) or ``spark``
======================  ===================================================================================
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

GOVERNANCE_TABLES = ("source_conflicts", "crosscheck_summary", "quality_scores", "lineage_edges")
"""Gold tables written by the governance jobs (多源校核, quality scores, lineage graph), not by gold models."""

IGNORED_PREFIXES = (".", "~$", "_")
IGNORED_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload", ".filepart")
"""Landing entries that are not deliveries: hidden files, Office lock files, uploads still in progress."""


# -- where things are -------------------------------------------------------------------------------------

def _is_remote(root: str) -> bool:
    return "://" in root


def project_dir() -> Path:
    from govlake.project import find_project_dir

    return find_project_dir()


def lake_root() -> str:
    """``GOVLAKE_LAKE`` made absolute, else ``<project>/lake`` (never relative to the working directory,
    which differs between the DAG processor, the scheduler and the workers)."""
    root = os.environ.get("GOVLAKE_LAKE")
    if not root:
        return str(project_dir() / "lake")
    return root.rstrip("/") if _is_remote(root) else str(Path(root).expanduser().resolve())


def landing_dir(lake: str | None = None) -> Path:
    env = os.environ.get("GOVLAKE_LANDING")
    if env:
        return Path(env).expanduser().resolve()
    lake = lake or lake_root()
    return project_dir() / "landing" if _is_remote(lake) else Path(lake).parent / "landing"


def reports_dir(lake: str | None = None) -> Path:
    env = os.environ.get("GOVLAKE_REPORTS")
    if env:
        return Path(env).expanduser().resolve()
    lake = lake or lake_root()
    return project_dir() / "reports" / "quality" if _is_remote(lake) else Path(lake) / "_reports" / "quality"


def engine_kind() -> str:
    return os.environ.get("GOVLAKE_ENGINE", "duckdb")


def table_uri(layer: str, name: str, lake: str | None = None) -> str:
    """The URI naming a Delta table (its Airflow Asset and OpenLineage dataset): ``Lake.uri`` as a URI,
    i.e. ``file:///abs/lake/<layer>/<name>`` for a local lake, ``s3://bucket/prefix/<layer>/<name>``."""
    root = (lake or lake_root()).rstrip("/")
    if _is_remote(root):
        return f"{root}/{layer}/{name}"
    return Path(root, layer, name).as_uri()


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


@dataclass(frozen=True)
class Layout:
    lake: str
    landing: str
    node_titles: dict[str, str]
    node_kinds: dict[str, str]  # center | district | department
    deliveries: dict[str, tuple[str, ...]]  # node -> datasets it delivers (nodes delivering nothing left out)
    dataset_titles: dict[str, str]
    conform_after: dict[str, tuple[str, ...]]  # dataset -> datasets conformed first (referential checks)
    gold_titles: dict[str, str]
    gold_after: dict[str, tuple[str, ...]]  # gold table -> gold tables built first
    gold_sources: dict[str, tuple[str, ...]]  # gold table -> silver datasets it reads
    compared: tuple[str, ...]  # datasets the cross-source check (多源校核) compares

    @property
    def datasets(self) -> list[str]:
        """Every dataset, in an order that conforms referenced datasets first."""
        from graphlib import TopologicalSorter

        return list(TopologicalSorter({d: self.conform_after[d] for d in sorted(self.dataset_titles)}).static_order())

    @property
    def gold_tables(self) -> list[str]:
        from graphlib import TopologicalSorter

        return list(TopologicalSorter({t: self.gold_after[t] for t in sorted(self.gold_titles)}).static_order())

    def uri(self, layer: str, name: str) -> str:
        return table_uri(layer, name, self.lake)


def layout() -> Layout:
    """The DAG layout for the current environment (cached per project, lake and landing)."""
    return _layout(str(project_dir()), lake_root(), str(landing_dir()))


@lru_cache(maxsize=4)
def _layout(project: str, lake: str, landing: str) -> Layout:
    from govlake.models import load_models
    from govlake.project import Settings
    from govlake.jobs.quality.suites import reference_graph

    settings = Settings(lake_root=lake, project_dir=Path(project))
    decl = _Declarations(settings)
    reg = decl.registry
    deliveries = {code: tuple(sorted(c.dataset for c in reg.datasets_of(code))) for code in reg.nodes}
    # the graph govlake.jobs.pipeline.conform_order sorts (that module imports the engine side)
    after = {d: tuple(refs) for d, refs in reference_graph(decl, sorted(reg.contracts)).items()}
    models = load_models(settings.schemas_dir)
    return Layout(
        lake=lake,
        landing=landing,
        node_titles={code: n.name for code, n in reg.nodes.items()},
        node_kinds={code: n.kind for code, n in reg.nodes.items()},
        deliveries={code: ds for code, ds in deliveries.items() if ds},
        dataset_titles={d: c.title for d, c in sorted(reg.contracts.items())},
        conform_after=after,
        gold_titles={t: m.title for t, m in sorted(models.items())},
        gold_after={t: tuple(sorted(s.split(".", 1)[1] for s in m.sources if s.startswith("gold.")))
                    for t, m in models.items()},
        gold_sources={t: tuple(sorted(s.split(".", 1)[1] for s in m.sources if s.startswith("silver.")))
                      for t, m in models.items()},
        compared=tuple(sorted({s.dataset for i in reg.data_items.values() for s in i.sources})),
    )


# -- run-time helpers ------------------------------------------------------------------------------------------

def context(lake: str | None = None):  # -> govlake.context.Context
    from govlake.context import Context

    return Context.from_env(lake or lake_root())


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
    from govlake.jobs.ingest.bronze import BATCHES

    if not ctx.lake.exists("meta", BATCHES):
        return {}
    t = ctx.lake.read("meta", BATCHES, columns=["source_file", "content_hash"],
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
        if r.status == "ingested":
            out["ingested"].append({"file": r.file, "batch_id": r.batch_id, "rows": r.rows, "drift": r.message})
            out["rows"] += r.rows
            log.info("ingested %s: %d rows into bronze.%s (batch %s)", r.file, r.rows, dataset, r.batch_id)
        elif r.status == "duplicate":
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


# -- silver, gold, governance -------------------------------------------------------------------------------

def pending_datasets(lake: str | None = None) -> list[str]:
    """Datasets with ingested batches not conformed yet (``conform.pending_batches`` for all datasets at once:
    one read of meta.ingest_batches and meta.conform_batches)."""
    from govlake.jobs.conform.silver import ACCOUNTING
    from govlake.jobs.ingest.bronze import BATCHES

    ctx = context(lake)
    if not ctx.lake.exists("meta", BATCHES):
        return []
    ingested = {(r["dataset"], r["batch_id"]) for r in ctx.lake.read(
        "meta", BATCHES, columns=["dataset", "batch_id"], filter_sql="status = 'ingested'").to_pylist()}
    done = set()
    if ctx.lake.exists("meta", ACCOUNTING):
        done = {(r["dataset"], r["batch_id"]) for r in ctx.lake.read("meta", ACCOUNTING, columns=["dataset", "batch_id"]).to_pylist()}
    return sorted({d for d, _ in ingested - done})


def conform_dataset(dataset: str, run_id: str, lake: str | None = None) -> dict:
    """Conform the pending bronze batches of one dataset into silver / quarantine (``status: nothing`` when
    none is pending; then no table is touched). ``balanced`` is the books' check per run."""
    from govlake.jobs.conform.silver import conform, pending_batches

    ctx = context(lake)
    if not pending_batches(ctx, dataset):
        return {"dataset": dataset, "run_id": run_id, "status": "nothing", "batches": []}
    with ctx.lake.writer_lock(f"airflow conform {dataset}"), ctx.engine(engine_kind()) as engine:
        r = conform(ctx, engine, dataset, run_id=run_id)  # re-reads what is pending, under the lock
    out = {"dataset": dataset, "run_id": run_id, "status": "conformed" if r.batches else "nothing",
           "batches": list(r.batches), "bronze_rows": r.bronze_rows, "silver_rows": r.silver_rows,
           "quarantined": r.quarantined, "superseded": r.superseded, "warned": r.warned, "resolved": r.resolved,
           "held": list(r.held), "balanced": r.balanced}
    log.info("conformed %s: %s", dataset, {k: v for k, v in out.items() if k not in ("batches",)})
    for b in r.held:
        log.warning("batch %s of %s held by a fatal rule (release: govlake quality release %s %s --reason ...)",
                    b, dataset, dataset, b)
    return out


def _gold_dict(r: Any) -> dict:
    return {"table": r.table, "status": r.status, "rows": r.rows, "message": r.message}


def build_gold(table: str, run_id: str, lake: str | None = None) -> dict:
    """Rebuild one gold model if a source has a new Delta version: status built | unchanged | waiting | blocked."""
    from govlake.jobs.gold.models import integrate

    ctx = context(lake)
    with ctx.lake.writer_lock(f"airflow gold {table}"), ctx.engine(engine_kind()) as engine:
        [r] = integrate(ctx, engine, tables=[table], run_id=run_id)
    out = _gold_dict(r) | {"run_id": run_id}
    (log.warning if r.status == "blocked" else log.info)("gold.%s: %s %s", table, r.status, r.message)
    return out


def crosscheck_sources(run_id: str, lake: str | None = None) -> dict:
    """多源校核: rebuild gold.source_conflicts and gold.crosscheck_summary when a compared silver table changed."""
    from govlake.jobs.gold.crosscheck import crosscheck

    ctx = context(lake)
    with ctx.lake.writer_lock("airflow crosscheck"), ctx.engine(engine_kind()) as engine:
        results = crosscheck(ctx, engine, run_id=run_id)
    for r in results:
        (log.warning if r.status == "blocked" else log.info)("gold.%s: %s %s", r.table, r.status, r.message)
    return {"run_id": run_id, "tables": [_gold_dict(r) for r in results],
            "built": [r.table for r in results if r.status == "built"]}


def unscored_runs(ctx: Any) -> dict[str, list[str]]:
    """Conform runs (run id -> batch ids) with no rows in gold.quality_scores (``scoring.unscored_runs``)."""
    from govlake.jobs.quality.scoring import unscored_runs as _unscored

    return _unscored(ctx)


def score_pending(lake: str | None = None) -> dict:
    """Score every conform run not scored yet (``scoring.score_pending_runs``, which ``govlake run`` calls
    too), under the lake's writer lock. Scores after the cross-source check, whose conflicts count against
    consistency. A run whose scores fail their gold suite is reported in ``blocked`` (and tried again next
    time) without keeping the other runs from being scored."""
    from govlake.jobs.quality.scoring import score_pending_runs

    ctx = context(lake)
    out: dict[str, Any] = {"scored_runs": [], "rows": 0, "blocked": {}}
    if not unscored_runs(ctx):
        return out
    with ctx.lake.writer_lock("airflow score_pending"), ctx.engine(engine_kind()) as engine:
        done = score_pending_runs(ctx, engine)
    return {"scored_runs": done.scored_runs, "rows": done.rows, "blocked": {k: str(v) for k, v in done.blocked.items()}}


def lineage_graph(run_id: str, lake: str | None = None) -> dict:
    """Rewrite gold.lineage_edges from the declarations, audited by its gold suite, only when they changed
    (an unchanged graph writes nothing, not even a validation record)."""
    from govlake.jobs.governance.lineage import build_lineage_table

    ctx = context(lake)
    with ctx.lake.writer_lock("airflow lineage"), ctx.engine(engine_kind()) as engine:
        out = build_lineage_table(ctx, engine, run_id)
    return out | ({"run_id": run_id} if out["changed"] else {})


def steward_report(out: str | Path | None = None, data_docs: bool = True, lake: str | None = None) -> dict:
    """The stewards' quality report (HTML, Excel, GX Data Docs), rewritten in place."""
    from govlake.jobs.quality.report import build_report

    ctx = context(lake)
    target = Path(out) if out else reports_dir(ctx.settings.lake_root)
    target.mkdir(parents=True, exist_ok=True)
    res = build_report(ctx, target, data_docs=data_docs)
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in res.items()}


__all__ = [
    "GOVERNANCE_TABLES", "Layout", "build_gold", "conform_dataset", "context", "crosscheck_sources", "discover",
    "engine_kind", "ingest_delivery", "lake_root", "landing_dir", "layout", "lineage_graph", "pending_datasets", "reports_dir",
    "run_id_for", "score_pending", "steward_report", "summarize_deliveries", "table_uri", "unscored_runs",
]
