"""Every lake table that is not a contract's or a gold model's own, declared once.

A table is named in many places: the job that writes it, the jobs and pages that read it, the lineage
graph, the gold suites, the analysts' column descriptions, the Airflow Assets. Declared here once (layer,
name, Delta description, columns with their Arrow type and Chinese description, business key), every one
of them imports the declaration, so a rename or a new column is one edit and readers never import the job
that writes a table just to learn its name.

- ``meta.*``: the pipeline's books (ingest log, per-batch accounting, validation record, waivers, the inputs
  each plan stage was last built from; the SQL audit lives in the control plane, govlake.control.audit);
- governance ``gold.*`` tables written by jobs (多源校核, scores, lineage, catalog, duties, indicators);
  the declarative gold models stay declared in ``schemas/gold/`` (govlake/models.py);
- ``bronze.<dataset>``, ``silver.<dataset>``, ``quarantine.<dataset>``: one table per contract, declared as
  a pattern (:class:`DatasetLayer`) with the columns every table of the layer adds to the contract's fields.

Cheap to import (no pyarrow at import time): the DAG files name tables at parse time. ``schema`` builds
the Arrow schema when a writer asks for it. A column without a type is typed by the SQL or the rows that
build the table (the catalog tables, the cross-check tables).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

LAYERS = ("bronze", "silver", "quarantine", "gold", "meta")

# The Arrow types the declarations use, by name (built on demand, see ``arrow_type``).
TYPES = ("string", "int32", "int64", "float64", "bool", "date", "timestamp")


@lru_cache(maxsize=None)
def arrow_type(name: str) -> "pa.DataType":
    """The Arrow type of a declared type name; timestamps are microseconds in UTC, like every govlake write."""
    import pyarrow as pa

    types = {"string": pa.string(), "int32": pa.int32(), "int64": pa.int64(), "float64": pa.float64(),
             "bool": pa.bool_(), "date": pa.date32(), "timestamp": pa.timestamp("us", tz="UTC")}
    return types[name]


@dataclass(frozen=True)
class Column:
    name: str
    type: str | None = None  # one of TYPES; None: typed by the SQL or the rows that build the table
    description: str = ""

    def __post_init__(self) -> None:
        if self.type is not None and self.type not in TYPES:
            raise ValueError(f"column {self.name}: unknown type {self.type!r} (one of {', '.join(TYPES)})")


def _schema(columns: tuple[Column, ...]) -> "pa.Schema":
    import pyarrow as pa

    untyped = [c.name for c in columns if c.type is None]
    if untyped:
        raise TypeError(f"columns without a declared type: {', '.join(untyped)}")
    return pa.schema([pa.field(c.name, arrow_type(c.type)) for c in columns])


@dataclass(frozen=True)
class LakeTable:
    """One table: where it lives, what it holds, and what identifies a row."""

    layer: str
    name: str
    description: str  # the Delta table's description (what analysts see), set by the writer
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    key_not_null: bool = True  # False: a key column may be NULL (a dataset-level score has no node)
    audited: bool = False  # a gold suite (expectations/gold/<name>.json) checks it before it is published

    def __post_init__(self) -> None:
        if self.layer not in LAYERS:
            raise ValueError(f"table {self.name}: unknown layer {self.layer!r}")
        missing = set(self.key) - set(self.column_names)
        if missing:
            raise ValueError(f"table {self.qualified}: key columns not declared: {', '.join(sorted(missing))}")

    @property
    def ref(self) -> tuple[str, str]:
        """``(layer, name)``, the address every Lake, Engine and lineage call takes: ``lake.read(*T.ref)``."""
        return self.layer, self.name

    @property
    def qualified(self) -> str:
        return f"{self.layer}.{self.name}"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def descriptions(self) -> dict[str, str]:
        return {c.name: c.description for c in self.columns if c.description}

    @property
    def schema(self) -> "pa.Schema":
        """The Arrow schema writers must use (TypeError for a table typed by its SQL or rows)."""
        return _schema(self.columns)

    def from_rows(self, rows: list[dict[str, Any]]) -> "pa.Table":
        """Rows as an Arrow table of exactly the declared schema (absent keys are NULL)."""
        import pyarrow as pa

        return pa.Table.from_pylist([{n: r.get(n) for n in self.column_names} for r in rows], schema=self.schema)


@dataclass(frozen=True)
class DatasetLayer:
    """The per-dataset tables of a layer (``<layer>.<dataset>``, one per contract): the contract supplies the
    fields, the layer the columns every one of its tables adds and the wording of the table's description."""

    layer: str
    description_template: str  # ``{title}``: the contract's title
    columns: tuple[Column, ...]

    def ref(self, dataset: str) -> tuple[str, str]:
        return self.layer, dataset

    def qualified(self, dataset: str) -> str:
        return f"{self.layer}.{dataset}"

    def description(self, title: str) -> str:
        return self.description_template.format(title=title)

    @property
    def descriptions(self) -> dict[str, str]:
        return {c.name: c.description for c in self.columns if c.description}

    def arrow_fields(self, names: tuple[str, ...]) -> list["pa.Field"]:
        """The declared columns ``names`` as Arrow fields, in that order."""
        by_name = {c.name: c for c in self.columns}
        return list(_schema(tuple(by_name[n] for n in names)))


