"""The stewards' quality report: ``govlake quality report``.

Built from what the pipeline recorded, never by re-reading deliveries: ``gold.quality_scores`` (scores and
their trend per run), ``meta.validation_results`` (failing rules, counts, since when), the quarantine tables
(masked sample rows and the drill-down), ``meta.ingest_batches`` (schema drift) and ``meta.conform_batches``
(held batches). Three outputs in one directory:

- ``index.html`` and ``quarantine/<dataset>.html``: our own report in Chinese (self-contained, inline SVG
  charts, no scripts), per node and dataset;
- ``质量报告.xlsx``: the same tables for stewards who live in Excel;
- ``gx/``: Great Expectations Data Docs of the suites and the latest validation of every batch.

PII: sample rows come from the quarantine's ``_record`` (masked at conform time) and every other personal
field of the contract is masked again here, so no raw personal value reaches the report.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from markupsafe import Markup

from govlake.context import Context
from govlake.engine.base import sql_str
from govlake.exports import append_row
from govlake.jobs.quality.scoring import DIMENSION_TITLES, DIMENSIONS
from govlake.status import BatchStatus
from govlake.tables import CONFORM_BATCHES, CROSSCHECK_SUMMARY, INGEST_BATCHES, QUALITY_SCORES, VALIDATION_RESULTS, LakeTable

SAMPLES_PER_RULE = 3
DRILLDOWN_ROWS = 500
SEVERITY_TITLES = {"error": "错误（隔离）", "warn": "警告（保留并计数）", "fatal": "致命（整批暂停发布）"}


@dataclass
class RuleFinding:
    rule: str
    description: str
    severity: str
    failed: int
    checked: int
    since: str
    samples: list[dict] = field(default_factory=list)

    @property
    def percent(self) -> float:
        return 100.0 * self.failed / self.checked if self.checked else 0.0


@dataclass
class Section:
    """One node × dataset: what a steward of that node needs to fix."""

    dataset: str
    dataset_title: str
    node: str
    node_title: str
    score: float | None
    dims: dict[str, float | None]
    trend: list[tuple[str, float]]
    rows: int
    quarantined_open: int
    findings: list[RuleFinding]
    drift: list[dict]
    held: list[dict]


@dataclass
class Report:
    generated_at: str
    lake: str
    runs: list[str]
    ranking: dict[str, list[dict]]
    sections: list[Section]
    conflicts: list[dict]
    drilldowns: dict[str, list[dict]]
    datasets: dict[str, str]


def _mask_text(value: Any) -> str:
    s = "" if value is None else str(value)
    if not s or "*" in s:
        return s
    if len(s) == 10 and s[4] == "-":  # a date
        return s[:4] + "-**-**"
    return "*" if len(s) == 1 else s[:1] + "*" * (len(s) - 1)


def safe_record(ctx: Context, dataset: str, record_json: str | None) -> dict:
    """The delivered record as shown to stewards: PII fields the contract only classifies are masked too."""
    try:
        rec = json.loads(record_json or "{}")
    except json.JSONDecodeError:
        return {}
    c = ctx.contract(dataset)
    personal = {f.title for f in c.fields if f.is_pii}
    return {k: (_mask_text(v) if k in personal else v) for k, v in rec.items()}


def _read(ctx: Context, table: LakeTable, **kw: Any) -> list[dict]:
    return ctx.lake.read(*table.ref, **kw).to_pylist() if ctx.lake.exists(*table.ref) else []


def collect(ctx: Context) -> Report:
    reg = ctx.registry
    node_title = lambda n: reg.nodes[n].name if n in reg.nodes else (n or "")  # noqa: E731
    scores = _read(ctx, QUALITY_SCORES)
    runs = sorted({s["run_id"] for s in scores})
    latest: dict[tuple, dict] = {}
    trend: dict[tuple, list[tuple[str, float]]] = defaultdict(list)
    for s in sorted(scores, key=lambda r: r["run_id"]):
        key = (s["scope"], s["dataset"], s["node"], s["district"])
        latest[key] = s
        if s["score"] is not None:
            trend[key].append((s["run_id"], s["score"]))
    ranking = {scope: sorted((dict(v, trend=trend[k]) for k, v in latest.items() if k[0] == scope),
                             key=lambda r: (r["score"] is None, r["score"] or 0))
               for scope in ("node", "district", "dataset")}

    results = _read(ctx, VALIDATION_RESULTS, filter_sql="layer = 'silver'")
    acc = {(r["dataset"], r["batch_id"]): r for r in _read(ctx, CONFORM_BATCHES)}
    log = _read(ctx, INGEST_BATCHES, filter_sql="status = 'ingested'")
    node_of = {r["batch_id"]: r["node"] for r in log}
    findings: dict[tuple[str, str], dict[str, RuleFinding]] = defaultdict(dict)
    for r in sorted(results, key=lambda r: r["validated_at"]):
        node = r["node"] or node_of.get(r["batch_id"])
        if not r["unexpected_count"] or (r["severity"] == "fatal" and r["success"]):
            continue  # a fatal rule under its threshold is not a finding (its row-level twin reports the rows)
        f = findings[(r["dataset"], node)].get(r["rule"])
        when = r["validated_at"].astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")
        if f is None:
            findings[(r["dataset"], node)][r["rule"]] = RuleFinding(r["rule"], r["description"] or "", r["severity"],
                                                                    r["unexpected_count"], r["element_count"], when)
        else:
            f.failed += r["unexpected_count"]
            f.checked += r["element_count"]
    checked_rows: dict[tuple[str, str], int] = defaultdict(int)
    for (ds, b), a in acc.items():
        checked_rows[(ds, node_of.get(b))] += a["bronze_rows"]

    sections: list[Section] = []
    drilldowns: dict[str, list[dict]] = {}
    keys = sorted({(k[1], k[2]) for k in latest if k[0] == "node_dataset"} | set(findings))
    open_q: dict[tuple[str, str], int] = defaultdict(int)
    for ds in sorted({k[0] for k in keys}):
        if not ctx.lake.exists("quarantine", ds):
            continue
        rows = ctx.lake.read("quarantine", ds, columns=["_failures", "_record", "_node", "_source_file", "_row_number",
                                                        "_status", "_batch_id", "_resolved_by"]).to_pylist()
        drilldowns[ds] = []
        for r in rows:
            if r["_status"] == "open":
                open_q[(ds, r["_node"])] += 1
            if len(drilldowns[ds]) < DRILLDOWN_ROWS and r["_status"] == "open":
                drilldowns[ds].append({"node": r["_node"], "file": Path(r["_source_file"]).name, "row": r["_row_number"],
                                       "failures": list(r["_failures"] or []), "record": safe_record(ctx, ds, r["_record"])})
            for rule in r["_failures"] or []:
                f = findings.get((ds, r["_node"]), {}).get(rule.removeprefix("batch:"))
                if f is not None and len(f.samples) < SAMPLES_PER_RULE and r["_status"] == "open":
                    f.samples.append(safe_record(ctx, ds, r["_record"]) | {"文件": Path(r["_source_file"]).name,
                                                                          "行号": r["_row_number"]})
    for ds, node in keys:
        s = latest.get(("node_dataset", ds, node, None), {})
        drift = []
        for r in log:
            if r["dataset"] == ds and r["node"] == node:
                unknown = json.loads(r.get("unknown_headers") or "[]")
                missing = json.loads(r.get("missing_fields") or "[]")
                if unknown or missing:
                    drift.append({"file": Path(r["source_file"]).name, "unknown": unknown,
                                  "missing": [ctx.contract(ds).field(m).title for m in missing]})
        held = [{"batch_id": b, "file": Path(next((x["source_file"] for x in log if x["batch_id"] == b), "")).name,
                 "rules": json.loads(a.get("held_by") or "[]"), "rows": a["bronze_rows"]}
                for (d, b), a in acc.items() if d == ds and node_of.get(b) == node and a.get("status") == BatchStatus.HELD]
        sections.append(Section(
            dataset=ds, dataset_title=ctx.contract(ds).title, node=node, node_title=node_title(node),
            score=s.get("score"), dims={d: s.get(d) for d in DIMENSIONS}, trend=trend.get(("node_dataset", ds, node, None), []),
            rows=checked_rows.get((ds, node), 0), quarantined_open=open_q.get((ds, node), 0),
            findings=sorted(findings.get((ds, node), {}).values(), key=lambda f: (-{"fatal": 2, "error": 1}.get(f.severity, 0), -f.failed)),
            drift=drift, held=held))
    sections.sort(key=lambda s: (s.score is None, s.score or 0))
    conflicts = _read(ctx, CROSSCHECK_SUMMARY)
    return Report(generated_at=datetime.now().strftime("%Y-%m-%d %H:%M"), lake=ctx.settings.lake_root, runs=runs,
                  ranking=ranking, sections=sections, conflicts=conflicts, drilldowns=drilldowns,
                  datasets={d: c.title for d, c in reg.contracts.items()})


# -- rendering -------------------------------------------------------------------------------------------------

def sparkline(points: list[tuple[str, float]], width: int = 160, height: int = 36) -> Markup:
    """A small inline SVG line chart of scores over runs (0–100 scale).

    Returned as ``Markup`` (the only markup the templates do not escape): every text in it is escaped here
    and the rest are numbers, so templates need no ``|safe``."""
    if not points:
        return Markup('<span class="muted">无</span>')
    n = len(points)
    xs = [6 + (width - 12) * (i / (n - 1) if n > 1 else 0.5) for i in range(n)]
    ys = [height - 4 - (height - 8) * max(0.0, min(100.0, v)) / 100 for _, v in points]
    poly = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys))
    dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5"><title>{html.escape(r)}：{v:.1f}</title></circle>'
                   for (r, v), x, y in zip(points, xs, ys))
    return Markup(f'<svg class="trend" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
                  f'aria-label="评分趋势"><polyline points="{poly}" fill="none" stroke="#1769aa" stroke-width="1.5"/>{dots}</svg>')


def _env():
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("govlake", "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = lambda v: "—" if v is None else f"{100 * v:.1f}%"
    env.filters["score"] = lambda v: "—" if v is None else f"{v:.1f}"
    env.filters["num"] = lambda v: f"{v:,}"
    env.globals.update(sparkline=sparkline, DIMENSIONS=DIMENSIONS, DIMENSION_TITLES=DIMENSION_TITLES,
                       SEVERITY_TITLES=SEVERITY_TITLES)
    return env


def write_html(report: Report, out: Path, gx_index: str | None) -> Path:
    env = _env()
    out.mkdir(parents=True, exist_ok=True)
    (out / "quarantine").mkdir(exist_ok=True)
    index = out / "index.html"
    index.write_text(env.get_template("quality_report.html.j2").render(r=report, gx_index=gx_index), encoding="utf-8")
    for ds, rows in report.drilldowns.items():
        cols = sorted({k for row in rows for k in row["record"]}, key=lambda k: list(rows[0]["record"]).index(k)
                      if rows and k in rows[0]["record"] else 999)
        (out / "quarantine" / f"{ds}.html").write_text(
            env.get_template("quarantine.html.j2").render(r=report, ds=ds, title=report.datasets[ds], rows=rows, cols=cols),
            encoding="utf-8")
    return index


def write_excel(report: Report, path: Path) -> Path:
    """The same tables as the HTML report, one sheet each (stewards filter and annotate them in Excel)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    sheets: list[tuple[str, list[str], list[list]]] = []
    dims = [DIMENSION_TITLES[d] for d in DIMENSIONS]
    sheets.append(("评分", ["范围", "对象", "得分", *dims, "行数", "历次得分"],
                   [[{"node": "节点", "district": "区", "dataset": "数据集"}[scope], r["label"], r["score"],
                     *[None if r[d] is None else round(100 * r[d], 2) for d in DIMENSIONS], r["rows"],
                     " → ".join(f"{v:.1f}" for _, v in r["trend"])]
                    for scope, rows in report.ranking.items() for r in rows]))
    sheets.append(("失败规则", ["节点", "数据集", "规则", "严重程度", "说明", "失败行数", "校验行数", "失败占比%", "首次发现"],
                   [[s.node_title, s.dataset_title, f.rule, SEVERITY_TITLES.get(f.severity, f.severity), f.description,
                     f.failed, f.checked, round(f.percent, 3), f.since] for s in report.sections for f in s.findings]))
    q_rows = []
    for ds, rows in report.drilldowns.items():
        for row in rows:
            q_rows.append([report.datasets[ds], row["node"], row["file"], row["row"], "、".join(row["failures"]),
                           json.dumps(row["record"], ensure_ascii=False)])
    sheets.append(("隔离明细", ["数据集", "节点", "文件", "行号", "未通过的规则", "报送记录（已脱敏）"], q_rows))
    sheets.append(("表结构变化", ["节点", "数据集", "文件", "未登记的列", "缺少的字段"],
                   [[s.node_title, s.dataset_title, d["file"], "、".join(d["unknown"]), "、".join(d["missing"])]
                    for s in report.sections for d in s.drift]))
    sheets.append(("暂停发布批次", ["节点", "数据集", "批次", "文件", "行数", "致命规则", "处理办法"],
                   [[s.node_title, s.dataset_title, h["batch_id"], h["file"], h["rows"], "、".join(h["rules"]),
                     f"修正后重新报送，或核实后执行 govlake quality release {s.dataset} {h['batch_id']} --reason 说明"]
                    for s in report.sections for h in s.held]))
    sheets.append(("多源校核", ["数据项", "来源 A", "来源 B", "比对主体数", "冲突数", "权威来源"],
                   [[c["item_title"], report.datasets.get(c["dataset_a"], c["dataset_a"]),
                     report.datasets.get(c["dataset_b"], c["dataset_b"]), c["compared"], c["conflicts"], c["authoritative_node"]]
                    for c in report.conflicts]))
    wb.remove(wb.active)
    head_fill = PatternFill("solid", fgColor="DDEBF7")
    for title, header, rows in sheets:
        ws = wb.create_sheet(title)
        append_row(ws, header)
        for c in ws[1]:
            c.font = Font(bold=True)
            c.fill = head_fill
        for row in rows:
            append_row(ws, row)  # file names, unknown headers and rule texts are delivered text: never formulas
        ws.freeze_panes = "A2"
        ws.auto_filter.ref = ws.dimensions
        for i, h in enumerate(header, 1):
            width = max([len(str(h))] + [len(str(r[i - 1])) for r in rows[:200] if r[i - 1] is not None])
            ws.column_dimensions[get_column_letter(i)].width = min(60, max(8, width * 1.6))
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def write_data_docs(ctx: Context, out: Path) -> str | None:
    """GX Data Docs: every suite, and the latest validation of each silver batch and gold table as GX
    validation results (the counts come from our engine pass; GX renders them)."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)  # pyspark (imported by GX) on pandas 3
    try:
        import great_expectations as gx
        from great_expectations.core.expectation_validation_result import (
            ExpectationSuiteValidationResult,
            ExpectationValidationResult,
        )
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )
    except ImportError:
        return None
    import logging
    import shutil

    from govlake.gx import gx_suite
    from govlake.jobs.quality.suites import all_suites

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    root = out / "gx"
    if root.exists():
        shutil.rmtree(root)  # rebuilt from the lake every time: the lake is the record
    context = gx.get_context(mode="file", project_root_dir=str(out))
    suites = {s.name: s for s in all_suites(ctx)}
    gx_suites = {}
    for name, s in suites.items():
        gx_suites[name] = context.suites.add(gx_suite(s.to_gx_json()))
    results = _read(ctx, VALIDATION_RESULTS)
    latest: dict[tuple[str, str | None], list[dict]] = defaultdict(list)
    newest: dict[tuple[str, str | None], str] = {}
    for r in results:
        k = (r["suite"], r["batch_id"])
        if r["run_id"] >= newest.get(k, ""):
            if r["run_id"] > newest.get(k, ""):
                latest[k] = []
            newest[k] = r["run_id"]
            latest[k].append(r)
    for (suite_name, batch_id), rows in sorted(latest.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        suite = gx_suites.get(suite_name)
        if suite is None:
            continue
        by_rule = {e.meta.get("rule"): e for e in suite.expectations}
        evrs = []
        for r in rows:
            e = by_rule.get(r["rule"])
            if e is None:
                continue
            evrs.append(ExpectationValidationResult(
                success=bool(r["success"]), expectation_config=e.configuration,
                result={"element_count": r["element_count"], "unexpected_count": r["unexpected_count"],
                        "unexpected_percent": r["unexpected_percent"], "partial_unexpected_list": [],
                        "observed_value": r["observed"] or None},
                meta={"severity": r["severity"], "rule": r["rule"]}))
        run_time = min(r["validated_at"] for r in rows)
        vr = ExpectationSuiteValidationResult(
            success=all(x.success for x in evrs), results=evrs, suite_name=suite_name,
            statistics={"evaluated_expectations": len(evrs), "successful_expectations": sum(x.success for x in evrs),
                        "unsuccessful_expectations": sum(not x.success for x in evrs),
                        "success_percent": 100.0 * sum(x.success for x in evrs) / len(evrs) if evrs else 100.0},
            meta={"run_id": RunIdentifier(run_name=rows[0]["run_id"], run_time=run_time),
                  "active_batch_definition": {"datasource_name": "govlake", "data_asset_name": suite_name,
                                              "batch_definition_name": batch_id or "whole_table"},
                  "batch_spec": {}, "batch_markers": {}, "validation_time": run_time.isoformat()})
        key = ValidationResultIdentifier(expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite_name),
                                         run_id=RunIdentifier(run_name=rows[0]["run_id"], run_time=run_time),
                                         batch_identifier=batch_id or "whole_table")
        context.validation_results_store.set(key, vr)
    context.build_data_docs()
    index = root / "uncommitted" / "data_docs" / "local_site" / "index.html"
    return str(index.relative_to(out)) if index.exists() else None


def build_report(ctx: Context, out: Path, data_docs: bool = True) -> dict[str, Path | None]:
    report = collect(ctx)
    gx_index = write_data_docs(ctx, out) if data_docs else None
    index = write_html(report, out, gx_index)
    xlsx = write_excel(report, out / "质量报告.xlsx")
    return {"html": index, "excel": xlsx, "data_docs": out / gx_index if gx_index else None,
            "sections": len(report.sections), "findings": sum(len(s.findings) for s in report.sections)}


__all__ = ["build_report", "collect", "safe_record", "sparkline", "sql_str"]
