"""The ``govlake`` command line: thin commands that check preconditions and hand off to jobs.

User mistakes (a bad file, an unknown node, a refused table) are GovlakeErrors and print as short Chinese
messages with a non-zero exit; only genuine bugs show a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from govlake.errors import GovlakeError

console = Console()
err_console = Console(stderr=True)


def friendly(fn):
    """Turn GovlakeErrors into readable messages and exit codes."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except GovlakeError as exc:
            _fail(exc)
        except Exception as exc:  # storage failures surface from delta-rs, DuckDB and Arrow as their own types
            translated = _storage_failure(exc)
            if translated is None:
                raise
            _fail(translated)

    return wrapper


def _fail(exc: GovlakeError) -> None:
    err_console.print(f"[bold red]错误：[/]{exc}", highlight=False)
    sys.exit(exc.exit_code)


def _storage_failure(exc: BaseException) -> GovlakeError | None:
    """The first storage failure (disk full, read-only, no permission) in the exception's cause chain."""
    from govlake.errors import storage_error

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        found = storage_error(cur)
        if found is not None:
            return found
        cur = cur.__cause__ or cur.__context__
    return None


def make_context(lake: str | None):
    from govlake.context import Context

    return Context.from_env(lake)


lake_option = click.option("--lake", default=None,
                           help="Lake root (local path or s3://bucket/prefix); default $GOVLAKE_LAKE, else ./lake.")
