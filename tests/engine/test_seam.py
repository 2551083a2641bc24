"""The engine seam holds: every Delta write of a job goes through the engine or the lake, engines declare
their differences as capabilities, and every writer lays out Parquet the same way.

The Spark side (silver written by the executors, a copy-on-write MERGE) is in ``test_spark_parity.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from govlake.engine.base import Engine
from govlake.engine.duckdb import DuckDBEngine
from govlake.jobs.conform.silver import conform
from govlake.lake import ROW_GROUP_ROWS, write_data_file
from tests.conftest import PROJECT
from tests.jobs.quality.test_quality import deliver, held_file_rows, hukou_row

JOBS = PROJECT / "jobs"

# What a job must not do itself: open an engine session, call delta-rs, or ask which engine or storage it has.
FORBIDDEN = {
    "a private DuckDB session": re.compile(r"^\s*(import duckdb|from duckdb)|duckdb\.connect\(", re.M),
    "delta-rs called directly": re.compile(r"^\s*(import deltalake|from deltalake)|\.table\([^)]*\)\.(merge|delete|update)\(|"
                                           r"\bdt\.(merge|delete|update)\(|write_deltalake\(", re.M),
    "a storage branch": re.compile(r"\bis_local\b"),
    "an engine-type branch": re.compile(r"isinstance\([^)]*engine|engine\.name\s*[!=]=|\bSparkEngine\b|\bDuckDBEngine\b"),
}


def test_no_job_writes_around_the_engine_or_the_lake() -> None:
    found = [f"{p.relative_to(PROJECT)}: {what}" for p in sorted(JOBS.rglob("*.py"))
             for what, rx in FORBIDDEN.items() if rx.search(p.read_text(encoding="utf-8"))]
    assert found == []


def test_engines_build_no_delta_actions_and_branch_on_capabilities() -> None:
    """Delta actions are built in one place (``Lake.commit_data_files``); engines consult their declared
    capabilities and the lake, not the settings."""
    for name in ("base.py", "duckdb.py", "spark.py"):
        text = (PROJECT / "govlake" / "engine" / name).read_text(encoding="utf-8")
        assert not re.search(r"AddAction|RemoveAction|create_write_transaction", text), name
        assert "settings.is_local" not in text, name
    flags = ("PARALLEL_WRITES", "REWRITES_FILES", "READS_OBJECT_STORE")
    assert all(isinstance(getattr(Engine, f), bool) for f in flags)
    assert DuckDBEngine.PARALLEL_WRITES and not DuckDBEngine.REWRITES_FILES


def _row_groups(path: str) -> list[int]:
    meta = pq.read_metadata(path)
    return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]


def test_duckdb_writes_the_lake_row_group_size(ctx, engine) -> None:
    """DuckDB's parallel COPY used 1M-row row groups against the 122,880 rationale in lake.py."""
    rows = 4 * ROW_GROUP_ROWS + 1000  # more than one row group per DuckDB thread
    engine.register_arrow("src", pa.table({"i": pa.array(range(rows), pa.int64())}))
    engine.write_delta("gold", "rg", "SELECT * FROM src", mode="overwrite")
    engine.drop("src")
    groups = [g for f in ctx.lake.table("gold", "rg").file_uris() for g in _row_groups(f)]
    assert sum(groups) == rows and max(groups) <= ROW_GROUP_ROWS


def test_duckdb_writes_declare_no_column_not_null(ctx, engine) -> None:
    """DuckDB 2's Parquet writer marks a column REQUIRED when the statistics of that file's rows hold no NULL
    (here: Parquet statistics and a filter); the Delta schema stays all nullable, as Spark's and as the next
    write, which may hold NULLs, needs."""
    ctx.lake.overwrite("silver", "nn_src", pa.table({"k": ["a", "b", None], "v": pa.array([1, 2, 3], pa.int64())}))
    assert engine.register_delta("src", "silver", "nn_src")
    engine.write_delta("gold", "nn", "SELECT k, v FROM src WHERE k IS NOT NULL", mode="overwrite")
    engine.drop("src")
    files = ctx.lake.table("gold", "nn").file_uris()
    assert any(not f.nullable for f in pq.read_schema(files[0]))  # what the footer says
    assert all(f.nullable for f in ctx.lake.arrow_schema("gold", "nn"))


def test_data_files_gather_small_batches_into_full_row_groups_without_private_statistics(tmp_path: Path) -> None:
    schema = pa.schema([("k", pa.string()), ("secret", pa.string())])
    batches = [pa.record_batch([pa.array([f"k{i}"] * 10_000), pa.array(["张三"] * 10_000)], schema=schema)
               for i in range(30)]
    f = write_data_file(pafs.LocalFileSystem(), str(tmp_path), "part-0.parquet", batches, schema, private=["secret"])
    assert f is not None and f.rows == 300_000
    assert _row_groups(str(tmp_path / f.path)) == [ROW_GROUP_ROWS, ROW_GROUP_ROWS, 300_000 - 2 * ROW_GROUP_ROWS]
    group = pq.read_metadata(tmp_path / f.path).row_group(0)
    assert group.column(0).statistics is not None and group.column(0).statistics.has_min_max
    assert group.column(1).statistics is None or not group.column(1).statistics.has_min_max
    assert write_data_file(pafs.LocalFileSystem(), str(tmp_path), "none.parquet", [], schema) is None
    assert not (tmp_path / "none.parquet").exists()


def test_a_held_pass_is_discarded_before_the_published_one(ctx, engine, tmp_path: Path) -> None:
    """A batch failing a fatal rule makes the first staged pass void: its files go, and silver's directory
    holds exactly the files its Delta log references."""
    deliver(ctx, tmp_path, "hukou_population", "ok.csv", [hukou_row(21), hukou_row(22)])
    conform(ctx, engine, "hukou_population")  # silver exists: the next pass is a MERGE
    rows, _good, _bad = held_file_rows()
    batch = deliver(ctx, tmp_path, "hukou_population", "held.csv", rows)
    res = conform(ctx, engine, "hukou_population")
    assert res.held == [batch] and res.balanced and res.quarantined == 6
    silver_dir = Path(ctx.settings.lake_root) / "silver" / "hukou_population"
    referenced = {Path(u).name for u in ctx.lake.table("silver", "hukou_population").file_uris()}
    assert {p.name for p in silver_dir.rglob("*.parquet")} == referenced