def _cols(*spec: tuple[str, str | None, str]) -> tuple[Column, ...]:
    return tuple(Column(name, type_, text) for name, type_, text in spec)


# -- per-dataset layers ----------------------------------------------------------------------------------

BRONZE_READ_COLUMNS = ("_extra", "_raw", "_row_number")  # added by the readers to the contract's fields
BRONZE_INGEST_COLUMNS = ("_node", "_source_file", "_content_hash", "_batch_id", "_ingested_at")  # added at ingest

BRONZE = DatasetLayer("bronze", "{title}（原始层，按报送原样保存）", _cols(
    ("_extra", "string", "契约中没有的列（JSON，按报送原样）"),
    ("_raw", "string", "与表头不符的行的原文"),
    ("_row_number", "int64", "在报送文件中的行号"),
    ("_node", "string", "报送节点"),
    ("_source_file", "string", "报送文件"),
    ("_content_hash", "string", "报送文件内容的 SHA-256"),
    ("_batch_id", "string", "报送批次"),
    ("_ingested_at", "timestamp", "导入时间"),
))
SILVER = DatasetLayer("silver", "{title}（标准层：类型化、标准化、个人信息假名化，每个业务主键一行）", _cols(
    ("_batch_id", None, "报送批次"),
    ("_node", None, "报送节点"),
    ("_row_number", None, "在报送文件中的行号"),
    ("_ingested_at", None, "导入时间"),
    ("_warnings", None, "未通过的警告级规则"),
))
QUARANTINE = DatasetLayer("quarantine", "{title}（隔离区：未通过校验的行及其全部失败规则）", _cols(
    ("_failures", None, "未通过的规则"),
    ("_key", None, "业务主键（规范化文本或假名）"),
    ("_record", None, "报送原记录（个人信息已脱敏）"),
    ("_raw", None, "与表头不符的行（只保留形状）"),
    ("_extra", None, "契约中没有的列（只保留形状）"),
    ("_source_file", None, "报送文件"),
    ("_batch_id", None, "报送批次"),
    ("_node", None, "报送节点"),
    ("_row_number", None, "在报送文件中的行号"),
    ("_ingested_at", None, "导入时间"),
    ("_status", None, "隔离状态：open / resolved"),
    ("_resolved_by", None, "更正该行的批次"),
))
DATASET_LAYERS = {d.layer: d for d in (BRONZE, SILVER, QUARANTINE)}

# -- meta: the pipeline's books ---------------------------------------------------------------------------

