"""Progress bars and Chinese summaries for long CLI work (rich; plain lines when not a terminal)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich import box
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
        # Fits 80 columns without cutting a dataset name or a number: short headers (explained below the table),
        # no vertical rules, and the 暂停 column only when a batch is held.
        held = any(r.held for r in report.conformed)
        t = Table(title="标准化结果（按数据集）", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))
        cols = ["数据集", "批次", "原始", "标准", "隔离", "覆盖", "警告", *(["暂停"] if held else []), "账平"]
        rows = [[r.dataset, str(len(r.batches)), f"{r.bronze_rows:,}", f"{r.silver_rows:,}", f"{r.quarantined:,}",
                 f"{r.superseded:,}", f"{r.warned:,}", *([str(len(r.held)) if r.held else ""] if held else []),
                 "✓" if r.balanced else "✗"] for r in report.conformed]
        for i, col in enumerate(cols):
            if i == 0:  # a long dataset name folds onto a second line; numbers are never cut
                t.add_column(col, overflow="fold")
            else:
                t.add_column(col, justify="right", no_wrap=True,
                             min_width=max(len(col) * 2, *(len(row[i]) for row in rows)))
        for row in rows:
            t.add_row(*row)
        console.print(t)
        console.print("原始 = 原始层行数，标准 = 写入标准层，覆盖 = 被同主键较新记录覆盖的重复"
                      + ("，暂停 = 暂停发布的批次" if held else "") + "；账平：原始 = 标准 + 隔离 + 覆盖")
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
