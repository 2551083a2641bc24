"""MERGE of staged rows: the same result as delta-rs' MERGE, with only the files holding a matched key rewritten
(cost follows the delivery: a table's other files stay as they are)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from govlake.engine.base import Piece

SCHEMA = pa.schema([("k", pa.string()), ("part", pa.int64()), ("v", pa.string()),
                    ("_ingested_at", pa.timestamp("us", tz="UTC"))])
T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
NEWER = "s._ingested_at >= t._ingested_at"


def _rows(keys: list[str], v: str, at: datetime, part: int = 0) -> pa.Table:
    return pa.table({"k": keys, "part": [part] * len(keys), "v": [v] * len(keys), "_ingested_at": [at] * len(keys)},
                    schema=SCHEMA)


def _table(ctx, name: str) -> dict[str, tuple]:
    t = ctx.lake.read("silver", name)
    return {r["k"]: (r["v"], r["_ingested_at"]) for r in t.to_pylist()}


def _files(ctx, name: str) -> set[str]:
    return set(ctx.lake.table("silver", name).file_uris())


def _build(ctx, name: str, files: list[pa.Table]) -> None:
    """A table of several files (one append each), as silver grows batch by batch."""
    for t in files:
        ctx.lake.append("silver", name, t)


def _merge(engine, name: str, rows: pa.Table, keys=("k",), update_if: str | None = NEWER) -> None:
    engine.register_arrow("src", rows)
    try:
        staged = engine.stage("silver", name, "SELECT * FROM src", lambda b: Piece(b), schema=SCHEMA, side_schemas={},
                              merge=True)
    finally:
        engine.drop("src")
    engine.publish(staged, keys=list(keys), update_if=update_if)


@pytest.fixture()
def lake_files():
    return [_rows([f"a{i}" for i in range(50)], "old", T0, 1), _rows([f"b{i}" for i in range(50)], "old", T0, 2),
            _rows([f"c{i}" for i in range(50)], "old", T0, 3)]


def test_merge_equals_delta_rs_merge_and_touches_only_matched_files(ctx, engine, lake_files) -> None:
    _build(ctx, "ours", lake_files)
    _build(ctx, "reference", lake_files)
    before = _files(ctx, "ours")
    delivery = pa.concat_tables([
        _rows(["a1", "a2"], "updated", T0 + timedelta(days=1)),  # newer: replaces
        _rows(["a3"], "stale", T0 - timedelta(days=1)),  # older than the target row: dropped
        _rows(["new1", "new2"], "new", T0 + timedelta(days=1)),  # inserted
    ])
    _merge(engine, "ours", delivery)
    ctx.lake.merge("silver", "reference", delivery, ["k"], update_if=NEWER)
    assert _table(ctx, "ours") == _table(ctx, "reference")
    assert _table(ctx, "ours")["a1"][0] == "updated" and _table(ctx, "ours")["a3"][0] == "old"
    # only the file of the a keys was rewritten; the files of the b and c keys (no match) are kept as they are
    after = _files(ctx, "ours")
    assert len(before - after) == 1 and len(before & after) == 2
    assert len(_table(ctx, "ours")) == 152


def test_an_append_of_new_keys_rewrites_nothing(ctx, engine, lake_files) -> None:
    _build(ctx, "events", lake_files)
    before = _files(ctx, "events")
    _merge(engine, "events", _rows([f"d{i}" for i in range(10)], "new", T0 + timedelta(days=1)))
    assert before < _files(ctx, "events")
    assert len(_table(ctx, "events")) == 160


def test_composite_keys_and_no_condition(ctx, engine) -> None:
    _build(ctx, "pairs", [_rows(["x", "y"], "old", T0, 1), _rows(["x"], "old", T0, 2)])
    _build(ctx, "pairs_ref", [_rows(["x", "y"], "old", T0, 1), _rows(["x"], "old", T0, 2)])
    delivery = pa.concat_tables([_rows(["x"], "upd", T0 - timedelta(days=3), 2), _rows(["z"], "new", T0, 1)])
    _merge(engine, "pairs", delivery, keys=("k", "part"), update_if=None)
    ctx.lake.merge("silver", "pairs_ref", delivery, ["k", "part"])

    def rows(name: str) -> list[tuple]:
        return sorted((r["k"], r["part"], r["v"]) for r in ctx.lake.read("silver", name).to_pylist())

    assert rows("pairs") == rows("pairs_ref") == [("x", 1, "old"), ("x", 2, "upd"), ("y", 1, "old"), ("z", 1, "new")]