INGEST_BATCHES = LakeTable("meta", "ingest_batches", "导入日志：每个报送文件一行（已导入或拒收及原因）", _cols(
    ("batch_id", "string", "报送批次（由数据集、节点与文件内容派生）"),
    ("dataset", "string", "数据集"),
    ("node", "string", "报送节点"),
    ("source_file", "string", "报送文件"),
    ("content_hash", "string", "文件内容的 SHA-256"),
    ("format", "string", "文件格式"),
    ("encoding", "string", "文本编码"),
    ("size_bytes", "int64", "文件大小（字节）"),
    ("rows", "int64", "导入行数"),
    ("ragged_rows", "int64", "与表头不符的行数"),
    ("skipped_lines", "string", "跳过的标题行与表尾（已脱敏）"),
    ("header_map", "string", "表头到契约字段的映射（JSON）"),
    ("unknown_headers", "string", "契约中没有的表头（JSON）"),
    ("missing_fields", "string", "文件中缺少的契约字段（JSON）"),
    ("status", "string", "状态：ingested（已导入）/ refused（拒收）"),
    ("message", "string", "说明：拒收原因与处理建议"),
    ("ingested_at", "timestamp", "导入时间"),
    ("bronze_version", "int64", "写入后的原始层 Delta 版本"),
    ("delivered_on", "date", "报送日期（时效性据此判定）"),
), key=("batch_id", "ingested_at"))

CONFORM_BATCHES = LakeTable("meta", "conform_batches", "标准化台账：每个批次的行数去向（原始 = 标准 + 隔离 + 被取代）", _cols(
    ("batch_id", "string", "报送批次"),
    ("bronze_rows", "int64", "原始层行数"),
    ("silver_rows", "int64", "进入标准层的行数"),
    ("quarantined", "int64", "隔离的行数"),
    ("superseded", "int64", "被同一业务主键的较新行取代的行数"),
    ("warned", "int64", "未通过警告级规则的行数"),
    ("repeats", "int64", "业务主键重复的行数"),
    ("status", "string", "批次状态（held：被致命规则暂停发布）"),
    ("held_by", "string", "暂停发布该批次的致命规则（JSON）"),
    ("dataset", "string", "数据集"),
    ("run_id", "string", "运行编号"),
    ("engine", "string", "计算引擎"),
    ("conformed_at", "timestamp", "标准化时间"),
), key=("dataset", "batch_id"))

VALIDATION_RESULTS = LakeTable("meta", "validation_results", "校验记录：每次运行、每个批次（金层为整表）、每条规则的结果", _cols(
    ("run_id", "string", "运行编号"),
    ("layer", "string", "数据层"),
    ("suite", "string", "期望套件"),
    ("dataset", "string", "数据集或金层表"),
    ("batch_id", "string", "报送批次（金层为空）"),
    ("node", "string", "报送节点"),
    ("rule", "string", "规则"),
    ("expectation_type", "string", "GX 期望类型"),
    ("column", "string", "字段"),
    ("severity", "string", "严重级别：error / warn / fatal"),
    ("element_count", "int64", "校验的行数"),
    ("unexpected_count", "int64", "未通过的行数"),
    ("unexpected_percent", "float64", "未通过的比例（%）"),
    ("mostly", "float64", "规则要求的通过比例"),
    ("success", "bool", "是否通过"),
    ("observed", "string", "观测值"),
    ("description", "string", "规则说明"),
    ("validated_at", "timestamp", "校验时间"),
), key=("run_id", "suite", "batch_id", "rule"))

BATCH_WAIVERS = LakeTable("meta", "batch_waivers", "放行记录：数据管理员对被暂停发布的批次的放行", _cols(
    ("dataset", "string", "数据集"),
    ("batch_id", "string", "报送批次"),
    ("rules", "string", "放行时暂停该批次的致命规则（JSON）"),
    ("reason", "string", "放行理由"),
    ("released_by", "string", "放行人（操作系统用户名）"),
    ("released_at", "timestamp", "放行时间"),
), key=("dataset", "batch_id"))

