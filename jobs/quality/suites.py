"""Expectation suites: Great Expectations Core 1.x suites, built from the contracts plus hand-written rules.

A suite is GX's own JSON (``{"name", "expectations": [{"type", "kwargs", "meta", "severity"}], "meta"}``),
so GX can load it, validate samples with it and render it in Data Docs. govlake adds two keys to each
expectation's ``meta``: ``rule`` (the name stewards see, e.g. ``uscc.cn_uscc``) and ``severity``:

- ``error``: the row goes to quarantine with the rule's name;
- ``warn``: the row is kept and counted;
- ``fatal``: the batch is audited before publishing and, if the expectation fails for it (``mostly``
  not met), nothing of it is published to silver (write, audit, publish).

Sources, merged in this order:
1. the contract (``schemas/datasets/<name>.yaml``): required fields, types, domain checks, code lists,
   patterns, ranges and dates become row rules (``error``); every key field also gets a batch-level
   ``fatal`` not-null rule (a delivery that lost its key column is mis-mapped, not half-usable);
2. ``expectations/defaults.yaml``: rules every silver suite carries (volume against history, timeliness
   against the declared 更新周期);
3. ``expectations/<layer>/<name>.yaml``: hand-written domain rules and severity overrides.

``govlake quality suites`` writes the merged suites to ``expectations/<layer>/<name>.json`` (checked in,
reviewed like code); the jobs compile them to SQL (each check type's own SQL, govlake/checks.py, through
jobs/conform/rules.py) so every row rule is evaluated in one engine pass. A suite file older than its sources is rebuilt in memory, so adding a dataset is adding files.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from govlake.checks import EXCEL_NUMBER, PHONE, PROVINCES  # noqa: F401  (re-exported: older imports, tests)
from govlake.checks import (KEYWORDS, SEVERITIES, BeNull, Between, CastableToType, Check, CompoundUnique,
                            ExistInDataset, InSet, MatchRegex, NotInFuture, NotNull, Unique, check_type)
from govlake.contracts import Contract, Field
from govlake.declarations import load_yaml
from govlake.errors import ConfigError, did_you_mean
from govlake.registry import Registry


@dataclass(frozen=True)
class Suite:
    name: str  # "<layer>.<table>"
    checks: tuple[Check, ...]
    digest: str  # of the sources it was built from

    def row_checks(self, severities: tuple[str, ...] = SEVERITIES) -> list[Check]:
        return [c for c in self.checks if c.scope == "row" and c.severity in severities]

    def batch_checks(self) -> list[Check]:
        return [c for c in self.checks if c.scope == "batch"]

    def twin_of(self, check: Check) -> str | None:
        """The error/warn rule testing exactly what a fatal rule tests (only ``mostly`` differs), if any:
        its per-batch count from the conform pass is the fatal rule's count, so nothing is evaluated twice."""
        same = {k: v for k, v in check.kwargs.items() if k != "mostly"}
        for c in self.row_checks(("error", "warn")):
            if c.type == check.type and {k: v for k, v in c.kwargs.items() if k != "mostly"} == same:
                return c.rule
        return None

    def check(self, rule: str) -> Check:
        for c in self.checks:
            if c.rule == rule:
                return c
        raise KeyError(rule)

    def to_gx_json(self) -> dict[str, Any]:
        """GX Core 1.x suite JSON (no ids, so the checked-in file is stable)."""
        return {
            "name": self.name,
            "expectations": [c.kind.gx_expectation(c) for c in self.checks],
            "meta": {"govlake": {"source_digest": self.digest, "generated_by": "govlake quality suites"}},
            "notes": "由 govlake quality suites 生成：契约规则 + expectations/defaults.yaml + 手写领域规则。请勿直接编辑本文件。",
        }


def suite_from_json(doc: dict[str, Any], where: str = "") -> Suite:
    checks = []
    for i, e in enumerate(doc.get("expectations", [])):
        meta = e.get("meta") or {}
        checks.append(_check(e["type"], dict(e.get("kwargs") or {}), meta.get("rule"), meta.get("severity", "error"),
                             meta.get("description", ""), f"{where} → expectations.{i}"))
    digest = ((doc.get("meta") or {}).get("govlake") or {}).get("source_digest", "")
    return Suite(doc["name"], tuple(checks), digest)


