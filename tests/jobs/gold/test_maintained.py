"""Keyed gold models maintained from what changed: the suppression decisions from group counts equal the
windowed SQL they replace, an update that keeps every decision is upserted for its keys only, and one that
flips a decision recomputes the group's other members too; every way gives the table a full build gives."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pyarrow as pa

from govlake.context import Context
from govlake.jobs.conform.silver import conform
from govlake.jobs.gold.maintained import decisions
from govlake.jobs.gold.models import integrate
from govlake.models import Anonymize
from tests.jobs.quality.test_quality import deliver, hukou_row, migrant_row, person

SPEC = Anonymize(k=5, groups=("d", "t"), suppress=("decade", "g"))
WINDOWED = """
WITH a AS (SELECT *, count(*) OVER (PARTITION BY d, t, g, decade) AS n1 FROM r),
     b AS (SELECT *, CASE WHEN n1 >= 5 THEN decade END AS decade2 FROM a),
     c AS (SELECT *, count(*) OVER (PARTITION BY d, t, g, decade2) AS n2 FROM b)
SELECT id, decade2 AS decade, CASE WHEN n2 >= 5 THEN g END AS g FROM c
"""


def test_decisions_equal_the_windowed_sql(engine) -> None:
    rng = random.Random(7)
    rows = [{"id": i, "d": rng.choice("AB"), "t": rng.choice("xy"), "g": rng.choice(["1", "2", None]),
             "decade": rng.choice([1950, 1960, 1970, 1980, None])} for i in range(400)]
    engine.register_arrow("r", pa.Table.from_pylist(rows))
    expected = {r["id"]: (r["decade"], r["g"]) for r in engine.fetch(WINDOWED).to_pylist()}
    engine.drop("r")
    counts: dict[tuple, int] = {}
    for r in rows:
        t = (r["d"], r["t"], r["decade"], r["g"])
        counts[t] = counts.get(t, 0) + 1
    shown = decisions(SPEC, counts)
    got = {}
    for r in rows:
        keep_decade, keep_g = shown[(r["d"], r["t"], r["decade"], r["g"])]
        got[r["id"]] = (r["decade"] if keep_decade else None, r["g"] if keep_g else None)
    assert got == expected
    assert any(v[0] is None for v in got.values()) and any(v[0] is not None for v in got.values())


def _population(ctx: Context) -> list[tuple]:
    return sorted(tuple(str(v) for v in r.values()) for r in ctx.lake.read("gold", "population").to_pylist())


def _modes(ctx: Context) -> list[str]:
    return [json.loads(h["govlake"])["mode"] for h in ctx.lake.table("gold", "population").history() if h.get("govlake")]


def _build(ctx: Context, engine) -> None:
    for ds in ("hukou_population", "migrant_population"):
        conform(ctx, engine, ds)
    integrate(ctx, engine, ["population"])


def _fresh(ctx: Context, tmp_path: Path, name: str) -> list[tuple]:
    """The same bronze, conformed and built at once in a fresh lake."""
    root = tmp_path / name
    shutil.copytree(Path(ctx.settings.lake_root) / "bronze", root / "bronze")
    shutil.copytree(Path(ctx.settings.lake_root) / "meta" / "ingest_batches", root / "meta" / "ingest_batches")
    other = Context.from_env(str(root))
    with other.engine("duckdb") as engine:
        _build(other, engine)
    return _population(other)


def test_updates_are_upserted_and_a_flipped_group_is_recomputed(ctx, engine, tmp_path: Path) -> None:
    big = [hukou_row(i) for i in range(1, 41)]  # one group of 40 (天河, 户籍, 1990s, 男)
    deliver(ctx, tmp_path, "hukou_population", "h1.csv", big + [hukou_row(900, id=person(900, "19500101"), birth="1950-01-01")])  # a group of 1
    deliver(ctx, tmp_path, "migrant_population", "m1.csv", [migrant_row(i) for i in range(100, 120)])
    _build(ctx, engine)
    assert _modes(ctx) == ["full"]
    one = {r["person_pid"]: r for r in ctx.lake.read("gold", "population").to_pylist()}
    assert sum(1 for r in one.values() if r["birth_decade"] is None) == 1  # the 1950s person is suppressed

    # an update and a new member of the big group: every decision stays, so only those two keys are upserted
    deliver(ctx, tmp_path, "hukou_population", "h2.csv",
            [hukou_row(3, address="广州市天河区新地址9号"), hukou_row(41)])
    _build(ctx, engine)
    assert _modes(ctx)[0] == "incremental"
    assert _population(ctx) == _fresh(ctx, tmp_path, "fresh2")

    # four more 1950s persons: the group of 1 reaches 5, so its first member's row changes too (recomputed)
    deliver(ctx, tmp_path, "hukou_population", "h3.csv", [hukou_row(i, id=person(i, "19510202"), birth="1951-02-02")
                                                         for i in range(901, 905)])
    _build(ctx, engine)
    assert _modes(ctx)[0] == "incremental"
    now = {r["person_pid"]: r for r in ctx.lake.read("gold", "population").to_pylist()}
    assert sum(1 for r in now.values() if r["birth_decade"] == 1950) == 5
    assert _population(ctx) == _fresh(ctx, tmp_path, "fresh3")
    assert person(900) not in json.dumps(_population(ctx), ensure_ascii=False)  # pseudonyms only
