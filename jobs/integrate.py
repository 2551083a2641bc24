"""Integrate: silver -> gold tables defined by the models in schemas/gold/.

A gold table is rebuilt (one overwrite transaction) only when one of its sources has a new Delta
version since the last build; the source versions are recorded in the commit, so reruns are no-ops and
every gold version can be traced to the exact silver versions it was computed from (time travel).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from govlake.context import Context
from govlake.engine.base import Engine
from govlake.models import GoldModel, build_order, load_models


@dataclass
class GoldResult:
    table: str
    status: str  # built | unchanged | waiting
    rows: int = 0
    message: str = ""


def source_versions(ctx: Context, model: GoldModel) -> dict[str, int] | None:
    out: dict[str, int] = {}
    for ref in model.sources:
        layer, name = ref.split(".", 1)
        dt = ctx.lake.table(layer, name)
        if dt is None:
            return None
        out[ref] = dt.version()
    return out


def last_build(ctx: Context, table: str) -> dict | None:
    dt = ctx.lake.table("gold", table)
    if dt is None:
        return None
    for entry in dt.history(5):
        meta = entry.get("govlake")
        if meta:
            return json.loads(meta) if isinstance(meta, str) else meta
    return None


def build_model(ctx: Context, engine: Engine, model: GoldModel) -> GoldResult:
    versions = source_versions(ctx, model)
    if versions is None:
        missing = [s for s in model.sources if not ctx.lake.exists(*s.split(".", 1))]
        return GoldResult(model.table, "waiting", message=f"上游尚无数据：{'、'.join(missing)}")
    prior = last_build(ctx, model.table)
    if prior and prior.get("sources") == versions:
        return GoldResult(model.table, "unchanged", message="上游未变化，跳过")
    for ref, version in versions.items():
        layer, name = ref.split(".", 1)
        engine.register_delta(model.relation(ref), layer, name, version=version)
    sql = model.compiled_sql(engine.dialect.name)
    engine.write_delta("gold", model.table, sql, mode="overwrite",
                       commit=ctx.lake.commit(job="integrate", table=model.table, sources=versions),
                       description=f"{model.title}：{model.description}")
    rows = ctx.lake.table("gold", model.table).count()
    for ref in versions:
        engine.drop(model.relation(ref))
    return GoldResult(model.table, "built", rows=rows)


def integrate(ctx: Context, engine: Engine, tables: list[str] | None = None) -> list[GoldResult]:
    models = load_models(ctx.settings.schemas_dir)
    out = []
    for model in build_order(models):
        if tables and model.table not in tables:
            continue
        out.append(build_model(ctx, engine, model))
    return out
