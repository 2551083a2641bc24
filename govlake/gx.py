"""govlake's custom Great Expectations (GX Core 1.x) expectation types.

Importing this module registers them with GX, so the suites in expectations/ load as GX suites, render in
Data Docs, and (for the row types) can be validated by GX itself on pandas data. That last point is how the
tests prove that the SQL the engine runs (jobs/conform/rules.py) means what the GX expectation says: both verdicts
are computed on the same rows and compared. The Python checks use python-stdnum and the standard library.

Only the quality tooling imports this (GX is the ``quality`` extra); the pipeline reads suites as JSON.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Optional

import pandas as pd
from great_expectations.compatibility import pydantic
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import BatchExpectation, ColumnMapExpectation
from great_expectations.expectations.metrics import ColumnMapMetricProvider, column_condition_partial
from stdnum.cn import ric, uscc

PROVINCE = re.compile(r"^(1[1-5]|2[1-3]|3[1-7]|4[1-6]|5[0-4]|6[1-5]|71|8[1-3])[0-9]{15}[0-9X]$")
DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "%Y年%m月%d日", "%Y.%m.%d", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S")
TS_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M",
              "%Y年%m月%d日 %H:%M:%S", "%Y年%m月%d日 %H时%M分%S秒")


JUDGED_BY_GOVLAKE = "该期望依赖历次交付记录，由 govlake 的批次审核（jobs/quality/validate.py）依据 meta.ingest_batches 判定"


def cn_ric_ok(value: str, today: date | None = None) -> bool:
    """GB 11643 as the pipeline applies it: province prefix, a real birth date in [1900-01-01, today], check
    character (stdnum's own is_valid also checks the birth place against its county history table)."""
    v = str(value)
    if not PROVINCE.match(v):
        return False
    try:
        born = ric.get_birth_date(v)
    except Exception:  # stdnum raises InvalidComponent for impossible dates
        return False
    return date(1900, 1, 1) <= born <= (today or date.today()) and ric.calc_check_digit(v) == v[17]


def cn_uscc_ok(value: str) -> bool:
    v = str(value)
    if not re.fullmatch(r"[0-9]{8}[0-9A-HJ-NPQRTUWXY]{10}", v):
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
        return v.upper() in ("是", "Y", "YES", "TRUE", "T", "1", "有", "否", "N", "NO", "FALSE", "F", "0", "无")
    formats = DATE_FORMATS if type_ == "date" else TS_FORMATS
    if v.isdigit() and len(v) != 8:  # strptime reads 2015611 as %Y%m%d; the pipeline wants exactly 8 digits
        return False
    for fmt in formats:
        try:
            datetime.strptime(v, fmt)
            return v[:1].isdigit()
        except ValueError:
            continue
    return False


class ColumnValuesCnRic(ColumnMapMetricProvider):
    condition_metric_name = "column_values.cn_ric"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs: Any) -> pd.Series:
        return column.map(cn_ric_ok)


class ExpectColumnValuesToBeValidCnRic(ColumnMapExpectation):
    """Values are valid GB 11643 citizen identity numbers (公民身份号码)."""

    map_metric = "column_values.cn_ric"
    success_keys = ("mostly",)
    library_metadata: ClassVar[dict] = {"tags": ["govlake", "GB 11643"], "contributors": ["govlake"]}


class ColumnValuesCnUscc(ColumnMapMetricProvider):
    condition_metric_name = "column_values.cn_uscc"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs: Any) -> pd.Series:
        return column.map(cn_uscc_ok)


class ExpectColumnValuesToBeValidCnUscc(ColumnMapExpectation):
    """Values are valid GB 32100 unified social credit codes (统一社会信用代码)."""

    map_metric = "column_values.cn_uscc"
    success_keys = ("mostly",)
    library_metadata: ClassVar[dict] = {"tags": ["govlake", "GB 32100"], "contributors": ["govlake"]}


class ColumnValuesCastable(ColumnMapMetricProvider):
    condition_metric_name = "column_values.castable_to_type"
    condition_value_keys = ("type_", "scale")

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, type_: str, scale: int | None = None, **kwargs: Any) -> pd.Series:
        return column.map(lambda v: castable(v, type_, scale))


