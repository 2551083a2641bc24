"""``govlake bench --city-day --scale S``: one day of the city's exchange into a lake that already holds its
registers and days of events (issue 14 point 3). Target: the day in <= 60 s at S = 0.1 on 2 cores.

The day's mix at S = 1
----------------------
The plan (``../shared/seed``, 第一章 第一节) gives the totals: 日均交换数据量超 9200万条 (92,000,000 rows a day),
归集超 76.1亿条城市运行数据, 常住人口 1873.41万 (2022; the issue rounds it to 1,880万). Everything else below is an
**assumption**, stated here and held in ``MIX``:

* Every exchanged row is one row delivered to the lake (the exchange counts a row shared to several consumers
  several times; the lake would see fewer rows, so this errs on the heavy side).
* Base registers hold the population and do not grow with upserts: 户籍 ``hukou_population`` (gaj) 1,034万 keys,
  来穗 ``migrant_population`` (lsj) 846万 (= 1,880万 residents − 1,034万 户籍: residents modelled as the two
  registers), 市场主体 ``market_entities`` (scjgj) 300万. Public statistics put Guangzhou's 户籍人口 near 1,034万
  and its market entities near 300万; neither figure is in the seed document.
* ``REGISTER_SHARE`` = 10 % of the day (920万 rows) are register upserts, split over the registers by size;
  ``NEW_KEY_SHARE`` = 1 % of them are new persons and entities, the rest re-deliver existing keys with changes.
  Generated with the lake's seed (the same persons and entities again) and, for the new ones, the day's seed.
* The other 90 % (8,280万) are event records, all new keys, appended: 电子证照用证 ``e_license_usage`` (zsj)
  30 %, 政务服务办件 ``service_cases`` 25 %, 网格事件 ``grid_events`` 20 %, 12345 ``hotline_tickets`` 15 % (these
  three delivered by the 11 district nodes), 信用记录 ``credit_records`` (fgw) 10 %. The contracts hold no
  sensor feeds, which carry most of a real city's daily rows, so these five carry the volume: their rows per
  day are far above what those services really produce. What the cost depends on is rows, files, keys and
  history, and those follow the plan's total.
* Nodes: the 11 district nodes and 5 department nodes deliver (the center, 440100, delivers no contract's
  data in ``catalog/``). One day is what ``govlake generate`` writes for each dataset's nodes: an initial
  file and update files per node, with its documented defect rates (quarantined rows, repeated keys, one
  refused file per dataset) and the CSV/GB18030, XLSX, JSONL and Parquet formats of ``FORMAT_MIX``.

At scale S every figure is multiplied by S: S = 0.1 is a 9.2M-row day into registers of 2.18M keys.

The lake before the day (built, not timed)
------------------------------------------
A year of appends at this mix is 365 × 8,280万 = 302亿 event rows at S = 1 (3.0亿 at S = 0.01): this machine
cannot build it through the pipeline in a benchmark's time, and a copy at Parquet level would not be a lake
the pipeline wrote. What is built instead, through ``govlake generate``, ``ingest`` and ``govlake run`` (so
every batch has its batch-log and accounting rows and the books balance):

* the registers at full size for S (seed ``SEED``), and
* ``--history-days H`` days of event appends, each day a separate generation (its own files and batches, its
  own key range: ``generate(key_start=...)``), at the day's event volume.

With several history sizes (``--history-days 1,3``) the day is timed on each, and the cost of history is the
slope between them (seconds per history day); the year figure is the measured day plus that slope times the
days still missing to 365. Each history size has its own built lake (a copy of the smaller one, extended);
``--keep`` reuses them (a ``built.json`` says for which scale, seed and history).

What is timed
-------------
``ingest`` of every file of the day plus ``govlake run`` (conform, gold, 多源校核, scores, catalog, duties,
indicators, lineage), in a child process per run on a copy of the built lake (peak RSS is that process's).
Printed per run: rows, seconds, rows/s, the stages' shares, peak RSS; and the accounting, read back from the
lake after the clock stops: rows delivered = rows ingested + rows of refused files, bronze = silver +
quarantined + superseded for every batch of the day, and how many register rows updated existing keys.
With several scales (``--scale 0.01,0.1``) the scaling exponent k (seconds ∝ S^k, from the two largest
scales) and the projection to S = 1.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from govlake.devkit.bench import _met, child, console
from govlake.devkit.bench_incremental import SEED, ingest_and_run

DAY_ROWS = 92_000_000      # 日均交换数据量超 9200万条 (seed, 第一章 第一节)
YEAR_DAYS = 365
DAY_SEED = 20261203         # the timed day's new persons and entities
REGISTER_SHARE = 0.10       # assumption: share of the day's rows that are register upserts
NEW_KEY_SHARE = 0.01        # assumption: share of register upserts that are new keys
TARGET_SECONDS = 60.0
TARGET_SCALE = 0.1
PEAK_TARGET_MB = 4096
MODULE = "govlake.devkit.bench_cityday"


@dataclass(frozen=True)
class Register:
    """A base register: ``held`` keys at S = 1 (the population it holds)."""

    dataset: str
    held: int


@dataclass(frozen=True)
class EventFeed:
    """An event dataset: ``share`` of the day's event rows, all new keys."""

    dataset: str
    share: float


