"""The 共享申请 workflow of 《政务数据共享条例》: request → reply by the provider → grant; revocation, expiry.

What a request may get, and how fast, follows the dataset contract's 共享属性 (``catalog.share``) through the
rules in ``catalog/sharing.yaml``:

* 无条件共享  granted when filed: the grant is created at once and both steps are recorded;
* 有条件共享  routed to the contract ``owner`` node, whose steward (or a city administrator) approves or
              rejects with a reason before ``due_at`` (N working days, ``workdays.WorkCalendar``); a request
              still pending after it is flagged 已超期;
* 不予共享    refused when filed, citing the contract's ``catalog.share_basis``.

A grant (``control.schema.grants``) names the dataset, layer, columns (the requested fields), the highest
grade among them, the row scope (the requester's district for a district node's user) and the expiry; the
policy (``control.policy``) enforces it. Every step goes through ``audit.record``; the audit ``detail`` is our
own summary (ids, dataset, counts, dates), never the requester's free text. If the audit row cannot be
written the step is undone and ``AuditError`` raised (fail closed).

Identities come only from authentication (``Principal``): the lake owner's CLI acts as the administrator; a
user files requests as themselves through the dashboard.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from govlake.contracts import Contract
from govlake.control.clock import now as _now, utc as _utc
from govlake.control import audit
from govlake.control.db import control_engine
from govlake.control.principal import Principal
from govlake.control.schema import grants, share_requests, users
from govlake.control.workdays import CHINA, WorkCalendar
from govlake.declarations import build, read, schema_path
from govlake.errors import AccessDenied, ConfigError, GovlakeError, RegistryError, did_you_mean
from govlake.project import Settings
from govlake.registry import Registry

LAYERS = ("silver", "quarantine")
SHARE_TYPES = ("无条件共享", "有条件共享", "不予共享")
OVERDUE = "已超期"  # a flag on a pending request past its reply deadline (not a state: it is still pending)
SYSTEM = audit.Actor("govlake", None, None, "system")  # the sweep when no principal runs it


class ShareStatus(StrEnum):
    """The state of one sharing request (``share_requests.status``)."""

    PENDING = "待审核"    # filed, waiting for the owner node's reply
    APPROVED = "已批准"   # granted (at once for 无条件共享); the grant is live until it expires
    REJECTED = "已驳回"   # refused by the owner node's steward, with a reason
    REVOKED = "已撤销"    # its grant was revoked before expiry
    EXPIRED = "已过期"    # its grant ran out
    WITHDRAWN = "已撤回"  # the requester withdrew it before a reply


class GrantState(StrEnum):
    LIVE = "生效中"
    EXPIRED = "已过期"
    REVOKED = "已撤销"


class RequestInvalid(GovlakeError):
    """A sharing request or decision is incomplete or not possible in its current state."""


# -- rules (catalog/sharing.yaml) ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ShareRule:
    """What a request for a dataset of one 共享属性 may get (see catalog/sharing.yaml)."""

    requestable: bool
    auto_approve: bool
    reply_days: int
    basis: str
    verified: bool
    max_days: int | None = None
    default_days: int | None = None


@dataclass(frozen=True)
class SharingRules:
    rules: dict[str, ShareRule]
    holidays: tuple[str, ...] = ()
    workdays: tuple[str, ...] = ()
    calendar_basis: str = ""
    calendar: WorkCalendar = field(default_factory=WorkCalendar)

    def rule(self, share: str) -> ShareRule:
        return self.rules[share]


def load_rules(settings: Settings) -> SharingRules:
    """The deployment's sharing rules, validated by schemas/_meta/sharing.schema.json (cached per folder)."""
    return _load_rules(str(settings.catalog_dir), str(settings.schemas_dir))