engine_option = click.option("--engine", "engine_kind", type=click.Choice(["duckdb", "spark"]), default=None,
                             help="Compute engine; default $GOVLAKE_ENGINE, else duckdb.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="govlake")
def main() -> None:
    """govlake: 1+11+N public data through bronze/silver/gold Delta tables."""


@main.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Landing folder to write to; default $GOVLAKE_LANDING, else landing/ next to the lake.")
@click.option("--rows", type=int, default=100_000, show_default=True, help="Total rows over all deliveries (10k .. 100M).")
@click.option("--seed", type=int, default=20261124, show_default=True)
@click.option("--dataset", "datasets", multiple=True, help="Only these datasets (repeatable).")
@click.option("--format", "formats", multiple=True, type=click.Choice(["csv", "xlsx", "jsonl", "parquet"]))
@click.option("--no-defects", is_flag=True, help="Generate perfectly clean data.")
@lake_option
@friendly
def generate(out_dir: Path | None, rows: int, seed: int, datasets: tuple[str, ...], formats: tuple[str, ...],
             no_defects: bool, lake: str | None) -> None:
    """Generate realistic deliveries for every node and dataset."""
    from govlake.devkit.generate import generate_with_progress

    ctx = make_context(lake)
    out_dir = out_dir or ctx.settings.landing_dir
    manifest = generate_with_progress(ctx, out_dir, rows, seed, list(datasets) or None, list(formats) or None, not no_defects)
    console.print(f"已生成 {len(manifest.deliveries)} 个报送文件，共 {manifest.total_rows:,} 行 → {out_dir}（清单：manifest.json）")


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--node", required=True, help="Delivering node code, e.g. gaj or 440106.")
@click.option("--dataset", required=True, help="Dataset name, e.g. hukou_population.")
@click.option("--delivered-on", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Delivery date (default: the YYYYMMDD in the file name, else today); timeliness is judged on it.")
@lake_option
@friendly
def ingest(paths: tuple[Path, ...], node: str, dataset: str, delivered_on, lake: str | None) -> None:
    """Ingest delivered files into bronze (whole file or nothing)."""
    from govlake.jobs.ingest.bronze import ingest as run_ingest
    from govlake.progress import row_progress
    from govlake.status import IngestStatus

    ctx = make_context(lake)
    with row_progress(f"导入 {dataset}") as advance:
        results = run_ingest(ctx, list(paths), node, dataset, progress=advance,
                             delivered_on=delivered_on.date() if delivered_on else None)
    refused = 0
    for r in results:
        if r.status == IngestStatus.INGESTED:
            extra = f"（其中 {r.ragged_rows} 行列数不符，原文已保存）" if r.ragged_rows else ""
            console.print(f"[green]✓ 已导入[/] {r.file}：{r.rows:,} 行 → bronze.{dataset}，批次 {r.batch_id}{extra}")
            if r.message:
                console.print(f"  [yellow]表结构变化：{r.message}[/]")
        elif r.status == IngestStatus.DUPLICATE:
            console.print(f"[cyan]= 跳过[/] {r.file}：{r.message}")
        else:
            refused += 1
            err_console.print(f"[bold red]✗ 拒收[/] {r.message}", highlight=False)
    if refused:
        sys.exit(4)


@main.command()
@click.option("--dataset", "datasets", multiple=True, help="Only these datasets (repeatable).")
@click.option("--report", "report_dir", type=click.Path(path_type=Path), default=None,
              help="Also write the stewards' quality report (HTML, Excel, GX Data Docs) to this directory.")
@click.option("--full", is_flag=True,
              help="Rebuild every gold table, the cross-source check and the governance outputs from whole sources "
                   "(default: from what the pending batches changed).")
@lake_option
@engine_option
@friendly
def run(datasets: tuple[str, ...], report_dir: Path | None, full: bool, lake: str | None, engine_kind: str | None) -> None:
    """Build everything pending into silver, quarantine and gold (the stages of jobs/plan.py)."""
    from govlake.jobs.pipeline import run_pending
    from govlake.progress import print_run_report, step_status

    ctx = make_context(lake)
    # Opened by the first step with work: a rerun with nothing new starts no engine (DuckDB, Spark).
    with ctx.engine_on_demand(engine_kind) as engine, step_status() as on_step:
        report = run_pending(ctx, engine, list(datasets) or None, on_step=on_step, report_dir=report_dir, full=full)
    print_run_report(report)


@main.command()
@click.argument("query", required=False)
@click.option("--role", type=click.Choice(["analyst", "steward", "admin"]), default="analyst", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--limit", type=int, default=200, show_default=True, help="Rows shown in table format.")
@click.option("--export-duckdb", "export_path", type=click.Path(path_type=Path), default=None,
              help="Instead of querying, write a DuckDB database file of the role's tables as views (with descriptions).")
@click.option("--force", is_flag=True, help="With --export-duckdb: replace an existing file (never a directory).")
@lake_option
@friendly
def sql(query: str | None, role: str, fmt: str, limit: int, export_path: Path | None, force: bool, lake: str | None) -> None:
    """Query the lake with SQL (tables named <layer>.<table>) as the lake owner narrowed to --role; or
    export a DuckDB file of what that role may read."""
    from govlake.access.sql import SqlSession, display_rows, export_duckdb, render_csv, run_interruptible
    from govlake.control.principal import Principal
    from govlake.descriptions import column_descriptions, table_description

    ctx = make_context(lake)
    # The local CLI runs as the OS account that owns the lake's files; --role can only narrow what it sees.
    principal = Principal.owner_of(ctx.registry).narrowed(role)

    def describe(layer: str, name: str) -> tuple[str, dict[str, str]]:
        return table_description(ctx, layer, name), column_descriptions(ctx, layer, name)

    if export_path is not None:
        counts = export_duckdb(ctx.lake, str(export_path), principal, describe, force=force, registry=ctx.registry)
        console.print(f"已导出 {sum(counts.values())} 个视图（{'、'.join(f'{k} {v}' for k, v in counts.items())}）→ {export_path}\n"
                      f"用法：duckdb {export_path}  然后  SELECT * FROM gold.population LIMIT 10;")
        return
    if not query:
        raise click.UsageError("需要 QUERY，或使用 --export-duckdb PATH")
    try:
        session = SqlSession(ctx.lake, principal, describe, registry=ctx.registry)
    except KeyboardInterrupt:  # Ctrl-C while the session was being opened: nothing ran yet
        err_console.print("查询已中断（会话尚未打开，未执行任何语句）", highlight=False)
        sys.exit(130)
    try:
        result = run_interruptible(session, query).table  # SIGINT / SIGTERM / GOVLAKE_SQL_TIMEOUT stop it
    finally:
        session.close()
    if fmt == "csv":
        sys.stdout.write(render_csv(result))
    elif fmt == "json":
        rows = result.to_pylist(maps_as_pydicts="lossy")
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, default=str, indent=1) + "\n")
    else:
        from rich.text import Text  # cells are data, never rich markup ("[/]" in a value must not crash)

        t = Table(show_lines=False)
        for name in result.column_names:
            t.add_column(Text(name))
        for cells in display_rows(result.slice(0, limit)):
            t.add_row(*(Text(c) for c in cells))
        console.print(t)
        more = f"（仅显示前 {limit} 行）" if result.num_rows > limit else ""
        console.print(f"{result.num_rows:,} 行{more}")


@main.command()
@click.option("--rows", type=int, default=200_000, show_default=True, help="Total generated rows.")
@click.option("--landing", type=click.Path(path_type=Path), default=None, help="Where deliveries are generated; default $GOVLAKE_LANDING, else landing/ next to the lake.")
@click.option("--seed", type=int, default=20261124, show_default=True)
@lake_option
@engine_option
@friendly
def demo(rows: int, landing: Path | None, seed: int, lake: str | None, engine_kind: str | None) -> None:
    """Generate for all 1+11+N nodes, ingest, run, and print a summary."""
    from govlake.devkit.demo import run_demo

    run_demo(make_context(lake), rows=rows, landing=landing, seed=seed, engine_kind=engine_kind)


@main.command()
@click.option("--rows", default="1000000,10000000", show_default=True, help="Comma-separated row counts.")
@click.option("--workdir", type=click.Path(path_type=Path), default=None)
@click.option("--keep", is_flag=True, help="Keep the generated files and lakes.")
@click.option("--quality", "quality_only", is_flag=True, help="Measure what quality adds to the silver build (rules on vs off).")
@click.option("--rounds", type=click.IntRange(min=1), default=None,
              help="Alternating rounds per side: --quality (default 5), --incremental (default 3).")
@click.option("--incremental", is_flag=True,
              help="Time a 1% delivery into a lake of --rows rows beside the same delivery into an empty lake.")
@click.option("--dashboard", "dashboard_lake", default=None,
              help="Measure dashboard page loads in headless Chromium over this lake's gold layer grown to 1,000 resources.")
@click.option("--city-day", "city_day", is_flag=True,
              help="Time one day of the city's exchange (92M rows at scale 1) into a lake holding registers and event history.")
@click.option("--scale", default="0.01,0.1", show_default=True, help="Comma-separated scales (--city-day).")
@click.option("--history-days", default="1,3", show_default=True,
              help="Comma-separated days of event history in the lake (--city-day); two or more give the cost per day.")
@friendly
def bench(rows: str, workdir: Path | None, keep: bool, quality_only: bool, rounds: int | None, incremental: bool,
          dashboard_lake: str | None, city_day: bool, scale: str, history_days: str) -> None:
    """Throughput ingest -> silver -> gold beside a raw DuckDB CSV-to-Parquet copy (or --quality / --dashboard
    / --incremental / --city-day)."""
    from govlake.devkit.bench import QUALITY_ROUNDS, run_bench, run_quality_bench

    if city_day:
        from govlake.devkit.bench_cityday import run_cityday_bench

        run_cityday_bench([float(s) for s in scale.split(",") if s], [int(h) for h in history_days.split(",") if h],
                          workdir=workdir, keep=keep, rounds=max(rounds or 1, 1))
        return
    if dashboard_lake:
        from govlake.devkit.dashboard_scale import run_dashboard_bench

        run_dashboard_bench(make_context(dashboard_lake), 1000)
        return
    sizes = [int(r.replace("_", "")) for r in rows.split(",") if r]
    if incremental:
        from govlake.devkit.bench_incremental import run_incremental_bench

        run_incremental_bench(sizes, workdir=workdir, keep=keep, rounds=rounds or 3)
        return
    if quality_only:
        run_quality_bench(sizes, workdir=workdir, keep=keep, rounds=rounds or QUALITY_ROUNDS)
        return
    run_bench(sizes, workdir=workdir, keep=keep)


@main.command()
@click.argument("table")
@click.option("--upstream", "direction", flag_value="upstream", help="What TABLE (or COLUMN) is computed from.")
@click.option("--downstream", "direction", flag_value="downstream", default=True,
              help="What depends on TABLE (or COLUMN): impact analysis (default).")
@click.option("--column", default=None, help="Follow one column.")
@click.option("--format", "fmt", type=click.Choice(["tree", "json"]), default="tree", show_default=True)
@lake_option
@friendly
def lineage(table: str, direction: str, column: str | None, fmt: str, lake: str | None) -> None:
    """Lineage of a table or column: upstream sources or downstream impact (e.g. silver.hukou_population)."""
    from govlake.jobs.governance.lineage import lineage_edges
    from govlake.lineage_graph import walk

    ctx = make_context(lake)
    steps = walk(lineage_edges(ctx), table, column, direction)
    if fmt == "json":
        sys.stdout.write(json.dumps([s.__dict__ for s in steps], ensure_ascii=False, indent=1) + "\n")
        return
    start = f"{table}.{column}" if column else table
    title = "上游来源" if direction == "upstream" else "下游影响（该表/字段变化时受影响的表与字段）"
    console.print(f"[bold]{start}[/] 的{title}：")
    if not steps:
        console.print("  （无）")
    for s in steps:
        target = f"{s.table}.{s.column}" if s.column else s.table
        console.print(f"{'  ' * s.depth}{'←' if direction == 'upstream' else '→'} {target}  [dim]{s.via} · {s.transformation}[/]")
    tables = sorted({s.table for s in steps})
    console.print(f"共 {len(tables)} 张表、{sum(1 for s in steps if s.column)} 个字段。")


@main.command()
@click.argument("search", required=False)
@click.option("--nodes", "show_nodes", is_flag=True, help="List the 1+11+N nodes with their health instead of resources.")
@click.option("--items", "show_items", is_flag=True, help="List information items (信息项) instead of resources.")
@click.option("--node", default=None, help="Only resources delivered by this node.")
@click.option("--share", default=None, type=click.Choice(["无条件共享", "有条件共享", "不予共享"]))
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "xlsx"]), default="table", show_default=True)
@click.option("--out", "out_file", type=click.Path(path_type=Path), default=None, help="Write the export here.")
@lake_option
@friendly
def catalog(search: str | None, show_nodes: bool, show_items: bool, node: str | None, share: str | None, fmt: str,
            out_file: Path | None, lake: str | None) -> None:
    """The 1+11+N data resource catalog: list, search (name, code, summary, items) and export."""
    from govlake.jobs.governance.catalog import export, search_rows
    from govlake.tables import CATALOG_ITEMS as ITEMS, CATALOG_NODES as NODES, CATALOG_RESOURCES as RESOURCES

    ctx = make_context(lake)
    table = NODES if show_nodes else ITEMS if show_items else RESOURCES
    rows = search_rows(ctx, table, search, node=node, share=share)
    if fmt != "table" or out_file:
        path = export(rows, fmt if fmt != "table" else "xlsx", out_file, table)
        if path is None:
            return
        console.print(f"已导出 {len(rows)} 条 → {path}")
        return
    cols = {NODES: ["code", "name", "kind_title", "resources", "last_delivery", "health", "quality_score"],
            RESOURCES: ["code", "name", "provider", "share", "open", "update_cycle", "silver_rows", "freshness", "quality_score"],
            ITEMS: ["resource_code", "resource_name", "item_name", "type", "pii", "grade"]}[table]
    t = Table(title={NODES: "一张网：1+11+N 节点", RESOURCES: "一张图：数据资源目录", ITEMS: "一本账：信息项"}[table])
    for c in cols:
        t.add_column(c)
    for r in rows:
        t.add_row(*["" if r.get(c) is None else str(r[c]) for c in cols])
    console.print(t)
    console.print(f"共 {len(rows)} 条" + (f"（检索：{search}）" if search else ""))


