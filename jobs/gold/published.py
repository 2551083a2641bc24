"""What every gold build shares, whichever way it maintains its table: the result it reports, the build
record it leaves in the commit (source versions, and what an incremental build needs next time), and the
audit of a candidate against the table's suite before anything is published (write, audit, publish)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from govlake.context import Context
from govlake.engine.base import Engine
from govlake.jobs.conform.rules import compile_check
from govlake.jobs.quality.suites import Suite
from govlake.jobs.quality.validate import Outcome
from govlake.status import GoldStatus


@dataclass
class GoldResult:
    table: str
    status: GoldStatus
    rows: int = 0
    message: str = ""


def last_build(ctx: Context, table: str) -> dict | None:
    dt = ctx.lake.table("gold", table)
    if dt is None:
        return None
    for entry in dt.history(5):
        meta = entry.get("govlake")
        if meta:
            return json.loads(meta) if isinstance(meta, str) else meta
    return None


def new_batches(ctx: Context, table: str, prior: dict | None, versions: dict[str, int]) -> dict[str, list[str]] | None:
    """Per source, the conform batches its commits after the versions ``prior`` (gold.<table>'s build
    record) names brought, up to ``versions``; ``None`` when only a full build can say what changed: no
    earlier build or no such table, a source new to the build or older than recorded, or a commit that is
    not a conform batch (a compaction, a release, a manual write)."""
    if not prior or "sources" not in prior or not ctx.lake.exists("gold", table):
        return None
    out: dict[str, list[str]] = {}
    for ref, now in versions.items():
        before = prior["sources"].get(ref)
        if before is None or before > now:
            return None
        found: list[str] = []
        seen = 0
        for entry in ctx.lake.table(*ref.split(".", 1)).history(now - before) if now > before else []:
            if entry.get("version", -1) <= before:
                continue
            meta = entry.get("govlake")
            meta = json.loads(meta) if isinstance(meta, str) else meta
            if not meta or meta.get("job") != "conform" or "batches" not in meta:
                return None
            found += meta["batches"]
            seen += 1
        if seen != now - before:
            return None
        out[ref] = found
    return out


def validate_table(engine: Engine, suite: Suite, relation: str) -> list[Outcome]:
    """Every row expectation of a gold suite in one aggregate query over the built table."""
    checks = suite.row_checks()
    if not checks:
        return []
    d = engine.dialect
    flags = ", ".join(f"CASE WHEN {compile_check(d, c, lambda col, typed: d.ident(col), None, None, None)} "
                      f"THEN 1 ELSE 0 END AS f{i}" for i, c in enumerate(checks))
    sums = ", ".join(f"CAST(coalesce(sum(f{i}), 0) AS BIGINT) AS f{i}" for i in range(len(checks)))
    row = engine.fetch(f"SELECT count(*) AS n, {sums} FROM (SELECT {flags} FROM {relation}) v").to_pylist()[0]
    return [Outcome(c, row["n"], row[f"f{i}"]) for i, c in enumerate(checks)]
