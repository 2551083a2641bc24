"""The one plan of the pipeline: every stage in flow order, the Delta tables it reads and writes, and the
callable that runs it.

``govlake run`` (:func:`govlake.jobs.pipeline.run_pending`) walks it in process; the Airflow DAGs are
generated from it by one factory (``dags/govlake_factory.py``). Nothing else decides which stages exist,
in which order they run, which Airflow DAG runs them, or which tables (Airflow Assets) they read and write:

* a stage belongs to one *flow*, the Airflow DAG that runs it (``ingest`` is one DAG per delivering node);
* a stage runs *once* or fans out per delivery, per dataset or per gold model;
* a step (a stage for one item) runs after every earlier step that writes a data table it reads. That one
  rule orders ``govlake run`` and wires the tasks of a DAG; a flow's DAG is scheduled by the data tables its
  steps read that another flow writes. The bookkeeping tables (``meta.*``, appended to by every job) are
  declared for the record and for :attr:`Rebuild.INPUTS`, but order nothing and are not Assets.

Adding a stage is one entry in :data:`STAGES` (see ARCHITECTURE.md, "Orchestration").

Import-light on purpose: the DAG processor imports this module at parse time, so it reads only the YAML
declarations (:func:`build_layout`) and never imports pyarrow, DuckDB or delta-rs; the runners import the
jobs when they run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from functools import cached_property
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any, TypeVar

from govlake import tables
from govlake.status import GoldStatus

ASSET_LAYERS = ("bronze", "silver", "quarantine", "gold")
"""Layers whose tables are data (Airflow Assets, ordering); ``meta`` is bookkeeping."""


@dataclass(frozen=True, order=True)
class TableRef:
    """A Delta table of the lake, ``<layer>.<name>``."""

    layer: str
    name: str

    def __str__(self) -> str:
        return f"{self.layer}.{self.name}"

    @classmethod
    def parse(cls, ref: str) -> TableRef:
        layer, name = ref.split(".", 1)
        return cls(layer, name)

    @property
    def is_data(self) -> bool:
        return self.layer in ASSET_LAYERS


# Tables of the lake the plan names, from their declarations (govlake/tables.py).
INGEST_BATCHES = TableRef(*tables.INGEST_BATCHES.ref)
CONFORM_BATCHES = TableRef(*tables.CONFORM_BATCHES.ref)
VALIDATION_RESULTS = TableRef(*tables.VALIDATION_RESULTS.ref)
STAGE_BUILDS = TableRef(*tables.STAGE_BUILDS.ref)
SOURCE_CONFLICTS = TableRef(*tables.SOURCE_CONFLICTS.ref)
CROSSCHECK_SUMMARY = TableRef(*tables.CROSSCHECK_SUMMARY.ref)
QUALITY_SCORES = TableRef(*tables.QUALITY_SCORES.ref)
LINEAGE_EDGES = TableRef(*tables.LINEAGE_EDGES.ref)
CATALOG_NODES = TableRef(*tables.CATALOG_NODES.ref)
CATALOG_RESOURCES = TableRef(*tables.CATALOG_RESOURCES.ref)
CATALOG_ITEMS = TableRef(*tables.CATALOG_ITEMS.ref)
DUTY_DATA_LIST = TableRef(*tables.DUTY_DATA_LIST.ref)
DUTY_FINDINGS = TableRef(*tables.DUTY_FINDINGS.ref)
INDICATOR_VALUES = TableRef(*tables.INDICATOR_VALUES.ref)
INDICATOR_PROGRESS = TableRef(*tables.INDICATOR_PROGRESS.ref)


class Flow(StrEnum):
    """The Airflow DAG a stage runs in (``govlake_<flow>``; ingest: ``govlake_ingest_<node>``)."""

    INGEST = "ingest"
    SILVER = "silver"
    GOLD = "gold"
    GOVERNANCE = "governance"


class Fanout(StrEnum):
    ONCE = "once"
    DELIVERY = "delivery"  # one per node x dataset folder found in the landing at run time
    DATASET = "dataset"  # one per contract, referenced datasets first
    MODEL = "model"  # one per gold model (schemas/gold), its gold sources first


class Rebuild(StrEnum):
    """When a step has something to do."""

    OWN = "own"  # the job decides (pending batches, source versions, unscored runs, changed declarations)
    INPUTS = "inputs"  # when a table it reads has a new Delta version since its last build (or an output is missing)


class StepStatus(StrEnum):
    WROTE = "wrote"  # did its work (wrote its tables): Asset events
    NOTHING = "nothing"  # nothing to do, nothing written


# -- the layout: what the declarations say, read from YAML only ------------------------------------------------

@dataclass(frozen=True)
class Layout:
    """The parts of the declarations the plan fans out over (registries, contracts, suites, gold models,
    indicators), plus where the lake and landing are. Cheap: YAML only, never the lake."""

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
    indicator_sources: tuple[str, ...] = ()  # tables the indicators are computed from (catalog/indicators.yaml)

    @cached_property
    def datasets(self) -> list[str]:
        """Every dataset, in an order that conforms referenced datasets first."""
        return list(TopologicalSorter({d: self.conform_after[d] for d in sorted(self.dataset_titles)}).static_order())

    @cached_property
    def gold_tables(self) -> list[str]:
        return list(TopologicalSorter({t: self.gold_after[t] for t in sorted(self.gold_titles)}).static_order())

    def uri(self, ref: TableRef) -> str:
        return table_uri(self.lake, ref)


def table_uri(lake: str, ref: TableRef) -> str:
    """The URI naming a Delta table (its Airflow Asset and OpenLineage dataset): ``Lake.uri`` as a URI,
    i.e. ``file:///abs/lake/<layer>/<name>`` for a local lake, ``s3://bucket/prefix/<layer>/<name>``."""
    root = lake.rstrip("/")
    if "://" in root:
        return f"{root}/{ref.layer}/{ref.name}"
    return Path(root, ref.layer, ref.name).as_uri()


