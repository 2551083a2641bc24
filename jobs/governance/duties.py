"""The duties-data list (职能数据清单): 职责 → 目录 → 数据, and what is missing or misplaced.

From ``catalog/duties.yaml`` (each department's 三定 functions and the data they produce or require), the
contracts (which duties each resource serves, who delivers it), the catalog and the data actually delivered:

- ``gold.duty_data_list``: one row per duty × resource it produces or requires, with the catalog code,
  whether the resource is catalogued, rows in silver, last delivery and freshness;
- ``gold.duty_findings``:
  - 缺位: a duty that produces a resource nobody catalogued, or whose catalogued resource has no data or no
    fresh data (against its 更新周期);
  - 越位: a node that delivers a resource none of its duties covers (neither the duty's ``produces`` nor the
    contract's ``duties`` name a duty of that node);
  - 一数一源: a data item with several sources and no designated authoritative source
    (``catalog/data_items.yaml``), and items whose sources actually disagree (from gold.source_conflicts).

Rebuilt with the catalog on every run (OpenLineage job ``duties.build``).
"""

from __future__ import annotations

from govlake.context import Context
from govlake.jobs.governance.catalog import last_deliveries, _table
from govlake.tables import CATALOG_RESOURCES, CROSSCHECK_SUMMARY, DUTY_DATA_LIST, DUTY_FINDINGS, INGEST_BATCHES


def _resources(ctx: Context) -> dict[str, dict]:
    if not ctx.lake.exists(*CATALOG_RESOURCES.ref):
        return {}
    return {r["dataset"]: r for r in ctx.lake.read(*CATALOG_RESOURCES.ref).to_pylist()}


def duty_rows(ctx: Context) -> list[dict]:
    reg = ctx.registry
    res = _resources(ctx)
    served_by: dict[str, set[str]] = {}
    for c in reg.contracts.values():
        for d in c.duties:
            served_by.setdefault(d, set()).add(c.dataset)
    out = []
    for duty in reg.duties.values():
        node_name = "各区" if duty.node == "districts" else reg.nodes[duty.node].name
        links = [(ds, "产生") for ds in sorted(set(duty.produces) | served_by.get(duty.id, set()))]
        links += [(ds, "需要") for ds in sorted(set(duty.requires) - set(duty.produces) - served_by.get(duty.id, set()))]
        if not links:
            links = [(None, "产生")]
        for ds, relation in links:
            r = res.get(ds or "")
            catalogued = ds in reg.contracts
            out.append({
                "duty_id": duty.id, "duty": duty.title, "node": duty.node, "node_name": node_name, "basis": duty.basis,
                "relation": relation, "dataset": ds,
                "resource_code": ctx.contract(ds).catalog.code if catalogued else None,
                "resource_name": ctx.contract(ds).title if catalogued else None,
                "catalogued": catalogued, "silver_rows": r["silver_rows"] if r else None,
                "last_delivery": r["last_delivery"] if r else None,
                "freshness": r["freshness"] if r else ("未编目" if ds else "无数据资源"),
            })
    return out


def findings(ctx: Context, rows: list[dict]) -> list[dict]:
    reg = ctx.registry
    out: list[dict] = []

    def add(kind: str, node: str | None, duty: str | None, dataset: str | None, detail: str, action: str) -> None:
        out.append({"kind": kind, "node": node, "node_name": (reg.nodes[node].name if node in reg.nodes else
                                                              "各区" if node == "districts" else node),
                    "duty_id": duty, "dataset": dataset, "detail": detail, "action": action})

    # 缺位: what a duty produces, not catalogued / without data / not fresh.
    for r in rows:
        if r["relation"] != "产生":
            continue
        title = f"{r['duty']}（{r['duty_id']}）"
        if r["dataset"] is None:
            add("缺位", r["node"], r["duty_id"], None, f"职责 {title} 没有对应的数据资源", "梳理该职责产生的数据并编目")
        elif not r["catalogued"]:
            add("缺位", r["node"], r["duty_id"], r["dataset"], f"职责 {title} 应产生的数据 {r['dataset']} 未编目",
                "编制数据资源目录并约定报送（新增 schemas/datasets 契约）")
        elif not r["silver_rows"]:
            add("缺位", r["node"], r["duty_id"], r["dataset"], f"职责 {title} 的数据资源《{r['resource_name']}》已编目但无数据",
                "按目录约定报送数据")
        elif r["freshness"] != "正常":
            add("缺位", r["node"], r["duty_id"], r["dataset"],
                f"职责 {title} 的数据资源《{r['resource_name']}》未按更新周期更新（{r['freshness']}，最近报送 {r['last_delivery']}）",
                "按更新周期报送最新数据")
    # 越位: a node delivering a resource that none of its duties covers.
    delivered = set(last_deliveries(ctx))  # (dataset, node) pairs with an accepted delivery
    for (ds, node) in sorted(delivered):
        c = reg.contracts.get(ds)
        if c is None:
            continue
        covering = [d for d in reg.duties.values() if node in reg.duty_nodes(d) and (ds in d.produces or d.id in c.duties)]
        if not covering:
            add("越位", node, None, ds, f"{reg.nodes[node].name}报送了《{c.title}》，但其职责中没有产生该数据的职责",
                "核实数据来源职责：补充职责登记，或改由有职责的部门报送")
    # 一数一源: several sources without a designated authority; and actual disagreements.
    for item in reg.data_items.values():
        if not item.has_authority and len(item.sources) > 1:
            add("一数一源", None, None, "、".join(s.dataset for s in item.sources),
                f"数据项“{item.title}”（{item.item}）有 {len(item.sources)} 个来源，未指定权威来源", "由数据管理部门指定权威来源（catalog/data_items.yaml）")
    if ctx.lake.exists(*CROSSCHECK_SUMMARY.ref):
        for s in ctx.lake.read(*CROSSCHECK_SUMMARY.ref).to_pylist():
            if s["conflicts"]:
                add("一数一源", s["authoritative_node"] or None, None, f"{s['dataset_a']}、{s['dataset_b']}",
                    f"数据项“{s['item_title']}”在两个来源间有 {s['conflicts']} 个主体取值不一致（共比对 {s['compared']} 个）",
                    f"以权威来源 {s['authoritative_node'] or '（未指定）'} 为准，通知其他来源核实更正")
    return out


def build_duties(ctx: Context) -> dict[str, int]:
    from govlake.lineage_events import DatasetRef

    outs = [DatasetRef(*DUTY_DATA_LIST.ref), DatasetRef(*DUTY_FINDINGS.ref)]
    inputs = [DatasetRef(*t.ref) for t in (CATALOG_RESOURCES, CROSSCHECK_SUMMARY, INGEST_BATCHES)]
    with ctx.lineage.run("duties.build", inputs, outs,
                         description="职能数据清单：职责 → 目录 → 数据，及缺位、越位、一数一源问题"):
        rows = duty_rows(ctx)
        found = findings(ctx, rows)
        ctx.lake.overwrite(*DUTY_DATA_LIST.ref, _table(rows), description=DUTY_DATA_LIST.description)
        ctx.lake.overwrite(*DUTY_FINDINGS.ref, DUTY_FINDINGS.from_rows(found), description=DUTY_FINDINGS.description)
        outs[0].rows, outs[1].rows = len(rows), len(found)
    return {DUTY_DATA_LIST.name: len(rows), DUTY_FINDINGS.name: len(found)}

