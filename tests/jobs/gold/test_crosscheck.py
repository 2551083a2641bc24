"""多源校核 follows the delivery: after the first build, a delivery is compared only for the subjects it
names, and the conflicts and the per-pair counts come out as a comparison of everything would give them
(checked by running that comparison, ``full=True``, on the same lake)."""

from __future__ import annotations

import json
from pathlib import Path

from govlake.context import Context
from govlake.jobs.conform.silver import conform
from govlake.jobs.gold.crosscheck import crosscheck
from tests.jobs.quality.test_quality import deliver, hukou_row, migrant_row, person


def _rows(ctx: Context, table: str) -> list[tuple]:
    return sorted(tuple(str(v) for v in r.values()) for r in ctx.lake.read("gold", table).to_pylist())


def _mode(ctx: Context, table: str) -> str:
    return next(json.loads(h["govlake"])["mode"] for h in ctx.lake.table("gold", table).history() if h.get("govlake"))


def _run(ctx: Context, engine, full: bool = False) -> None:
    for ds in ("hukou_population", "migrant_population"):
        conform(ctx, engine, ds)
    crosscheck(ctx, engine, full=full)


def _gender_conflicts(ctx: Context) -> set[str]:
    return {r["subject_key"] for r in ctx.lake.read("gold", "source_conflicts").to_pylist() if r["item"] == "person.gender"}


def test_a_delivery_is_compared_for_its_subjects_only_and_gives_the_full_comparison(ctx, engine, tmp_path: Path) -> None:
    deliver(ctx, tmp_path, "hukou_population", "h1.csv", [hukou_row(i) for i in range(1, 31)])
    deliver(ctx, tmp_path, "migrant_population", "m1.csv",
            [migrant_row(i, id=person(i), gender="女" if i <= 5 else "男") for i in range(1, 11)]
            + [migrant_row(i) for i in range(100, 111)])
    _run(ctx, engine)
    assert _mode(ctx, "source_conflicts") == "full" and _mode(ctx, "crosscheck_summary") == "full"
    first = _gender_conflicts(ctx)
    assert len(first) == 5

    # person 1's migrant record now agrees, person 6's disagrees, person 20 is newly registered as a migrant with
    # another gender, and the hukou record of person 7 changes: four subjects compared again, nothing else
    deliver(ctx, tmp_path, "migrant_population", "m2.csv",
            [migrant_row(1, id=person(1), gender="男"), migrant_row(6, id=person(6), gender="女"),
             migrant_row(20, id=person(20), gender="女"), migrant_row(111)])
    deliver(ctx, tmp_path, "hukou_population", "h2.csv", [hukou_row(7, gender="女"), hukou_row(31)])
    _run(ctx, engine)
    assert _mode(ctx, "source_conflicts") == "incremental" and _mode(ctx, "crosscheck_summary") == "incremental"
    conflicts, summary = _rows(ctx, "source_conflicts"), _rows(ctx, "crosscheck_summary")
    now = _gender_conflicts(ctx)
    assert len(now) == 5 + 3 - 1 and len(now - first) == 3 and len(first - now) == 1

    crosscheck(ctx, engine, full=True)  # the whole comparison, on the same silver
    assert _mode(ctx, "source_conflicts") == "full"
    assert _rows(ctx, "source_conflicts") == conflicts
    assert _rows(ctx, "crosscheck_summary") == summary
    compared = {(r["item"], r["dataset_a"], r["dataset_b"]): r["compared"]
                for r in ctx.lake.read("gold", "crosscheck_summary").to_pylist()}
    assert compared[("person.gender", "hukou_population", "migrant_population")] == 11  # persons 1..10 and 20

    versions = [ctx.lake.table("gold", t).version() for t in ("source_conflicts", "crosscheck_summary")]
    crosscheck(ctx, engine)  # nothing new: nothing written
    assert [ctx.lake.table("gold", t).version() for t in ("source_conflicts", "crosscheck_summary")] == versions