def build_layout(decl: Any, lake: str, landing: str) -> Layout:
    """The layout of the declarations ``decl`` holds: a Context, or anything with ``settings``, ``registry``
    and ``contract()`` (the DAG files pass one that never opens the lake)."""
    from govlake.contracts import _load_yaml
    from govlake.jobs.quality.suites import reference_graph
    from govlake.models import load_models

    reg = decl.registry
    deliveries = {code: tuple(sorted(c.dataset for c in reg.datasets_of(code))) for code in reg.nodes}
    models = load_models(decl.settings.schemas_dir)
    ind_path = Path(decl.settings.catalog_dir) / "indicators.yaml"
    indicators = ((_load_yaml(ind_path) or {}).get("indicators") or []) if ind_path.exists() else []
    return Layout(
        lake=lake,
        landing=landing,
        node_titles={code: n.name for code, n in reg.nodes.items()},
        node_kinds={code: n.kind for code, n in reg.nodes.items()},
        deliveries={code: ds for code, ds in deliveries.items() if ds},
        dataset_titles={d: c.title for d, c in sorted(reg.contracts.items())},
        conform_after={d: tuple(refs) for d, refs in reference_graph(decl, sorted(reg.contracts)).items()},
        gold_titles={t: m.title for t, m in sorted(models.items())},
        gold_after={t: tuple(sorted(s.split(".", 1)[1] for s in m.sources if s.startswith("gold.")))
                    for t, m in models.items()},
        gold_sources={t: tuple(sorted(s.split(".", 1)[1] for s in m.sources if s.startswith("silver.")))
                      for t, m in models.items()},
        compared=tuple(sorted({s.dataset for i in reg.data_items.values() for s in i.sources})),
        indicator_sources=tuple(sorted({s for i in indicators for s in i.get("sources") or []})),
    )


# -- stages -------------------------------------------------------------------------------------------------

T = TypeVar("T")


