"""Check types: one class per expectation type, registered once.

A check type carries everything govlake knows about it, in one place (GX's own layout: one class per
expectation with one implementation per engine, ``column_values_in_set.py``):

- ``name``: the Great Expectations expectation type written to expectations/*.json;
- ``params``: the JSON Schema of its kwargs, so a hand-written rule with a misspelt parameter is refused;
- ``scope``: ``row`` (evaluated per row in the one conform pass) or ``batch`` (per delivery, from the ingest
  log, by jobs/quality/validate.py);
- ``fails``: the SQL that is TRUE when a row breaks it, built from the engine's Dialect primitives so each
  engine gets its own spelling; a class may add ``fails_<dialect name>`` where one engine needs other SQL;
- ``gx_expectation``: its GX expectation config, and ``gx`` (a GxSpec) when GX does not ship the type:
  govlake.gx then defines the GX classes from the spec and the class's Python ``row_ok``;
- ``keyword``: the word a contract field uses for it (``check: cn_ric``) and ``for_field``, the checks that
  word expands to. Presets (``gz_district``, ``phone``) are keyword-only classes over generic types.

Adding a check type is adding one decorated class here. The contract schema's ``check`` enum must list exactly
the registered keywords (tests/govlake/test_declarations.py holds them equal).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional

from jsonschema import Draft202012Validator
from stdnum.cn import ric, uscc

from govlake.contracts import Contract, Field
from govlake.declarations import describe, dotted
from govlake.errors import ConfigError, did_you_mean
from govlake.identifiers import (DATE_FORMATS, FALSE_WORDS, PROVINCES, RIC_CHECK, RIC_WEIGHTS, TRUE_WORDS,
                                 TS_FORMATS, USCC_ALPHABET, USCC_WEIGHTS)
from govlake.registry import Registry
from govlake.sqltext import sql_str

if TYPE_CHECKING:  # the engine is only named in hints: suites (and so the DAG files) import this module
    from govlake.engine.base import Dialect

SEVERITIES = ("error", "warn", "fatal")
GX_SEVERITY = {"error": "critical", "fatal": "critical", "warn": "warning"}
EXCEL_NUMBER = r"^[0-9](\.[0-9]+)?[eE][+]?[0-9]+$"
PHONE = r"^(1[3-9][0-9]{9}|0[0-9]{2,3}-?[0-9]{7,8})$"
RIC_FORMAT = PROVINCES + "[0-9]{15}[0-9X]"
USCC_FORMAT = "[0-9]{8}[0-9A-HJ-NPQRTUWXY]{10}"


@dataclass(frozen=True)
class Check:
    """One expectation of a suite as the jobs see it: a named rule of a registered check type."""

    rule: str
    type: str
    kwargs: dict[str, Any]
    severity: str
    description: str

    @property
    def kind(self) -> CheckType:
        return check_type(self.type)

    @property
    def column(self) -> str | None:
        return self.kwargs.get("column") or self.kwargs.get("column_A")

    @property
    def mostly(self) -> float:
        return float(self.kwargs.get("mostly", 1.0))

    @property
    def scope(self) -> str:
        """row: evaluated per row in the conform pass; batch: per delivery from the ingest log."""
        return self.kind.scope

    @property
    def audits_batch(self) -> bool:
        """Fatal row rules are counted per batch before anything is published."""
        return self.severity == "fatal" and self.scope == "row"


@dataclass(frozen=True)
class Operands:
    """How a check's SQL names a row's values. In the conform pass (``contract`` set) ``value(column, typed)``
    is the standardized text (``s__x``) or typed value (``t__x``) and ``pid`` pseudonymizes; on gold tables
    both are the column itself and there is no contract."""

    d: Dialect
    value: Callable[[str, bool], str]
    pid: Callable[[str], str] | None = None
    contract: Contract | None = None

    def text(self, column: str) -> str:
        return self.value(column, False)

    def typed(self, column: str) -> str:
        return self.value(column, True)

    def field(self, column: str | None) -> Field | None:
        if self.contract is None or not column or column == "_raw":
            return None
        return self.contract.field(column)

    def field_type(self, column: str | None) -> str | None:
        f = self.field(column)
        return f.type if f is not None else None


@dataclass(frozen=True)
class GxSpec:
    """A GX expectation GX does not ship, defined by govlake.gx from this spec.

    ``fields``: the expectation's own parameters as ``name -> (annotation, default)``, ``...`` for required;
    row types are column map expectations over ``metric`` judged by the class's ``row_ok``; batch types are
    judged by govlake from the ingest log, so GX can load, render and list them but not validate them."""

    doc: str
    metric: str | None = None
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    tags: tuple[str, ...] = ()


# -- the registry -------------------------------------------------------------------------------------------

EXPECTATIONS: dict[str, CheckType] = {}  # GX expectation type -> check type
KEYWORDS: dict[str, CheckType] = {}  # contract ``check:`` word -> check type or preset


def register(cls: type[CheckType]) -> type[CheckType]:
    """Class decorator: the one place a check type becomes known (by its GX type and/or contract keyword)."""
    inst = cls()
    for table, key in ((EXPECTATIONS, cls.name), (KEYWORDS, cls.keyword)):
        if key:
            if key in table:
                raise TypeError(f"check type {key} registered twice ({type(table[key]).__name__}, {cls.__name__})")
            table[key] = inst
    return cls


def check_type(name: str, where: str | None = None) -> CheckType:
    if name not in EXPECTATIONS:
        raise ConfigError(f"未知的期望类型：{name}", where=where,
                          hint=did_you_mean(name, set(EXPECTATIONS)) or f"可用类型：{', '.join(sorted(EXPECTATIONS))}")
    return EXPECTATIONS[name]


# -- the base classes ---------------------------------------------------------------------------------------

COLUMN = {"column": {"type": "string", "minLength": 1}}
MOSTLY = {"mostly": {"type": "number", "minimum": 0, "maximum": 1}}


class CheckType:
    """Base of every check type; see the module docstring for what a subclass declares."""

    name: ClassVar[str] = ""
    keyword: ClassVar[str | None] = None
    scope: ClassVar[str] = "row"
    params: ClassVar[dict[str, Any]] = COLUMN
    required: ClassVar[tuple[str, ...]] = ("column",)
    gx: ClassVar[GxSpec | None] = None  # None: GX ships the expectation

    # -- SQL ---------------------------------------------------------------------------------------------
    def sql(self, on: Operands, ck: Check) -> str | None:
        """SQL TRUE when a row fails ``ck`` (NULL values pass every check but not-null, as in GX): the
        engine's own override ``fails_<dialect>`` if the class has one, else the portable ``fails``."""
        own = getattr(self, f"fails_{on.d.name}", None)
        return (own or self.fails)(on, ck)

    def fails(self, on: Operands, ck: Check) -> str | None:
        raise ConfigError(f"期望类型 {self.name} 不能按行求值", hint="批次级规则由校验作业处理")

    def pass_columns(self, d: Dialect, ck: Check, text: str) -> list[tuple[str, str]]:
        """(expression, column) the conform pass computes once beside the typed values for this check."""
        return []

    # -- contract keyword --------------------------------------------------------------------------------
    def for_field(self, f: Field, reg: Registry) -> list[Check]:
        """The checks a contract field's ``check: <keyword>`` expands to."""
        return []

    # -- parameters --------------------------------------------------------------------------------------
    @classmethod
    def kwargs_schema(cls) -> dict[str, Any]:
        props = {**(MOSTLY if cls.scope == "row" else {}), **cls.params}
        return {"type": "object", "additionalProperties": False, "required": list(cls.required), "properties": props}

    def check_kwargs(self, kwargs: dict[str, Any], where: str) -> None:
        """Refuse kwargs the type does not take or of the wrong shape, naming the file and the parameter."""
        errors = sorted(_kwargs_validator(type(self)).iter_errors(kwargs), key=dotted)
        if errors:
            message, hint = describe(errors[0])
            raise ConfigError(f"期望 {self.name} 的参数无效：{message}", where=f"{where} → kwargs.{dotted(errors[0])}",
                              hint=hint or f"{self.name} 的参数：{', '.join(self.kwargs_schema()['properties'])}")

    # -- Great Expectations --------------------------------------------------------------------------------
    def gx_expectation(self, ck: Check) -> dict[str, Any]:
        """The expectation as GX Core 1.x suite JSON (no ids, so the checked-in file is stable)."""
        return {"type": ck.type, "kwargs": ck.kwargs, "severity": GX_SEVERITY[ck.severity],
                "meta": {"rule": ck.rule, "severity": ck.severity, "description": ck.description}}

    def row_ok(self, value: Any, **kwargs: Any) -> bool:
        """Python verdict for one non-NULL value (custom GX row types only): what the SQL means."""
        raise NotImplementedError(self.name)