def _check(type_: str, kwargs: dict, rule: str | None, severity: str, description: str, where: str) -> Check:
    """A hand-written or stored expectation, refused unless its type is registered (govlake/checks.py), its
    kwargs fit the type's parameters and its severity and rule name are set."""
    check_type(type_, where).check_kwargs(kwargs, where)
    if severity not in SEVERITIES:
        raise ConfigError(f"未知的严重程度：{severity}", where=where, hint="只能是 error、warn 或 fatal")
    if not rule:
        raise ConfigError("期望缺少规则名（rule）", where=where, hint="例如 rule: uscc.cn_uscc")
    return Check(rule, type_, kwargs, severity, description)


# -- building from the contract --------------------------------------------------------------------------

TYPE_WORDS = {"date": "日期格式无法识别或日期不存在", "timestamp": "时间格式无法识别", "integer": "不是整数",
              "decimal": "不是规定位数的数值", "boolean": "不是 是/否 值"}


def contract_checks(c: Contract, reg: Registry) -> list[Check]:
    """The row rules a contract implies, in field order (all ``error``), plus fatal key audits."""
    out = [Check("row.ragged", BeNull.name, {"column": "_raw"}, "error",
                 "该行列数与表头不符（原文保存在 _raw）")]
    for f in c.fields:
        out += _field_checks(f, c, reg)
    for k in c.key:
        f = c.field(k)
        out.append(Check(f"{k}.required@batch", NotNull.name, {"column": k, "mostly": 0.5},
                         "fatal", f"过半数行的{f.title}为空：表头可能错位或漏列，整批暂不发布，请核对后重新交付"))
    return out


def _field_checks(f: Field, c: Contract, reg: Registry) -> list[Check]:
    n, label = f.name, f.title
    out: list[Check] = []
    if f.required or n in c.key:
        out.append(Check(f"{n}.required", NotNull.name, {"column": n}, "error", f"{label}不能为空"))
    if f.type != "string":
        kw = {"column": n, "type_": f.type} | ({"scale": f.scale} if f.type == "decimal" else {})
        out.append(Check(f"{n}.{f.type}", CastableToType.name, kw, "error", f"{label}{TYPE_WORDS[f.type]}"))
    if f.check:
        out += KEYWORDS[f.check].for_field(f, reg)  # the domain check's own expansion (govlake/checks.py)
    if f.codes:
        out.append(Check(f"{n}.codes", InSet.name,
                         {"column": n, "value_set": reg.code_list(f.codes).values}, "error", f"{label}不在代码表 {f.codes} 中"))
    if f.pattern:
        out.append(Check(f"{n}.pattern", MatchRegex.name, {"column": n, "regex": f.pattern}, "error",
                         f"{label}格式不符（应匹配 {f.pattern}）"))
    if f.min is not None or f.max is not None:
        kw = {"column": n} | ({"min_value": f.min} if f.min is not None else {}) | ({"max_value": f.max} if f.max is not None else {})
        out.append(Check(f"{n}.range", Between.name, kw, "error",
                         f"{label}超出合理范围 [{'' if f.min is None else f.min}, {'' if f.max is None else f.max}]"))
    if f.min_date:
        out.append(Check(f"{n}.too_early", Between.name, {"column": n, "min_value": f.min_date},
                         "error", f"{label}早于 {f.min_date}"))
    if f.not_future:
        out.append(Check(f"{n}.future", NotInFuture.name, {"column": n}, "error", f"{label}晚于今天"))
    return out


# -- the hand-written parts -------------------------------------------------------------------------------

