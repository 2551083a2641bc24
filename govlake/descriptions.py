"""Table and column descriptions for analysts, from the declarations (not written twice).

- silver and quarantine columns: the contract's field titles and descriptions (a pseudonym or masked value
  says so);
- gold model columns: the ``description`` of each column in schemas/gold/*.yaml;
- governance gold tables: the descriptions below, next to nothing else that could drift;
- table descriptions: the Delta table's own description, set by the job that writes it.
"""

from __future__ import annotations

from govlake.models import load_models

GOVERNANCE_COLUMNS: dict[str, dict[str, str]] = {
    "quality_scores": {"run_id": "评分所属的运行", "scope": "范围：node_dataset / dataset / node / district",
                       "completeness": "完整性（0–1）", "validity": "有效性（0–1）", "uniqueness": "唯一性（0–1）",
                       "timeliness": "及时性（0–1）", "consistency": "一致性（0–1）", "score": "综合得分（0–100）"},
    "source_conflicts": {"item": "数据项（catalog/data_items.yaml）", "subject_key": "主体：假名化的公民身份号码或统一社会信用代码",
                         "value_a": "来源 A 的取值（已脱敏）", "value_b": "来源 B 的取值（已脱敏）",
                         "authoritative_node": "权威来源节点（一数一源）", "authoritative_value": "权威来源的取值（已脱敏）"},
    "crosscheck_summary": {"compared": "两个来源共有的主体数", "conflicts": "取值不一致的主体数"},
    "catalog_resources": {"code": "资源代码（类-项-目-细目）", "name": "资源名称", "category": "资源分类", "provider": "提供方",
                          "share": "共享属性", "open": "开放属性", "update_cycle": "更新周期", "silver_rows": "标准层行数",
                          "freshness": "按更新周期的及时性", "quality_score": "最新质量得分"},
    "catalog_nodes": {"code": "节点代码（GB/T 2260 或部门拼音首字母）", "health": "健康状况：正常 / 滞后 / 无数据 / 无报送职责",
                      "last_delivery": "最近报送日期", "quality_score": "最新质量得分"},
    "catalog_items": {"item_name": "信息项名称", "pii": "个人信息分类", "grade": "数据分级"},
    "duty_data_list": {"duty_id": "职责编号", "relation": "职责与数据的关系：产生 / 需要", "freshness": "数据及时性"},
    "duty_findings": {"kind": "问题类型：缺位 / 越位 / 一数一源", "detail": "问题说明", "action": "处理建议"},
    "indicator_values": {"period": "统计期（YYYY-MM）", "district_code": "区代码（为空表示全市）", "value": "指标值",
                         "level": "阈值状态：正常 / 预警 / 告警"},
    "indicator_progress": {"value": "最新全市值", "baseline_2022": "2022 年基线（表 1）", "target_2025": "2025 年目标（表 1）",
                           "target_2027": "2027 年目标（表 1）", "progress_2025": "距 2025 目标的进度（%）"},
    "lineage_edges": {"source": "上游表", "source_column": "上游字段（为空表示表级）", "target": "下游表",
                      "target_column": "下游字段", "transformation": "转换类型"},
}


def column_descriptions(ctx, layer: str, name: str) -> dict[str, str]:  # ctx: govlake.context.Context
    if layer in ("silver", "quarantine") and name in ctx.registry.contracts:
        out: dict[str, str] = {}
        for f in ctx.contract(name).fields:
            text = f.title + (f"：{f.description}" if f.description else "")
            out[f.name] = text
            out[f"{f.name}_pid"] = f"{f.title}的假名（HMAC-SHA256，用于关联，不可还原）"
            out[f"{f.name}_masked"] = f"{f.title}（脱敏）"
        out.update({"_batch_id": "报送批次", "_node": "报送节点", "_row_number": "在报送文件中的行号",
                    "_ingested_at": "导入时间", "_warnings": "未通过的警告级规则", "_failures": "未通过的规则",
                    "_record": "报送原记录（个人信息已脱敏）", "_status": "隔离状态：open / resolved"})
        return out
    if layer == "gold":
        models = load_models(ctx.settings.schemas_dir)
        if name in models:
            return {c.name: c.description for c in models[name].columns}
        return dict(GOVERNANCE_COLUMNS.get(name, {}))
    return {}


def table_description(ctx, layer: str, name: str) -> str:
    dt = ctx.lake.table(layer, name)
    return (dt.metadata().description or "") if dt is not None else ""