STAGE_BUILDS = LakeTable("meta", "stage_builds", "各阶段最近一次构建所依据的上游表版本（上游未变化时跳过重建）", _cols(
    ("stage", "string", "阶段（任务编号）"),
    ("inputs", "string", "构建时读取的上游表及其 Delta 版本（JSON）"),
    ("run_id", "string", "运行编号"),
    ("built_at", "timestamp", "构建时间"),
), key=("stage", "built_at"))

# -- governance gold tables (written by jobs; the SQL models live in schemas/gold/) ---------------------------

SOURCE_CONFLICTS = LakeTable(
    "gold", "source_conflicts",
    "多源校核冲突：同一自然人或法人在不同来源中取值不一致的数据项（取值均已脱敏），及其权威来源（一数一源）", _cols(
        ("item", None, "数据项（catalog/data_items.yaml）"),
        ("item_title", None, "数据项名称"),
        ("subject", None, "主体类型"),
        ("subject_key", None, "主体：假名化的公民身份号码或统一社会信用代码"),
        ("dataset_a", None, "来源 A 的数据集"),
        ("node_a", None, "来源 A 的报送节点"),
        ("value_a", None, "来源 A 的取值（已脱敏）"),
        ("dataset_b", None, "来源 B 的数据集"),
        ("node_b", None, "来源 B 的报送节点"),
        ("value_b", None, "来源 B 的取值（已脱敏）"),
        ("authoritative_node", None, "权威来源节点（一数一源）"),
        ("authoritative_value", None, "权威来源的取值（已脱敏）"),
        ("basis", None, "权威来源的依据"),
    ), key=("item", "subject_key", "dataset_a", "dataset_b"), audited=True)

CROSSCHECK_SUMMARY = LakeTable("gold", "crosscheck_summary", "多源校核汇总：每个数据项、每对来源的比对主体数与冲突数", _cols(
    ("item", None, "数据项（catalog/data_items.yaml）"),
    ("item_title", None, "数据项名称"),
    ("dataset_a", None, "来源 A 的数据集"),
    ("dataset_b", None, "来源 B 的数据集"),
    ("compared", None, "两个来源共有的主体数"),
    ("conflicts", None, "取值不一致的主体数"),
    ("authoritative_node", None, "权威来源节点（一数一源）"),
), key=("item", "dataset_a", "dataset_b"), audited=True)

SCORE_DIMENSIONS = ("completeness", "validity", "uniqueness", "timeliness", "consistency")

QUALITY_SCORES = LakeTable(
    "gold", "quality_scores",
    "数据质量评分：每次运行按节点×数据集、数据集、节点、区在五个维度上的得分（0–100），保留历史以观察趋势", _cols(
        ("run_id", "string", "评分所属的运行"),
        ("scored_at", "timestamp", "评分时间"),
        ("scope", "string", "范围：node_dataset / dataset / node / district"),
        ("dataset", "string", "数据集"),
        ("node", "string", "报送节点"),
        ("district", "string", "区代码"),
        ("label", "string", "范围名称"),
        ("rows", "int64", "评分的行数"),
        ("batches", "int64", "评分的批次数"),
        ("completeness", "float64", "完整性（0–1）"),
        ("validity", "float64", "有效性（0–1）"),
        ("uniqueness", "float64", "唯一性（0–1）"),
        ("timeliness", "float64", "及时性（0–1）"),
        ("consistency", "float64", "一致性（0–1）"),
        ("score", "float64", "综合得分（0–100）"),
    ), key=("run_id", "scope", "dataset", "node", "district"), key_not_null=False, audited=True)

LINEAGE_EDGES = LakeTable("gold", "lineage_edges", "血缘关系：每个表和字段由哪些上游表和字段计算而来（表级与字段级）", _cols(
    ("source", "string", "上游表"),
    ("source_column", "string", "上游字段（为空表示表级）"),
    ("target", "string", "下游表"),
    ("target_column", "string", "下游字段"),
    ("job", "string", "计算它的作业"),
    ("transformation", "string", "转换类型"),
), key=("source", "source_column", "target", "target_column"), key_not_null=False, audited=True)

