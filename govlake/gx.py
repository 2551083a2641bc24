"""govlake's custom Great Expectations (GX Core 1.x) expectation types, defined from the check registry.

Importing this module registers with GX every check type of govlake.checks that GX does not ship (those with
a ``gx`` spec), so the suites in expectations/ load as GX suites, render in Data Docs, and (for the row types)
can be validated by GX itself on pandas data. That last point is how the tests prove that the SQL the engine
runs means what the GX expectation says: both verdicts are computed on the same rows and compared. The row
types' Python verdicts (``row_ok``) live with their SQL in govlake/checks.py, so nothing here names a type.

Only the quality tooling imports this (GX is the ``quality`` extra); the pipeline reads suites as JSON.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from great_expectations.compatibility import pydantic
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import BatchExpectation, ColumnMapExpectation
from great_expectations.expectations.metrics import ColumnMapMetricProvider, column_condition_partial

from govlake.checks import EXPECTATIONS, CheckType, castable, cn_ric_ok, cn_uscc_ok

JUDGED_BY_GOVLAKE = "该期望依赖历次交付记录，由 govlake 的批次审核（jobs/quality/validate.py）依据 meta.ingest_batches 判定"


def class_name(expectation_type: str) -> str:
    """GX registers an expectation class under the snake case of its name: expect_x_y -> ExpectXY."""
    return "".join(part.capitalize() for part in expectation_type.split("_"))


def _metadata(ct: CheckType) -> dict[str, Any]:
    return {"tags": ["govlake", *ct.gx.tags], "contributors": ["govlake"]}


def _fields(ct: CheckType) -> dict[str, Any]:
    """The expectation's pydantic fields: annotations, and defaults where the spec gives one."""
    spec = ct.gx.fields
    ns: dict[str, Any] = {"__annotations__": {k: ann for k, (ann, _) in spec.items()}}
    ns.update({k: default for k, (_, default) in spec.items() if default is not ...})
    return ns


def _row_expectation(ct: CheckType) -> type:
    """A column map metric judged by ``ct.row_ok`` and the ColumnMapExpectation over it."""
    keys = tuple(ct.gx.fields)

    def _pandas(cls: type, column: pd.Series, **kwargs: Any) -> pd.Series:
        params = {k: kwargs.get(k) for k in keys}
        return column.map(lambda v: ct.row_ok(v, **params))

    name = class_name(ct.name)
    type(f"{name}Metric", (ColumnMapMetricProvider,), {
        "__module__": __name__, "condition_metric_name": ct.gx.metric, "condition_value_keys": keys,
        "_pandas": column_condition_partial(engine=PandasExecutionEngine)(_pandas),
    })
    return type(name, (ColumnMapExpectation,), {
        "__module__": __name__, "__doc__": ct.gx.doc, **_fields(ct), "map_metric": ct.gx.metric,
        "success_keys": (*keys, "mostly"), "library_metadata": _metadata(ct),
    })


def _batch_expectation(ct: CheckType) -> type:
    """A BatchExpectation GX can load and render; govlake judges it from the ingest log."""

    def _validate(self: Any, metrics: dict, runtime_configuration: dict | None = None,
                  execution_engine: Any = None) -> dict:
        raise NotImplementedError(JUDGED_BY_GOVLAKE)

    return type(class_name(ct.name), (BatchExpectation,), {
        "__module__": __name__, "__doc__": ct.gx.doc, **_fields(ct), "metric_dependencies": ("table.row_count",),
        "success_keys": tuple(ct.gx.fields), "library_metadata": _metadata(ct), "_validate": _validate,
    })


def _define_all() -> dict[str, type]:
    out = {}
    for ct in EXPECTATIONS.values():
        if ct.gx is not None:
            cls = _row_expectation(ct) if ct.scope == "row" else _batch_expectation(ct)
            out[cls.__name__] = cls
    return out


CUSTOM: dict[str, type] = _define_all()
globals().update(CUSTOM)  # ExpectColumnValuesToBeValidCnRic & co. stay importable from here


def gx_suite(doc: dict):
    """A GX ExpectationSuite from govlake's suite JSON (custom types registered by this module)."""
    import great_expectations as gx

    return gx.ExpectationSuite(**{k: v for k, v in doc.items() if k in ("name", "expectations", "meta", "notes")})


__all__ = ["CUSTOM", "castable", "class_name", "cn_ric_ok", "cn_uscc_ok", "gx_suite", "pydantic"]
