"""``govlake bench --city-day``: the bench's accounting on a tiny scale, with a real lake built through the
pipeline (registers plus a day of event history) and a real timed day; no timing is asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

from govlake.devkit.bench_cityday import DAY_ROWS, EVENTS, REGISTERS, day_mix, run_cityday_bench
from govlake.devkit.generate import Manifest, generate
from govlake.registry import load_registry

PROJECT = Path(__file__).resolve().parents[2]


def test_day_mix_is_the_plans_day_at_scale_one():
    """At S = 1 the mix delivers the plan's 9,200万 rows; registers are held at their population."""
    mix = day_mix(1.0)
    delivered = sum(v["update"] + v["new"] for v in mix.values())
    assert abs(delivered - DAY_ROWS) <= len(mix)
    assert sum(mix[r.dataset]["held"] for r in REGISTERS) == 18_800_000 + 3_000_000
    assert all(mix[e.dataset]["update"] == 0 for e in EVENTS)


def test_key_start_gives_new_serial_keys_and_one_delivery_per_node(tmp_path):
    """A later day of events (``key_start`` past the earlier day's keys) holds no key of the earlier day, and
    ``updates=False`` writes one delivery per node."""
    registry = load_registry(PROJECT / "catalog", PROJECT / "schemas")
    first = generate(registry, tmp_path / "a", rows=2_000, seed=1, datasets=["hotline_tickets"], formats=["jsonl"],
                     defects=False, updates=False)
    later = generate(registry, tmp_path / "b", rows=2_000, seed=2, datasets=["hotline_tickets"], formats=["jsonl"],
                     defects=False, updates=False, key_start=2_000)
    assert all(d.sequence == 1 for d in first.deliveries)
    assert len({d.node for d in first.deliveries}) == len(first.deliveries)

    def keys(root: Path, m: Manifest) -> set[str]:
        import json

        out = set()
        for d in m.deliveries:
            for line in (root / d.path).read_text(encoding="utf-8").splitlines():
                out.add(json.loads(line)["工单编号"])  # no defects: no header drift
        return out

    a, b = keys(tmp_path / "a", first), keys(tmp_path / "b", later)
    assert len(a) > 1_900 and len(b) > 1_900
    assert not a & b


@pytest.mark.slow
def test_city_day_accounts_for_every_row(tmp_path, capsys):
    out = run_cityday_bench([0.0001], [1], workdir=tmp_path, rounds=1)
    run = out["runs"][0]
    assert run["delivered_rows"] == run["rows"] + run["refused_rows"]
    books = run["books"]
    assert books["bronze_rows"] == run["rows"]
    assert books["bronze_rows"] == books["silver_rows"] + books["quarantined"] + books["superseded"]
    assert books["balanced"] and run["books_balanced"] and out["verdict"]["balanced"]
    # registers: the day updates keys the lake holds and adds a few; events only add
    regs = [run["datasets"][r.dataset] for r in REGISTERS]
    assert sum(r["updated_keys"] for r in regs) > 0.9 * sum(r["silver_rows"] for r in regs)
    assert all(run["datasets"][e.dataset]["updated_keys"] == 0 for e in EVENTS)
    printed = capsys.readouterr().out
    assert "目标（S = 0.1 当日 ≤ 60 秒）" in printed and "账平：是" in printed
