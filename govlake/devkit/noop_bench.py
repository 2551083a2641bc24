"""What ``govlake run`` costs when nothing is new, and after one small delivery (a benchmark, not a test).

    python -m govlake.devkit.noop_bench --lake DIR [--runs 5] [--small-rows 1000] [--target 2.0]

Times the whole command as a user sees it, process start to exit (``govlake run --lake DIR`` in a child
process: interpreter start, imports, declarations, the plan's "nothing to do" checks, the summary), on a lake
where nothing is pending (e.g. one ``govlake demo`` built). One settling run first (it may still have work:
a lineage graph, a catalog), then ``--runs`` timed runs; prints each, the median and the verdict against
``--target`` seconds (issue 14: a rerun with nothing new ≤ 2 s). Every timed run must leave every table
at its Delta version, or the figure is not a no-op's and the benchmark says so.

``--small-rows N`` then delivers N generated rows of one dataset into the lake (a new seed each time, so it
is new content: the lake keeps it) and times the ``govlake run`` that conforms them. Without it the lake is
only read.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SMALL_DATASET = "market_entities"  # one owner node, a key, PII, a cross-checked source: a typical delivery


def govlake_command() -> list[str]:
    """The installed console script beside this interpreter (what ``time .venv/bin/govlake run`` runs)."""
    script = Path(sys.executable).with_name("govlake")
    return [str(script)] if script.exists() else [sys.executable, "-m", "govlake.cli"]


def table_versions(lake: Path) -> dict[str, int]:
    """``layer/table`` -> latest commit number, from the Delta logs' file names (no Delta library needed)."""
    out: dict[str, int] = {}
    for log in lake.glob("*/*/_delta_log"):
        commits = [int(p.name.split(".")[0]) for p in log.iterdir() if p.name.endswith(".json") and p.name[0].isdigit()]
        if commits:
            out[f"{log.parent.parent.name}/{log.parent.name}"] = max(commits)
    return out


def timed_run(lake: Path) -> tuple[float, int]:
    """Wall seconds of one ``govlake run`` and its exit code (its output is not shown)."""
    started = time.perf_counter()
    proc = subprocess.run([*govlake_command(), "run", "--lake", str(lake)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode:
        sys.stderr.write(proc.stderr)
    return seconds, proc.returncode


def noop_runs(lake: Path, runs: int) -> list[float]:
    settle, rc = timed_run(lake)
    print(f"settling run: {settle:.2f} s (exit {rc})")
    if rc:
        raise SystemExit(f"govlake run failed on {lake}")
    before = table_versions(lake)
    times = []
    for i in range(runs):
        seconds, rc = timed_run(lake)
        if rc:
            raise SystemExit(f"govlake run failed on {lake}")
        times.append(seconds)
        print(f"no-op run {i + 1}: {seconds:.2f} s")
    changed = sorted(t for t, v in table_versions(lake).items() if before.get(t) != v)
    if changed:
        print(f"NOT a no-op: these tables got new versions: {', '.join(changed)}")
    return times


def small_run(lake: Path, rows: int) -> float:
    """Deliver ``rows`` generated rows of one dataset (new content) and time the run that conforms them."""
    from govlake.context import Context
    from govlake.devkit.generate import generate
    from govlake.jobs.ingest.bronze import ingest_file

    ctx = Context.from_env(str(lake))
    owner = ctx.registry.contracts[SMALL_DATASET].owner
    landing = Path(tempfile.mkdtemp(prefix="govlake-noop-bench-"))
    try:
        manifest = generate(ctx.registry, landing, rows=rows, seed=int(time.time()), datasets=[SMALL_DATASET],
                            nodes=[owner], formats=["csv"])
        for d in manifest.deliveries:
            ingest_file(ctx, landing / d.path, d.node, d.dataset)
    finally:
        shutil.rmtree(landing, ignore_errors=True)
    seconds, rc = timed_run(lake)
    print(f"small run ({manifest.total_rows:,} new rows of {SMALL_DATASET} in {len(manifest.deliveries)} file(s)): "
          f"{seconds:.2f} s (exit {rc})")
    return seconds


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lake", required=True, type=Path, help="a local lake where nothing is pending (govlake demo)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--target", type=float, default=2.0, help="seconds a no-op run may take (issue 14)")
    ap.add_argument("--small-rows", type=int, default=0, help="then deliver this many rows and time that run")
    args = ap.parse_args(argv)
    lake = args.lake.resolve()
    if not (lake / "meta").is_dir():
        raise SystemExit(f"{lake} is not a govlake lake (no meta/); build one with: govlake demo --lake {lake}")
    print(f"lake {lake}, {os.cpu_count()} CPUs, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    times = noop_runs(lake, args.runs)
    median = statistics.median(times)
    verdict = "PASS" if median <= args.target else "FAIL"
    print(f"median of {len(times)} no-op runs: {median:.2f} s (min {min(times):.2f}, max {max(times):.2f}) "
          f"-> {verdict} against <= {args.target:g} s")
    if args.small_rows:
        small_run(lake, args.small_rows)


if __name__ == "__main__":
    main()
