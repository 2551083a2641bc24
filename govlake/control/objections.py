"""数据异议 (校核纠错): a user flags a record's value as wrong; the authoritative source node answers.

《政务数据共享条例》 asks for a 校核纠错 mechanism routed to the department that provides the data. An
objection names a table the user can read (``silver.X`` / ``gold.Y``), the record's key as the user sees it
(a pseudonym ``*_pid`` or a non-personal key such as a 统一社会信用代码) and the disputed field. It is routed to
the item's authority in ``catalog/data_items.yaml`` (一数一源; ``by_key_prefix`` rules decided on the key),
else to the owner of the source dataset's contract, and walks::

    已提交 → 已受理 → 核实中 → 已更正
       └────────┴────────┴──→ 已驳回 (with a reason)

with a deadline per state from ``catalog/objections.yaml``. Only a steward of the source node (or an
administrator) moves it. After every run, :func:`reconcile` re-reads each disputed value: when a re-delivery
changed it, the objection is closed as 已更正 by the system.

Nothing personal is stored: a raw ID number as the record reference is refused (the user is told to use the
pseudonym); the value itself is kept only as a keyed digest (``objection_value``), and the reason is scrubbed
of digit runs and quoted values before it is written. Audit rows carry our own summary, never the reason.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from govlake.control import audit
from govlake.control.clock import utc as _aware
from govlake.control.audit import AuditEvent
from govlake.control.principal import Principal
from govlake.control.schema import objections as T
from govlake.control.workdays import add_workdays
from govlake.errors import AccessDenied, ConfigError, GovlakeError, RegistryError, did_you_mean
from govlake.identifiers import ric_is_valid, uscc_is_valid
from govlake.project import Settings
from govlake.redaction import mask_ids
from govlake.registry import DataItem, Registry
from govlake.security import keyed_digest
from govlake.sqltext import sql_str

VALUE_PURPOSE = "objection_value"
KEY_PURPOSE = "objection_key"
SYSTEM = "govlake"  # handled_by of what reconcile closes
CORRECTED_BY_DELIVERY = "重新交付已更正"


class ObjectionStatus(StrEnum):
    """The states of an objection; the values are what the control DB stores and users see."""

    SUBMITTED = "已提交"
    ACCEPTED = "已受理"
    VERIFYING = "核实中"
    CORRECTED = "已更正"
    REJECTED = "已驳回"

    @property
    def open(self) -> bool:
        return self not in CLOSED


CLOSED = frozenset({ObjectionStatus.CORRECTED, ObjectionStatus.REJECTED})
OPEN = tuple(s for s in ObjectionStatus if s not in CLOSED)
TRANSITIONS: dict[ObjectionStatus, frozenset[ObjectionStatus]] = {
    ObjectionStatus.SUBMITTED: frozenset({ObjectionStatus.ACCEPTED, ObjectionStatus.REJECTED}),
    ObjectionStatus.ACCEPTED: frozenset({ObjectionStatus.VERIFYING, ObjectionStatus.REJECTED}),
    ObjectionStatus.VERIFYING: frozenset({ObjectionStatus.CORRECTED, ObjectionStatus.REJECTED}),
    ObjectionStatus.CORRECTED: frozenset(),
    ObjectionStatus.REJECTED: frozenset(),
}


class ObjectionError(GovlakeError):
    """An objection cannot be filed or moved as asked (the message says why and what to do)."""


# -- what an objection is about -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """A table's record field, resolved to the source dataset and the data item it belongs to."""

    layer: str
    name: str
    key_columns: tuple[str, ...]   # the columns the record_ref names (joined by "|" when several)
    field: str | None              # the disputed column of the table (None: the record as a whole)
    dataset: str                   # the source dataset (silver: the table itself; gold: by lineage)
    source_field: str | None       # the disputed field in the source dataset's contract
    item: DataItem | None          # the shared data item (catalog/data_items.yaml), if the field is one
    owner: str                     # the source dataset contract's owner node

    @property
    def table(self) -> str:
        return f"{self.layer}.{self.name}"

    @property
    def key_label(self) -> str:
        return "|".join(self.key_columns)

    def source_node(self, key_value: str) -> str:
        """The authoritative node for this record: the item's authority (per key prefix), else the owner."""
        if self.item is not None and self.item.has_authority:
            return self.item.authority_for(key_value) or self.owner
        return self.owner