@main.command()
@click.option("--findings", "only_findings", is_flag=True, help="Only the findings: 缺位, 越位, 一数一源.")
@click.option("--node", default=None, help="Only this node's duties (or findings).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "xlsx"]), default="table", show_default=True)
@click.option("--out", "out_file", type=click.Path(path_type=Path), default=None, help="Excel file for --format xlsx.")
@lake_option
@friendly
def duties(only_findings: bool, node: str | None, fmt: str, out_file: Path | None, lake: str | None) -> None:
    """The duties-data list (职能数据清单): duty -> catalog -> data, with 缺位 / 越位 / 一数一源 findings."""
    from govlake.errors import RegistryError
    from govlake.messages import NOT_BUILT
    from govlake.tables import DUTY_DATA_LIST, DUTY_FINDINGS

    ctx = make_context(lake)
    if not ctx.lake.exists(*DUTY_DATA_LIST.ref):
        raise NOT_BUILT.error(RegistryError, what="职能数据清单")
    if node:
        ctx.registry.node(node)
    lst = [r for r in ctx.lake.read(*DUTY_DATA_LIST.ref).to_pylist() if not node or r["node"] == node
           or (r["node"] == "districts" and ctx.registry.nodes[node].kind == "district")]
    found = [r for r in ctx.lake.read(*DUTY_FINDINGS.ref).to_pylist() if not node or r["node"] == node]
    if fmt == "json":
        sys.stdout.write(json.dumps({"findings": found} if only_findings else {"duties": lst, "findings": found},
                                    ensure_ascii=False, default=str, indent=1) + "\n")
        return
    if fmt == "xlsx":
        from openpyxl import Workbook

        from govlake.exports import append_row

        wb = Workbook()
        wb.remove(wb.active)
        for title, rows in ([] if only_findings else [("职能数据清单", lst)]) + [("问题清单", found)]:
            ws = wb.create_sheet(title)
            header = list(rows[0]) if rows else []
            append_row(ws, header)
            for r in rows:  # registry and finding texts as text, never as formulas
                append_row(ws, [str(r[h]) if r[h] is not None and not isinstance(r[h], (int, float, str)) else r[h]
                                for h in header])
            ws.freeze_panes = "A2"
        path = out_file or Path("职能数据清单.xlsx")
        wb.save(path)
        console.print(f"已导出职能数据清单 → {path}")
        return
    if not only_findings:
        t = Table(title="职能数据清单（职责 → 目录 → 数据）")
        for c in ("节点", "职责", "关系", "目录代码", "数据资源", "标准层行数", "及时性"):
            t.add_column(c)
        for r in lst:
            t.add_row(r["node_name"], r["duty"], r["relation"], r["resource_code"] or "—", r["resource_name"] or (r["dataset"] or "—"),
                      "" if r["silver_rows"] is None else f"{r['silver_rows']:,}", r["freshness"] or "")
        console.print(t)
    f = Table(title="问题清单")
    for c in ("类型", "节点", "说明", "处理建议"):
        f.add_column(c)
    for r in found:
        f.add_row(r["kind"], r["node_name"] or "—", r["detail"], r["action"])
    console.print(f)
    counts = {k: sum(1 for r in found if r["kind"] == k) for k in ("缺位", "越位", "一数一源")}
    console.print("　".join(f"{k} {v} 项" for k, v in counts.items()))


@main.command()
@click.option("--district", default=None, help="Values of one district (code, e.g. 440106) instead of progress.")
@click.option("--indicator", "indicator_id", default=None, help="Only this indicator id.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@lake_option
@friendly
def indicators(district: str | None, indicator_id: str | None, fmt: str, lake: str | None) -> None:
    """Core indicators against the plan's baseline and targets, with threshold alerts (城市运行数字体征)."""
    from govlake.errors import RegistryError
    from govlake.messages import NOT_BUILT
    from govlake.tables import INDICATOR_PROGRESS, INDICATOR_VALUES

    ctx = make_context(lake)
    if not ctx.lake.exists(*INDICATOR_PROGRESS.ref):
        raise NOT_BUILT.error(RegistryError, what="指标")
    if district:
        ctx.registry.node(district)
        rows = [r for r in ctx.lake.read(*INDICATOR_VALUES.ref).to_pylist() if r["district_code"] == district]
    else:
        rows = ctx.lake.read(*INDICATOR_PROGRESS.ref).to_pylist()
    rows = [r for r in rows if not indicator_id or r["indicator_id"] == indicator_id]
    if fmt == "json":
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, default=str, indent=1) + "\n")
        return
    fmt_num = lambda v: "—" if v is None else f"{v:,.4g}"  # noqa: E731
    if district:
        t = Table(title=f"{ctx.registry.nodes[district].district or district} 指标（城市运行数字体征）")
        for c in ("指标", "统计期", "取值", "单位", "状态"):
            t.add_column(c)
        for r in sorted(rows, key=lambda r: (r["indicator_id"], r["period"])):
            t.add_row(r["name"], r["period"], fmt_num(r["value"]), r["unit"], r["level"])
    else:
        t = Table(title="核心指标进展（对照表 1 核心目标）")
        for c in ("指标", "统计期", "当前值", "单位", "2022 基线", "2025 目标", "2027 目标", "2025 进度", "状态", "告警区"):
            t.add_column(c)
        for r in rows:
            prog = "—" if r["progress_2025"] is None else f"{r['progress_2025']:.0f}%"
            t.add_row(r["name"], r["period"] or "—", fmt_num(r["value"]), r["unit"], fmt_num(r["baseline_2022"]),
                      fmt_num(r["target_2025"]), fmt_num(r["target_2027"]), prog, r["level"], r["districts_in_alert"] or "")
    console.print(t)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Dashboard address (non-loopback only with --behind-tls).")
