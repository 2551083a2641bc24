"""The engine seam: jobs receive an Engine and never build sessions themselves.

``duckdb`` (embedded default) and ``spark`` (scale-out) implement the same small interface; the SQL that
jobs generate goes through the engine's Dialect for the few primitives that differ.
"""

from __future__ import annotations

from govlake.engine.base import Dialect, Engine
from govlake.errors import ConfigError
from govlake.project import Settings

ENGINES = ("duckdb", "spark")


def make_engine(settings: Settings, kind: str = "duckdb") -> Engine:
    if kind == "duckdb":
        from govlake.engine.duckdb import DuckDBEngine

        return DuckDBEngine(settings)
    if kind == "spark":
        from govlake.engine.spark import SparkEngine

        return SparkEngine(settings)
    raise ConfigError(f"未知计算引擎：{kind}", hint=f"可选：{', '.join(ENGINES)}")


__all__ = ["Dialect", "Engine", "ENGINES", "make_engine"]
