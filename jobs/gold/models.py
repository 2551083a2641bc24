"""Integrate: silver -> gold tables defined by the models in schemas/gold/.

A gold table is built only when one of its sources has a new Delta version since the last build: keyed
models that declare ``maintain`` upsert the keys that changed (``maintained.py``), the others are rebuilt
in one overwrite transaction; the source versions are recorded in the commit, so reruns are no-ops and
every gold version can be traced to the exact silver versions it was computed from (time travel).
"""

from __future__ import annotations

from collections.abc import Callable

from govlake.context import Context
from govlake.engine.base import Engine
from govlake.jobs.gold import maintained
from govlake.jobs.gold.published import GoldResult, last_build, validate_table
from govlake.jobs.quality.suites import Suite, gold_suite
from govlake.jobs.quality.validate import write_results
from govlake.models import GoldModel, build_order, load_models
from govlake.status import GoldStatus

__all__ = ["GoldResult", "audit_arrow", "build_model", "integrate", "last_build", "rebuild", "validate_table"]


def build_model(ctx: Context, engine: Engine, model: GoldModel, run_id: str | None = None,
                full: bool = False) -> GoldResult:
    """A keyed model that declares ``maintain`` is updated from what changed (``jobs/gold/maintained.py``);
    any other is rebuilt whole when a source has a new version. ``full``: rebuilt whole in any case."""
    suite = gold_suite(ctx, model.table)
    if model.maintain is not None:
        return maintained.build(ctx, engine, model, suite, run_id, full=full)
    return rebuild(ctx, engine, model.table, list(model.sources), lambda: model.compiled_sql(engine.dialect.name),
                   f"{model.title}：{model.description}", suite=suite, run_id=run_id, force=full)


def rebuild(ctx: Context, engine: Engine, table: str, sources: list[str], make_sql: Callable[[], str],
            description: str, *, suite: Suite | None = None, run_id: str | None = None, force: bool = False,
            meta: dict | None = None) -> GoldResult:
    """Rebuild gold.<table> from ``sources`` (relations named ``<layer>__<name>``) when any has changed
    (``force``: in any case). ``meta`` goes into the build record beside the source versions.

    Write, audit, publish: the result is computed once, the table's suite is evaluated on it, and only if
    no ``error``/``fatal`` expectation fails is it committed; otherwise the previous version stays published
    and the outcomes say why.
    """
    versions: dict[str, int] = {}
    for ref in sources:
        dt = ctx.lake.table(*ref.split(".", 1))
        if dt is None:
            missing = [s for s in sources if not ctx.lake.exists(*s.split(".", 1))]
            return GoldResult(table, GoldStatus.WAITING, message=f"上游尚无数据：{'、'.join(missing)}")
        versions[ref] = dt.version()
    prior = last_build(ctx, table)
    if not force and prior and prior.get("sources") == versions:
        return GoldResult(table, GoldStatus.UNCHANGED, message="上游未变化，跳过")
    from govlake.lineage_events import DatasetRef

    out = ctx.lineage.table("gold", table)
    with ctx.lineage.run(f"gold.{table}", [DatasetRef(*ref.split(".", 1)) for ref in sources], [out],
                         engine=engine.name, description=description):
        result = _build(ctx, engine, table, versions, make_sql, description, suite, run_id, meta or {})
        out.rows = result.rows if result.status == GoldStatus.BUILT else 0
    return result


def _build(ctx: Context, engine: Engine, table: str, versions: dict[str, int], make_sql: Callable[[], str],
           description: str, suite: Suite | None, run_id: str | None, meta: dict) -> GoldResult:
    for ref, version in versions.items():
        engine.register_delta(ref.replace(".", "__"), *ref.split(".", 1), version=version)
    candidate = f"gold_candidate__{table}"
    engine.materialize(candidate, make_sql())
    result = GoldResult(table, GoldStatus.BUILT)
    if suite is not None and suite.checks:
        outcomes = validate_table(engine, suite, candidate)
        write_results(ctx, [o.row(run_id=run_id or "adhoc", layer="gold", suite=suite.name, dataset=table,
                                   batch_id=None, node=None) for o in outcomes], replace=None)
        blocking = [o.check.rule for o in outcomes if o.check.severity in ("error", "fatal") and not o.success]
        if blocking:
            result = GoldResult(table, GoldStatus.BLOCKED, message=f"未通过金层校验（{'、'.join(blocking)}），保留上一版本")
    if result.status == GoldStatus.BUILT:
        engine.write_delta("gold", table, f"SELECT * FROM {candidate}", mode="overwrite",
                           commit=ctx.lake.commit(job="integrate", table=table, sources=versions, **meta),
                           description=description)
        result.rows = ctx.lake.table("gold", table).count()
    for ref in versions:
        engine.drop(ref.replace(".", "__"))
    engine.drop(candidate)
    return result


def audit_arrow(ctx: Context, engine: Engine, table: str, data, run_id: str | None) -> list[str]:
    """Write-audit-publish for a gold table a job computes in Python: evaluate its suite on the Arrow data,
    record the outcomes, and return the blocking rules (empty: publish)."""
    suite = gold_suite(ctx, table)
    view = f"gold_candidate__{table}"
    engine.register_arrow(view, data)
    try:
        outcomes = validate_table(engine, suite, view)
    finally:
        engine.drop(view)
    write_results(ctx, [o.row(run_id=run_id or "adhoc", layer="gold", suite=suite.name, dataset=table, batch_id=None,
                              node=None) for o in outcomes], replace=None)
    return [o.check.rule for o in outcomes if o.check.severity in ("error", "fatal") and not o.success]


def integrate(ctx: Context, engine: Engine, tables: list[str] | None = None, run_id: str | None = None,
              full: bool = False) -> list[GoldResult]:
    models = load_models(ctx.settings.schemas_dir)
    out = []
    for model in build_order(models):
        if tables and model.table not in tables:
            continue
        out.append(build_model(ctx, engine, model, run_id, full))
    return out