@lru_cache(maxsize=None)
def _kwargs_validator(cls: type[CheckType]) -> Draft202012Validator:
    return Draft202012Validator(cls.kwargs_schema())


class Preset(CheckType):
    """A contract keyword that is a generic check type with fixed parameters (not a type of its own)."""

    rule: ClassVar[str]
    type: ClassVar[type[CheckType]]
    words: ClassVar[str]  # what is wrong, after the field's title

    def kwargs(self, f: Field, reg: Registry) -> dict[str, Any]:
        raise NotImplementedError

    def for_field(self, f: Field, reg: Registry) -> list[Check]:
        return [Check(f"{f.name}.{self.rule}", self.type.name, {"column": f.name, **self.kwargs(f, reg)}, "error",
                      f"{f.title}{self.words}")]


def excel_number(f: Field) -> Check:
    """Identifiers Excel turned into a float: the digits are gone, only a re-export can bring them back."""
    return Check(f"{f.name}.excel_number", NotMatchRegex.name, {"column": f.name, "regex": EXCEL_NUMBER}, "error",
                 f"{f.title}疑似被 Excel 转成了数值（科学计数法），原值已丢失，须从源系统重新导出")


# -- SQL helpers shared by several types and by the conform pass --------------------------------------------

def in_list(expr: str, values: list[str]) -> str:
    return f"{expr} IN ({', '.join(sql_str(v) for v in values)})"


