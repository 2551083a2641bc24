"""Aggregated indicators (城市运行数字体征, 表 1 核心目标) computed from the lake.

Definitions live in ``catalog/indicators.yaml``: name, formula, sources, unit, frequency, thresholds and the
plan's 2022 baseline and 2025/2027 targets. Each definition's SQL yields numerator and denominator per period
and district; this job adds the city-level rows, and writes

- ``gold.indicator_values``: indicator × period × district (NULL = whole city): numerator, denominator, value,
  and the threshold status (正常 / 预警 / 告警);
- ``gold.indicator_progress``: per indicator, the latest city value against baseline and targets: progress
  toward the 2025 target, whether the 2025/2027 targets are met, and the alert level.

Rebuilt on every run that changed silver (OpenLineage job ``indicators.build``); an indicator whose sources
are not in the lake yet is skipped and listed as waiting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from govlake.context import Context
from govlake.declarations import build, read
from govlake.engine.base import Engine
from govlake.errors import ConfigError
from govlake.jobs.ingest.bronze import SHANGHAI
from govlake.models import compile_refs, table_refs
from govlake.tables import INDICATOR_PROGRESS, INDICATOR_VALUES


@dataclass(frozen=True)
class Indicator:
    id: str
    name: str
    unit: str
    frequency: str
    formula: str
    sources: tuple[str, ...]
    sql: str
    by_district: bool = True
    scale: float = 1.0
    baseline_2022: float | None = None
    target_2025: float | None = None
    target_2027: float | None = None
    warn: float | None = None
    alert: float | None = None
    higher_is_better: bool = True

    def level(self, value: float | None) -> str:
        if value is None:
            return "无数据"
        worse = (lambda v, t: v < t) if self.higher_is_better else (lambda v, t: v > t)
        if self.alert is not None and worse(value, self.alert):
            return "告警"
        if self.warn is not None and worse(value, self.warn):
            return "预警"
        return "正常"


def load_indicators(catalog_dir: Path) -> list[Indicator]:
    path = catalog_dir / "indicators.yaml"
    if not path.exists():
        return []
    doc = read(path, "indicators")  # validated by schemas/_meta/indicators.schema.json (govlake.declarations)
    out, seen = [], set()
    for i, raw in enumerate(doc["indicators"]):
        where = f"{path} → indicators.{i}"
        if raw["id"] in seen:
            raise ConfigError(f"指标 id 重复：{raw['id']}", where=where)
        seen.add(raw["id"])
        refs = table_refs(raw["sql"].replace("{as_of_month}", "2000-01"))
        undeclared = refs - set(raw["sources"])
        if undeclared:
            raise ConfigError(f"指标 SQL 引用了未在 sources 中声明的表：{sorted(undeclared)}", where=f"{where}.sql",
                              hint="在 sources 中声明，血缘才能追溯")
        th = raw.get("thresholds") or {}
        out.append(build(Indicator, raw, scale=float(raw.get("scale", 1)), warn=th.get("warn"), alert=th.get("alert")))
    return out


def _values(ctx: Context, engine: Engine, ind: Indicator, as_of_month: str) -> list[dict]:
    for ref in ind.sources:
        engine.register_delta(ref.replace(".", "__"), *ref.split(".", 1))
    base = compile_refs(ind.sql.replace("{as_of_month}", as_of_month), engine.dialect.name)
    if ind.by_district:
        sql = (f"SELECT period, district_code, numerator, denominator FROM ({base}) b WHERE district_code IS NOT NULL "
               f"UNION ALL SELECT period, NULL AS district_code, sum(numerator), sum(denominator) FROM ({base}) c GROUP BY period")
    else:
        sql = base
    rows = engine.fetch(sql).to_pylist()
    for ref in ind.sources:
        engine.drop(ref.replace(".", "__"))
    names = {n.code: (n.district or n.name) for n in ctx.registry.districts}
    out = []
    for r in rows:
        if r["period"] is None:
            continue
        num, den = r["numerator"], r["denominator"]
        value = None if num is None or (den is not None and den == 0) else (num / den if den is not None else num) * ind.scale
        value = None if value is None else round(value, 4)
        out.append({"indicator_id": ind.id, "name": ind.name, "period": r["period"], "district_code": r["district_code"],
                    "district_name": names.get(r["district_code"], "全市" if r["district_code"] is None else r["district_code"]),
                    "numerator": num, "denominator": den, "value": value, "unit": ind.unit,
                    # A district's count is not comparable with a city threshold; a district's rate is.
                    "level": ind.level(value) if r["district_code"] is None or den is not None else "—"})
    return out


def _progress(ind: Indicator, values: list[dict]) -> dict:
    city = sorted((v for v in values if v["district_code"] is None and v["value"] is not None), key=lambda v: v["period"])
    latest = city[-1] if city else None
    value = latest["value"] if latest else None
    base, t25 = ind.baseline_2022, ind.target_2025
    progress = None
    if value is not None and t25 is not None:
        start = base if base is not None else 0.0
        progress = round(100 * (value - start) / (t25 - start), 2) if t25 != start else None
    alerts = sorted({v["district_name"] for v in values if latest and v["period"] == latest["period"]
                     and v["district_code"] is not None and v["level"] == "告警"})
    return {"indicator_id": ind.id, "name": ind.name, "unit": ind.unit, "frequency": ind.frequency, "formula": ind.formula,
            "period": latest["period"] if latest else None, "value": value, "baseline_2022": base, "target_2025": t25,
            "target_2027": ind.target_2027, "progress_2025": progress,
            "met_2025": None if value is None or t25 is None else value >= t25,
            "met_2027": None if value is None or ind.target_2027 is None else value >= ind.target_2027,
            "warn": ind.warn, "alert": ind.alert, "level": ind.level(value), "districts_in_alert": "、".join(alerts),
            "sources": "、".join(ind.sources)}


def build_indicators(ctx: Context, engine: Engine, as_of: date | None = None) -> dict[str, object]:
    from govlake.lineage_events import DatasetRef

    as_of = as_of or datetime.now(SHANGHAI).date()
    inds = load_indicators(ctx.settings.catalog_dir)
    sources = sorted({s for i in inds for s in i.sources})
    outs = [DatasetRef(*INDICATOR_VALUES.ref), DatasetRef(*INDICATOR_PROGRESS.ref)]
    waiting: list[str] = []
    values: list[dict] = []
    progress: list[dict] = []
    with ctx.lineage.run("indicators.build", [DatasetRef(*s.split(".", 1)) for s in sources], outs, engine=engine.name,
                         description="按期、按区计算核心指标与城市运行数字体征，并对照基线与目标"):
        for ind in inds:
            if not all(ctx.lake.exists(*s.split(".", 1)) for s in ind.sources):
                waiting.append(ind.name)
                vals: list[dict] = []
            else:
                vals = _values(ctx, engine, ind, as_of.strftime("%Y-%m"))
            values += vals
            progress.append(_progress(ind, vals))
        for table, rows in ((INDICATOR_VALUES, values), (INDICATOR_PROGRESS, progress)):
            ctx.lake.overwrite(*table.ref, table.from_rows(rows), description=table.description)
        outs[0].rows, outs[1].rows = len(values), len(progress)
    return {"values": len(values), "indicators": len(progress), "waiting": waiting}