@click.option("--port", default=8765, show_default=True, type=int, help="Dashboard port.")
@click.option("--sql-port", default=5433, show_default=True, type=int, help="PostgreSQL-wire SQL endpoint port.")
@click.option("--sql-host", default=None, help="SQL endpoint address; default 127.0.0.1 (never follows --host).")
@click.option("--no-sql", is_flag=True, help="Serve the dashboard only, without the SQL endpoint.")
@click.option("--behind-tls", is_flag=True, help="TLS terminates in front of the dashboard: Secure cookies, non-loopback --host.")
@click.option("--allowed-host", "allowed_hosts", multiple=True, help="Public host name the TLS proxy forwards (repeatable).")
@lake_option
@friendly
def serve(host: str, port: int, sql_port: int, sql_host: str | None, no_sql: bool, behind_tls: bool,
          allowed_hosts: tuple[str, ...], lake: str | None) -> None:
    """The city service: the CDO dashboard (login required) and a PostgreSQL-wire SQL endpoint for psql,
    DBeaver, Superset or ODBC, where every user connects as themselves (password or API token)."""
    from govlake.access.service import ServiceConfig, check, run

    config = ServiceConfig(host=host, port=port, sql=not no_sql, sql_host=sql_host, sql_port=sql_port,
                           behind_tls=behind_tls, allowed_hosts=allowed_hosts)
    check(config)  # before anything else: a refused bind must not start or print a URL
    ctx = make_context(lake)
    run(ctx, config, announce=lambda text: console.print(text, highlight=False))