def literal(value: object, typed_as: str | None) -> str:
    """A bound as SQL, typed like the field it is compared with."""
    if typed_as == "date":
        return f"DATE {sql_str(str(value))}"
    if typed_as == "timestamp":
        return f"TIMESTAMP {sql_str(str(value))}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    return sql_str(str(value))


def ri_view(check: Check) -> str:
    """The relation holding the referenced keys of an existence check (registered by the conform job)."""
    return "ri__" + "".join(ch if ch.isalnum() else "_" for ch in check.rule)


def ric_digits_column(column: str) -> str:
    """The conform pass computes, per GB 11643 field, its 17 leading digits as one integer column."""
    return f"n__{column}"


def ric_digits(d: Dialect, s: str) -> str:
    """The first 17 characters of a well-formed GB 11643 number as an integer, NULL when malformed.

    Kept as a column so the check reads digits with integer arithmetic on a column reference: DuckDB does
    not share subexpressions inside CASE or BETWEEN. Measured on 583k IDs, the check's share of the pass
    went from 0.51 s (a digit list, and the birth date parsed twice under BETWEEN) to 0.32 s.
    """
    return f"CASE WHEN {d.regex_full(s, RIC_FORMAT)} THEN {d.try_cast(f'substr({s}, 1, 17)', 'BIGINT')} END"