class ExpectColumnValuesToBeCastableToType(ColumnMapExpectation):
    """Delivered text can be typed as the contract's type without guessing (no silent coercion)."""

    type_: str
    scale: Optional[int] = None
    map_metric = "column_values.castable_to_type"
    success_keys = ("type_", "scale", "mostly")
    library_metadata: ClassVar[dict] = {"tags": ["govlake"], "contributors": ["govlake"]}


class ColumnValuesNotInFuture(ColumnMapMetricProvider):
    condition_metric_name = "column_values.not_in_future"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs: Any) -> pd.Series:
        now = datetime.now()
        return column.map(lambda v: (v <= now.date()) if isinstance(v, date) and not isinstance(v, datetime) else v <= now)


class ExpectColumnValuesToNotBeInFuture(ColumnMapExpectation):
    """Dates are not later than today (in the city's calendar)."""

    map_metric = "column_values.not_in_future"
    success_keys = ("mostly",)
    library_metadata: ClassVar[dict] = {"tags": ["govlake"], "contributors": ["govlake"]}


class ColumnValuesExistInDataset(ColumnMapMetricProvider):
    condition_metric_name = "column_values.exist_in_dataset"
    condition_value_keys = ("datasets", "reference_values")

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, datasets: list[str], reference_values: list | None = None,
                **kwargs: Any) -> pd.Series:
        # The engine evaluates this against the referenced silver tables; GX can check it given the keys.
        return column.isin(set(reference_values or []))


class ExpectColumnValuesToExistInDataset(ColumnMapExpectation):
    """Referential integrity: each value exists as a key of one of the referenced silver datasets
    (``<dataset>.<field>``; pseudonymized keys are compared as pseudonyms)."""

    datasets: list[str]
    reference_values: Optional[list] = None
    map_metric = "column_values.exist_in_dataset"
    success_keys = ("datasets", "reference_values", "mostly")
    library_metadata: ClassVar[dict] = {"tags": ["govlake", "referential integrity"], "contributors": ["govlake"]}


class ExpectTableRowCountToBeConsistentWithHistory(BatchExpectation):
    """A delivery's row count is within [min_ratio, max_ratio] × the median of the node's last ``window``
    deliveries (volume anomaly). Judged by govlake from the ingest log, not from the rows."""

    window: int = 5
    min_history: int = 2
    min_ratio: float = 0.05
    max_ratio: float = 20.0
    metric_dependencies = ("table.row_count",)
    success_keys = ("window", "min_history", "min_ratio", "max_ratio")
    library_metadata: ClassVar[dict] = {"tags": ["govlake", "volume"], "contributors": ["govlake"]}

    def _validate(self, metrics: dict, runtime_configuration: dict | None = None, execution_engine: Any = None) -> dict:
        raise NotImplementedError(JUDGED_BY_GOVLAKE)


class ExpectDeliveryToBeTimely(BatchExpectation):
    """A delivery comes within ``max_cycles`` × the declared 更新周期 (+ ``grace_days``) of the previous one.
    Judged by govlake from the ingest log's delivery dates."""

    max_cycles: float = 2
    grace_days: float = 1
    metric_dependencies = ("table.row_count",)
    success_keys = ("max_cycles", "grace_days")
    library_metadata: ClassVar[dict] = {"tags": ["govlake", "timeliness"], "contributors": ["govlake"]}

    def _validate(self, metrics: dict, runtime_configuration: dict | None = None, execution_engine: Any = None) -> dict:
        raise NotImplementedError(JUDGED_BY_GOVLAKE)


def gx_suite(doc: dict):
    """A GX ExpectationSuite from govlake's suite JSON (custom types registered by this module)."""
    import great_expectations as gx

    return gx.ExpectationSuite(**{k: v for k, v in doc.items() if k in ("name", "expectations", "meta", "notes")})


__all__ = ["cn_ric_ok", "cn_uscc_ok", "castable", "gx_suite", "pydantic"]