@main.command("settings")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@lake_option
@friendly
def show_settings(fmt: str, lake: str | None) -> None:
    """The deployment settings as resolved here (lake, landing, reports, engine, ...); secrets are not shown."""
    from govlake.project import Settings

    shown = Settings.from_env(lake).describe()
    if fmt == "json":
        click.echo(json.dumps(shown, ensure_ascii=False, indent=2))
        return
    t = Table(title="govlake 部署设置（govlake/project.py）")
    t.add_column("设置")
    t.add_column("取值", overflow="fold")
    for key, value in shown.items():
        t.add_row(key, value)
    console.print(t)


@main.group()
def quality() -> None:
    """Expectation suites, quality scores and the stewards' report."""


@quality.command("suites")
@click.option("--check", is_flag=True, help="Only check that expectations/*.json are up to date (exit 1 if not).")
@friendly
def quality_suites(check: bool) -> None:
    """Write the GX suites (contract rules + defaults + hand-written rules) to expectations/<layer>/<name>.json."""
    from govlake.jobs.quality.suites import stale_suites, write_all

    ctx = make_context(None)
    if check:
        stale = stale_suites(ctx)
        if stale:
            err_console.print(f"[red]以下套件与其来源不一致：{'、'.join(stale)}[/]\n处理建议：运行 govlake quality suites 重新生成并提交")
            sys.exit(1)
        console.print("期望套件均为最新。")
        return
    paths = write_all(ctx)
    console.print(f"已写出 {len(paths)} 个期望套件 → {ctx.settings.expectations_dir}")