def ric_valid(d: Dialect, s: str, digits: str | None = None) -> str:
    """GB 11643: format (province prefix), a real birth date not in the future, and the check character.

    ``digits`` names the column holding ``ric_digits(s)`` where the conform pass computed it. Elsewhere
    (unit tests, suites without a contract) the expression is inlined: correct, only slower, since the
    engine then evaluates it once per reference.
    """
    digits = digits or f"({ric_digits(d, s)})"
    hi, lo = d.int_div(digits, "100000000"), f"({digits} % 100000000)"  # 9 + 8 digits
    total = f"{weighted_digits(d, hi, RIC_WEIGHTS[:9])} + {weighted_digits(d, lo, RIC_WEIGHTS[9:])}"
    birth = f"({d.int_div(digits, '1000')} % 100000000)"
    return (
        f"({digits} IS NOT NULL AND {birth} >= 19000101 AND {birth} <= {d.date_digits(d.current_date())} "
        f"AND {d.parse_date(f'substr({s}, 7, 8)', '%Y%m%d', digits=True)} IS NOT NULL "
        f"AND substr({sql_str(RIC_CHECK)}, CAST(({total}) % 11 AS INTEGER) + 1, 1) = substr({s}, 18, 1))"
    )


def weighted_digits(d: Dialect, x: str, weights: tuple[int, ...]) -> str:
    """Sum of digit * weight over the decimal digits of integer ``x`` (weights most significant first).

    Telescoped: with f_k = x // 10^k, digit_k = f_k - 10 f_(k+1), so the sum is sum_k f_k (w_k - 10 w_(k-1)),
    one integer division per digit instead of a division and a modulo.
    """
    wr = list(reversed(weights))  # wr[k]: weight of the digit worth 10^k
    terms = [f"{x} * {wr[0]}"]
    terms += [f"{d.int_div(x, str(10 ** k))} * ({wr[k] - 10 * wr[k - 1]})" for k in range(1, len(wr))]
    return "(" + " + ".join(terms) + ")"


def uscc_valid(d: Dialect, s: str) -> str:
    """GB 32100: 8 digits, then the 31-character alphabet, and the mod-31 check character."""
    alpha = sql_str(USCC_ALPHABET)
    total = " + ".join(f"(instr({alpha}, substr({s}, {i + 1}, 1)) - 1) * {w}" for i, w in enumerate(USCC_WEIGHTS))
    return (
        f"({d.regex_full(s, USCC_FORMAT)} "
        f"AND substr({alpha}, ((31 - (({total}) % 31)) % 31) + 1, 1) = substr({s}, 18, 1))"
    )


# -- Python verdicts (the GX side of the parity tests) ------------------------------------------------------

_RIC_RE = re.compile(f"^{RIC_FORMAT}$")


def cn_ric_ok(value: str, today: date | None = None) -> bool:
    """GB 11643 as the pipeline applies it: province prefix, a real birth date in [1900-01-01, today], check
    character (stdnum's own is_valid also checks the birth place against its county history table)."""
    v = str(value)
    if not _RIC_RE.match(v):
        return False
    try:
        born = ric.get_birth_date(v)
    except Exception:  # stdnum raises InvalidComponent for impossible dates
        return False
    return date(1900, 1, 1) <= born <= (today or date.today()) and ric.calc_check_digit(v) == v[17]


def cn_uscc_ok(value: str) -> bool:
    v = str(value)
    if not re.fullmatch(USCC_FORMAT, v):
        return False
    return uscc.calc_check_digit(v[:17]) == v[17]


def castable(value: str, type_: str, scale: int | None = None) -> bool:
    """Whether the standardized text types without guessing (mirrors CompiledContract.typed)."""
    v = str(value)
    if type_ == "integer":
        return re.fullmatch(r"[+-]?[0-9]{1,18}", v) is not None
    if type_ == "decimal":
        frac = rf"(\.[0-9]{{1,{scale}}})?" if scale else ""
        if not re.fullmatch(r"[+-]?[0-9]{1,14}" + frac, v):
            return False
        try:
            Decimal(v)
        except InvalidOperation:
            return False
        return True
    if type_ == "boolean":
        return v.upper() in (*TRUE_WORDS, *FALSE_WORDS)
    formats = ("%Y%m%d", *DATE_FORMATS) if type_ == "date" else TS_FORMATS
    if v.isdigit() and len(v) != 8:  # strptime reads 2015611 as %Y%m%d; the pipeline wants exactly 8 digits
        return False
    for fmt in formats:
        try:
            datetime.strptime(v, fmt)
            return v[:1].isdigit()
        except ValueError:
            continue
    return False