REGISTERS = (Register("hukou_population", 10_340_000), Register("migrant_population", 8_460_000),
             Register("market_entities", 3_000_000))
EVENTS = (EventFeed("e_license_usage", 0.30), EventFeed("service_cases", 0.25), EventFeed("grid_events", 0.20),
          EventFeed("hotline_tickets", 0.15), EventFeed("credit_records", 0.10))
MIN_ROWS = 200              # every dataset delivers at least this much at tiny scales


def day_mix(scale: float) -> dict[str, dict[str, int]]:
    """Rows of one day per dataset at ``scale``: ``held`` (registers' keys before the day), ``update``
    (re-delivered existing keys), ``new`` (new keys: new persons/entities, or event records)."""
    register_rows = DAY_ROWS * REGISTER_SHARE * scale
    held_total = sum(r.held for r in REGISTERS)
    out: dict[str, dict[str, int]] = {}
    for r in REGISTERS:
        rows = max(round(register_rows * r.held / held_total), MIN_ROWS)
        new = max(round(rows * NEW_KEY_SHARE), 1)
        out[r.dataset] = {"held": max(round(r.held * scale), 2 * rows), "update": rows - new, "new": new}
    event_rows = DAY_ROWS * (1 - REGISTER_SHARE) * scale
    for e in EVENTS:
        out[e.dataset] = {"held": 0, "update": 0, "new": max(round(event_rows * e.share), MIN_ROWS)}
    return out


# -- generation (not timed) -----------------------------------------------------------------------------

def _generate(out: Path, dataset: str, rows: int, seed: int, key_start: int = 0, updates: bool = False) -> None:
    """One dataset's files: by default one delivery per node (a day's files), ``updates`` for the registers'
    build (an initial full delivery and later updates, as ``govlake generate`` writes them)."""
    from govlake.context import Context
    from govlake.devkit.generate import generate

    ctx = Context.from_env(str(out / "unused-lake"))
    generate(ctx.registry, out, rows=rows, seed=seed, datasets=[dataset], key_start=key_start, updates=updates)


def _history_day(landing: Path, mix: dict[str, dict[str, int]], day: int) -> list[Path]:
    """Event appends of history day ``day`` (0-based): its own seed and key range (no key of another day)."""
    outs = []
    for e in EVENTS:
        n = mix[e.dataset]["new"]
        out = landing / e.dataset
        _generate(out, e.dataset, n, SEED + 1 + day, key_start=day * n)
        outs.append(out)
    return outs


def _day(landing: Path, mix: dict[str, dict[str, int]]) -> list[Path]:
    """The timed day: register updates (the lake's seed), new persons/entities (the day's seed), event
    records past a year of history's key ranges."""
    outs = []
    for r in REGISTERS:
        for part, seed in (("update", SEED), ("new", DAY_SEED)):
            out = landing / f"{r.dataset}-{part}"
            _generate(out, r.dataset, mix[r.dataset][part], seed)
            outs.append(out)
    for e in EVENTS:
        n = mix[e.dataset]["new"]
        out = landing / e.dataset
        _generate(out, e.dataset, n, DAY_SEED, key_start=YEAR_DAYS * n)
        outs.append(out)
    return outs