@quality.command("report")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Report folder; default $GOVLAKE_REPORTS, else <lake>/_reports/quality (where Airflow writes it).")
@click.option("--no-data-docs", is_flag=True, help="Skip the Great Expectations Data Docs.")
@lake_option
@friendly
def quality_report(out_dir: Path | None, no_data_docs: bool, lake: str | None) -> None:
    """Stewards' report: HTML (Chinese), Excel workbook and GX Data Docs."""
    from govlake.jobs.quality.report import build_report

    ctx = make_context(lake)
    with console.status("生成质量报告…"):
        out = build_report(ctx, out_dir or ctx.settings.reports_dir, data_docs=not no_data_docs)
    console.print(f"质量报告：{out['html']}（{out['sections']} 个节点×数据集，{out['findings']} 条未通过的规则）")
    console.print(f"Excel：{out['excel']}")
    if out["data_docs"]:
        console.print(f"GX 数据文档：{out['data_docs']}")


@quality.command("release")
@click.argument("dataset")
@click.argument("batch_id")
@click.option("--reason", required=True, help="Why the held batch may be published (kept in meta.batch_waivers).")
@click.option("--by", "by", default=None, help="Who releases it (default: the lake owner's OS account, by euid).")
@lake_option
@friendly
def quality_release(dataset: str, batch_id: str, reason: str, by: str | None, lake: str | None) -> None:
    """Publish a batch held by a fatal rule (re-conformed on the next `govlake run`)."""
    from govlake.control.principal import Principal
    from govlake.jobs.quality.validate import release

    ctx = make_context(lake)
    # The kernel's account (euid), never $USER: anyone can set an environment variable.
    release(ctx, dataset, batch_id, reason, by or Principal.owner_of(ctx.registry).name)
    console.print(f"已放行批次 {batch_id}（{dataset}）；下次 govlake run 时按行规则重新处理。")


from govlake.commands import register  # noqa: E402  (the service's groups join the pipeline's commands)

if __name__ == "__main__":  # pragma: no cover
    # ``python -m govlake.cli``: run the importable module's group. Registering here too would import the
    # groups, which import ``govlake.cli`` afresh and re-enter ``register`` while they are half-initialised.
    from govlake.cli import main as _importable_main

    _importable_main()
else:
    register(main)