# -- the check types ----------------------------------------------------------------------------------------

@register
class NotNull(CheckType):
    name = "expect_column_values_to_not_be_null"

    def fails(self, on: Operands, ck: Check) -> str:
        # A ragged row (its values in _raw) did not lose the value: it is reported as ragged instead.
        return f"{on.text(ck.kwargs['column'])} IS NULL" + (" AND _raw IS NULL" if on.contract is not None else "")


@register
class BeNull(CheckType):
    name = "expect_column_values_to_be_null"

    def fails(self, on: Operands, ck: Check) -> str:
        return f"{on.text(ck.kwargs['column'])} IS NOT NULL"


@register
class CastableToType(CheckType):
    name = "expect_column_values_to_be_castable_to_type"
    params = {**COLUMN, "type_": {"enum": ["integer", "decimal", "date", "timestamp", "boolean"]},
              "scale": {"type": "integer", "minimum": 0}}
    required = ("column", "type_")
    gx = GxSpec("Delivered text can be typed as the contract's type without guessing (no silent coercion).",
                "column_values.castable_to_type", {"type_": (str, ...), "scale": (Optional[int], None)})

    def fails(self, on: Operands, ck: Check) -> str:
        col = ck.kwargs["column"]
        return f"{on.text(col)} IS NOT NULL AND {on.typed(col)} IS NULL"

    def row_ok(self, value: Any, type_: str = "string", scale: int | None = None, **_: Any) -> bool:
        return castable(value, type_, scale)


@register
class MatchRegex(CheckType):
    name = "expect_column_values_to_match_regex"
    params = {**COLUMN, "regex": {"type": "string", "minLength": 1}}
    required = ("column", "regex")

    def fails(self, on: Operands, ck: Check) -> str:
        s = on.text(ck.kwargs["column"])
        return f"{s} IS NOT NULL AND NOT {on.d.regex_search(s, ck.kwargs['regex'])}"


@register
class NotMatchRegex(CheckType):
    name = "expect_column_values_to_not_match_regex"
    params = MatchRegex.params
    required = MatchRegex.required

    def fails(self, on: Operands, ck: Check) -> str:
        s, regex = on.text(ck.kwargs["column"]), ck.kwargs["regex"]
        # Cheap prefilter for the Excel-number pattern: a value without an exponent letter cannot match.
        guard = f"({s} LIKE '%E%' OR {s} LIKE '%e%') AND " if regex == EXCEL_NUMBER else ""
        return f"{s} IS NOT NULL AND {guard}{on.d.regex_search(s, regex)}"


@register
class InSet(CheckType):
    name = "expect_column_values_to_be_in_set"
    params = {**COLUMN, "value_set": {"type": "array", "minItems": 1}}
    required = ("column", "value_set")

    def fails(self, on: Operands, ck: Check) -> str:
        s = on.text(ck.kwargs["column"])
        return f"{s} IS NOT NULL AND NOT {in_list(s, [str(x) for x in ck.kwargs['value_set']])}"


@register
class ValidCnRic(CheckType):
    name = "expect_column_values_to_be_valid_cn_ric"
    keyword = "cn_ric"
    gx = GxSpec("Values are valid GB 11643 citizen identity numbers (公民身份号码).", "column_values.cn_ric",
                tags=("GB 11643",))

    def fails(self, on: Operands, ck: Check) -> str:
        col = ck.kwargs["column"]
        digits = ric_digits_column(col) if on.contract is not None else None  # the conform pass computes it
        s = on.text(col)
        return f"{s} IS NOT NULL AND NOT {ric_valid(on.d, s, digits)}"

    def pass_columns(self, d: Dialect, ck: Check, text: str) -> list[tuple[str, str]]:
        return [(ric_digits(d, text), ric_digits_column(ck.kwargs["column"]))]

    def for_field(self, f: Field, reg: Registry) -> list[Check]:
        return [excel_number(f), Check(f"{f.name}.cn_ric", self.name, {"column": f.name}, "error",
                                       f"{f.title}不符合 GB 11643（格式、出生日期或校验码错误）")]

    def row_ok(self, value: Any, **_: Any) -> bool:
        return cn_ric_ok(value)


