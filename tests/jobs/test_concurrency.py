"""Concurrent writers on one lake (issue 11, point 12): real OS processes racing, 20 trials per race.

Two worker processes (multiprocessing ``spawn``, so nothing is shared but the lake on disk) are started
once; for every trial each gets the same job and both wait on a barrier, so they start writing at the same
instant. Without the lake's writer lock, two ingests of one file into an empty table both land it and two
first builds of silver both write every key.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from govlake.context import Context
from govlake.jobs.ingest.bronze import ingest
from tests.conftest import PROJECT, write_csv
from tests.factories import ric_number
from tests.jobs.gold.test_integrate import HUKOU

TRIALS = 20
ROWS = 300
ENV = {"GOVLAKE_PROJECT": str(PROJECT), "GOVLAKE_PSEUDONYM_KEY": "test-key-not-secret", "GOVLAKE_THREADS": "1"}


def delivery(path: Path, rows: int = ROWS, seq_offset: int = 0) -> Path:
    """A small hukou delivery with distinct valid keys (and one repeated key, so the books have a superseded row)."""
    data = [[ric_number(seq=f"{(i + seq_offset) % 1000:03d}", birth=f"19{60 + (i + seq_offset) // 1000:02d}0307"),
             "张三", "男", "1990-03-07", "440106", f"地址{i}", "2020-01-02"] for i in range(rows)]
    data.append(list(data[0]))
    return write_csv(path, HUKOU, data)


def _worker(conn, barrier, env: dict[str, str]) -> None:
    """One racing process: for each (op, lake, arg) it receives, wait for the other, then run it."""
    os.environ.update(env)
    from govlake.context import Context
    from govlake.jobs.ingest.bronze import ingest
    from govlake.jobs.pipeline import run_pending

    while True:
        task = conn.recv()
        if task is None:
            return
        op, lake, arg = task
        ctx = Context.from_env(lake)
        ctx.registry  # load declarations before the barrier: the race is about the writes
        barrier.wait()
        try:
            if op == "ingest":
                [r] = ingest(ctx, [Path(arg)], "gaj", "hukou_population")
                conn.send({"status": r.status, "rows": r.rows, "message": r.message})
            else:
                with ctx.engine() as engine:
                    rep = run_pending(ctx, engine, datasets=["hukou_population"])
                conn.send({"status": "ran", "batches": [b for c in rep.conformed for b in c.batches]})
        except Exception as exc:  # reported to the test, which fails on it
            conn.send({"status": "error", "message": f"{type(exc).__name__}: {exc}"})


@pytest.fixture(scope="module")
def racers():
    """Two spawned processes and a function that runs one task on both at once."""
    spawn = mp.get_context("spawn")
    barrier = spawn.Barrier(2)
    pipes, procs = [], []
    for _ in range(2):
        parent, child = spawn.Pipe()
        p = spawn.Process(target=_worker, args=(child, barrier, ENV), daemon=True)
        p.start()
        pipes.append(parent)
        procs.append(p)

    def race(op: str, lake: Path, arg: str | None = None) -> list[dict]:
        for conn in pipes:
            conn.send((op, str(lake), arg))
        out = []
        for conn in pipes:
            assert conn.poll(120), "a racing process hung"
            out.append(conn.recv())
        return out

    yield race
    for conn in pipes:
        conn.send(None)
    for p in procs:
        p.join(timeout=10)


def _ctx(lake: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    return Context.from_env(str(lake))


@pytest.mark.slow
def test_same_file_ingested_by_two_processes_at_once_lands_once(racers, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    f = delivery(tmp_path / "hukou.csv")
    for trial in range(TRIALS):
        lake = tmp_path / f"lake{trial}"
        results = racers("ingest", lake, str(f))
        assert sorted(r["status"] for r in results) == ["duplicate", "ingested"], (trial, results)
        [dup] = [r for r in results if r["status"] == "duplicate"]
        assert "已于" in dup["message"] and "不重复导入" in dup["message"]
        ctx = _ctx(lake, monkeypatch)
        bronze = ctx.lake.read("bronze", "hukou_population", columns=["_batch_id"])
        assert bronze.num_rows == ROWS + 1 and len(set(bronze.column("_batch_id").to_pylist())) == 1, trial
        log = ctx.lake.read("meta", "ingest_batches", columns=["status"]).column("status").to_pylist()
        assert log == ["ingested"], (trial, log)
        assert ctx.lake.table("bronze", "hukou_population").version() == 0  # one commit, no second append
    # and the lake stays usable: the run that used to fail with "MERGE matched a target row with multiple
    # source rows" on a doubled batch conforms it
    with ctx.engine() as engine:
        from govlake.jobs.pipeline import run_pending

        assert run_pending(ctx, engine, datasets=["hukou_population"]).balanced


@pytest.mark.slow
def test_two_runs_at_once_on_a_first_build_write_every_key_once(racers, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    f = delivery(tmp_path / "hukou.csv")
    for trial in range(TRIALS):
        lake = tmp_path / f"lake{trial}"
        ctx = _ctx(lake, monkeypatch)
        [r] = ingest(ctx, [f], "gaj", "hukou_population")
        assert r.status == "ingested"
        results = racers("run", lake)
        assert all(r["status"] == "ran" for r in results), (trial, results)
        # exactly one of the two found the batch pending; the other, after waiting, found nothing to do
        assert sorted(len(r["batches"]) for r in results) == [0, 1], (trial, results)
        silver = ctx.lake.read("silver", "hukou_population", columns=["id_number_pid"])
        keys = silver.column("id_number_pid").to_pylist()
        assert len(keys) == len(set(keys)) == ROWS, (trial, len(keys), len(set(keys)))
        books = ctx.lake.read("meta", "conform_batches").to_pylist()
        assert len(books) == 1, (trial, books)
        [b] = books
        quarantined = ctx.lake.read("quarantine", "hukou_population").num_rows if ctx.lake.exists(
            "quarantine", "hukou_population") else 0
        assert b["bronze_rows"] == ROWS + 1 == b["silver_rows"] + b["quarantined"] + b["superseded"]
        assert b["silver_rows"] == len(keys) and b["quarantined"] == quarantined


def _hold_lock_code(lake: Path, seconds: float) -> str:
    return (f"import sys, time\nfrom govlake.context import Context\nctx = Context.from_env({str(lake)!r})\n"
            f"with ctx.lake.writer_lock('test holder'):\n    print('held', flush=True)\n    time.sleep({seconds})\n")


def _start_holder(lake: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _hold_lock_code(lake, seconds)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **ENV}, cwd=PROJECT)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.parametrize("command", ["ingest", "run", "release"])
def test_a_writer_waits_for_the_lock_then_gives_up_with_a_clear_message(tmp_path: Path, command: str) -> None:
    """Every writing command (ingest, run, quality release) waits, saying for whom, up to
    GOVLAKE_LOCK_TIMEOUT, then refuses without a traceback."""
    lake = tmp_path / "lake"
    f = delivery(tmp_path / "hukou.csv", rows=5)
    args = {"ingest": ["ingest", str(f), "--node", "gaj", "--dataset", "hukou_population"], "run": ["run"],
            "release": ["quality", "release", "hukou_population", "b1", "--reason", "核实无误"]}[command]
    holder = _start_holder(lake, 60)
    try:
        started = time.monotonic()
        cli = subprocess.run([str(Path(sys.executable).parent / "govlake"), *args, "--lake", str(lake)],
                             capture_output=True, text=True, env={**os.environ, **ENV, "GOVLAKE_LOCK_TIMEOUT": "2"})
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert cli.returncode == 3, cli.stderr
    assert "Traceback" not in cli.stderr
    assert "另一个 govlake 进程正在写入该湖" in cli.stderr and "test holder" in cli.stderr
    assert "等待其完成" in cli.stderr and "GOVLAKE_LOCK_TIMEOUT" in cli.stderr
    assert waited >= 2
    assert not (lake / "bronze").exists()  # nothing was written


def test_a_killed_lock_holder_never_leaves_a_stale_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kill -9 of the holder: the OS drops its flock, the next writer proceeds at once."""
    lake = tmp_path / "lake"
    holder = _start_holder(lake, 600)
    holder.kill()  # SIGKILL: no finally, no cleanup
    holder.wait()
    assert (lake / "_locks" / "writer.lock").exists()
    ctx = _ctx(lake, monkeypatch)
    started = time.monotonic()
    [r] = ingest(ctx, [delivery(tmp_path / "h.csv", rows=5)], "gaj", "hukou_population")
    assert r.status == "ingested" and time.monotonic() - started < 10


def test_the_lock_is_reentrant_within_a_process(ctx: Context) -> None:
    """run_demo ingests file by file inside its own calls; nested acquisitions must not deadlock."""
    from govlake.locking import holds_lock

    with ctx.lake.writer_lock("outer", timeout=1):
        with ctx.lake.writer_lock("inner", timeout=1):
            assert holds_lock(ctx.lake)
        assert holds_lock(ctx.lake)
    assert not holds_lock(ctx.lake)