@dataclass
class StepRun:
    """What a runner gets: the open Context and engine (``None`` for a stage declared ``engine=False``),
    the govlake run id, the day freshness is judged on and where the stewards' report goes (``None``: none).

    It also remembers, for the length of the run, what the "nothing to do" checks read (:meth:`memo`): the
    conform check of every dataset asks the same two batch logs, the rebuild checks the same build log."""

    ctx: Any
    engine: Any
    run_id: str
    as_of: date | None = None
    report_dir: Path | None = None
    full: bool = False  # rebuild every gold table and governance output from whole sources (`govlake run --full`)
    _memo: dict[str, tuple[tuple[int | None, ...], Any]] = field(default_factory=dict, repr=False, compare=False)

    def version(self, ref: TableRef) -> int | None:
        """The table's current Delta version (``None``: no such table); the lake's handles are cached and
        brought up to date from the log, so this lists the log rather than replaying it."""
        dt = self.ctx.lake.table(ref.layer, ref.name)
        return None if dt is None else dt.version()

    def memo(self, key: str, tables: tuple[TableRef, ...], compute: Callable[[], T]) -> T:
        """``compute()``, computed once and reused for as long as ``tables`` stay at the Delta versions it was
        computed from: a write of this run (or of anyone) to one of them makes the next call compute again.
        The versions are taken first, so a write during ``compute`` can only cause one more computation."""
        stamp = tuple(self.version(t) for t in tables)
        hit = self._memo.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        value = compute()
        self._memo[key] = (stamp, value)
        return value


@dataclass
class StepOutcome:
    """What one step did. ``summary`` is JSON-serializable (Airflow's XCom); ``result`` is the job's own
    result object (what ``govlake run`` reports)."""

    status: StepStatus
    summary: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    reason: str = ""  # why nothing was done
    findings: list[str] = field(default_factory=list)  # data findings: warnings (strict mode: failures)
    failure: str | None = None  # an invariant or an audit broke: the Airflow task fails without retry
    error: Exception | None = None  # raised by ``govlake run`` (its own run's scores were refused)

    @property
    def changed(self) -> bool:
        return self.status is StepStatus.WROTE


Tables = Callable[[Layout, str | None], tuple[TableRef, ...]]
Runner = Callable[[StepRun, str | None], StepOutcome]
Ready = Callable[[StepRun, str | None], str | None]


@dataclass(frozen=True)
class Stage:
    """One entry of the plan. ``reads`` and ``writes`` give a step's tables from the layout and its item: they
    are the task's Assets, they order the steps, and (``Rebuild.INPUTS``) they decide when it has work."""

    name: str  # the Airflow task id (``<name>__<item>`` for a fan-out stage)
    title: str  # the step as ``govlake run`` shows it
    flow: Flow
    each: Fanout
    reads: Tables
    writes: Tables
    run: Runner | None  # None: run by its flow's own machinery (ingest: ``govlake ingest`` / the ingest DAGs)
    ready: Ready | None = None  # cheap check (no engine, no lock): why there is nothing to do, or None
    rebuild: Rebuild = Rebuild.OWN
    engine: bool = True  # needs a query engine
    always: bool = False  # runs even after an upstream step failed (it only reads)
    doc: str = ""


@dataclass(frozen=True)
class Step:
    """One stage for one item (a dataset, a model, a delivery) or for the whole lake (item ``None``)."""

    stage: Stage
    item: str | None
    reads: tuple[TableRef, ...]
    writes: tuple[TableRef, ...]

    @property
    def task_id(self) -> str:
        return self.stage.name if self.item is None else f"{self.stage.name}__{self.item}"

    @property
    def title(self) -> str:
        return self.stage.title if self.item is None else f"{self.stage.title} {self.item}"

    @property
    def data_reads(self) -> tuple[TableRef, ...]:
        return tuple(t for t in self.reads if t.is_data)

    @property
    def data_writes(self) -> tuple[TableRef, ...]:
        return tuple(t for t in self.writes if t.is_data)


def _outcome(step_name: str, item: str | None, run: StepRun, wrote: bool, result: Any = None, reason: str = "",
             **summary: Any) -> StepOutcome:
    status = StepStatus.WROTE if wrote else StepStatus.NOTHING
    return StepOutcome(status, {"stage": step_name, "item": item, "run_id": run.run_id, "status": str(status),
                                "reason": reason, **summary}, result=result, reason=reason)


# -- the runners (import the jobs only when they run) -------------------------------------------------------