def _state(base: Path) -> dict | None:
    marker = base / "built.json"
    return json.loads(marker.read_text()) if marker.exists() else None


def _build_to(run_dir: Path, scale: float, history: int, smaller: Path | None) -> Path:
    """The lake with registers and ``history`` days of events at ``scale`` (reused when built; else a copy of
    ``smaller``'s lake extended by the missing days, or built from nothing)."""
    base = run_dir / f"base-h{history}"
    want = {"scale": scale, "seed": SEED, "history_days": history}
    state = _state(base)
    if state and all(state.get(k) == v for k, v in want.items()):
        return base
    shutil.rmtree(base, ignore_errors=True)
    mix = day_mix(scale)
    have = 0
    if smaller is not None and (_state(smaller) or {}).get("scale") == scale:
        shutil.copytree(smaller / "lake", base / "lake")
        have = _state(smaller)["history_days"]
    landings: list[Path] = []
    tmp = base / "landing"
    if have == 0:
        held = sum(mix[r.dataset]["held"] for r in REGISTERS)
        console.print(f"[bold]生成登记库 {held:,} 行[/]（不计时）")
        for r in REGISTERS:
            _generate(tmp / "registers" / r.dataset, r.dataset, mix[r.dataset]["held"], SEED, updates=True)
            landings.append(tmp / "registers" / r.dataset)
    for day in range(have, history):
        events = sum(mix[e.dataset]["new"] for e in EVENTS)
        console.print(f"[bold]生成历史第 {day + 1} 天的事件记录 {events:,} 行[/]（不计时）")
        landings += _history_day(tmp / f"day-{day}", mix, day)
    console.print(f"[bold]导入并构建：{history} 天历史的数据湖[/]（不计时）")
    built = child(MODULE, "build", str(base / "lake"), *map(str, landings))
    if not built["balanced"]:
        raise RuntimeError(f"built lake does not balance: {built}")
    shutil.rmtree(tmp, ignore_errors=True)
    (base / "built.json").write_text(json.dumps({**want, **built}, ensure_ascii=False))
    return base


def _day_landing(run_dir: Path, scale: float) -> list[Path]:
    day = run_dir / "day"
    marker = day / "built.json"
    mix = day_mix(scale)
    names = [*(f"{r.dataset}-{p}" for r in REGISTERS for p in ("update", "new")), *(e.dataset for e in EVENTS)]
    if not marker.exists() or json.loads(marker.read_text()) != {"scale": scale, "mix": mix}:
        shutil.rmtree(day, ignore_errors=True)
        console.print(f"[bold]生成当日报送 {sum(sum(v[k] for k in ('update', 'new')) for v in mix.values()):,} 行[/]"
                      "（不计时）")
        _day(day, mix)
        marker.write_text(json.dumps({"scale": scale, "mix": mix}))
    return [day / n for n in names]


# -- the child processes --------------------------------------------------------------------------------

def lake_books(lake: str) -> dict:
    """What the lake holds, for the accounting: batch ids, and silver rows of the mix's datasets."""
    from govlake.context import Context
    from govlake.tables import INGEST_BATCHES

    ctx = Context.from_env(lake)
    batches = ctx.lake.read(*INGEST_BATCHES.ref, columns=["batch_id"]).column("batch_id").to_pylist()
    silver = {}
    for d in [*(r.dataset for r in REGISTERS), *(e.dataset for e in EVENTS)]:
        dt = ctx.lake.table("silver", d)
        silver[d] = ctx.lake.dataset(dt).count_rows() if dt is not None else 0
    return {"batches": sorted(set(b for b in batches if b)), "silver": silver}


def build(lake: str, *landings: str) -> dict:
    out = ingest_and_run(lake, *landings)
    books = lake_books(lake)
    return {"rows": out["rows"], "seconds": out["seconds"], "balanced": out["balanced"], "peak_mb": out["peak_mb"],
            "silver": books["silver"], "batch_count": len(books["batches"])}


