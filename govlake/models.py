"""Gold models: one YAML per gold table in schemas/gold/, with portable SQL and column descriptions.

The SQL names tables as ``silver.<dataset>`` / ``gold.<table>``; sqlglot checks that every referenced
table is a declared source, rewrites the references to the engine's relation names and transpiles to the
engine's dialect, so one model runs on DuckDB and Spark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import sqlglot
from sqlglot import exp

from govlake.declarations import load
from govlake.errors import ConfigError, RegistryError, did_you_mean


@dataclass(frozen=True)
class Column:
    name: str
    description: str
    sources: tuple[str, ...] = field(default=(), metadata={"key": "from"})  # column lineage: layer.table.column


@dataclass(frozen=True)
class Anonymize:
    """k-anonymity by suppression: where fewer than ``k`` rows share their ``groups`` and quasi-identifier
    values, the ``suppress`` columns are blanked one by one, in order (each level's groups use the values
    the earlier levels left). The decisions are a function of the group counts alone, which is what lets a
    keyed model be maintained incrementally: the counts are kept with each build."""

    k: int
    groups: tuple[str, ...]
    suppress: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.groups, *self.suppress)


@dataclass(frozen=True)
class Maintain:
    """How a keyed model is kept current: ``keys`` maps each source to its column holding the model's key.
    A row of the model depends only on the source rows of its key (plus, under ``anonymize``, the group
    counts), so a build recomputes the keys of the new source rows and upserts them."""

    keys: dict[str, str]


@dataclass(frozen=True)
class GoldModel:
    table: str
    title: str
    kind: str
    description: str
    sources: tuple[str, ...]
    columns: tuple[Column, ...]
    sql: str
    path: Path
    key: tuple[str, ...] = ()
    base: str | None = None
    theme: str | None = None
    maintain: Maintain | None = None
    anonymize: Anonymize | None = None

    def relation(self, ref: str) -> str:
        return ref.replace(".", "__")

    def compiled_sql(self, dialect: str = "duckdb") -> str:
        return compile_refs(self.sql, dialect)


def compile_refs(sql: str, dialect: str = "duckdb") -> str:
    """Portable SQL (DuckDB spelling, tables named ``silver.x`` / ``gold.y``) with the table references
    rewritten to engine relations (``silver__x``) and transpiled to the engine's dialect."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    for t in tree.find_all(exp.Table):
        if t.db in ("silver", "gold"):
            t.replace(exp.to_table(f"{t.db}__{t.name}").as_(t.alias_or_name))
    return tree.sql(dialect=dialect)


def table_refs(sql: str) -> set[str]:
    """``layer.table`` references of a SQL text."""
    return {f"{t.db}.{t.name}" for t in sqlglot.parse_one(sql, read="duckdb").find_all(exp.Table) if t.db}


def _referenced(sql: str, path: Path) -> set[str]:
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise ConfigError(f"金层模型 SQL 语法错误：{exc}", where=str(path), hint="修正 sql 字段") from None
    ctes = {c.alias for c in tree.find_all(exp.CTE)}
    return {f"{t.db}.{t.name}" for t in tree.find_all(exp.Table) if t.name not in ctes and t.db}


@lru_cache(maxsize=4)
def _load(schemas_dir: str) -> dict[str, GoldModel]:
    base = Path(schemas_dir)
    models: dict[str, GoldModel] = {}
    for path in sorted((base / "gold").glob("*.yaml")):
        m = load(GoldModel, path, "gold", base, path=path)
        undeclared = _referenced(m.sql, path) - set(m.sources)
        if undeclared:
            raise ConfigError(f"SQL 引用了未在 sources 中声明的表：{sorted(undeclared)}", where=f"{path} → sources",
                              hint="把这些表加入 sources，血缘与调度依赖由 sources 决定")
        models[m.table] = m
    return models


def load_models(schemas_dir: Path) -> dict[str, GoldModel]:
    return _load(str(schemas_dir))


def build_order(models: dict[str, GoldModel]) -> list[GoldModel]:
    """Gold models in dependency order (gold tables built from other gold tables come later)."""
    graph = {m.table: {s.split(".", 1)[1] for s in m.sources if s.startswith("gold.")} for m in models.values()}
    for name, deps in graph.items():
        for d in deps:
            if d not in models:
                raise ConfigError(f"金层模型 {name} 依赖不存在的 gold.{d}", where=str(models[name].path),
                                  hint=did_you_mean(d, set(models)))
    try:
        return [models[n] for n in TopologicalSorter(graph).static_order()]
    except CycleError as exc:
        raise ConfigError(f"金层模型之间存在循环依赖：{exc.args[1]}") from None


def get_model(schemas_dir: Path, table: str) -> GoldModel:
    models = load_models(schemas_dir)
    if table not in models:
        raise RegistryError(f"未知金层表：{table}", hint=did_you_mean(table, set(models)))
    return models[table]