def _pending_conform(run: StepRun, dataset: str | None) -> str | None:
    from govlake.jobs.conform.pending import pending_by_dataset

    pending = run.memo("conform.pending", (INGEST_BATCHES, CONFORM_BATCHES), lambda: pending_by_dataset(run.ctx))
    return None if pending.get(dataset) else f"no pending bronze batches of {dataset}"


def _conform(run: StepRun, dataset: str | None) -> StepOutcome:
    from govlake.jobs.conform.silver import conform

    r = conform(run.ctx, run.engine, dataset, run_id=run.run_id)  # re-reads what is pending, under the lock
    out = _outcome("conform", dataset, run, bool(r.batches), r, "" if r.batches else f"no pending bronze batches of {dataset}",
                   dataset=dataset, batches=list(r.batches), bronze_rows=r.bronze_rows, silver_rows=r.silver_rows,
                   quarantined=r.quarantined, superseded=r.superseded, warned=r.warned, resolved=r.resolved,
                   held=list(r.held), balanced=r.balanced)
    out.findings = [f"{dataset} batch {b}: govlake quality release {dataset} {b} --reason ..." for b in r.held]
    if not r.balanced:
        out.failure = (f"books of {dataset} do not balance: bronze {r.bronze_rows} != silver {r.silver_rows} + "
                       f"quarantined {r.quarantined} + superseded {r.superseded} (batches {list(r.batches)})")
    return out


def _gold_outcome(name: str, item: str | None, run: StepRun, results: list) -> StepOutcome:
    built = [r.table for r in results if r.status == GoldStatus.BUILT]
    out = _outcome(name, item, run, bool(built), results,
                   "" if built else "; ".join(f"gold.{r.table} {r.status}: {r.message}" for r in results),
                   tables=[{"table": r.table, "status": str(r.status), "rows": r.rows, "message": r.message}
                           for r in results], built=built)
    out.findings = [f"gold.{r.table}: {r.message}" for r in results if r.status == GoldStatus.BLOCKED]
    return out


def _build(run: StepRun, table: str | None) -> StepOutcome:
    from govlake.jobs.gold.models import integrate

    return _gold_outcome("build", table, run, integrate(run.ctx, run.engine, tables=[table], run_id=run.run_id,
                                                         full=run.full))


def _crosscheck(run: StepRun, _: str | None) -> StepOutcome:
    from govlake.jobs.gold.crosscheck import crosscheck

    return _gold_outcome("crosscheck", None, run, crosscheck(run.ctx, run.engine, run_id=run.run_id,
                                                                           full=run.full))


def _no_open_objections(run: StepRun, _: str | None) -> str | None:
    if not run.ctx.settings.control_db_exists:  # no control plane yet: no objection (and no SQLAlchemy import)
        return "no open objection"
    from govlake.control.objections import open_counts

    return None if open_counts(run.ctx.settings) else "no open objection"


def _reconcile(run: StepRun, _: str | None) -> StepOutcome:
    from govlake.control.objections import reconcile

    closed = reconcile(run.ctx)  # the control plane's objections, not a lake table: writes no table
    return _outcome("objections", None, run, bool(closed), closed, "" if closed else "no disputed value changed",
                    corrected=closed)


def _unscored(run: StepRun, _: str | None) -> str | None:
    from govlake.jobs.quality.scoring import unscored_runs

    return None if unscored_runs(run.ctx) else "every conform run is already scored"


def _score(run: StepRun, _: str | None) -> StepOutcome:
    from govlake.jobs.quality.scoring import score_pending_runs

    done = score_pending_runs(run.ctx, run.engine)
    out = _outcome("score", None, run, bool(done.scored_runs), done, "" if done.scored_runs else "no run scored",
                   scored_runs=done.scored_runs, rows=done.rows, blocked={k: str(v) for k, v in done.blocked.items()})
    if done.blocked:  # the other runs were scored; these are tried again next time
        out.failure = f"quality scores of {len(done.blocked)} run(s) failed their gold suite: {out.summary['blocked']}"
    out.error = done.blocked.get(run.run_id)
    return out


def _lineage_unchanged(run: StepRun, _: str | None) -> str | None:
    from govlake.jobs.governance.lineage import edges_unchanged

    return "lineage declarations unchanged" if edges_unchanged(run.ctx) else None