@lru_cache(maxsize=4)
def _load_rules(catalog_dir: str, schemas_dir: str) -> SharingRules:
    path = Path(catalog_dir) / "sharing.yaml"
    if not path.exists():
        raise ConfigError("缺少共享申请规则文件", where=str(path),
                          hint="从 govlake 项目复制 catalog/sharing.yaml，并按本地规定核对答复时限")
    schemas = Path(schemas_dir)
    doc = read(path, "sharing", schemas if schema_path("sharing", schemas).exists() else None)
    rules = build(SharingRules, doc)
    return SharingRules(rules.rules, rules.holidays, rules.workdays, rules.calendar_basis,
                        WorkCalendar.of(rules.holidays, rules.workdays))


# -- helpers --------------------------------------------------------------------------------------------------

def _at(now: datetime | None) -> datetime:
    """``now`` (default: the clock) in UTC: SQLite stores timestamps without their offset, so every stored
    and compared timestamp must be UTC."""
    return _utc(now or _now()).astimezone(timezone.utc)


def _day(value: datetime) -> str:
    return value.astimezone(CHINA).strftime("%Y-%m-%d")


def _text(value: str | None, label: str) -> str:
    text = (value or "").strip()
    if not text:
        raise RequestInvalid(f"缺少{label}", where=label, hint=f"填写{label}后重新提交")
    return text