def _overlay_checks(doc: dict, path: Path, base: list[Check]) -> list[Check]:
    """Apply a hand-written file: severity overrides for existing rules, then added expectations."""
    doc = doc or {}
    unknown = set(doc) - {"severity", "expectations", "description"}
    if unknown:
        raise ConfigError(f"无法识别的键：{sorted(unknown)}", where=str(path), hint="只允许 severity、expectations、description")
    by_rule = {c.rule: c for c in base}
    out = list(base)
    for rule, sev in (doc.get("severity") or {}).items():
        if rule not in by_rule:
            raise ConfigError(f"severity 覆盖了不存在的规则 {rule}", where=f"{path} → severity.{rule}",
                              hint=did_you_mean(rule, set(by_rule)) or "规则名形如 <字段>.<检查>")
        c = by_rule[rule]
        out[out.index(c)] = _check(c.type, c.kwargs, c.rule, sev, c.description, f"{path} → severity.{rule}")
    for i, e in enumerate(doc.get("expectations") or []):
        where = f"{path} → expectations.{i}"
        if not isinstance(e, dict) or "type" not in e:
            raise ConfigError("期望必须是含 type 的映射", where=where, hint="例如 {rule: x.y, type: expect_..., kwargs: {...}}")
        ck = _check(e["type"], dict(e.get("kwargs") or {}), e.get("rule"), e.get("severity", "error"),
                    e.get("description", ""), where)
        if ck.rule in {c.rule for c in out}:
            raise ConfigError(f"规则名重复：{ck.rule}", where=where, hint="每条规则的名字在套件内必须唯一")
        out.append(ck)
    return out


def _content_digest(checks: list[Check]) -> str:
    """A digest of what the suite checks (not of its source files), so editing a contract attribute that
    changes no rule (an alias, a grade) leaves the checked-in suite current."""
    doc = [[c.rule, c.type, c.kwargs, c.severity, c.description] for c in checks]
    return hashlib.sha256(json.dumps(doc, ensure_ascii=False, sort_keys=True, default=str).encode()).hexdigest()[:16]


def build_silver_suite(c: Contract, reg: Registry, expectations_dir: Path) -> Suite:
    defaults_path = expectations_dir / "defaults.yaml"
    overlay_path = expectations_dir / "silver" / f"{c.dataset}.yaml"
    checks = contract_checks(c, reg)
    defaults = (load_yaml(defaults_path) or {}) if defaults_path.exists() else {}
    checks = _overlay_checks({"expectations": defaults.get("silver") or []}, defaults_path, checks)
    if overlay_path.exists():
        checks = _overlay_checks(load_yaml(overlay_path), overlay_path, checks)
    _check_columns(checks, set(c.field_names) | {"_raw"}, overlay_path, reg)
    return Suite(f"silver.{c.dataset}", tuple(checks), _content_digest(checks))


def build_gold_suite(table: str, columns: list[str], key: list[str], expectations_dir: Path,
                     key_required: bool = True) -> Suite:
    """Gold suites: the table's key is unique (and present), plus the hand-written file's expectations."""
    path = expectations_dir / "gold" / f"{table}.yaml"
    checks = [Check(f"{k}.required", NotNull.name, {"column": k}, "error", f"{k} 不能为空")
              for k in key if key_required]
    if len(key) == 1:
        checks.append(Check(f"{key[0]}.unique", Unique.name, {"column": key[0]}, "error",
                            f"{key[0]} 必须唯一（每个主键一行）"))
    else:
        checks.append(Check("key.unique", CompoundUnique.name, {"column_list": list(key)}, "error",
                            f"主键（{'、'.join(key)}）组合必须唯一"))
    if path.exists():
        checks = _overlay_checks(load_yaml(path), path, checks)
    _check_columns(checks, set(columns), path, None)
    return Suite(f"gold.{table}", tuple(checks), _content_digest(checks))


def _check_columns(checks: list[Check], columns: set[str], path: Path, reg: Registry | None) -> None:
    for c in checks:
        for col in [c.kwargs.get(k) for k in ("column", "column_A", "column_B")] + list(c.kwargs.get("column_list", [])):
            if col is not None and col not in columns:
                raise ConfigError(f"规则 {c.rule} 引用了不存在的列 {col}", where=str(path),
                                  hint=did_you_mean(col, columns) or f"可用列：{', '.join(sorted(columns))}")
        if c.type == ExistInDataset.name and reg is not None:
            for ds in ExistInDataset.referenced(c):
                if ds not in reg.contracts:
                    raise ConfigError(f"规则 {c.rule} 引用了未知数据集 {ds}", where=str(path),
                                      hint=did_you_mean(ds, set(reg.contracts)) or "引用格式：<数据集>.<字段>")


