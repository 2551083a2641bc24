"""The "1+11+N" data resource catalog as gold tables: 一张网 (nodes), 一张图 (resources), 一本账 (items).

- ``gold.catalog_nodes``: the city center, the 11 district nodes and the department nodes, each with its
  health: datasets it delivers, last delivery, freshness against the declared 更新周期, latest quality score.
- ``gold.catalog_resources``: one row per resource with the catalogue metadata of
  《政务信息资源目录编制指南》 from its contract (资源分类, 名称, 代码 类-项-目-细目, 提供方, 摘要, 格式, 信息项,
  共享属性, 开放属性, 更新周期, 发布日期) and harvested technical metadata (silver schema, rows, bytes, Delta
  version, last update, quality score, classification grade, upstream and downstream tables from lineage).
- ``gold.catalog_items``: the information items (信息项) of every resource with type, PII kind and grade.

Everything is read from the registries, the Delta logs and the gold tables the pipeline already keeps; the
catalog is rebuilt whole on every run (it is small) as OpenLineage job ``catalog.build``.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pyarrow as pa

from govlake.context import Context
from govlake.jobs.ingest.bronze import SHANGHAI
from govlake.jobs.quality.validate import freshness
from govlake.tables import (
    BRONZE, CATALOG_ITEMS, CATALOG_NODES, CATALOG_RESOURCES, INGEST_BATCHES, QUALITY_SCORES, SILVER, LakeTable,
)

KIND_TITLES = {"center": "市级中心", "district": "区级节点", "department": "市直部门"}
PII_TITLES = {"none": "非个人信息", "personal": "个人信息", "sensitive": "敏感个人信息"}


def _latest_scores(ctx: Context) -> dict[tuple[str, str | None, str | None], float]:
    if not ctx.lake.exists(*QUALITY_SCORES.ref):
        return {}
    out: dict[tuple, tuple[str, float]] = {}
    for r in ctx.lake.read(*QUALITY_SCORES.ref, columns=["run_id", "scope", "dataset", "node", "score"]).to_pylist():
        key = (r["scope"], r["dataset"], r["node"])
        if r["score"] is not None and r["run_id"] >= out.get(key, ("", 0.0))[0]:
            out[key] = (r["run_id"], r["score"])
    return {k: v[1] for k, v in out.items()}


def last_deliveries(ctx: Context) -> dict[tuple[str, str], date]:
    """(dataset, node) -> date of the last accepted delivery."""
    if not ctx.lake.exists(*INGEST_BATCHES.ref):
        return {}
    out: dict[tuple[str, str], date] = {}
    for r in ctx.lake.read(*INGEST_BATCHES.ref, filter_sql="status = 'ingested'").to_pylist():
        d = r.get("delivered_on") or r["ingested_at"].astimezone(SHANGHAI).date()
        key = (r["dataset"], r["node"])
        out[key] = max(out.get(key, d), d)
    return out


def _table_facts(ctx: Context, layer: str, name: str) -> dict:
    dt = ctx.lake.table(layer, name)
    if dt is None:
        return {"rows": None, "size_bytes": None, "version": None, "updated_at": None, "schema": None}
    adds = dt.get_add_actions(flatten=True)
    adds = pa.table(adds) if not isinstance(adds, pa.Table) else adds
    rows = sum(v or 0 for v in adds.column("num_records").to_pylist()) if "num_records" in adds.column_names else None
    size = sum(adds.column("size_bytes").to_pylist()) if "size_bytes" in adds.column_names else None
    hist = dt.history(1)
    ts = hist[0].get("timestamp") if hist else None
    updated = datetime.fromtimestamp(ts / 1000, tz=timezone.utc) if ts else None
    schema = [{"name": f.name, "type": str(f.type)} for f in ctx.lake.arrow_schema(layer, name)]
    return {"rows": rows, "size_bytes": size, "version": dt.version(), "updated_at": updated,
            "schema": json.dumps(schema, ensure_ascii=False)}


def resources(ctx: Context, as_of: date) -> list[dict]:
    from govlake.jobs.governance.lineage import lineage_edges
    from govlake.lineage_graph import walk

    reg = ctx.registry
    scores = _latest_scores(ctx)
    last = last_deliveries(ctx)
    edges = lineage_edges(ctx)
    out = []
    for name, c in sorted(reg.contracts.items(), key=lambda kv: kv[1].catalog.code):
        facts = _table_facts(ctx, *SILVER.ref(name))
        deliverers = reg.deliverers(c)
        dates = [last[(name, n)] for n in deliverers if (name, n) in last]
        status, age = freshness(max(dates) if dates else None, c.catalog.update_cycle, as_of)
        silver = SILVER.qualified(name)
        down = sorted({s.table for s in walk(edges, silver)}) if any(e.source == silver for e in edges) else []
        out.append({
            "code": c.catalog.code, "name": c.title, "dataset": name, "category": c.catalog.category,
            "base_catalogue": c.catalog.base, "theme": c.catalog.theme,
            "provider": reg.nodes[c.owner].name, "provider_code": c.owner,
            "delivered_by": "、".join(deliverers), "summary": c.catalog.summary, "format": c.catalog.format,
            "items": "、".join(f.title for f in c.fields), "item_count": len(c.fields),
            "share": c.catalog.share, "share_condition": c.catalog.share_condition, "open": c.catalog.open,
            "update_cycle": c.catalog.update_cycle, "published_on": c.catalog.published_on,
            "grade": max(f.grade for f in c.fields), "has_personal_info": any(f.is_pii for f in c.fields),
            "silver_rows": facts["rows"], "size_bytes": facts["size_bytes"], "delta_version": facts["version"],
            "last_update": facts["updated_at"], "silver_schema": facts["schema"],
            "last_delivery": max(dates) if dates else None, "freshness": status, "age_days": age,
            "quality_score": scores.get(("dataset", name, None)),
            "upstream": BRONZE.qualified(name),
            "downstream": "、".join(down),
        })
    return out


def nodes(ctx: Context, res: list[dict], as_of: date) -> list[dict]:
    reg = ctx.registry
    scores = _latest_scores(ctx)
    last = last_deliveries(ctx)
    out = []
    for code, n in reg.nodes.items():
        delivered = [c for c in reg.contracts.values() if code in reg.deliverers(c)]
        dates = [last[(c.dataset, code)] for c in delivered if (c.dataset, code) in last]
        stale = [c.title for c in delivered
                 if freshness(last.get((c.dataset, code)), c.catalog.update_cycle, as_of)[0] != "正常"]
        health = "无报送职责" if not delivered else ("正常" if not stale else ("无数据" if not dates else "滞后"))
        out.append({
            "code": code, "name": n.name, "kind": n.kind, "kind_title": KIND_TITLES[n.kind], "district": n.district,
            "resources": len(delivered), "resources_with_data": len(dates),
            "last_delivery": max(dates) if dates else None, "health": health,
            "stale_resources": "、".join(stale), "quality_score": scores.get(("node", None, code)),
        })
    return out


def items(ctx: Context) -> list[dict]:
    out = []
    for name, c in sorted(ctx.registry.contracts.items()):
        for i, f in enumerate(c.fields, 1):
            out.append({"resource_code": c.catalog.code, "resource_name": c.title, "dataset": name, "ordinal": i,
                        "item_name": f.title, "field": f.name, "type": f.type, "description": f.description or None,
                        "is_key": f.name in c.key, "required": bool(f.required or f.name in c.key),
                        "pii": PII_TITLES.get(f.pii, f.pii), "grade": f.grade, "code_list": f.codes,
                        "share": c.catalog.share, "open": c.catalog.open})
    return out


def _table(rows: list[dict]) -> pa.Table:
    """Rows as Arrow, with columns that happen to be all NULL typed as text (Delta has no null type)."""
    t = pa.Table.from_pylist(rows)
    for i, f in enumerate(t.schema):
        if pa.types.is_null(f.type):
            t = t.set_column(i, pa.field(f.name, pa.string()), t.column(i).cast(pa.string()))
    return t


def build_catalog(ctx: Context, as_of: date | None = None) -> dict[str, int]:
    """Rebuild the three catalog tables (OpenLineage job ``catalog.build``)."""
    from govlake.lineage_events import DatasetRef

    as_of = as_of or datetime.now(SHANGHAI).date()
    outs = {t: DatasetRef(*t.ref) for t in (CATALOG_NODES, CATALOG_RESOURCES, CATALOG_ITEMS)}
    inputs = [DatasetRef(*INGEST_BATCHES.ref), DatasetRef(*QUALITY_SCORES.ref)]
    counts = {}
    with ctx.lineage.run("catalog.build", inputs, list(outs.values()),
                         description="编制“1+11+N”数据资源目录：一张网（节点）、一张图（资源）、一本账（信息项）"):
        res = resources(ctx, as_of)
        tables = {CATALOG_RESOURCES: res, CATALOG_NODES: nodes(ctx, res, as_of), CATALOG_ITEMS: items(ctx)}
        for table, rows in tables.items():
            t = _table(rows)
            ctx.lake.overwrite(*table.ref, t, description=table.description)
            outs[table].rows = t.num_rows
            counts[table.name] = t.num_rows
    return counts


SEARCHED = {CATALOG_NODES.name: ("code", "name", "kind_title", "district"),
            CATALOG_RESOURCES.name: ("code", "name", "dataset", "category", "provider", "summary", "items"),
            CATALOG_ITEMS.name: ("resource_code", "resource_name", "item_name", "field")}
SHEETS = {CATALOG_NODES.name: "节点", CATALOG_RESOURCES.name: "数据资源目录", CATALOG_ITEMS.name: "信息项"}


def search_rows(ctx: Context, table: LakeTable, text: str | None = None, *, node: str | None = None,
                share: str | None = None) -> list[dict]:
    """Catalog rows matching ``text`` (any word, in the searched columns), a delivering node and a share attribute."""
    from govlake.errors import RegistryError
    from govlake.messages import NOT_BUILT

    if not ctx.lake.exists(*table.ref):
        raise NOT_BUILT.error(RegistryError, what="数据资源目录")
    rows = ctx.lake.read(*table.ref).to_pylist()
    if node:
        ctx.registry.node(node)  # unknown node: a clear error with a suggestion
        if table == CATALOG_RESOURCES:
            rows = [r for r in rows if node in (r["delivered_by"] or "").split("、")]
        elif table == CATALOG_NODES:
            rows = [r for r in rows if r["code"] == node]
    if share and table in (CATALOG_RESOURCES, CATALOG_ITEMS):
        rows = [r for r in rows if r["share"] == share]
    if text:
        words = text.split()
        rows = [r for r in rows if all(any(w.lower() in str(r.get(c) or "").lower() for c in SEARCHED[table.name]) for w in words)]
    return rows


def export(rows: list[dict], fmt: str, path, table: LakeTable):
    """CSV (UTF-8 with BOM, opens in Excel), JSON or an Excel workbook; to stdout for CSV/JSON without a path.

    CSV and Excel cells go through ``govlake.exports``: catalogue texts come from contracts and deliveries
    and must never run as spreadsheet formulas."""
    import csv
    import io
    import sys
    from pathlib import Path

    from govlake.exports import append_row, safe_row

    def plain(v):
        return v.isoformat() if hasattr(v, "isoformat") else v

    if fmt == "json":
        text = json.dumps([{k: plain(v) for k, v in r.items()} for r in rows], ensure_ascii=False, indent=1)
        if path is None:
            sys.stdout.write(text + "\n")
            return None
        Path(path).write_text(text, encoding="utf-8")
        return path
    header = list(rows[0]) if rows else []
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(safe_row(header))
        w.writerows([safe_row(plain(r[h]) for h in header) for r in rows])
        if path is None:
            sys.stdout.write(buf.getvalue())
            return None
        Path(path).write_bytes(buf.getvalue().encode("utf-8-sig"))
        return path
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = SHEETS[table.name]
    append_row(ws, header)
    for r in rows:
        append_row(ws, [plain(r[h]) if not isinstance(plain(r[h]), (dict, list)) else json.dumps(r[h], ensure_ascii=False)
                        for h in header])
    ws.freeze_panes = "A2"
    path = Path(path or f"{ws.title}.xlsx")
    wb.save(path)
    return path