CATALOG_NODES = LakeTable("gold", "catalog_nodes", "一张网：1+11+N 节点及其健康状况（最近报送、按更新周期的及时性、质量得分）", _cols(
    ("code", None, "节点代码（GB/T 2260 或部门拼音首字母）"),
    ("name", None, "节点名称"),
    ("kind", None, "节点类型"),
    ("kind_title", None, "节点类型名称"),
    ("district", None, "所在区"),
    ("resources", None, "负责报送的数据资源数"),
    ("resources_with_data", None, "已有报送的数据资源数"),
    ("last_delivery", None, "最近报送日期"),
    ("health", None, "健康状况：正常 / 滞后 / 无数据 / 无报送职责"),
    ("stale_resources", None, "未按更新周期报送的数据资源"),
    ("quality_score", None, "最新质量得分"),
), key=("code",))

CATALOG_RESOURCES = LakeTable("gold", "catalog_resources", "一张图：数据资源目录（编目元数据 + 技术元数据）", _cols(
    ("code", None, "资源代码（类-项-目-细目）"),
    ("name", None, "资源名称"),
    ("dataset", None, "数据集"),
    ("category", None, "资源分类"),
    ("base_catalogue", None, "基础目录"),
    ("theme", None, "主题"),
    ("provider", None, "提供方"),
    ("provider_code", None, "提供方节点代码"),
    ("delivered_by", None, "报送节点"),
    ("summary", None, "摘要"),
    ("format", None, "格式"),
    ("items", None, "信息项"),
    ("item_count", None, "信息项数"),
    ("share", None, "共享属性"),
    ("share_condition", None, "共享条件"),
    ("open", None, "开放属性"),
    ("update_cycle", None, "更新周期"),
    ("published_on", None, "发布日期"),
    ("grade", None, "数据分级（信息项的最高级别）"),
    ("has_personal_info", None, "是否含个人信息"),
    ("silver_rows", None, "标准层行数"),
    ("size_bytes", None, "标准层大小（字节）"),
    ("delta_version", None, "标准层 Delta 版本"),
    ("last_update", None, "标准层最近更新时间"),
    ("silver_schema", None, "标准层结构（JSON）"),
    ("last_delivery", None, "最近报送日期"),
    ("freshness", None, "按更新周期的及时性"),
    ("age_days", None, "距最近报送的天数"),
    ("quality_score", None, "最新质量得分"),
    ("upstream", None, "上游表"),
    ("downstream", None, "下游表"),
), key=("dataset",))

CATALOG_ITEMS = LakeTable("gold", "catalog_items", "一本账：各资源的信息项（类型、个人信息分类与分级）", _cols(
    ("resource_code", None, "资源代码"),
    ("resource_name", None, "资源名称"),
    ("dataset", None, "数据集"),
    ("ordinal", None, "序号"),
    ("item_name", None, "信息项名称"),
    ("field", None, "字段名"),
    ("type", None, "数据类型"),
    ("description", None, "说明"),
    ("is_key", None, "是否业务主键"),
    ("required", None, "是否必填"),
    ("pii", None, "个人信息分类"),
    ("grade", None, "数据分级"),
    ("code_list", None, "代码表"),
    ("share", None, "共享属性"),
    ("open", None, "开放属性"),
), key=("dataset", "field"))

DUTY_DATA_LIST = LakeTable("gold", "duty_data_list", "职能数据清单：各部门三定职责与其产生、需要的数据资源及数据状况", _cols(
    ("duty_id", None, "职责编号"),
    ("duty", None, "职责"),
    ("node", None, "职责所属节点"),
    ("node_name", None, "节点名称"),
    ("basis", None, "依据"),
    ("relation", None, "职责与数据的关系：产生 / 需要"),
    ("dataset", None, "数据集"),
    ("resource_code", None, "资源代码"),
    ("resource_name", None, "资源名称"),
    ("catalogued", None, "是否已编目"),
    ("silver_rows", None, "标准层行数"),
    ("last_delivery", None, "最近报送日期"),
    ("freshness", None, "数据及时性"),
), key=("duty_id", "dataset", "relation"), key_not_null=False)