def _lineage(run: StepRun, _: str | None) -> StepOutcome:
    from govlake.jobs.governance.lineage import build_lineage_table

    res = build_lineage_table(run.ctx, run.engine, run.run_id)  # writes only when the declarations changed
    return _outcome("lineage_graph", None, run, res["changed"], res,
                    "" if res["changed"] else "lineage declarations unchanged", **res)


def _catalog(run: StepRun, _: str | None) -> StepOutcome:
    from govlake.jobs.governance.catalog import build_catalog

    counts = build_catalog(run.ctx, run.as_of)
    return _outcome("catalog", None, run, True, counts, rows=counts)


def _duties(run: StepRun, _: str | None) -> StepOutcome:
    from govlake.jobs.governance.duties import build_duties

    counts = build_duties(run.ctx)
    return _outcome("duties", None, run, True, counts, rows=counts)


def _indicators(run: StepRun, _: str | None) -> StepOutcome:
    from govlake.jobs.governance.indicators import build_indicators

    res = build_indicators(run.ctx, run.engine, run.as_of)
    return _outcome("indicators", None, run, True, res, **res)


def _no_report_dir(run: StepRun, _: str | None) -> str | None:
    return None if run.report_dir is not None else "no report directory given"


def _report(run: StepRun, _: str | None) -> StepOutcome:
    from govlake.jobs.quality.report import build_report

    target = Path(run.report_dir)
    target.mkdir(parents=True, exist_ok=True)
    res = build_report(run.ctx, target, data_docs=True)
    return _outcome("steward_report", None, run, True, res,
                    files={k: (str(v) if isinstance(v, Path) else v) for k, v in res.items()})


# -- what each stage reads and writes ---------------------------------------------------------------------------

def _each(layer: str, names: list[str] | tuple[str, ...]) -> tuple[TableRef, ...]:
    return tuple(TableRef(layer, n) for n in names)


def _delivery_dataset(item: str | None) -> str:
    return (item or "/").split("/", 1)[1]