def timed(lake: str, before_json: str, *landings: str) -> dict:
    """The timed day (``ingest_and_run``), then its accounting read back from the lake (not timed)."""
    from govlake.context import Context
    from govlake.devkit.generate import Manifest
    from govlake.tables import CONFORM_BATCHES, INGEST_BATCHES

    out = ingest_and_run(lake, *landings)
    before = json.loads(Path(before_json).read_text())
    known = set(before["batches"])
    delivered = refused_delivered = 0
    for landing in landings:
        for d in Manifest.load(Path(landing) / "manifest.json").deliveries:
            delivered += d.rows
            refused_delivered += d.rows if d.expect == "refuse" else 0
    ctx = Context.from_env(lake)
    log = ctx.lake.read(*INGEST_BATCHES.ref, columns=["batch_id", "dataset", "status", "rows"]).to_pylist()
    day_log = [r for r in log if r["batch_id"] not in known]
    ingested = {r["batch_id"]: r for r in day_log if r["status"] != "refused"}
    conform = [r for r in ctx.lake.read(*CONFORM_BATCHES.ref).to_pylist() if r["batch_id"] in ingested]
    after = lake_books(lake)["silver"]
    books = {k: sum(r[k] or 0 for r in conform) for k in ("bronze_rows", "silver_rows", "quarantined", "superseded")}
    books["held_batches"] = sum(1 for r in conform if r["status"] == "held")
    books["unconformed_batches"] = len(set(ingested) - {r["batch_id"] for r in conform})
    books["refused_files"] = sum(1 for r in day_log if r["status"] == "refused")
    books["balanced"] = (all((r["bronze_rows"] or 0) == (r["silver_rows"] or 0) + (r["quarantined"] or 0)
                             + (r["superseded"] or 0) for r in conform)
                         and books["bronze_rows"] == sum(r["rows"] or 0 for r in ingested.values())
                         and books["unconformed_batches"] == 0)
    per_dataset = {}
    for d, n_after in after.items():
        silver_rows = sum(r["silver_rows"] or 0 for r in conform if r["dataset"] == d)
        grown = n_after - before["silver"].get(d, 0)
        per_dataset[d] = {"silver_rows": silver_rows, "new_keys": grown, "updated_keys": silver_rows - grown}
    return {**out, "delivered_rows": delivered, "refused_rows": refused_delivered, "books": books,
            "datasets": per_dataset}


# -- the benchmark -----------------------------------------------------------------------------------------

def run_cityday_bench(scales: list[float], history_days: list[int], workdir: Path | None = None,
                      keep: bool = False, rounds: int = 1) -> dict:
    """Build (untimed) a lake per scale and history size, then ``rounds`` rounds of timed days over every
    (scale, history) pair, the order flipping each round (the machine is shared: medians, with the spread)."""
    root = Path(workdir or tempfile.mkdtemp(prefix="govlake-cityday-"))
    scales = sorted(set(scales))
    history_days = sorted(set(max(h, 0) for h in history_days)) or [1]
    cases: list[tuple[float, int, Path, list[Path]]] = []
    for s in scales:
        run_dir = root / f"cityday-{s:g}"
        smaller = None
        for h in history_days:
            base = _build_to(run_dir, s, h, smaller)
            (base / "before.json").write_text(json.dumps(lake_books(str(base / "lake"))))
            cases.append((s, h, base, _day_landing(run_dir, s)))
            smaller = base
    runs: dict[tuple[float, int], list[dict]] = {(s, h): [] for s, h, _, _ in cases}
    for i in range(rounds):
        for s, h, base, landings in (cases if i % 2 == 0 else cases[::-1]):
            lake = base.parent / "timed-lake"
            shutil.rmtree(lake, ignore_errors=True)
            shutil.copytree(base / "lake", lake)
            r = child(MODULE, "timed", str(lake), str(base / "before.json"), *map(str, landings))
            shutil.rmtree(lake, ignore_errors=True)
            runs[(s, h)].append(r)
            console.print(f"  第 {i + 1} 轮 S = {s:g}，历史 {h} 天：{r['seconds']:.1f} 秒")
    results = [_summary(s, h, runs[(s, h)]) for s, h, _, _ in cases]
    for res in results:
        _print_run(res)
    verdict = _verdict(results)
    _print_verdict(verdict)
    print("CITYDAY " + json.dumps({"runs": results, "verdict": verdict}, ensure_ascii=False, default=str), flush=True)
    if not keep and workdir is None:
        shutil.rmtree(root, ignore_errors=True)
    elif not keep:
        for s in scales:
            shutil.rmtree(root / f"cityday-{s:g}", ignore_errors=True)
    return {"runs": results, "verdict": verdict}


