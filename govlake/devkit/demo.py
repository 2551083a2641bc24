"""``govlake demo``: generate deliveries for all 1+11+N nodes, ingest them, run the pipeline, summarize.

Re-running the demo on the same lake is safe: generation is deterministic, so every file is recognised as
already ingested and the run finds nothing pending.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from govlake.context import Context
from govlake.jobs.ingest.bronze import ingest_file
from govlake.jobs.pipeline import run_pending
from govlake.devkit.generate import generate_with_progress
from govlake.progress import print_run_report, row_progress, step_status
from govlake.status import IngestStatus
from govlake.tables import CONFORM_BATCHES, INGEST_BATCHES

console = Console()


def run_demo(ctx: Context, rows: int = 200_000, landing: Path | None = None, seed: int = 20261124,
             engine_kind: str | None = None) -> dict:
    """Deliveries go to ``landing`` (default: the deployment's landing folder, ``Settings.landing_dir``) and
    the stewards' report to ``Settings.reports_dir``: where ``govlake quality report`` and Airflow put them."""
    started = time.monotonic()
    landing = landing or ctx.settings.landing_dir
    reg = ctx.registry
    console.rule("govlake 演示：1+11+N 公共数据入湖")
    console.print(f"数据湖：{ctx.settings.lake_root}    报送目录：{landing}    节点：1 个市级中心 + {len(reg.districts)} 个区 + "
                  f"{len(reg.departments)} 个部门    数据集：{len(reg.contracts)} 个")

    manifest = generate_with_progress(ctx, landing, rows, seed, None, None, True)

    results = []
    with row_progress("导入原始层（bronze）", total=manifest.total_rows) as advance:
        for d in manifest.deliveries:
            results.append(ingest_file(ctx, landing / d.path, d.node, d.dataset, progress=advance))

    with ctx.engine(engine_kind) as engine, step_status() as on_step:
        # Freshness is judged on the generator's reference date, so the demo's late deliveries show as such.
        report = run_pending(ctx, engine, on_step=on_step, as_of=manifest.reference_date)
    print_run_report(report)
    summary = summarize(ctx, results)
    if ctx.settings.is_local:
        from govlake.jobs.quality.report import build_report

        with step_status() as on_step:
            on_step("生成数据质量报告")
            out = build_report(ctx, ctx.settings.reports_dir)
        console.print(f"\n数据质量报告：{out['html']}（{out['findings']} 条未通过的规则；Excel：{out['excel'].name}；"
                      f"GX 数据文档：{'已生成' if out['data_docs'] else '未安装 great-expectations，跳过'}）")
    console.print(f"\n用时 {time.monotonic() - started:.0f} 秒。")
    next_steps(ctx)
    return summary


def summarize(ctx: Context, results: list) -> dict:
    ingested = [r for r in results if r.status == IngestStatus.INGESTED]
    skipped = [r for r in results if r.status == IngestStatus.DUPLICATE]
    refused = [r for r in results if r.status == IngestStatus.REFUSED]
    console.print(f"\n报送文件：{len(results)} 个，导入 {len(ingested)} 个，已导入过而跳过 {len(skipped)} 个，拒收 {len(refused)} 个。")
    for r in refused:
        console.print(f"[red]拒收[/] {Path(r.file).name}：{r.message.splitlines()[0]}")

    eng = ctx.engine("duckdb")  # a few small reads: DuckDB whatever engine the run used
    try:
        eng.register_delta("batches", *INGEST_BATCHES.ref)
        has_acc = eng.register_delta("acc", *CONFORM_BATCHES.ref)
        if not has_acc:
            return {"files": len(results), "refused": len(refused)}
        by_node = eng.fetch(
            "SELECT b.node, count(DISTINCT b.batch_id) AS files, sum(a.bronze_rows) AS bronze, sum(a.silver_rows) AS silver, "
            "sum(a.quarantined) AS quarantined, sum(a.superseded) AS superseded "
            "FROM batches b JOIN acc a ON a.batch_id = b.batch_id AND a.dataset = b.dataset "
            "WHERE b.status = 'ingested' GROUP BY b.node ORDER BY b.node"
        ).to_pylist()
    finally:
        eng.close()
    t = Table(title="各节点数据流转（行）")
    for col in ("节点", "文件", "原始层", "标准层写入", "隔离", "被覆盖的重复"):
        t.add_column(col, justify="left" if col == "节点" else "right")
    totals = dict(bronze=0, silver=0, quarantined=0, superseded=0)
    for row in by_node:
        node = ctx.registry.nodes.get(row["node"])
        t.add_row(node.label if node else row["node"], str(row["files"]), f"{row['bronze']:,}", f"{row['silver']:,}",
                  f"{row['quarantined']:,}", f"{row['superseded']:,}")
        for k in totals:
            totals[k] += row[k] or 0
    t.add_row("合计", "", f"{totals['bronze']:,}", f"{totals['silver']:,}", f"{totals['quarantined']:,}", f"{totals['superseded']:,}")
    console.print(t)
    balanced = totals["bronze"] == totals["silver"] + totals["quarantined"] + totals["superseded"]
    console.print(("[green]账平：[/]" if balanced else "[red]账不平：[/]") +
                  f"原始层 {totals['bronze']:,} = 标准层 {totals['silver']:,} + 隔离 {totals['quarantined']:,} + 覆盖 {totals['superseded']:,}")
    return {"files": len(results), "refused": len(refused), **totals, "balanced": balanced}


def next_steps(ctx: Context) -> None:
    lake = ctx.settings.lake_root
    console.print("\n下一步可以看：")
    console.print(f'  govlake quality report --lake {lake}   # 重新生成数据质量报告（HTML、Excel、GX 数据文档）')
    console.print(f'  govlake serve --lake {lake}   # 数据治理驾驶舱（http://127.0.0.1:8765/）')
    console.print(f'  govlake catalog --lake {lake} 人口   # 数据资源目录；govlake duties / govlake indicators 查看职能数据清单与指标')
    console.print(f'  govlake lineage --lake {lake} bronze.hukou_population --column name   # 血缘与影响分析')
    console.print(f'  govlake sql --lake {lake} "SELECT * FROM information_schema.tables"')
    console.print(f'  govlake sql --lake {lake} "SELECT scope, label, score FROM gold.quality_scores ORDER BY score LIMIT 10"')
    console.print(f'  govlake sql --lake {lake} "SELECT * FROM gold.district_profile ORDER BY district_code"')
    console.print(f'  govlake sql --lake {lake} --role steward "SELECT _failures, count(*) AS n FROM quarantine.market_entities GROUP BY 1 ORDER BY n DESC"')
    console.print(f'  govlake sql --lake {lake} --role steward "SELECT dataset, node, source_file, status, message FROM meta.ingest_batches WHERE status = \'refused\'"')
