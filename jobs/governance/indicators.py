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

import pyarrow as pa

from govlake.contracts import _load_yaml
from govlake.context import Context
from govlake.engine.base import Engine
from govlake.errors import ConfigError, did_you_mean
from govlake.jobs.ingest.bronze import SHANGHAI
from govlake.models import compile_refs, table_refs

VALUES, PROGRESS = "indicator_values", "indicator_progress"
REQUIRED = ("id", "name", "unit", "frequency", "formula", "sources", "sql")


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
    doc = _load_yaml(path) or {}
    out, seen = [], set()
    for i, raw in enumerate(doc.get("indicators") or []):
        where = f"{path} → indicators.{i}"
        missing = [k for k in REQUIRED if k not in raw]
        if missing:
            raise ConfigError(f"指标定义缺少 {missing}", where=where, hint=f"每个指标需要 {', '.join(REQUIRED)}")
        if raw["id"] in seen:
            raise ConfigError(f"指标 id 重复：{raw['id']}", where=where)
        seen.add(raw["id"])
        refs = table_refs(raw["sql"].replace("{as_of_month}", "2000-01"))
        undeclared = refs - set(raw["sources"])
        if undeclared:
            raise ConfigError(f"指标 SQL 引用了未在 sources 中声明的表：{sorted(undeclared)}", where=f"{where}.sql",
                              hint="在 sources 中声明，血缘才能追溯")
        th = raw.get("thresholds") or {}
        unknown = set(raw) - set(Indicator.__dataclass_fields__) - {"thresholds"}
        if unknown:
            raise ConfigError(f"无法识别的键：{sorted(unknown)}", where=where,
                              hint=did_you_mean(sorted(unknown)[0], set(Indicator.__dataclass_fields__)) or "")
        out.append(Indicator(
            id=raw["id"], name=raw["name"], unit=raw["unit"], frequency=raw["frequency"], formula=raw["formula"],
            sources=tuple(raw["sources"]), sql=raw["sql"], by_district=raw.get("by_district", True),
            scale=float(raw.get("scale", 1)), baseline_2022=raw.get("baseline_2022"), target_2025=raw.get("target_2025"),
            target_2027=raw.get("target_2027"), warn=th.get("warn"), alert=th.get("alert"),
            higher_is_better=raw.get("higher_is_better", True)))
    return out


VALUE_SCHEMA = pa.schema([
    ("indicator_id", pa.string()), ("name", pa.string()), ("period", pa.string()), ("district_code", pa.string()),
    ("district_name", pa.string()), ("numerator", pa.float64()), ("denominator", pa.float64()), ("value", pa.float64()),
    ("unit", pa.string()), ("level", pa.string()),
])
PROGRESS_SCHEMA = pa.schema([
    ("indicator_id", pa.string()), ("name", pa.string()), ("unit", pa.string()), ("frequency", pa.string()),
    ("formula", pa.string()), ("period", pa.string()), ("value", pa.float64()), ("baseline_2022", pa.float64()),
    ("target_2025", pa.float64()), ("target_2027", pa.float64()), ("progress_2025", pa.float64()),
    ("met_2025", pa.bool_()), ("met_2027", pa.bool_()), ("warn", pa.float64()), ("alert", pa.float64()),
    ("level", pa.string()), ("districts_in_alert", pa.string()), ("sources", pa.string()),
])


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
    outs = [DatasetRef("gold", VALUES), DatasetRef("gold", PROGRESS)]
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
        ctx.lake.overwrite("gold", VALUES, pa.Table.from_pylist(values, schema=VALUE_SCHEMA),
                           description="指标值：各指标按统计期与区（district_code 为空表示全市）的分子、分母、取值与阈值状态")
        ctx.lake.overwrite("gold", PROGRESS, pa.Table.from_pylist(progress, schema=PROGRESS_SCHEMA),
                           description="指标进展：最新全市值对照 2022 年基线与 2025、2027 年目标（表 1 核心目标）及预警")
        outs[0].rows, outs[1].rows = len(values), len(progress)
    return {"values": len(values), "indicators": len(progress), "waiting": waiting}