def _summary(scale: float, history: int, runs: list[dict]) -> dict:
    """The run of median time, with every run's seconds, the peak over all runs and every run's books."""
    ranked = sorted(runs, key=lambda r: r["seconds"])
    med = dict(ranked[len(ranked) // 2])
    med.update(scale=scale, history_days=history, seconds_all=[r["seconds"] for r in runs],
               median_s=statistics.median(r["seconds"] for r in runs), peak_mb=max(r["peak_mb"] for r in runs),
               accounted=all(r["delivered_rows"] == r["rows"] + r["refused_rows"] for r in runs),
               books_balanced=all(r["books"]["balanced"] and r["balanced"] for r in runs))
    return med


def _exponent(points: list[tuple[float, float]]) -> float | None:
    """k in seconds ∝ S^k from the two largest scales."""
    pts = sorted(points)[-2:]
    if len(pts) < 2 or pts[0][1] <= 0:
        return None
    (s1, t1), (s2, t2) = pts
    return math.log(t2 / t1) / math.log(s2 / s1)


def _verdict(results: list[dict]) -> dict:
    """Per scale: the day at the largest history measured, the slope per history day and the year figure;
    across scales: the exponent and the projection to S = 1; the targets judged."""
    per_scale = {}
    for s in sorted({r["scale"] for r in results}):
        rs = sorted((r for r in results if r["scale"] == s), key=lambda r: r["history_days"])
        last = rs[-1]
        slope = None
        if len(rs) >= 2 and rs[-1]["history_days"] > rs[0]["history_days"]:
            slope = (rs[-1]["median_s"] - rs[0]["median_s"]) / (rs[-1]["history_days"] - rs[0]["history_days"])
        # a slope at or below zero is noise (history cannot make the day cheaper): no year figure from it
        year = last["median_s"] + slope * (YEAR_DAYS - last["history_days"]) if slope and slope > 0 else None
        per_scale[s] = {"history_days": last["history_days"], "seconds": last["median_s"],
                        "rows": last["rows"], "slope_s_per_day": slope, "year_s": year}
    k = _exponent([(s, v["seconds"]) for s, v in per_scale.items()])
    k_year = _exponent([(s, v["year_s"]) for s, v in per_scale.items() if v["year_s"] is not None])
    top = max(per_scale)
    proj = per_scale[top]["seconds"] * (1 / top) ** k if k is not None else None
    proj_year = per_scale[top]["year_s"] * (1 / top) ** k_year if k_year is not None else None
    at_target = per_scale.get(TARGET_SCALE)
    peak = max(r["peak_mb"] for r in results)
    return {"per_scale": per_scale, "exponent": k, "projection_s1": proj, "exponent_year": k_year,
            "projection_s1_year": proj_year, "peak_mb": peak,
            "target_met": None if at_target is None else at_target["seconds"] <= TARGET_SECONDS,
            "target_met_year": None if at_target is None or at_target["year_s"] is None
            else at_target["year_s"] <= TARGET_SECONDS,
            "peak_met": peak < PEAK_TARGET_MB,
            "accounted": all(r["accounted"] for r in results),
            "balanced": all(r["books_balanced"] for r in results)}


def _print_run(res: dict) -> None:
    b = res["books"]
    t = Table(title=f"当日交换 S = {res['scale']:g}：{res['rows']:,} 行进入已有 {res['history_days']} 天历史的数据湖")
    for col in ("阶段", "秒", "占比"):
        t.add_column(col, justify="left" if col == "阶段" else "right")
    total = res["seconds"]
    t.add_row("导入 bronze", f"{res['ingest_s']:.1f}", f"{res['ingest_s'] / total:.0%}")
    for fmt, (sec, rows, files) in sorted(res.get("ingest_by_format", {}).items(), key=lambda kv: -kv[1][0]):
        t.add_row(f"  {fmt}：{files} 个文件 {rows:,} 行（{rows / sec if sec else 0:,.0f} 行/秒）", f"{sec:.1f}",
                  f"{sec / total:.0%}")
    t.add_row("运行 govlake run", f"{res['run_s']:.1f}", f"{res['run_s'] / total:.0%}")
    for stage, sec in sorted(res["stages"].items(), key=lambda kv: -kv[1]):
        if sec >= 0.05:
            t.add_row(f"  {stage}", f"{sec:.1f}", f"{sec / total:.0%}")
    t.add_row("合计", f"{total:.1f}", "100%")
    console.print(t)
    spread = f"{min(res['seconds_all']):.1f}–{max(res['seconds_all']):.1f}"
    console.print(f"{len(res['seconds_all'])} 轮：中位数 {res['median_s']:.1f} 秒（{spread}）；"
                  f"{res['rows'] / total:,.0f} 行/秒；峰值内存 {res['peak_mb']:,.0f} MB")
    regs = {r.dataset for r in REGISTERS}
    upd = sum(v["updated_keys"] for d, v in res["datasets"].items() if d in regs)
    new = sum(v["new_keys"] for d, v in res["datasets"].items() if d in regs)
    ev = sum(v["new_keys"] for d, v in res["datasets"].items() if d not in regs)
    console.print(f"账目：报送 {res['delivered_rows']:,} 行 = 导入 {res['rows']:,} + 拒收文件 {res['refused_rows']:,}"
                  f"（{b['refused_files']} 个）；原始 {b['bronze_rows']:,} = 标准 {b['silver_rows']:,} + 隔离 "
                  f"{b['quarantined']:,} + 被取代 {b['superseded']:,}；暂停批次 {b['held_batches']}；"
                  f"登记库更新已有主键 {upd:,}、新增 {new:,}；事件新增 {ev:,}；账平：{'是' if res['books_balanced'] else '否'}")


def _print_verdict(v: dict) -> None:
    for s, p in v["per_scale"].items():
        line = f"S = {s:g}：{p['rows']:,} 行 {p['seconds']:.1f} 秒（历史 {p['history_days']} 天）"
        if p["slope_s_per_day"] is not None:
            line += f"；每多 1 天历史 {p['slope_s_per_day']:+.2f} 秒，" + (
                f"按一年历史推算 {p['year_s']:.1f} 秒" if p["year_s"] is not None else "低于噪声，不推算一年")
        console.print(line)
    if v["exponent"] is not None:
        line = f"规模指数 k = {v['exponent']:.2f}（秒 ∝ S^k）；推算 S = 1（9,200万行）：{v['projection_s1']:,.0f} 秒"
        if v["projection_s1_year"] is not None:
            line += f"，一年历史：{v['projection_s1_year']:,.0f} 秒（k = {v['exponent_year']:.2f}）"
        console.print(line)
    if v["target_met"] is None:
        console.print(f"目标（S = {TARGET_SCALE:g} 当日 ≤ {TARGET_SECONDS:.0f} 秒）：未测（需 --scale 含 {TARGET_SCALE:g}）")
    else:
        p = v["per_scale"][TARGET_SCALE]
        console.print(f"目标（S = {TARGET_SCALE:g} 当日 ≤ {TARGET_SECONDS:.0f} 秒）：{p['seconds']:.1f} 秒，"
                      f"{_met(v['target_met'])}" + ("" if v["target_met_year"] is None else
                                                   f"；按一年历史推算 {p['year_s']:.1f} 秒，{_met(v['target_met_year'])}"))
    console.print(f"峰值内存 {v['peak_mb']:,.0f} MB（目标 < {PEAK_TARGET_MB} MB）：{_met(v['peak_met'])}；"
                  f"报送 = 导入 + 拒收：{'是' if v['accounted'] else '否'}；账平：{'是' if v['balanced'] else '否'}")


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    jobs = {"build": lambda: build(*args), "timed": lambda: timed(*args)}
    print(json.dumps(jobs[mode](), default=str))