@register
class ValidCnUscc(CheckType):
    name = "expect_column_values_to_be_valid_cn_uscc"
    keyword = "cn_uscc"
    gx = GxSpec("Values are valid GB 32100 unified social credit codes (统一社会信用代码).", "column_values.cn_uscc",
                tags=("GB 32100",))

    def fails(self, on: Operands, ck: Check) -> str:
        s = on.text(ck.kwargs["column"])
        return f"{s} IS NOT NULL AND NOT {uscc_valid(on.d, s)}"

    def for_field(self, f: Field, reg: Registry) -> list[Check]:
        return [excel_number(f), Check(f"{f.name}.cn_uscc", self.name, {"column": f.name}, "error",
                                       f"{f.title}不符合 GB 32100（字符集或校验码错误）")]

    def row_ok(self, value: Any, **_: Any) -> bool:
        return cn_uscc_ok(value)


@register
class Between(CheckType):
    name = "expect_column_values_to_be_between"
    bound = {"type": ["number", "string"]}
    params = {**COLUMN, "min_value": bound, "max_value": bound, "strict_min": {"type": "boolean"},
              "strict_max": {"type": "boolean"}}

    def fails(self, on: Operands, ck: Check) -> str | None:
        kw, col = ck.kwargs, ck.kwargs["column"]
        v, typed_as = on.typed(col), on.field_type(col)
        conds = []
        if kw.get("min_value") is not None:
            conds.append(f"{v} {'<=' if kw.get('strict_min') else '<'} {literal(kw['min_value'], typed_as)}")
        if kw.get("max_value") is not None:
            conds.append(f"{v} {'>=' if kw.get('strict_max') else '>'} {literal(kw['max_value'], typed_as)}")
        return f"coalesce({' OR '.join(conds)}, FALSE)" if conds else None


@register
class NotInFuture(CheckType):
    name = "expect_column_values_to_not_be_in_future"
    gx = GxSpec("Dates are not later than today (in the city's calendar).", "column_values.not_in_future")

    def fails(self, on: Operands, ck: Check) -> str:
        col = ck.kwargs["column"]
        now = "current_timestamp" if on.field_type(col) == "timestamp" else on.d.current_date()
        return f"coalesce({on.typed(col)} > {now}, FALSE)"

    def row_ok(self, value: Any, **_: Any) -> bool:
        now = datetime.now()
        return value <= now.date() if isinstance(value, date) and not isinstance(value, datetime) else value <= now


@register
class PairGreater(CheckType):
    name = "expect_column_pair_values_a_to_be_greater_than_b"
    params = {"column_A": COLUMN["column"], "column_B": COLUMN["column"], "or_equal": {"type": "boolean"}}
    required = ("column_A", "column_B")

    def fails(self, on: Operands, ck: Check) -> str:
        a, b = on.typed(ck.kwargs["column_A"]), on.typed(ck.kwargs["column_B"])
        return f"coalesce({a} {'<' if ck.kwargs.get('or_equal') else '<='} {b}, FALSE)"


