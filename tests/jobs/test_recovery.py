"""Recovery from killed writers (issue 11, points 13 and 14), with real processes killed by SIGKILL.

A child process runs the real job with one function replaced by "kill me now" (or a stream that kills the
process while delta-rs is writing), so the kill lands exactly at the stage under test; then the parent
runs the next job on the same lake and checks that nothing was lost and nothing was left behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from govlake.context import Context
from govlake.jobs.ingest.bronze import ingest
from govlake.jobs.pipeline import run_pending
from tests.conftest import PROJECT, write_csv
from tests.factories import ric_number
from tests.jobs.gold.test_integrate import HUKOU, seed_people

CHILD = r'''
import os, signal, sys, time
from pathlib import Path
from govlake.context import Context

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

stage, lake, files = sys.argv[1], sys.argv[2], [Path(f) for f in sys.argv[3:]]
ctx = Context.from_env(lake)
if stage in ("before_scoring", "after_first_dataset"):
    import govlake.jobs.pipeline as pipeline
    import govlake.jobs.quality.scoring as scoring
    if stage == "before_scoring":
        scoring.score_pending_runs = die
    else:
        import govlake.jobs.conform.silver as silver  # the plan's conform step calls silver.conform
        real = silver.conform
        def conform(*args, **kwargs):
            result = real(*args, **kwargs)
            if result.batches:  # this dataset's books are written: die before the next one and scoring
                die()
            return result
        silver.conform = conform
    with ctx.engine() as engine:
        pipeline.run_pending(ctx, engine)
elif stage == "batch_log":
    from govlake.lake import Lake
    import govlake.jobs.ingest.bronze as ingest
    real_append = Lake.append
    def append(self, layer, name, *args, **kwargs):
        if (layer, name) == ("meta", "ingest_batches"):
            die()  # bronze is committed, the batch log is not
        return real_append(self, layer, name, *args, **kwargs)
    Lake.append = append
    ingest.ingest(ctx, files, "gaj", "hukou_population")
elif stage == "parquet_write":
    import govlake.jobs.ingest.bronze as ingest
    real_open = ingest.open_delivery
    def open_delivery(path, contract):
        info, stream = real_open(path, contract)
        def killing():
            for batch in stream:
                for k in range(0, batch.num_rows, 10_000):
                    yield batch.slice(k, 10_000)
            table_dir = Path(lake, "bronze", "hukou_population")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not any("#" in p.name for p in table_dir.glob("*")):
                time.sleep(0.05)  # until delta-rs has flushed a row group into its staged part file
            die()
        return info, killing()
    ingest.open_delivery = open_delivery
    ingest.ingest(ctx, files, "gaj", "hukou_population")
print("not killed", flush=True)
'''


def kill_at(stage: str, lake: str, *files: Path) -> None:
    env = {**os.environ, "GOVLAKE_PROJECT": str(PROJECT), "GOVLAKE_PSEUDONYM_KEY": os.environ["GOVLAKE_PSEUDONYM_KEY"]}
    proc = subprocess.run([sys.executable, "-c", CHILD, stage, lake, *map(str, files)], env=env, cwd=PROJECT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, (proc.returncode, proc.stdout, proc.stderr[-2000:])


# -- point 13: scores of a killed run ------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("stage", ["before_scoring", "after_first_dataset"])
def test_the_next_run_scores_every_batch_a_killed_run_left_unscored(stage: str, ctx: Context, tmp_path: Path) -> None:
    seed_people(ctx, tmp_path)  # hukou_population and migrant_population, one batch each
    kill_at(stage, ctx.settings.lake_root)
    killed = ctx.lake.read("meta", "conform_batches").to_pylist()
    assert killed, "the killed run wrote no books: the kill came too early to test anything"
    assert not ctx.lake.exists("gold", "quality_scores")

    more = write_csv(tmp_path / "h2.csv", HUKOU, [[ric_number(seq="777"), "赵六", "男", "1991-01-01", "440106", "地址7",
                                                   "2024-01-02"]])
    assert ingest(ctx, [more], "gaj", "hukou_population")[0].ok
    with ctx.engine() as engine:
        report = run_pending(ctx, engine)
    assert report.balanced and report.conformed

    books = ctx.lake.read("meta", "conform_batches").to_pylist()
    assert len(books) == 3  # both seeded batches and the new one, each conformed once
    by_run: dict[str, set[str]] = defaultdict(set)
    for b in books:
        by_run[b["run_id"]].add(b["batch_id"])
    assert len(by_run) == 2 and killed[0]["run_id"] in by_run
    assert set(report.scored_runs) == set(by_run)
    scores = ctx.lake.read("gold", "quality_scores").to_pylist()
    for run, batches in by_run.items():
        per_dataset = [s for s in scores if s["run_id"] == run and s["scope"] == "dataset"]
        assert sum(s["batches"] for s in per_dataset) == len(batches), (run, per_dataset)
        assert sum(s["rows"] for s in per_dataset) == sum(b["bronze_rows"] for b in books if b["run_id"] == run)
    results = ctx.lake.read("meta", "validation_results", columns=["run_id", "dataset"]).to_pylist()
    assert {r["run_id"] for r in results if r["dataset"] == "quality_scores"} == set(by_run)

    with ctx.engine() as engine:  # and once caught up, nothing is scored twice
        again = run_pending(ctx, engine)
    assert again.scored_runs == [] and ctx.lake.read("gold", "quality_scores").num_rows == len(scores)


# -- point 14: a killed ingest -------------------------------------------------------------------------------

def drifting_delivery(path: Path) -> Path:
    """A file with everything the batch log records: an unknown column, a missing field, a ragged row."""
    header = [h for h in HUKOU if h != "登记日期"] + ["经办人"]
    rows = [[ric_number(seq=f"{i:03d}"), "张三", "男", "1990-03-07", "440106", f"地址{i}", "某人"] for i in range(20)]
    path.write_text(",".join(header) + "\n" + "\n".join(",".join(r) for r in rows)
                    + "\n" + ",".join(rows[0] + ["多出的一列"]) + "\n", encoding="utf-8")
    return path


RECORDED = ("format", "encoding", "rows", "ragged_rows", "header_map", "unknown_headers", "missing_fields",
            "content_hash", "size_bytes", "delivered_on", "status")


@pytest.mark.slow
def test_a_batch_log_repaired_after_a_kill_is_the_one_a_clean_ingest_writes(ctx: Context, tmp_path: Path) -> None:
    f = drifting_delivery(tmp_path / "hukou_population__gaj__20261101__1.csv")
    reference = Context.from_env(str(tmp_path / "reference"))
    [clean] = ingest(reference, [f], "gaj", "hukou_population")
    assert clean.status == "ingested" and clean.ragged_rows == 1
    [expected] = reference.lake.read("meta", "ingest_batches").to_pylist()
    assert expected["format"] and expected["header_map"] != "{}" and expected["missing_fields"] != "[]"

    kill_at("batch_log", ctx.settings.lake_root, f)
    assert ctx.lake.table("bronze", "hukou_population").version() == 0  # bronze committed ...
    assert not ctx.lake.exists("meta", "ingest_batches")  # ... the batch log not

    [r] = ingest(ctx, [f], "gaj", "hukou_population")
    assert r.status == "duplicate" and "补记" in r.message and r.rows == 21
    [row] = ctx.lake.read("meta", "ingest_batches").to_pylist()
    assert {k: row[k] for k in RECORDED} == {k: expected[k] for k in RECORDED}
    assert row["bronze_version"] == 0 == expected["bronze_version"]
    landed = ctx.lake.read("bronze", "hukou_population", columns=["_ingested_at"]).column("_ingested_at")
    assert row["ingested_at"] == landed[0].as_py()  # when it landed, not when the log was repaired

    [again] = ingest(ctx, [f], "gaj", "hukou_population")
    assert again.status == "duplicate" and "不重复导入" in again.message
    with ctx.engine() as engine:
        report = run_pending(ctx, engine)
    assert report.balanced and report.conformed[0].bronze_rows == 21


def big_delivery(path: Path, rows: int) -> Path:
    """Enough incompressible bytes for delta-rs to flush a row group into its staged part file mid-write."""
    id_number = ric_number()
    with path.open("w", encoding="utf-8") as fh:
        fh.write(",".join(HUKOU) + "\n")
        for _ in range(rows):
            fh.write(f"{id_number},张三,男,1990-03-07,440106,{os.urandom(16).hex()},2020-01-02\n")
    return path


@pytest.mark.slow
def test_temp_files_of_a_write_killed_midway_are_removed_by_the_next_writer(ctx: Context, tmp_path: Path) -> None:
    rows = 250_000
    f = big_delivery(tmp_path / "big.csv", rows)
    kill_at("parquet_write", ctx.settings.lake_root, f)
    table_dir = Path(ctx.settings.lake_root) / "bronze" / "hukou_population"
    staged = [p.name for p in table_dir.rglob("*") if "#" in p.name]
    assert staged and all(".parquet#" in n for n in staged), staged  # what the killed write left
    assert not ctx.lake.exists("bronze", "hukou_population")  # and nothing was committed

    [r] = ingest(ctx, [f], "gaj", "hukou_population")
    assert r.status == "ingested" and r.rows == rows
    assert [p.name for p in table_dir.rglob("*") if "#" in p.name] == []
    referenced = {Path(u).name for u in ctx.lake.table("bronze", "hukou_population").file_uris()}
    on_disk = {p.name for p in table_dir.glob("*.parquet*")}
    assert on_disk == referenced
    assert ctx.lake.read("bronze", "hukou_population", columns=["_batch_id"]).num_rows == rows


def test_the_sweep_keeps_files_newer_than_the_lock_and_committed_files(ctx: Context, tmp_path: Path) -> None:
    """Only temp names older than the lock acquisition go: a live writer's staging file is never touched."""
    import time

    from govlake.locking import sweep_orphans

    f = write_csv(tmp_path / "h.csv", HUKOU, [[ric_number(), "张三", "男", "1990-03-07", "440106", "地址", "2020-01-02"]])
    assert ingest(ctx, [f], "gaj", "hukou_population")[0].ok
    table_dir = Path(ctx.settings.lake_root) / "bronze" / "hukou_population"
    old = table_dir / "part-00000-dead-c000.parquet#1"
    old.write_bytes(b"x")
    os.utime(old, (time.time() - 60, time.time() - 60))
    fresh = table_dir / "part-00001-live-c000.parquet#1"
    fresh.write_bytes(b"x")
    removed = sweep_orphans(Path(ctx.settings.lake_root), time.time() - 30)
    assert removed == ["bronze/hukou_population/part-00000-dead-c000.parquet#1"]
    assert fresh.exists() and not old.exists()
    assert all(Path(u.removeprefix("file://")).exists() for u in ctx.lake.table("bronze", "hukou_population").file_uris())