def _split_table(table: str) -> tuple[str, str]:
    layer, _, name = (table or "").partition(".")
    if layer not in ("silver", "gold") or not name:
        raise ObjectionError(f"只能对银层或金层表提出异议：{table}", where="table",
                             hint="表名写作 silver.<数据集> 或 gold.<表>，例如 gold.population")
    return layer, name


def _silver_key_columns(registry: Registry, dataset: str) -> tuple[str, ...]:
    c = registry.contracts[dataset]
    return tuple(f"{f.name}_pid" if c.has_pid(f) else f.name for f in c.key_fields)


def key_columns(settings: Settings, registry: Registry, table: str) -> tuple[str, ...]:
    """The columns a record reference of ``table`` names: the contract key (pseudonyms for personal keys) for
    silver, the model's key for gold."""
    layer, name = _split_table(table)
    if layer == "silver":
        if name not in registry.contracts:
            raise RegistryError(f"未知数据集：{name}", hint=did_you_mean(name, set(registry.contracts)))
        return _silver_key_columns(registry, name)
    return tuple(_gold_model(settings, name).key)


def _gold_model(settings: Settings, name: str):
    from govlake.models import load_models

    models = load_models(settings.schemas_dir)
    if name not in models:
        raise RegistryError(f"未知金层表：{name}", hint=did_you_mean(name, set(models)))
    return models[name]


def _item_of(registry: Registry, dataset: str, field: str) -> DataItem | None:
    for item in registry.data_items.values():
        if any(s.dataset == dataset and s.field == field for s in item.sources):
            return item
    return None


def _contract_field(dataset_fields: list[str], column: str) -> str | None:
    """The contract field behind a silver column (``x``, ``x_pid``, ``x_masked``)."""
    for suffix in ("", "_pid", "_masked"):
        base = column.removesuffix(suffix) if suffix else column
        if (not suffix or column.endswith(suffix)) and base in dataset_fields:
            return base
    return None


def resolve_target(settings: Settings, registry: Registry, table: str, field: str | None) -> Target:
    """Where an objection on ``table``.``field`` goes: source dataset, data item, owner."""
    layer, name = _split_table(table)
    keys = key_columns(settings, registry, table)
    if layer == "silver":
        c = registry.contracts[name]
        src = _contract_field(c.field_names, field) if field else None
        if field and src is None:
            raise ObjectionError(f"{table} 没有字段 {field}", where="field",
                                 hint=did_you_mean(field, c.field_names) or f"可用字段：{', '.join(c.field_names)}")
        item = _item_of(registry, name, src) if src else None
        return Target(layer, name, keys, field, name, src, item, c.owner)
    model = _gold_model(settings, name)
    cols = {col.name: col for col in model.columns}
    if field and field not in cols:
        raise ObjectionError(f"{table} 没有字段 {field}", where="field",
                             hint=did_you_mean(field, set(cols)) or f"可用字段：{', '.join(cols)}")
    lineage = [s.split(".") for s in (cols[field].sources if field else ()) if s.startswith("silver.")]
    item = next((i for _, ds, col in lineage if (i := _item_of(registry, ds, col))), None)
    dataset, src = _gold_source(registry, model, lineage, item)
    return Target(layer, name, keys, field, dataset, src, item, registry.contracts[dataset].owner)


def _gold_source(registry: Registry, model, lineage: list[list[str]], item: DataItem | None) -> tuple[str, str | None]:
    """The source dataset of a gold column: the one whose owner is the item's authority, else the first of its
    lineage, else (a derived column, or the record as a whole) the model's first silver source."""
    if item is not None:
        for _, ds, col in lineage:
            if registry.contracts[ds].owner in {item.authority, item.authority_default}:
                return ds, col
    if lineage:
        return lineage[0][1], lineage[0][2]
    first = next(s for s in model.sources if s.startswith("silver."))
    return first.split(".", 1)[1], None


# -- the record in the lake -------------------------------------------------------------------------------------

_PID_SHAPE = re.compile(r"[0-9a-f]{64}")
_TABLE_NAME = re.compile(r"(silver|gold)\.[a-z][a-z0-9_]{0,63}")


