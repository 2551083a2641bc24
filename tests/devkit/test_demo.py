"""End to end through the CLI on a real lake: demo, idempotent rerun, and the benchmark's plumbing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from govlake.cli import main


@pytest.mark.slow
def test_demo_then_rerun_is_a_noop(ctx, tmp_path: Path) -> None:
    runner = CliRunner()
    lake = ctx.settings.lake_root
    first = runner.invoke(main, ["demo", "--rows", "10000", "--lake", lake])
    assert first.exit_code == 0, first.output
    out = first.output
    assert "账平" in out and "账不平" not in out and "gold.population" in out and "拒收" in out
    acc = ctx.lake.read("meta", "conform_batches").to_pylist()
    batches = ctx.lake.read("meta", "ingest_batches").to_pylist()
    ingested = [b for b in batches if b["status"] == "ingested"]
    # Every bronze row is accounted for, per batch, and every ingested batch was conformed.
    assert {a["batch_id"] for a in acc} == {b["batch_id"] for b in ingested}
    for a in acc:
        assert a["bronze_rows"] == a["silver_rows"] + a["quarantined"] + a["superseded"]
    bronze_total = sum(ctx.lake.read("bronze", d).num_rows for d in ctx.lake.list_tables("bronze"))
    assert bronze_total == sum(b["rows"] for b in ingested) == sum(a["bronze_rows"] for a in acc)
    nodes = {b["node"] for b in ingested}
    assert len([n for n in nodes if n.isdigit()]) == 11 and len([n for n in nodes if not n.isdigit()]) >= 12
    versions = {t: ctx.lake.table("silver", t).version() for t in ctx.lake.list_tables("silver")}

    second = runner.invoke(main, ["demo", "--rows", "10000", "--lake", lake])
    assert second.exit_code == 0, second.output
    assert "没有待处理的批次" in second.output and "导入 0 个" in second.output
    assert {t: ctx.lake.table("silver", t).version() for t in versions} == versions


@pytest.mark.slow
def test_bench_reports_figures_and_ratio(tmp_path: Path, capsys) -> None:
    from govlake.devkit.bench import run_bench

    [res] = run_bench([20_000], workdir=tmp_path)
    assert res["pipeline"]["balanced"] and res["pipeline"]["rows"] >= 20_000 * 0.9
    assert res["raw"]["rows"] > 0 and res["ratio"] > 0 and res["pipeline"]["peak_mb"] > 0
    out = capsys.readouterr().out
    line = [x for x in out.splitlines() if x.startswith("BENCH ")][-1]
    assert json.loads(line[6:])["rows"] == 20_000 and "吞吐比" in out