STAGES: tuple[Stage, ...] = (
    Stage("ingest", "导入原始层", Flow.INGEST, Fanout.DELIVERY,
          reads=lambda lay, item: (),
          writes=lambda lay, item: (TableRef("bronze", _delivery_dataset(item)), INGEST_BATCHES),
          run=None,
          doc="each delivered file lands whole in bronze.<dataset> or is refused with a reason"),
    Stage("conform", "标准化与校验", Flow.SILVER, Fanout.DATASET,
          reads=lambda lay, d: (TableRef("bronze", d), *_each("silver", lay.conform_after[d]), INGEST_BATCHES,
                                CONFORM_BATCHES),
          writes=lambda lay, d: (TableRef("silver", d), TableRef("quarantine", d), CONFORM_BATCHES, VALIDATION_RESULTS),
          run=_conform, ready=_pending_conform,
          doc="types, standardizes, validates and pseudonymizes the pending batches: silver / quarantine"),
    Stage("build", "构建金层", Flow.GOLD, Fanout.MODEL,
          reads=lambda lay, t: (*_each("silver", lay.gold_sources[t]), *_each("gold", lay.gold_after[t])),
          writes=lambda lay, t: (TableRef("gold", t), VALIDATION_RESULTS),
          run=_build,
          doc="rebuilds the gold model when a source has a new Delta version (write, audit, publish)"),
    Stage("crosscheck", "多源校核", Flow.GOVERNANCE, Fanout.ONCE,
          reads=lambda lay, _: _each("silver", lay.compared),
          writes=lambda lay, _: (SOURCE_CONFLICTS, CROSSCHECK_SUMMARY, VALIDATION_RESULTS),
          run=_crosscheck,
          doc="compares every pair of sources of the shared data items (catalog/data_items.yaml)"),
    Stage("objections", "核对数据异议", Flow.GOVERNANCE, Fanout.ONCE,
          # Silver only: a gold value changes only after its silver sources do, and gold tables as triggers would
          # start the governance DAG on every gold build. `govlake run` reconciles after the builds (plan order).
          reads=lambda lay, _: _each("silver", lay.datasets),
          writes=lambda lay, _: (),
          run=_reconcile, ready=_no_open_objections, engine=False,
          doc="closes as 已更正 the open objections whose disputed value a re-delivery changed (before scoring)"),
    Stage("score", "质量评分", Flow.GOVERNANCE, Fanout.ONCE,
          reads=lambda lay, _: (*_each("silver", lay.datasets), *_each("quarantine", lay.datasets), SOURCE_CONFLICTS,
                                CONFORM_BATCHES, VALIDATION_RESULTS),
          writes=lambda lay, _: (QUALITY_SCORES, VALIDATION_RESULTS),
          run=_score, ready=_unscored,
          doc="scores every conform run not scored yet (completeness, validity, uniqueness, timeliness, consistency)"),
    Stage("lineage_graph", "血缘图", Flow.GOVERNANCE, Fanout.ONCE,
          reads=lambda lay, _: (),
          writes=lambda lay, _: (LINEAGE_EDGES, VALIDATION_RESULTS),
          run=_lineage, ready=_lineage_unchanged,
          doc="table and column lineage from the declarations (a new version only when they changed)"),
    Stage("catalog", "编制数据资源目录", Flow.GOVERNANCE, Fanout.ONCE,
          reads=lambda lay, _: (*_each("silver", lay.datasets), INGEST_BATCHES, QUALITY_SCORES, LINEAGE_EDGES),
          writes=lambda lay, _: (CATALOG_NODES, CATALOG_RESOURCES, CATALOG_ITEMS),
          run=_catalog, rebuild=Rebuild.INPUTS, engine=False,
          doc="the 1+11+N catalog: nodes and their health, resources, information items"),
    Stage("duties", "编制职能数据清单", Flow.GOVERNANCE, Fanout.ONCE,
          reads=lambda lay, _: (CATALOG_RESOURCES, CROSSCHECK_SUMMARY, INGEST_BATCHES),
          writes=lambda lay, _: (DUTY_DATA_LIST, DUTY_FINDINGS),
          run=_duties, rebuild=Rebuild.INPUTS, engine=False,
          doc="duties → catalogue → data, with gaps, overreach and one-source conflicts"),
    Stage("indicators", "计算指标", Flow.GOVERNANCE, Fanout.ONCE,
          reads=lambda lay, _: tuple(TableRef.parse(s) for s in lay.indicator_sources),
          writes=lambda lay, _: (INDICATOR_VALUES, INDICATOR_PROGRESS),
          run=_indicators, rebuild=Rebuild.INPUTS,
          doc="the indicators of catalog/indicators.yaml per period and district, against baseline and targets"),
    Stage("steward_report", "数据管理员质量报告", Flow.GOVERNANCE, Fanout.ONCE,
          reads=lambda lay, _: (QUALITY_SCORES, SOURCE_CONFLICTS, CROSSCHECK_SUMMARY,
                                *_each("quarantine", lay.datasets), INGEST_BATCHES, CONFORM_BATCHES, VALIDATION_RESULTS),
          writes=lambda lay, _: (),
          run=_report, ready=_no_report_dir, engine=False, always=True,
          doc="HTML, Excel and GX Data Docs for the data stewards (files, no table); runs even after a failure"),
)
"""The pipeline, in flow order."""


def stage(name: str) -> Stage:
    for s in STAGES:
        if s.name == name:
            return s
    raise KeyError(f"no stage {name!r} in the plan (stages: {', '.join(s.name for s in STAGES)})")


def _items(s: Stage, lay: Layout) -> list[str | None]:
    if s.each is Fanout.DATASET:
        return list(lay.datasets)
    if s.each is Fanout.MODEL:
        return list(lay.gold_tables)
    if s.each is Fanout.DELIVERY:
        return [f"{node}/{d}" for node, ds in sorted(lay.deliveries.items()) for d in ds]
    return [None]


def steps(lay: Layout, flow: Flow | None = None, datasets: list[str] | None = None) -> list[Step]:
    """Every step in the order ``govlake run`` runs them (stages in plan order, items dependencies first);
    ``flow``: only that flow's; ``datasets``: only these datasets' per-dataset steps."""
    out = []
    for s in STAGES:
        if flow is not None and s.flow is not flow:
            continue
        for item in _items(s, lay):
            if s.each is Fanout.DATASET and datasets is not None and item not in datasets:
                continue
            out.append(Step(s, item, s.reads(lay, item), s.writes(lay, item)))
    return out