def _refuse_personal_ref(record_ref: str) -> None:
    """A raw 公民身份号码 (valid per GB 11643 and not a valid 统一社会信用代码, whose 18 characters can be all
    digits too) is personal data: never accepted as a record reference, whatever the table."""
    for part in record_ref.split("|"):
        part = part.strip().upper()
        if ric_is_valid(part) and not uscc_is_valid(part):
            raise ObjectionError("记录标识是公民身份号码，属于个人信息，系统不接收也不保存", where="record_ref",
                                 hint="请使用页面上显示的假名（以 _pid 结尾的列，例如 person_pid、id_number_pid）标识该记录")


def _key_parts(target: Target, record_ref: str) -> list[str]:
    """The key values of ``record_ref`` in the order of the key columns; a pseudonym column takes only a
    pseudonym (64 hex digits, compared in lower case)."""
    parts = [p.strip() for p in record_ref.split("|")]
    if len(parts) != len(target.key_columns):
        raise ObjectionError(f"{target.table} 的记录由 {target.key_label} 标识，应给出 {len(target.key_columns)} 个值",
                             where="record_ref", hint="多个键值之间用 | 分隔")
    out = []
    for column, part in zip(target.key_columns, parts):
        if column.endswith("_pid"):
            part = part.lower()
            if not _PID_SHAPE.fullmatch(part):
                raise ObjectionError(f"{target.table} 的记录以假名 {column} 标识，给出的值不是假名", where="record_ref",
                                     hint="请复制页面上显示的假名（64 位十六进制字符）；不要使用身份证号等个人信息")
        out.append(part)
    return out


def _filter_sql(schema, columns: tuple[str, ...], parts: list[str]) -> str:
    import pyarrow as pa

    conds = []
    for col, val in zip(columns, parts):
        typ = schema.field(col).type
        if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ):
            conds.append(f'"{col}" = {sql_str(val)}')
        else:
            conds.append(f'CAST("{col}" AS VARCHAR) = {sql_str(val)}')
    return " AND ".join(conds)


def _value_text(value: Any) -> str:
    return "\x00null" if value is None else str(value)


def _row_text(row: dict[str, Any]) -> str:
    return "\x1f".join(f"{k}={_value_text(v)}" for k, v in sorted(row.items()) if not k.startswith("_"))


def read_record(settings: Settings, target: Target, record_ref: str, lake=None) -> dict[str, Any] | None:
    """The record's current row (a dict), or None when the table has no row with that key. ``lake``: an open
    ``govlake.lake.Lake`` to reuse (its table handles are cached)."""
    from govlake.lake import Lake

    parts = _key_parts(target, record_ref)
    lake = lake or Lake(settings)
    dt = lake.table(target.layer, target.name)
    if dt is None:
        return None
    schema = lake.dataset(dt).schema
    rows = lake.read(target.layer, target.name, filter_sql=_filter_sql(schema, target.key_columns, parts)).to_pylist()
    return rows[0] if rows else None


def current_digest(settings: Settings, target: Target, row: dict[str, Any]) -> str:
    """Keyed digest of the disputed value (or of the whole record when no field is named)."""
    text = _value_text(row.get(target.field)) if target.field else _row_text(row)
    return keyed_digest(settings, VALUE_PURPOSE, text)


# -- deadlines ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Deadline:
    status: str
    workdays: int
    action: str
    basis: str
    verified: bool


@lru_cache(maxsize=4)
def _deadlines(catalog_dir: str) -> dict[str, Deadline]:
    from govlake.declarations import load_yaml

    path = Path(catalog_dir) / "objections.yaml"
    raw = load_yaml(path) if path.exists() else {}
    out: dict[str, Deadline] = {}
    for status in OPEN:
        d = (raw.get("deadlines") or {}).get(str(status))
        if not isinstance(d, dict) or not isinstance(d.get("workdays"), int) or d["workdays"] < 1:
            raise ConfigError(f"未设置“{status}”状态的办理时限", where=f"{path} → deadlines.{status}",
                              hint="写明 workdays（正整数）、action、basis 与 verified")
        out[str(status)] = Deadline(str(status), d["workdays"], str(d.get("action", "")), str(d.get("basis", "")),
                                    bool(d.get("verified", False)))
    return out


def deadline(settings: Settings, status: ObjectionStatus) -> Deadline:
    return _deadlines(str(settings.catalog_dir))[str(status)]