# -- files ------------------------------------------------------------------------------------------------

def suite_path(expectations_dir: Path, name: str) -> Path:
    layer, table = name.split(".", 1)
    return expectations_dir / layer / f"{table}.json"


def write_suite(expectations_dir: Path, suite: Suite) -> Path:
    path = suite_path(expectations_dir, suite.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(suite.to_gx_json(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path


def load_suite_file(expectations_dir: Path, name: str) -> Suite | None:
    path = suite_path(expectations_dir, name)
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"套件文件不是有效的 JSON：{exc}", where=str(path), hint="运行 govlake quality suites 重新生成") from None
    return suite_from_json(doc, str(path))


def silver_suite(ctx, dataset: str) -> Suite:  # ctx: govlake.context.Context
    """The suite the jobs run: the checked-in file, or a fresh build when its sources changed since."""
    built = build_silver_suite(ctx.contract(dataset), ctx.registry, ctx.settings.expectations_dir)
    stored = load_suite_file(ctx.settings.expectations_dir, built.name)
    return stored if stored is not None and stored.digest == built.digest else built


def reference_graph(ctx, names: list[str]) -> dict[str, list[str]]:
    """Dataset -> the datasets its existence checks reference (they must be conformed first). Needs only the
    declarations (settings, registry, contracts), so the DAG files can use it at parse time."""
    graph: dict[str, list[str]] = {}
    for name in names:
        refs = {r for c in silver_suite(ctx, name).checks if c.type == ExistInDataset.name
                for r in ExistInDataset.referenced(c)}
        graph[name] = sorted(r for r in refs if r in names and r != name)  # sorted: the same order on every run
    return graph


def gold_tables(ctx) -> dict[str, tuple[list[str], list[str], bool]]:
    """Every gold table with a suite: name -> (columns, key, key columns required).

    The declarative models, plus the governance tables the jobs build (cross-check, scores, lineage), whose
    keys may hold NULLs (a dataset-level score has no node) and are only checked for uniqueness."""
    from govlake.models import load_models
    from govlake.tables import audited_gold

    out = {m.table: ([c.name for c in m.columns], list(m.key), True) for m in load_models(ctx.settings.schemas_dir).values()}
    out.update({t.name: (t.column_names, list(t.key), t.key_not_null) for t in audited_gold()})
    return dict(sorted(out.items()))


def gold_suite(ctx, table: str) -> Suite:
    columns, key, required = gold_tables(ctx)[table]
    built = build_gold_suite(table, columns, key, ctx.settings.expectations_dir, required)
    stored = load_suite_file(ctx.settings.expectations_dir, built.name)
    return stored if stored is not None and stored.digest == built.digest else built


def _builds(ctx) -> list[Suite]:
    exp = ctx.settings.expectations_dir
    out = [build_silver_suite(ctx.contract(d), ctx.registry, exp) for d in sorted(ctx.registry.contracts)]
    out += [build_gold_suite(t, cols, key, exp, req) for t, (cols, key, req) in gold_tables(ctx).items()]
    return out


def all_suites(ctx) -> list[Suite]:
    return [silver_suite(ctx, d) for d in sorted(ctx.registry.contracts)] + [gold_suite(ctx, t) for t in gold_tables(ctx)]


def stale_suites(ctx) -> list[str]:
    """Names of suites whose checked-in JSON is missing or differs from what its sources build."""
    out = []
    for b in _builds(ctx):
        stored = load_suite_file(ctx.settings.expectations_dir, b.name)
        if stored is None or stored.to_gx_json() != b.to_gx_json():
            out.append(b.name)
    return sorted(out)


def write_all(ctx) -> list[Path]:
    return [write_suite(ctx.settings.expectations_dir, b) for b in _builds(ctx)]
