"""What a principal may see of each lake table: the one place the access model of issue 13 is decided.

Every SQL surface (``govlake sql``, the PostgreSQL-wire endpoint, the dashboard, ``--export-duckdb``) asks
``resolve`` for the principal's :class:`TableAccess` of every table and reads only through it, so no surface
can show more than another. The model (docs/security.md):

* **gold**: every authenticated user; a district node's users see only their district's rows in every
  table with a district column (``district_code`` or ``*_district_code``, any of them matching).
* **silver / quarantine** of a dataset: the steward of its owner node and admins see everything (still row
  scoped for district users); anyone else needs a live :class:`~govlake.control.principal.Grant`, whose
  ``columns`` omit the other fields and whose ``max_grade`` masks the fields graded above it.
* **meta**: stewards (rows of their own node where the table has a ``node`` column) and admins.
* **bronze**: admins (the lake owner) only.

Grades come from the dataset contract (1 公开 2 内部 3 敏感 4 重要): derived silver columns
(``<f>_pid``, ``<f>_masked``) carry field ``f``'s grade; columns nobody declared count as the contract's
highest grade, so a new column is masked until someone grades it (fail safe).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from govlake.control.principal import ROLE_NAMES, ROLES, Grant, Principal
from govlake.errors import AccessDenied
from govlake.messages import UNKNOWN_ROLE

if TYPE_CHECKING:
    import pyarrow as pa

    from govlake.contracts import Contract
    from govlake.lake import Lake
    from govlake.registry import Registry

DATASET_LAYERS = ("silver", "quarantine")
LAYER_ORDER = ("gold", "silver", "quarantine", "meta", "bronze")
DERIVED_SUFFIXES = ("_pid", "_masked")
NODE_COLUMN = "node"  # meta tables that record a node (ingest_batches, validation_results)
# Layer columns that carry a record's content (quarantine keeps the delivered record, shapes and its key):
# graded like the contract's most sensitive field, and omitted when a grant lists its columns.
CONTENT_COLUMNS = frozenset({"_record", "_key", "_raw", "_extra"})
MASK_TEXT = "***"
SHARE_COMMAND = ("在驾驶舱“我的申请”页面（/sharing/mine）提交数据集 {dataset} 的共享申请，写明字段、用途、应用场景、"
                 "依据与使用期限；由数据提供节点的数据管理员审核")


def district_columns(names: Iterable[str]) -> tuple[str, ...]:
    """The columns holding a district code: ``district_code`` or any ``*_district_code``."""
    return tuple(n for n in names if n == "district_code" or n.endswith("_district_code"))


@dataclass(frozen=True)
class TableAccess:
    """What one principal sees of one table.

    ``columns`` None: every column; otherwise the visible columns in table order (masked ones included, so
    the shape stays). ``masked``: visible columns whose values come back as '***' (text) or NULL.
    ``row_filter``: (district columns, value): only rows where any of those columns equals the value."""

    layer: str
    name: str
    columns: tuple[str, ...] | None = None
    masked: frozenset[str] = field(default_factory=frozenset)
    row_filter: tuple[tuple[str, ...], str] | None = None
    grant_ids: tuple[int, ...] = ()

    @property
    def qualified(self) -> str:
        return f"{self.layer}.{self.name}"

    @property
    def unrestricted(self) -> bool:
        return self.columns is None and not self.masked and self.row_filter is None

    def visible(self, names: Iterable[str]) -> list[str]:
        """The visible columns of a table with columns ``names``, in table order."""
        names = list(names)
        return names if self.columns is None else [n for n in names if n in set(self.columns)]

    def read_columns(self, names: Iterable[str]) -> list[str]:
        """The columns actually read from storage: visible and not masked (masked values are constants)."""
        return [n for n in self.visible(names) if n not in self.masked]

    def arrow_filter(self) -> Any:
        """The row filter as a pyarrow.dataset expression (None: every row)."""
        if self.row_filter is None:
            return None
        import pyarrow.dataset as pads

        cols, value = self.row_filter
        expr = None
        for c in cols:
            term = pads.field(c) == value
            expr = term if expr is None else expr | term
        return expr

    def apply(self, table: "pa.Table") -> "pa.Table":
        """The same filter, projection and masks on an in-memory table (the dashboard's cached gold)."""
        import pyarrow as pa

        expr = self.arrow_filter()
        if expr is not None:
            table = table.filter(expr)
        names = self.visible(table.column_names)
        columns = [masked_array(table.column(n)) if n in self.masked else table.column(n) for n in names]
        return pa.table(columns, names=names)


def masked_array(col: "pa.ChunkedArray") -> "pa.Array":
    """A masked column: '***' for text, NULL of the same type otherwise (the column stays, its values go)."""
    import pyarrow as pa

    if is_text(col.type):
        return pa.array([MASK_TEXT] * len(col), pa.string())
    return pa.nulls(len(col), col.type)


def is_text(t: "pa.DataType") -> bool:
    import pyarrow as pa

    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


# -- grades -----------------------------------------------------------------------------------------------
def base_field(column: str, contract: "Contract") -> str | None:
    """The contract field a silver/quarantine column comes from (``name_masked`` -> ``name``), or None."""
    names = set(contract.field_names)
    if column in names:
        return column
    for suffix in DERIVED_SUFFIXES:
        if column.endswith(suffix) and column[: -len(suffix)] in names:
            return column[: -len(suffix)]
    return None


def column_grade(column: str, layer: str, contract: "Contract") -> int:
    """A column's grade: its field's, 1 for the layer's bookkeeping columns, the contract's highest for
    record content and for any column nobody declared."""
    from govlake.tables import DATASET_LAYERS as LAYER_DECLS

    top = max((f.grade for f in contract.fields), default=1)
    base = base_field(column, contract)
    if base is not None:
        return contract.field(base).grade
    declared = {c.name for c in LAYER_DECLS[layer].columns} if layer in LAYER_DECLS else set()
    if column in declared and column not in CONTENT_COLUMNS:
        return 1
    return top


# -- resolve ----------------------------------------------------------------------------------------------
def resolve(principal: Principal, lake: "Lake", registry: "Registry") -> dict[tuple[str, str], TableAccess]:
    """Every table the principal may read, with what it sees of it; tables not in the result are refused."""
    if principal.role not in ROLES:
        raise UNKNOWN_ROLE.error(AccessDenied, role=principal.role, roles=", ".join(ROLES))
    out: dict[tuple[str, str], TableAccess] = {}
    for layer in LAYER_ORDER:
        for name in lake.list_tables(layer):
            if not _may_read(principal, layer, name, registry):
                continue  # decided without opening the table (a connection's cost follows what it may read)
            names = column_names(lake, layer, name)
            if names is None:
                continue
            access = table_access(principal, layer, name, names, registry)
            if access is not None:
                out[(layer, name)] = access
    return out


def _may_read(principal: Principal, layer: str, name: str, registry: "Registry") -> bool:
    """False when ``table_access`` would refuse the table whatever its columns are."""
    if principal.role == "admin" or layer == "gold":
        return True
    if layer == "bronze":
        return False
    if layer == "meta":
        return principal.role == "steward"
    contract = registry.contracts.get(name)
    if contract is None:
        return False
    return stewards(principal, contract) or bool(live_grants(principal, name, layer))


def column_names(lake: "Lake", layer: str, name: str) -> list[str] | None:
    dt = lake.table(layer, name)
    if dt is None:
        return None
    return list(lake.dataset(dt).schema.names)


def table_access(principal: Principal, layer: str, name: str, names: list[str],
                 registry: "Registry") -> TableAccess | None:
    """The access of one table with columns ``names`` (None: refused)."""
    scope = _district_scope(principal, names)
    if layer == "gold":
        return TableAccess(layer, name, row_filter=scope)
    if layer == "bronze":
        return TableAccess(layer, name) if principal.role == "admin" else None
    if layer == "meta":
        if principal.role == "admin":
            return TableAccess(layer, name)
        if principal.role == "steward":
            own = NODE_COLUMN in names and not principal.is_owner
            node_scope = ((NODE_COLUMN,), principal.node) if own else None
            return TableAccess(layer, name, row_filter=node_scope)
        return None
    contract = registry.contracts.get(name)
    if principal.role == "admin" or (contract is not None and stewards(principal, contract)):
        return TableAccess(layer, name, row_filter=scope)
    if contract is None:
        return None
    return _granted(principal, layer, name, names, contract)


def stewards(principal: Principal, contract: "Contract") -> bool:
    """Whether the principal is a steward of the dataset: a steward of its owner node, or the lake owner
    narrowed to steward (``govlake sql --role steward`` on the lake's own files: every dataset's steward
    layers, no bronze)."""
    return principal.role == "steward" and (contract.owner == principal.node or principal.is_owner)


def _district_scope(principal: Principal, names: list[str]) -> tuple[tuple[str, ...], str] | None:
    cols = district_columns(names)
    return (cols, principal.district) if principal.district and cols else None


def live_grants(principal: Principal, dataset: str, layer: str, now: datetime | None = None) -> list[Grant]:
    """The principal's unexpired grants on ``layer.dataset`` that fit its own district (if any)."""
    now = now or datetime.now(timezone.utc)
    return [g for g in principal.grants
            if g.dataset == dataset and g.layer == layer and g.live(now)
            and (principal.district is None or g.row_scope in (None, principal.district))]


def _granted(principal: Principal, layer: str, name: str, names: list[str], contract: "Contract") -> TableAccess | None:
    """Access through live grants: their columns (union), their highest max_grade, their row scope.

    Grants with different district scopes cannot be merged into one row filter: the city-wide ones win,
    else those of the first scope (in code order)."""
    grants = live_grants(principal, name, layer)
    if not grants:
        return None
    scopes = {g.row_scope for g in grants}
    if None not in scopes and len(scopes) > 1:
        first = sorted(scopes)[0]
        grants = [g for g in grants if g.row_scope == first]
    row_scope = None if None in scopes else grants[0].row_scope
    value = principal.district or row_scope
    cols = district_columns(names)
    row_filter = (cols, value) if value and cols else None
    max_grade = max(g.max_grade for g in grants)
    listed: set[str] | None = set()
    for g in grants:
        if g.columns is None:
            listed = None
            break
        listed |= set(g.columns)
    visible = [n for n in names if listed is None or _listed(n, layer, listed, contract)]
    masked = frozenset(n for n in visible if column_grade(n, layer, contract) > max_grade)
    return TableAccess(layer, name, columns=None if listed is None else tuple(visible), masked=masked,
                       row_filter=row_filter, grant_ids=tuple(sorted(g.id for g in grants)))


def _listed(column: str, layer: str, listed: set[str], contract: "Contract") -> bool:
    """A column a grant's field list admits: a listed field or one derived from it, or a bookkeeping column
    of the layer (never record content, which carries every field)."""
    from govlake.tables import DATASET_LAYERS as LAYER_DECLS

    base = base_field(column, contract)
    if base is not None:
        return base in listed or column in listed
    declared = {c.name for c in LAYER_DECLS[layer].columns} if layer in LAYER_DECLS else set()
    return column in declared and column not in CONTENT_COLUMNS


# -- refusal ----------------------------------------------------------------------------------------------
def refusal(principal: Principal, layer: str, name: str, registry: "Registry | None" = None) -> AccessDenied:
    """Why ``layer.name`` is refused to the principal, and how to get access, in Chinese."""
    who = f"用户 {principal.name}（{ROLE_NAMES.get(principal.role, principal.role)}，节点 {principal.node}）"
    head = f"{who}无权读取 {layer}.{name}"
    if layer == "bronze":
        return AccessDenied(f"{head}：原始层仅系统管理员（数据湖所有者）可查询",
                            hint="请查询标准层或金层；原始数据只在数据湖所有者本机的命令行中可见")
    if layer == "meta":
        return AccessDenied(f"{head}：运行台账（meta 层）仅数据管理员与系统管理员可查询",
                            hint="如因履职需要，请联系本节点的数据管理员")
    contract = registry.contracts.get(name) if registry is not None and layer in DATASET_LAYERS else None
    if contract is None:
        return AccessDenied(head, hint="金层（gold.*）对所有用户开放；其他层请联系数据管理员")
    share = contract.catalog.share
    what = f"数据集 {name}（{contract.title}，提供方 {contract.owner}）的共享属性为{share}"
    if share == "不予共享":
        basis = getattr(contract.catalog, "share_basis", None) or contract.catalog.share_condition or "契约未写明"
        return AccessDenied(f"{head}：{what}，依据：{basis}",
                            hint="不予共享的数据集不能申请共享；请使用金层（gold.*）的汇总数据")
    approval = "申请后即时获批" if share == "无条件共享" else f"由提供方 {contract.owner} 的数据管理员审批"
    condition = f"（共享条件：{contract.catalog.share_condition}）" if contract.catalog.share_condition else ""
    return AccessDenied(f"{head}：{what}{condition}，需持有有效授权",
                        hint=f"申请共享（{approval}）：{SHARE_COMMAND.format(dataset=name)}")