@lru_cache(maxsize=4)
def _calendar(catalog_dir: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The statutory holidays and 调休 working days, kept once for every workflow in catalog/sharing.yaml."""
    from govlake.declarations import load_yaml

    path = Path(catalog_dir) / "sharing.yaml"
    raw = (load_yaml(path) if path.exists() else None) or {}
    return tuple(map(str, raw.get("holidays") or ())), tuple(map(str, raw.get("workdays") or ()))


def due_for(settings: Settings, status: ObjectionStatus, now: datetime) -> datetime:
    """The end of the ``workdays``-th working day after ``now``'s day (China calendar), as UTC."""
    holidays, workdays = _calendar(str(settings.catalog_dir))
    return add_workdays(now, deadline(settings, status).workdays, holidays, workdays).astimezone(timezone.utc)


# -- the workflow ---------------------------------------------------------------------------------------------

def _engine(settings: Settings) -> sa.Engine:
    from govlake.control.db import control_engine

    return control_engine(settings)


def _has_db(settings: Settings) -> bool:
    """Whether a control DB exists (a SQLite file not created yet has no objections; reading must not
    create it, e.g. from a scoring run of a lake that never served users)."""
    return settings.control_db_exists


def scrub_reason(text: str) -> str:
    """The reason as stored: digit runs (ID numbers, phones, dates of birth) and quoted values masked. The
    words stay (the steward needs them); the form tells users not to write personal data."""
    from govlake.redaction import _DIGITS, _QUOTED

    text = mask_ids(text.strip())
    text = _DIGITS.sub(lambda m: "#" * len(m.group()), text)
    return _QUOTED.sub(lambda m: m.group()[0] + "…" + m.group()[-1], text)[:2000]


def _not_found(target: Target) -> ObjectionError:
    """One answer for a record that does not exist and one the user may not see: filing must not tell them
    apart, or it would be an oracle for other districts' records."""
    return ObjectionError(f"{target.table} 中没有 {target.key_label} 为该值的记录（或该记录不在你的可见范围内）",
                          where="record_ref", hint="检查记录标识是否与页面显示的一致（个人记录请用假名）")


def _check_readable(principal: Principal, registry: Registry, settings: Settings, target: Target,
                    row: dict[str, Any] | None) -> None:
    """The user must be able to read the table, the field and this row (the one policy decides). Called
    first without a row (table and field, before the record is looked up), then with it."""
    from govlake.control import policy
    from govlake.lake import Lake

    lake = Lake(settings)  # one table's access, not the whole lake's
    names = policy.column_names(lake, target.layer, target.name)
    access = None if names is None else policy.table_access(principal, target.layer, target.name, names, registry)
    if access is None:
        raise policy.refusal(principal, target.layer, target.name)
    if target.field and ((access.columns is not None and target.field not in access.columns)
                         or target.field in access.masked):
        raise AccessDenied(f"无权查看 {target.table} 的字段 {target.field}，不能对其提出异议",
                           hint="先在驾驶舱“我的申请”页面（/sharing/mine）申请该数据集的共享权限")
    if row is not None and access.row_filter is not None:
        cols, value = access.row_filter
        if not any(row.get(c) == value for c in cols):
            raise _not_found(target)


def file_objection(settings: Settings, registry: Registry, principal: Principal, table: str, record_ref: str,
                   field: str | None, reason: str) -> dict:
    """File an objection on one record's field; returns the stored row (as a dict)."""
    record_ref = (record_ref or "").strip()
    try:
        if not record_ref:
            raise ObjectionError("请给出记录标识", where="record_ref", hint="使用页面显示的假名或统一社会信用代码等键值")
        if len(record_ref) > 128:
            raise ObjectionError("记录标识过长", where="record_ref", hint="使用页面显示的键值或假名")
        _refuse_personal_ref(record_ref)
        if not (reason or "").strip():
            raise ObjectionError("请说明异议理由", where="reason", hint="写明哪里有误、依据是什么（不要写身份证号等个人信息）")
        if principal.user_id is None:
            raise ObjectionError("本地数据湖所有者账户不能提交异议", hint="请以用户身份登录看板提交（govlake users add 创建用户）")
        target = resolve_target(settings, registry, table, field)
        _check_readable(principal, registry, settings, target, None)  # before anything about the record
        record_ref = "|".join(_key_parts(target, record_ref))
        row = read_record(settings, target, record_ref)
        if row is None:
            raise _not_found(target)
        _check_readable(principal, registry, settings, target, row)
    except GovlakeError as exc:
        named = [table] if _TABLE_NAME.fullmatch(table or "") else []  # never echo what may be a personal value
        audit.record(settings, principal, AuditEvent("objection.file", "denied", tables=named,
                                                     detail=f"拒绝：{type(exc).__name__}"))
        raise
    now = datetime.now(timezone.utc)
    values = {
        "reporter_id": principal.user_id, "table_name": target.table, "dataset": target.dataset,
        "record_ref": record_ref, "key_digest": keyed_digest(settings, KEY_PURPOSE, f"{target.table}|{record_ref}"),
        "field": field, "item": target.item.item if target.item else None, "reason": scrub_reason(reason),
        "source_node": target.source_node(record_ref), "status": str(ObjectionStatus.SUBMITTED),
        "value_digest": current_digest(settings, target, row), "created_at": now,
        "due_at": due_for(settings, ObjectionStatus.SUBMITTED, now), "updated_at": now,
    }
    with _engine(settings).begin() as con:
        oid = con.execute(T.insert().values(**values)).inserted_primary_key[0]
    audit.record(settings, principal, AuditEvent(
        "objection.file", "ok", tables=[target.table],
        detail=f"异议 #{oid}：{target.table}.{field or '（整条记录）'} → {values['source_node']}"))
    return get(settings, oid)


def get(settings: Settings, objection_id: int) -> dict:
    with _engine(settings).connect() as con:
        row = con.execute(sa.select(T).where(T.c.id == objection_id)).mappings().first()
    if row is None:
        raise ObjectionError(f"没有编号为 {objection_id} 的异议", hint="govlake objection list 查看异议")
    return dict(row)


def parse_status(value: str | ObjectionStatus) -> ObjectionStatus:
    """A state by its Chinese value (已受理) or its member name (accepted)."""
    text = str(value).strip()
    for s in ObjectionStatus:
        if text in (s.value, s.name.lower()):
            return s
    raise ObjectionError(f"未知的异议状态：{value}", where="status",
                         hint=f"可选：{'、'.join(s.value for s in ObjectionStatus)}")


def may_handle(principal: Principal, source_node: str) -> bool:
    """A steward of the source node, or an administrator."""
    return principal.role == "admin" or (principal.role == "steward" and principal.node == source_node)


def advance(settings: Settings, registry: Registry, principal: Principal, objection_id: int,
            status: str | ObjectionStatus, note: str | None = None) -> dict:
    """Move an objection to ``status`` (legal transitions only; 已驳回 needs a reason in ``note``)."""
    try:
        row = get(settings, objection_id)
        new = parse_status(status)
        if not may_handle(principal, row["source_node"]):
            node = registry.nodes.get(row["source_node"])
            raise AccessDenied(f"异议 #{objection_id} 由 {node.label if node else row['source_node']} 办理，"
                               f"{principal.name} 无权处理", hint="请该节点的数据管理员或系统管理员处理")
        old = ObjectionStatus(row["status"])
        if new not in TRANSITIONS[old]:
            allowed = "、".join(s.value for s in TRANSITIONS[old]) or "无（已办结）"
            raise ObjectionError(f"异议 #{objection_id} 当前为“{old}”，不能改为“{new}”", where="status",
                                 hint=f"可改为：{allowed}")
        if new is ObjectionStatus.REJECTED and not (note or "").strip():
            raise ObjectionError("驳回异议必须说明理由", where="--note", hint="例如：经核实与登记信息一致")
    except GovlakeError as exc:
        audit.record(settings, principal, AuditEvent("objection.advance", "denied",
                                                     detail=f"异议 #{objection_id}：拒绝（{type(exc).__name__}）"))
        raise
    _move(settings, row, new, principal.name, scrub_reason(note) if note else None)
    audit.record(settings, principal, AuditEvent("objection.advance", "ok", tables=[row["table_name"]],
                                                 detail=f"异议 #{objection_id}：{old} → {new}"))
    return get(settings, objection_id)


def _move(settings: Settings, row: dict, new: ObjectionStatus, by: str, resolution: str | None) -> bool:
    """Write the new state (guarded by the old one, so two handlers cannot both move it); False if lost."""
    now = datetime.now(timezone.utc)
    values: dict[str, Any] = {"status": str(new), "updated_at": now, "handled_by": by}
    if new.open:
        values["due_at"] = due_for(settings, new, now)
    if resolution is not None:
        values["resolution"] = resolution
    with _engine(settings).begin() as con:
        n = con.execute(T.update().where(T.c.id == row["id"], T.c.status == row["status"]).values(**values)).rowcount
    if n == 0:
        raise ObjectionError(f"异议 #{row['id']} 刚被他人处理过", hint="刷新后重试")
    return True


# -- after a run ----------------------------------------------------------------------------------------------

def _open_rows(settings: Settings, *where) -> list[dict]:
    if not _has_db(settings):
        return []
    q = sa.select(T).where(T.c.status.in_([str(s) for s in OPEN]), *where).order_by(T.c.id)
    with _engine(settings).connect() as con:
        return [dict(r) for r in con.execute(q).mappings()]


def reconcile(ctx) -> list[int]:
    """Close as 已更正 every open objection whose disputed value changed since it was filed (a re-delivery
    corrected it). Idempotent: a closed objection is never looked at again. Returns the ids closed."""
    settings, registry = ctx.settings, ctx.registry
    closed: list[int] = []
    for row in _open_rows(settings):
        target = resolve_target(settings, registry, row["table_name"], row["field"])
        current = read_record(settings, target, row["record_ref"], ctx.lake)
        # A record no longer there stays open: whether that corrects anything is the steward's call.
        if current is None or current_digest(settings, target, current) == row["value_digest"]:
            continue
        try:
            _move(settings, row, ObjectionStatus.CORRECTED, SYSTEM, CORRECTED_BY_DELIVERY)
        except ObjectionError:  # handled by a steward meanwhile
            continue
        closed.append(row["id"])
        audit.record(settings, _system(ctx), AuditEvent(
            "objection.corrected", "ok", tables=[row["table_name"]],
            detail=f"异议 #{row['id']}：{row['status']} → {ObjectionStatus.CORRECTED}（{CORRECTED_BY_DELIVERY}）"))
    return closed


def _system(ctx) -> Principal:
    city = ctx.registry.city.code if ctx.registry.city else "440100"
    return Principal(name=SYSTEM, node=city, role="admin", auth="system")


def open_refs(settings: Settings, table: str) -> dict[str, set[str]]:
    """For ``table`` ('layer.name'): key column -> record refs with an open objection (the 有异议 marker).
    Composite keys are one entry, columns and values joined by '|'."""
    return open_refs_by_table(settings, T.c.table_name == table).get(table, {})


def open_refs_by_table(settings: Settings, *where) -> dict[str, dict[str, set[str]]]:
    """``open_refs`` of every table at once: one query however many tables a session registers."""
    rows = _open_rows(settings, *where)
    if not rows:
        return {}
    from govlake.registry import load_registry

    registry = load_registry(settings.catalog_dir, settings.schemas_dir)
    out: dict[str, dict[str, set[str]]] = {}
    for table in {r["table_name"] for r in rows}:
        keys = "|".join(key_columns(settings, registry, table))
        out[table] = {keys: {r["record_ref"] for r in rows if r["table_name"] == table}}
    return out


def open_counts(settings: Settings, by: str = "source_node") -> dict[str, int]:
    """Open objections per source node (``by="source_node"``) or per source dataset (``by="dataset"``)."""
    if by not in ("source_node", "dataset"):
        raise ValueError(by)
    return dict(Counter(r[by] for r in _open_rows(settings) if r[by]))


def overdue(settings: Settings, now: datetime | None = None) -> list[dict]:
    """Open objections past the deadline of their current state."""
    now = now or datetime.now(timezone.utc)
    return [r for r in _open_rows(settings) if _aware(r["due_at"]) < now]


def listing(settings: Settings, node: str | None = None, status: str | None = None,
            only_overdue: bool = False) -> list[dict]:
    """Objections for ``govlake objection list``, newest first."""
    if not _has_db(settings):
        return []
    q = sa.select(T).order_by(T.c.id.desc())
    if node:
        q = q.where(T.c.source_node == node)
    if status:
        q = q.where(T.c.status == str(parse_status(status)))
    with _engine(settings).connect() as con:
        rows = [dict(r) for r in con.execute(q).mappings()]
    now = datetime.now(timezone.utc)
    for r in rows:
        r["overdue"] = ObjectionStatus(r["status"]).open and _aware(r["due_at"]) < now
    return [r for r in rows if r["overdue"]] if only_overdue else rows
