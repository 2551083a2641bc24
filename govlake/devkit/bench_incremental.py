"""``govlake bench --incremental``: what a day's delivery costs on a lake that already holds N rows, beside the
same delivery into an empty lake, in one run (issue 14: cost follows the delivery, not the lake).

The lake mixes base registers keyed by person or entity (户籍, 来穗, 市场主体: the delivery updates existing
keys and adds new ones) with event datasets (12345 热线工单, 网格事件, 空气质量日报: the delivery appends new
records to current periods). The delivery is 1 % of N rows: half of it generated with the lake's own seed (the
same persons, entities and records again, so existing keys are updated) and half with another seed (new keys,
new events).

Generating and building the N-row lake is not timed, and with ``--keep`` a built lake is reused by the next
run (a ``built.json`` beside it says for which N and seed). Each timed side runs in its own process on its own
copy of its lake, so the built lake stays as it was and peak memory (max RSS) is per side. The timed work is
``ingest`` of the delivery's files plus ``govlake run`` (every stage: conform, gold, 多源校核, scores, catalog,
duties, indicators, lineage), with each stage's share printed.

Targets: ratio (lake / empty) ≤ 1.5 at 10 million rows and ≤ 2 at 100 million; peak memory < 4 GiB at 100M.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.table import Table

from govlake.devkit.bench import _met, _peak_mb, child, console

DATASETS = ["hukou_population", "migrant_population", "market_entities", "hotline_tickets", "grid_events",
            "air_quality_daily"]
SEED = 20261124
DELIVERY_SEED = 20261202
TARGETS = {10_000_000: 1.5, 100_000_000: 2.0}
PEAK_TARGET_MB = 4096


def target_for(rows: int) -> float:
    """The ratio target of the nearest named size at or below ``rows`` (the 10M one for smaller lakes)."""
    named = [n for n in sorted(TARGETS) if n <= rows]
    return TARGETS[named[-1]] if named else TARGETS[min(TARGETS)]


def _generate(landing: Path, rows: int, seed: int) -> None:
    from govlake.context import Context
    from govlake.devkit.generate import generate_with_progress

    ctx = Context.from_env(str(landing.parent / "unused-lake"))
    generate_with_progress(ctx, landing, rows, seed, DATASETS, ["csv"], True)


def ingest_and_run(lake: str, *landings: str) -> dict:
    """Ingest every delivery of the landings (in order), then ``govlake run``; timed by stage, and the
    ingest by file format."""
    from govlake.context import Context
    from govlake.devkit.generate import Manifest
    from govlake.jobs.ingest.bronze import ingest_file
    from govlake.jobs.pipeline import run_pending

    ctx = Context.from_env(lake)
    t0 = time.perf_counter()
    rows = 0
    by_format: dict[str, list[float]] = {}  # format -> [seconds, rows, files]: what each reader costs
    for landing in landings:
        for d in Manifest.load(Path(landing) / "manifest.json").deliveries:
            t = time.perf_counter()
            n = ingest_file(ctx, Path(landing) / d.path, d.node, d.dataset).rows
            acc = by_format.setdefault(d.format, [0.0, 0, 0])
            acc[0] += time.perf_counter() - t
            acc[1] += n
            acc[2] += 1
            rows += n
    t1 = time.perf_counter()
    stages: dict[str, float] = {}
    last = {"name": "", "t": t1}

    def on_step(title: str) -> None:
        now = time.perf_counter()
        if last["name"]:
            stages[last["name"]] = stages.get(last["name"], 0.0) + now - last["t"]
        last.update(name=title, t=now)

    with ctx.engine("duckdb") as engine:
        report = run_pending(ctx, engine, on_step=on_step)
    t2 = time.perf_counter()
    if last["name"]:
        stages[last["name"]] = stages.get(last["name"], 0.0) + t2 - last["t"]
    return {"rows": rows, "ingest_s": t1 - t0, "run_s": t2 - t1, "seconds": t2 - t0, "stages": stages,
            "ingest_by_format": by_format, "balanced": report.balanced, "peak_mb": _peak_mb()}


def _built(base: Path, rows: int) -> bool:
    marker = base / "built.json"
    return marker.exists() and json.loads(marker.read_text()) == {"rows": rows, "seed": SEED}


def prepare(run_dir: Path, rows: int) -> tuple[Path, Path]:
    """The built N-row lake and the 1 % delivery (both reused when already there for this N)."""
    base = run_dir / "base"
    delivery = run_dir / "delivery"
    if not _built(base, rows):
        shutil.rmtree(base, ignore_errors=True)
        console.print(f"[bold]生成并构建 {rows:,} 行的数据湖[/]（不计时）")
        _generate(base / "landing", rows, SEED)
        child("govlake.devkit.bench_incremental", "build", str(base / "lake"), str(base / "landing"))
        (base / "built.json").write_text(json.dumps({"rows": rows, "seed": SEED}))
    if not (delivery / "built.json").exists() or json.loads((delivery / "built.json").read_text()) != {"rows": rows}:
        shutil.rmtree(delivery, ignore_errors=True)
        part = max(rows // 200, 1)
        console.print(f"[bold]生成 1% 的当日报送：{2 * part:,} 行[/]（一半更新已有主体与记录，一半新增；不计时）")
        _generate(delivery / "updates", part, SEED)
        _generate(delivery / "new", part, DELIVERY_SEED)
        (delivery / "built.json").write_text(json.dumps({"rows": rows}))
    return base, delivery


def run_incremental_bench(sizes: list[int], workdir: Path | None = None, keep: bool = False,
                          rounds: int = 3) -> list[dict]:
    """Per size, ``rounds`` alternating pairs of timed runs (empty lake, full lake; the order flips each
    round): this machine is shared and noisy, so the verdict is on the medians, with the spread printed."""
    import statistics

    root = Path(workdir or tempfile.mkdtemp(prefix="govlake-incremental-"))
    results = []
    for n in sizes:
        run_dir = root / f"incremental-{n}"
        base, delivery = prepare(run_dir, n)
        landings = [str(delivery / "updates"), str(delivery / "new")]
        sides: dict[str, list[dict]] = {"empty": [], "lake": []}
        for i in range(rounds):
            order = ("empty", "lake") if i % 2 == 0 else ("lake", "empty")
            for side in order:
                lake = run_dir / f"timed-{side}"
                shutil.rmtree(lake, ignore_errors=True)
                if side == "lake":
                    shutil.copytree(base / "lake", lake)  # the built lake stays as built (reused with --keep)
                r = child("govlake.devkit.bench_incremental", "timed", str(lake), *landings)
                sides[side].append(r)
                shutil.rmtree(lake, ignore_errors=True)
                console.print(f"  第 {i + 1} 轮 {'空湖' if side == 'empty' else f'{n:,} 行数据湖'}：{r['seconds']:.1f} 秒")
        med = {k: statistics.median(r["seconds"] for r in v) for k, v in sides.items()}
        paired = [b["seconds"] / a["seconds"] for a, b in zip(sides["empty"], sides["lake"])]
        res = {"rows": n, "delivery_rows": sides["lake"][0]["rows"], "rounds": rounds,
               "empty": _median_run(sides["empty"]), "lake": _median_run(sides["lake"]),
               "ratio": med["lake"] / med["empty"], "paired_ratios": paired, "target": target_for(n),
               "seconds": {k: [r["seconds"] for r in v] for k, v in sides.items()}}
        results.append(res)
        _print(res)
        print("INCBENCH " + json.dumps(res, ensure_ascii=False, default=str), flush=True)
        if not keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    if not keep and workdir is None:
        shutil.rmtree(root, ignore_errors=True)
    return results


def _median_run(runs: list[dict]) -> dict:
    """The run of median total time, with the peak over all runs and every run's balance."""
    ranked = sorted(runs, key=lambda r: r["seconds"])
    out = dict(ranked[len(ranked) // 2])
    out["peak_mb"] = max(r["peak_mb"] for r in runs)
    out["balanced"] = all(r["balanced"] for r in runs)
    return out


def _print(res: dict) -> None:
    n, empty, full = res["rows"], res["empty"], res["lake"]
    t = Table(title=f"当日报送 {res['delivery_rows']:,} 行：空湖 vs {n:,} 行数据湖")
    for col in ("阶段", "空湖（秒）", "数据湖（秒）", "倍数"):
        t.add_column(col, justify="left" if col == "阶段" else "right")

    def row(name: str, a: float, b: float) -> None:
        t.add_row(name, f"{a:.2f}", f"{b:.2f}", f"{b / a:.2f}" if a > 0.005 else "")

    row("导入 bronze", empty["ingest_s"], full["ingest_s"])
    for stage in dict.fromkeys([*full["stages"], *empty["stages"]]):
        row(f"  {stage}", empty["stages"].get(stage, 0.0), full["stages"].get(stage, 0.0))
    row("合计", empty["seconds"], full["seconds"])
    console.print(t)
    spread = {k: f"{min(v):.1f}–{max(v):.1f}" for k, v in res["seconds"].items()}
    console.print(f"{res['rounds']} 轮交替：空湖 {spread['empty']} 秒，数据湖 {spread['lake']} 秒；"
                  f"逐轮比值 {'、'.join(f'{r:.2f}' for r in res['paired_ratios'])}（表中为中位数那一轮）")
    peak = max(empty["peak_mb"], full["peak_mb"])
    console.print(
        f"增量比（数据湖 / 空湖）：[bold]{res['ratio']:.2f}[/]（目标 ≤ {res['target']}）：{_met(res['ratio'] <= res['target'])}；"
        f"吞吐 {res['delivery_rows'] / full['seconds']:,.0f} 行/秒（空湖 {res['delivery_rows'] / empty['seconds']:,.0f}）；"
        f"峰值内存 {peak:,.0f} MB（目标 < {PEAK_TARGET_MB} MB）：{_met(peak < PEAK_TARGET_MB)}；"
        f"账平：{'是' if full['balanced'] and empty['balanced'] else '否'}")


def build(lake: str, landing: str) -> dict:
    out = ingest_and_run(lake, landing)
    return {k: v for k, v in out.items() if k != "stages"}


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    jobs = {"build": lambda: build(args[0], args[1]), "timed": lambda: ingest_and_run(args[0], *args[1:])}
    print(json.dumps(jobs[mode](), default=str))