def upstream(sequence: list[Step]) -> dict[str, list[str]]:
    """task id -> the task ids of the earlier steps of ``sequence`` that write a data table it reads."""
    out: dict[str, list[str]] = {}
    for i, step in enumerate(sequence):
        reads = set(step.data_reads)
        out[step.task_id] = [e.task_id for e in sequence[:i] if reads & set(e.data_writes)]
    return out


def triggers(lay: Layout, flow: Flow) -> list[TableRef]:
    """The data tables whose updates schedule ``flow``'s DAG: read by its steps, written by another flow's."""
    everything = steps(lay)
    elsewhere = {t for s in everything if s.stage.flow is not flow for t in s.data_writes}
    return sorted({t for s in everything if s.stage.flow is flow for t in s.data_reads} & elsewhere)


# -- running one step ---------------------------------------------------------------------------------------

def not_ready(step: Step, run: StepRun) -> str | None:
    """Why ``step`` has nothing to do (cheap: needs no engine and no lock), or ``None``."""
    if step.stage.ready is not None:
        return step.stage.ready(run, step.item)
    if step.stage.rebuild is Rebuild.INPUTS:
        return None if run.full else _inputs_unchanged(step, run)
    return None


def skipped(step: Step, run: StepRun, reason: str) -> StepOutcome:
    """The outcome of a step with nothing to do."""
    return _outcome(step.stage.name, step.item, run, False, reason=reason)


def execute(step: Step, run: StepRun, *, checked: bool = False) -> StepOutcome:
    """Run one step; the caller holds the lake's writer lock when the step writes. Unless the caller has
    just ``checked`` (under that lock), first asks whether there is anything to do. A step rebuilt on its
    inputs records the input versions it was built from."""
    reason = None if checked else not_ready(step, run)
    if reason:
        return skipped(step, run, reason)
    inputs = _input_versions(step, run.ctx) if step.stage.rebuild is Rebuild.INPUTS else None
    assert step.stage.run is not None, f"stage {step.stage.name} is run by its flow, not by execute()"
    outcome = step.stage.run(run, step.item)
    if inputs is not None and outcome.changed:
        _record_inputs(step, run, inputs)
    return outcome


def _input_versions(step: Step, ctx: Any) -> dict[str, int]:
    out = {}
    for ref in step.reads:
        dt = ctx.lake.table(ref.layer, ref.name)
        if dt is not None:
            out[str(ref)] = dt.version()
    return out


def _last_inputs(run: StepRun) -> dict[str, dict[str, int]]:
    """Step task id -> the input versions of its latest build (``meta.stage_builds``), every step at once."""
    latest: dict[str, dict[str, Any]] = {}
    for r in run.ctx.lake.rows(STAGE_BUILDS.layer, STAGE_BUILDS.name, ["stage", "inputs", "built_at"]):
        if r["stage"] not in latest or r["built_at"] > latest[r["stage"]]["built_at"]:
            latest[r["stage"]] = r
    return {stage: json.loads(r["inputs"]) for stage, r in latest.items()}


def _inputs_unchanged(step: Step, run: StepRun) -> str | None:
    ctx = run.ctx
    if not all(ctx.lake.exists(t.layer, t.name) for t in step.writes):
        return None
    if run.memo("rebuild.inputs", (STAGE_BUILDS,), lambda: _last_inputs(run)).get(step.task_id) != _input_versions(step, ctx):
        return None
    return "inputs unchanged since the last build"


def _record_inputs(step: Step, run: StepRun, inputs: dict[str, int]) -> None:
    """One row per build of a step rebuilt on its inputs: the Delta versions of the tables it read."""
    from datetime import datetime, timezone

    row = {"stage": step.task_id, "inputs": json.dumps(inputs, sort_keys=True), "run_id": run.run_id,
           "built_at": datetime.now(timezone.utc)}
    run.ctx.lake.append(STAGE_BUILDS.layer, STAGE_BUILDS.name, tables.STAGE_BUILDS.from_rows([row]),
                        description=tables.STAGE_BUILDS.description)