@register
class ExistInDataset(CheckType):
    name = "expect_column_values_to_exist_in_dataset"
    params = {**COLUMN, "datasets": {"type": "array", "minItems": 1,
                                     "items": {"type": "string", "pattern": r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$"}},
              "reference_values": {"type": "array"}}
    required = ("column", "datasets")
    gx = GxSpec("Referential integrity: each value exists as a key of one of the referenced silver datasets "
                "(``<dataset>.<field>``; pseudonymized keys are compared as pseudonyms).",
                "column_values.exist_in_dataset",
                {"datasets": (list[str], ...), "reference_values": (Optional[list], None)},
                tags=("referential integrity",))

    def fails(self, on: Operands, ck: Check) -> str:
        col = ck.kwargs["column"]
        s, f = on.text(col), on.field(col)
        probe = on.pid(s) if f is not None and f.hidden and on.pid is not None else s
        return f"{s} IS NOT NULL AND {probe} NOT IN (SELECT v FROM {ri_view(ck)})"

    def row_ok(self, value: Any, reference_values: list | None = None, **_: Any) -> bool:
        # The engine evaluates this against the referenced silver tables; GX can check it given the keys.
        return value in set(reference_values or [])

    @staticmethod
    def referenced(ck: Check) -> list[str]:
        """The datasets whose keys the check reads (they are conformed first)."""
        return [r.split(".")[0] for r in ck.kwargs.get("datasets", [])]


@register
class Unique(CheckType):
    name = "expect_column_values_to_be_unique"

    def fails(self, on: Operands, ck: Check) -> str:
        s = on.text(ck.kwargs["column"])
        return f"{s} IS NOT NULL AND count(*) OVER (PARTITION BY {s}) > 1"


@register
class CompoundUnique(CheckType):
    name = "expect_compound_columns_to_be_unique"
    params = {"column_list": {"type": "array", "minItems": 1, "items": COLUMN["column"]}}
    required = ("column_list",)

    def fails(self, on: Operands, ck: Check) -> str:
        return f"count(*) OVER (PARTITION BY {', '.join(on.text(c) for c in ck.kwargs['column_list'])}) > 1"


@register
class RowCountConsistentWithHistory(CheckType):
    name = "expect_table_row_count_to_be_consistent_with_history"
    scope = "batch"
    params = {"window": {"type": "integer", "minimum": 1}, "min_history": {"type": "integer", "minimum": 1},
              "min_ratio": {"type": "number", "minimum": 0}, "max_ratio": {"type": "number", "minimum": 0}}
    required = ()
    gx = GxSpec("A delivery's row count is within [min_ratio, max_ratio] × the median of the node's last ``window`` "
                "deliveries (volume anomaly). Judged by govlake from the ingest log, not from the rows.",
                fields={"window": (int, 5), "min_history": (int, 2), "min_ratio": (float, 0.05),
                        "max_ratio": (float, 20.0)}, tags=("volume",))


@register
class DeliveryTimely(CheckType):
    name = "expect_delivery_to_be_timely"
    scope = "batch"
    params = {"max_cycles": {"type": "number", "exclusiveMinimum": 0}, "grace_days": {"type": "number", "minimum": 0}}
    required = ()
    gx = GxSpec("A delivery comes within ``max_cycles`` × the declared 更新周期 (+ ``grace_days``) of the previous "
                "one. Judged by govlake from the ingest log's delivery dates.",
                fields={"max_cycles": (float, 2), "grace_days": (float, 1)}, tags=("timeliness",))


# -- contract keywords that are presets of generic types ----------------------------------------------------

@register
class GzDistrict(Preset):
    """The field holds a district of the city the registry serves (nodes.yaml ``city``). The keyword and rule
    name keep their first city's prefix: they are stored in validation results and quarantine rows."""

    keyword = "gz_district"
    rule, type, words = "gz_district", InSet, "不是{city}的区级行政区划代码（GB/T 2260）"

    def kwargs(self, f: Field, reg: Registry) -> dict[str, Any]:
        return {"value_set": reg.district_codes.values}  # the city's districts (nodes.yaml city.districts)

    def for_field(self, f: Field, reg: Registry) -> list[Check]:
        words = self.words.format(city=reg.city.name if reg.city else "本市")
        return [replace(c, description=f"{f.title}{words}") for c in super().for_field(f, reg)]


@register
class Gb2260(Preset):
    keyword = "gb2260"
    rule, type, words = "gb2260", MatchRegex, "不是有效的 GB/T 2260 行政区划代码"

    def kwargs(self, f: Field, reg: Registry) -> dict[str, Any]:
        return {"regex": f"^{PROVINCES}[0-9]{{4}}$"}


@register
class Phone(Preset):
    keyword = "phone"
    rule, type, words = "phone", MatchRegex, "不是有效的电话号码"

    def kwargs(self, f: Field, reg: Registry) -> dict[str, Any]:
        return {"regex": PHONE}