DUTY_FINDINGS = LakeTable("gold", "duty_findings", "职能数据清单问题：缺位（有职责无数据）、越位（有数据无职责）、一数一源冲突", _cols(
    ("kind", "string", "问题类型：缺位 / 越位 / 一数一源"),
    ("node", "string", "涉及节点"),
    ("node_name", "string", "节点名称"),
    ("duty_id", "string", "职责编号"),
    ("dataset", "string", "数据集"),
    ("detail", "string", "问题说明"),
    ("action", "string", "处理建议"),
))

INDICATOR_VALUES = LakeTable(
    "gold", "indicator_values",
    "指标值：各指标按统计期与区（district_code 为空表示全市）的分子、分母、取值与阈值状态", _cols(
        ("indicator_id", "string", "指标编号"),
        ("name", "string", "指标名称"),
        ("period", "string", "统计期（YYYY-MM）"),
        ("district_code", "string", "区代码（为空表示全市）"),
        ("district_name", "string", "区名称"),
        ("numerator", "float64", "分子"),
        ("denominator", "float64", "分母"),
        ("value", "float64", "指标值"),
        ("unit", "string", "单位"),
        ("level", "string", "阈值状态：正常 / 预警 / 告警"),
    ), key=("indicator_id", "period", "district_code"), key_not_null=False)

INDICATOR_PROGRESS = LakeTable(
    "gold", "indicator_progress",
    "指标进展：最新全市值对照 2022 年基线与 2025、2027 年目标（表 1 核心目标）及预警", _cols(
        ("indicator_id", "string", "指标编号"),
        ("name", "string", "指标名称"),
        ("unit", "string", "单位"),
        ("frequency", "string", "统计频率"),
        ("formula", "string", "计算公式"),
        ("period", "string", "最新统计期"),
        ("value", "float64", "最新全市值"),
        ("baseline_2022", "float64", "2022 年基线（表 1）"),
        ("target_2025", "float64", "2025 年目标（表 1）"),
        ("target_2027", "float64", "2027 年目标（表 1）"),
        ("progress_2025", "float64", "距 2025 目标的进度（%）"),
        ("met_2025", "bool", "是否达到 2025 目标"),
        ("met_2027", "bool", "是否达到 2027 目标"),
        ("warn", "float64", "预警阈值"),
        ("alert", "float64", "告警阈值"),
        ("level", "string", "阈值状态：正常 / 预警 / 告警"),
        ("districts_in_alert", "string", "处于告警的区"),
        ("sources", "string", "来源表"),
    ), key=("indicator_id",))

TABLES: dict[str, LakeTable] = {t.qualified: t for t in (
    INGEST_BATCHES, CONFORM_BATCHES, VALIDATION_RESULTS, BATCH_WAIVERS, STAGE_BUILDS,
    SOURCE_CONFLICTS, CROSSCHECK_SUMMARY, QUALITY_SCORES, LINEAGE_EDGES,
    CATALOG_NODES, CATALOG_RESOURCES, CATALOG_ITEMS, DUTY_DATA_LIST, DUTY_FINDINGS,
    INDICATOR_VALUES, INDICATOR_PROGRESS,
)}
"""Every declared (non-pattern) table by ``layer.name``."""


def declared(layer: str, name: str) -> LakeTable | None:
    """The declaration of ``layer.name``, or None (a contract's table, a gold model, or unknown)."""
    return TABLES.get(f"{layer}.{name}")


def governance_gold() -> list[LakeTable]:
    """The gold tables written by jobs (not by the SQL models of schemas/gold/)."""
    return [t for t in TABLES.values() if t.layer == "gold"]


def audited_gold() -> list[LakeTable]:
    """The governance gold tables a gold suite audits before they are published."""
    return [t for t in governance_gold() if t.audited]