def _reason(reason: str | None, what: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise RequestInvalid(f"{what}必须填写理由", where="理由", hint="写明理由（将告知申请人），然后重试")
    return text


def _contract(registry: Registry, dataset: str) -> Contract:
    if dataset not in registry.contracts:
        raise RegistryError(f"未知数据集：{dataset}",
                            hint=did_you_mean(dataset, set(registry.contracts)) or "查看数据目录中已登记的数据集")
    return registry.contracts[dataset]


def _fields(contract: Contract, fields: Sequence[str] | None) -> list[str] | None:
    """The requested fields, checked against the contract; None (or empty) means every field."""
    wanted = [f.strip() for f in (fields or ()) if f and f.strip()]
    if not wanted:
        return None
    names = contract.field_names
    for f in wanted:
        if f not in names:
            raise RequestInvalid(f"数据集 {contract.dataset} 没有字段 {f}", where="字段",
                                 hint=did_you_mean(f, names) or f"可申请的字段：{'、'.join(names)}")
    return list(dict.fromkeys(wanted))


def _max_grade(contract: Contract, fields: Sequence[str] | None) -> int:
    chosen = [contract.field(f) for f in fields] if fields else list(contract.fields)
    return max(f.grade for f in chosen)


def _row_scope(registry: Registry, node: str) -> str | None:
    """A district node's users see only their district's rows; other nodes the whole city."""
    n = registry.nodes.get(node)
    return node if n is not None and n.kind == "district" else None


def _refusal_basis(contract: Contract) -> str:
    return contract.catalog.share_basis or contract.catalog.share_condition or "契约未载明依据"


def _is_admin(p: Principal) -> bool:
    return p.role == "admin"


def _stewards(p: Principal, owner_node: str) -> bool:
    return _is_admin(p) or (p.role == "steward" and p.node == owner_node)


def _record(settings: Settings, who: Principal | audit.Actor, events: Sequence[audit.AuditEvent],
            undo: Callable[[], None] | None = None) -> None:
    """Audit a step that has been written; if the audit fails, undo the step and re-raise (fail closed)."""
    try:
        audit.record(settings, who, *events)
    except audit.AuditError:
        if undo is not None:
            undo()
        raise


def _event(action: str, outcome: str, dataset: str, detail: str, grant_ids: Sequence[int] = (),
           at: datetime | None = None) -> audit.AuditEvent:
    ev = audit.AuditEvent(action=action, outcome=outcome, tables=[dataset], grant_ids=list(grant_ids), detail=detail)
    if at is not None:
        ev.at = at
    return ev


def _deny(settings: Settings, principal: Principal, action: str, dataset: str, detail: str,
          error: AccessDenied) -> AccessDenied:
    """Record a refused attempt, then hand back the error to raise."""
    audit.record(settings, principal, _event(action, "denied", dataset, detail))
    return error


def _insert_grant(con: sa.Connection, *, user_id: int, request: dict, max_grade: int, row_scope: str | None,
                  by: str, now: datetime) -> int:
    return con.execute(grants.insert().values(
        user_id=user_id, dataset=request["dataset"], layer=request["layer"], columns=request["fields"],
        max_grade=max_grade, row_scope=row_scope, purpose=request["purpose"], request_id=request["id"],
        granted_by=by, granted_at=now, expires_at=now + timedelta(days=request["period_days"]),
    )).inserted_primary_key[0]


# -- the workflow ---------------------------------------------------------------------------------------------

def request_share(settings: Settings, registry: Registry, principal: Principal, dataset: str,
                  fields: Sequence[str] | None, purpose: str, scenario: str, legal_basis: str,
                  period_days: int | None = None, layer: str = "silver", *, now: datetime | None = None) -> dict:
    """File a 共享申请 as ``principal``. 无条件共享 is granted at once, 有条件共享 waits for the owner node's
    steward (``due_at`` N working days later), 不予共享 raises AccessDenied citing the contract's basis."""
    if principal.user_id is None or _is_admin(principal):
        raise RequestInvalid("系统管理员可读取全部数据，无需提出共享申请",
                             hint="共享申请由各部门、各区的用户登录后在“我的申请”页面提交")
    contract = _contract(registry, dataset)
    if layer not in LAYERS:
        raise RequestInvalid(f"不能申请 {layer} 层", where="层", hint="可申请 silver（标准层）或 quarantine（隔离区）")
    if principal.role == "steward" and principal.node == contract.owner:
        raise RequestInvalid(f"你是数据集 {dataset} 提供节点的数据管理员，已可读取，无需申请")
    chosen = _fields(contract, fields)
    texts = {"purpose": _text(purpose, "用途"), "scenario": _text(scenario, "应用场景"),
             "legal_basis": _text(legal_basis, "申请依据")}
    share = contract.catalog.share
    rules = load_rules(settings)
    rule = rules.rule(share)
    summary = f"dataset={dataset} layer={layer} share={share}"
    if not rule.requestable:
        raise _deny(settings, principal, "share.request", dataset, f"{summary} refused=not_shareable", AccessDenied(
            f"数据集 {dataset}（{contract.title}）的共享属性为{share}，不能申请共享。依据：{_refusal_basis(contract)}",
            where=f"{contract.path} → catalog.share_basis" if contract.path else "catalog.share_basis",
            hint="如确因履职需要，请与提供部门协商；协商不成的由政务数据共享主管部门协调"))
    days = rule.default_days if period_days is None else int(period_days)
    if days is None or not 1 <= days <= (rule.max_days or days):
        raise RequestInvalid(f"使用期限 {period_days} 天超出允许范围", where="使用期限",
                             hint=f"{share}数据的使用期限为 1–{rule.max_days} 天")
    now = _at(now)
    due = now if rule.auto_approve else rules.calendar.add(now, rule.reply_days).astimezone(timezone.utc)
    status = ShareStatus.APPROVED if rule.auto_approve else ShareStatus.PENDING
    engine = control_engine(settings)
    with engine.begin() as con:
        open_id = con.execute(sa.select(share_requests.c.id).where(
            share_requests.c.requester_id == principal.user_id, share_requests.c.dataset == dataset,
            share_requests.c.layer == layer, share_requests.c.status == ShareStatus.PENDING)).scalar()
        if open_id is not None:
            raise RequestInvalid(f"你对数据集 {dataset} 已有待审核的申请 #{open_id}",
                                 hint="等待答复，或先撤回该申请再重新提交")
        values = dict(requester_id=principal.user_id, dataset=dataset, layer=layer, fields=chosen,
                      period_days=days, share_type=share, owner_node=contract.owner, status=status,
                      created_at=now, due_at=due, **texts)
        if rule.auto_approve:
            values.update(decided_by="govlake", decided_at=now, decision_reason="无条件共享，申请即授权")
        request_id = con.execute(share_requests.insert().values(**values)).inserted_primary_key[0]
        grant_id = None
        if rule.auto_approve:
            grant_id = _insert_grant(con, user_id=principal.user_id, request={**values, "id": request_id},
                                     max_grade=_max_grade(contract, chosen),
                                     row_scope=principal.district, by="govlake", now=now)
    detail = (f"request={request_id} {summary} fields={len(chosen) if chosen else 'all'} "
              f"period_days={days} status={status}")
    events = [_event("share.request", "ok", dataset, detail + ("" if grant_id else f" due={_day(due)}"), at=now)]
    if grant_id is not None:
        events.append(_event("share.approve", "ok", dataset, f"request={request_id} grant={grant_id} auto=无条件共享",
                             [grant_id], at=now))

    def undo() -> None:
        with engine.begin() as con:
            con.execute(grants.delete().where(grants.c.request_id == request_id))
            con.execute(share_requests.delete().where(share_requests.c.id == request_id))

    _record(settings, principal, events, undo)
    return _one(settings, request_id, now)


def decide(settings: Settings, registry: Registry, principal: Principal, request_id: int, approve: bool,
           reason: str | None = None, *, now: datetime | None = None) -> dict:
    """The owner node's steward (or an administrator) approves (a grant is created) or rejects (a reason is
    required) a pending request."""
    action = "share.approve" if approve else "share.reject"
    req = _request_row(settings, request_id)
    dataset = req["dataset"]
    if not _stewards(principal, req["owner_node"]):
        raise _deny(settings, principal, action, dataset, f"request={request_id} refused=not_owner_steward",
                    AccessDenied(f"只有提供节点 {req['owner_node']} 的数据管理员或系统管理员可以审批申请 #{request_id}",
                                 hint="该申请已按数据集契约的 owner 节点分派，请由该节点的数据管理员在“待办”中处理"))
    if principal.user_id is not None and principal.user_id == req["requester_id"]:
        raise _deny(settings, principal, action, dataset, f"request={request_id} refused=own_request",
                    AccessDenied(f"不能审批自己提出的申请 #{request_id}", hint="请由同节点的其他数据管理员或系统管理员审批"))
    if req["status"] != ShareStatus.PENDING:
        raise RequestInvalid(f"申请 #{request_id} 当前状态为{req['status']}，不能再审批")
    text = ((reason or "").strip() or None) if approve else _reason(reason, "驳回申请")
    now = _at(now)
    grant_id = None
    engine = control_engine(settings)
    if approve:
        contract = _contract(registry, dataset)
        if not load_rules(settings).rule(contract.catalog.share).requestable:
            raise AccessDenied(f"数据集 {dataset} 现为{contract.catalog.share}，不能批准。依据：{_refusal_basis(contract)}",
                               hint="请驳回该申请并说明依据")
        with engine.connect() as con:
            requester_node = con.execute(sa.select(users.c.node).where(users.c.id == req["requester_id"])).scalar()
    status = ShareStatus.APPROVED if approve else ShareStatus.REJECTED
    with engine.begin() as con:
        changed = con.execute(share_requests.update().where(
            share_requests.c.id == request_id, share_requests.c.status == ShareStatus.PENDING).values(
            status=status, decided_by=principal.name, decided_at=now, decision_reason=text)).rowcount
        if not changed:
            raise RequestInvalid(f"申请 #{request_id} 已被处理", hint="刷新待办列表后查看")
        if approve:
            grant_id = _insert_grant(con, user_id=req["requester_id"], request=req,
                                     max_grade=_max_grade(contract, req["fields"]),
                                     row_scope=_row_scope(registry, requester_node), by=principal.name, now=now)
    late = now > _utc(req["due_at"])
    detail = f"request={request_id} status={status}" + (f" grant={grant_id}" if grant_id else "") + (
        f" late=overdue_since_{_day(_utc(req['due_at']))}" if late else "")

    def undo() -> None:
        with engine.begin() as con:
            con.execute(grants.delete().where(grants.c.request_id == request_id))
            con.execute(share_requests.update().where(share_requests.c.id == request_id).values(
                status=ShareStatus.PENDING, decided_by=None, decided_at=None, decision_reason=None))

    _record(settings, principal, [_event(action, "ok", dataset, detail, [grant_id] if grant_id else (), at=now)], undo)
    return _one(settings, request_id, now)


def withdraw(settings: Settings, principal: Principal, request_id: int, *, now: datetime | None = None) -> dict:
    """The requester withdraws their own pending request."""
    req = _request_row(settings, request_id)
    if principal.user_id is None or principal.user_id != req["requester_id"]:
        raise _deny(settings, principal, "share.withdraw", req["dataset"], f"request={request_id} refused=not_requester",
                    AccessDenied(f"只有申请人本人可以撤回申请 #{request_id}"))
    now = _at(now)
    engine = control_engine(settings)
    with engine.begin() as con:
        changed = con.execute(share_requests.update().where(
            share_requests.c.id == request_id, share_requests.c.status == ShareStatus.PENDING).values(
            status=ShareStatus.WITHDRAWN, decided_by=principal.name, decided_at=now)).rowcount
    if not changed:
        raise RequestInvalid(f"申请 #{request_id} 当前状态为{req['status']}，不能撤回", hint="只有待审核的申请可以撤回")

    def undo() -> None:
        with engine.begin() as con:
            con.execute(share_requests.update().where(share_requests.c.id == request_id).values(
                status=ShareStatus.PENDING, decided_by=None, decided_at=None))

    _record(settings, principal, [_event("share.withdraw", "ok", req["dataset"],
                                         f"request={request_id} status={ShareStatus.WITHDRAWN}", at=now)], undo)
    return _one(settings, request_id, now)


def revoke(settings: Settings, registry: Registry, principal: Principal, grant_id: int, reason: str | None,
           *, now: datetime | None = None) -> dict:
    """End a grant before its expiry: the owner node's steward, an administrator, or the grantee."""
    with control_engine(settings).connect() as con:
        g = con.execute(sa.select(grants).where(grants.c.id == grant_id)).mappings().first()
    if g is None:
        raise RegistryError(f"没有授权 #{grant_id}", hint="用 govlake share grants 查看现有授权")
    dataset = g["dataset"]
    contract = registry.contracts.get(dataset)
    owner_steward = contract is not None and _stewards(principal, contract.owner)
    grantee = principal.user_id is not None and principal.user_id == g["user_id"]
    if not (_is_admin(principal) or owner_steward or grantee):
        raise _deny(settings, principal, "share.revoke", dataset, f"grant={grant_id} refused=not_owner_steward",
                    AccessDenied(f"无权撤销授权 #{grant_id}",
                                 hint="授权可由提供节点的数据管理员、系统管理员或被授权人本人撤销"))
    if g["revoked_at"] is not None:
        raise RequestInvalid(f"授权 #{grant_id} 已于 {_day(_utc(g['revoked_at']))} 撤销")
    text = _reason(reason, "撤销授权")
    now = _at(now)
    prior = _request_row(settings, g["request_id"])["status"] if g["request_id"] is not None else None
    engine = control_engine(settings)
    with engine.begin() as con:
        con.execute(grants.update().where(grants.c.id == grant_id).values(
            revoked_at=now, revoked_by=principal.name, revoke_reason=text))
        if g["request_id"] is not None:
            con.execute(share_requests.update().where(
                share_requests.c.id == g["request_id"],
                share_requests.c.status.in_([ShareStatus.APPROVED, ShareStatus.EXPIRED])).values(
                status=ShareStatus.REVOKED))

    def undo() -> None:
        with engine.begin() as con:
            con.execute(grants.update().where(grants.c.id == grant_id).values(
                revoked_at=None, revoked_by=None, revoke_reason=None))
            if prior in (ShareStatus.APPROVED, ShareStatus.EXPIRED):
                con.execute(share_requests.update().where(share_requests.c.id == g["request_id"]).values(
                    status=prior))

    who = "grantee" if grantee else "owner_steward" if owner_steward else "admin"
    _record(settings, principal, [_event("share.revoke", "ok", dataset,
                                         f"grant={grant_id} request={g['request_id']} by={who}", [grant_id], at=now)],
            undo)
    return next(x for x in list_grants(settings, now=now) if x["id"] == grant_id)


def expire_and_flag(settings: Settings, *, by: Principal | None = None, now: datetime | None = None) -> dict:
    """The periodic sweep: requests whose grant ran out become 已过期 (one audit event each); pending requests
    past their reply deadline are reported (flagged 已超期). Idempotent: a second run changes nothing."""
    now = _at(now)
    engine = control_engine(settings)
    with engine.connect() as con:
        ran_out = con.execute(sa.select(share_requests.c.id, share_requests.c.dataset, grants.c.id.label("grant_id"))
                              .join(grants, grants.c.request_id == share_requests.c.id)
                              .where(share_requests.c.status == ShareStatus.APPROVED, grants.c.revoked_at.is_(None),
                                     grants.c.expires_at <= now)).mappings().all()
    ids = [r["id"] for r in ran_out]
    if ids:
        with engine.begin() as con:
            con.execute(share_requests.update().where(share_requests.c.id.in_(ids),
                                                      share_requests.c.status == ShareStatus.APPROVED)
                        .values(status=ShareStatus.EXPIRED))
    overdue = [r for r in list_requests(settings, status=ShareStatus.PENDING, now=now) if r["overdue"]]
    events = [_event("share.expire", "ok", r["dataset"], f"request={r['id']} grant={r['grant_id']} status={ShareStatus.EXPIRED}",
                     [r["grant_id"]], at=now) for r in ran_out]
    events += [_event("share.overdue", "flagged", r["dataset"], f"request={r['id']} due={_day(r['due_at'])} "
                      f"owner_node={r['owner_node']}", at=now) for r in overdue]

    def undo() -> None:
        with engine.begin() as con:
            con.execute(share_requests.update().where(share_requests.c.id.in_(ids)).values(status=ShareStatus.APPROVED))

    if events:
        _record(settings, by or SYSTEM, events, undo if ids else None)
    expired = [r for r in list_requests(settings, now=now) if r["id"] in set(ids)]
    return {"expired": expired, "overdue": overdue}


# -- views ----------------------------------------------------------------------------------------------------

def _request_row(settings: Settings, request_id: int) -> dict:
    with control_engine(settings).connect() as con:
        row = con.execute(sa.select(share_requests).where(share_requests.c.id == request_id)).mappings().first()
    if row is None:
        raise RegistryError(f"没有共享申请 #{request_id}", hint="用 govlake share list 查看全部申请")
    return dict(row)


def _grant_state(row: Any, now: datetime) -> str | None:
    if row["grant_id"] is None:
        return None
    if row["grant_revoked_at"] is not None:
        return GrantState.REVOKED
    return GrantState.LIVE if _utc(row["grant_expires_at"]) > now else GrantState.EXPIRED


def _view(row: Any, now: datetime) -> dict:
    """A request as pages and the CLI show it: the stored state, corrected for a grant that ran out since
    the last sweep, and the 已超期 flag."""
    out = {k: row[k] for k in ("id", "requester", "requester_node", "dataset", "layer", "fields", "purpose",
                               "scenario", "legal_basis", "period_days", "share_type", "owner_node", "status",
                               "decided_by", "decision_reason", "grant_id")}
    out.update(created_at=_utc(row["created_at"]), due_at=_utc(row["due_at"]), decided_at=_utc(row["decided_at"]),
               grant_expires_at=_utc(row["grant_expires_at"]), grant_state=_grant_state(row, now))
    if out["status"] == ShareStatus.APPROVED and out["grant_state"] == GrantState.EXPIRED:
        out["status"] = ShareStatus.EXPIRED
    out["status"] = ShareStatus(out["status"])
    out["overdue"] = out["status"] == ShareStatus.PENDING and now > out["due_at"]
    out["flag"] = OVERDUE if out["overdue"] else None
    return out


def _select() -> sa.Select:
    return (sa.select(share_requests, users.c.name.label("requester"), users.c.node.label("requester_node"),
                      grants.c.id.label("grant_id"), grants.c.expires_at.label("grant_expires_at"),
                      grants.c.revoked_at.label("grant_revoked_at"))
            .join(users, users.c.id == share_requests.c.requester_id)
            .outerjoin(grants, grants.c.request_id == share_requests.c.id)
            .order_by(share_requests.c.id.desc()))


def _query(settings: Settings, where: Sequence[Any], now: datetime | None) -> list[dict]:
    now = _at(now)
    with control_engine(settings).connect() as con:
        return [_view(r, now) for r in con.execute(_select().where(*where)).mappings()]


def _one(settings: Settings, request_id: int, now: datetime | None) -> dict:
    return _query(settings, [share_requests.c.id == request_id], now)[0]


def list_requests(settings: Settings, *, status: str | None = None, node: str | None = None,
                  now: datetime | None = None) -> list[dict]:
    """Every request, newest first (the administrator's view); ``node`` filters by the owner node.
    ``status`` 已过期 includes approved requests whose grant ran out since the last sweep."""
    where = [share_requests.c.owner_node == node] if node else []
    rows = _query(settings, where, now)
    return [r for r in rows if status is None or r["status"] == status]


def pending_for(settings: Settings, principal: Principal, *, now: datetime | None = None) -> list[dict]:
    """待办: the pending requests ``principal`` decides (their node's as a steward, all as an administrator),
    oldest deadline first, each flagged 已超期 when past due."""
    if principal.role not in ("steward", "admin"):
        return []
    where = [share_requests.c.status == ShareStatus.PENDING]
    if not _is_admin(principal):
        where.append(share_requests.c.owner_node == principal.node)
    return sorted(_query(settings, where, now), key=lambda r: (r["due_at"], r["id"]))


def mine(settings: Settings, principal: Principal, *, now: datetime | None = None) -> list[dict]:
    """我的申请: ``principal``'s own requests, newest first, with their grants' state."""
    if principal.user_id is None:
        return []
    return _query(settings, [share_requests.c.requester_id == principal.user_id], now)


def list_grants(settings: Settings, *, user: str | None = None, now: datetime | None = None) -> list[dict]:
    """Every grant (newest first) with its grantee and state (生效中 / 已过期 / 已撤销)."""
    now = _at(now)
    q = (sa.select(grants, users.c.name.label("user"), users.c.node.label("node"))
         .join(users, users.c.id == grants.c.user_id).order_by(grants.c.id.desc()))
    if user:
        q = q.where(users.c.name == user)
    out = []
    with control_engine(settings).connect() as con:
        for r in con.execute(q).mappings():
            g = {k: r[k] for k in ("id", "user", "node", "dataset", "layer", "columns", "max_grade", "row_scope",
                                   "purpose", "request_id", "granted_by", "revoked_by")}
            g.update(granted_at=_utc(r["granted_at"]), expires_at=_utc(r["expires_at"]),
                     revoked_at=_utc(r["revoked_at"]))
            g["state"] = (GrantState.REVOKED if r["revoked_at"] is not None
                          else GrantState.LIVE if g["expires_at"] > now else GrantState.EXPIRED)
            out.append(g)
    return out
