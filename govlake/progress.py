"""Progress bars and Chinese summaries for long CLI work (rich; plain lines when not a terminal)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from govlake.status import GoldStatus

console = Console()


@contextmanager
def row_progress(description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("行"), TimeElapsedColumn(), console=console, transient=False) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int) -> None:
            bar.advance(task, n)

        yield advance


@contextmanager
def step_status() -> Iterator[Callable[[str], None]]:
    with console.status("准备中…") as status:
        def on_step(text: str) -> None:
            status.update(text + "…")

        yield on_step


def print_run_report(report) -> None:
    if not report.conformed:
        console.print("没有待处理的批次（标准层已是最新）。")
    else:
        t = Table(title="标准化结果（按数据集）")
        for col in ("数据集", "批次", "原始行", "写入标准层", "隔离", "被覆盖的重复", "警告", "暂停发布", "账平"):
            t.add_column(col, justify="right" if col not in ("数据集",) else "left")
        for r in report.conformed:
            t.add_row(r.dataset, str(len(r.batches)), f"{r.bronze_rows:,}", f"{r.silver_rows:,}", f"{r.quarantined:,}",
                      f"{r.superseded:,}", f"{r.warned:,}", str(len(r.held)) if r.held else "", "✓" if r.balanced else "✗")
        console.print(t)
        for dataset, batch in report.held:
            console.print(f"[red]暂停发布[/] {dataset} 批次 {batch}：未通过致命规则，整批已隔离；"
                          f"修正后重新报送，或核实后 govlake quality release {dataset} {batch} --reason 说明")
    g = Table(title="金层")
    g.add_column("表")
    g.add_column("状态")
    g.add_column("行数", justify="right")
    g.add_column("说明")
    labels = {GoldStatus.BUILT: "已更新", GoldStatus.UNCHANGED: "无变化", GoldStatus.WAITING: "等待上游",
              GoldStatus.BLOCKED: "未通过校验（保留上一版本）"}
    for r in report.gold:
        g.add_row(f"gold.{r.table}", labels.get(r.status, r.status), f"{r.rows:,}" if r.status == GoldStatus.BUILT else "", r.message)
    console.print(g)
