"""The 共享申请 workflow (issue 13, points 2 and 5): requests by 共享属性, decisions by the owner node's steward,
deadlines in working days, revocation, expiry, the audit trail and the ``govlake share`` CLI.

Real components throughout: the SQLite control database of a lake on disk, the project's contracts and
catalog/sharing.yaml, users created by ``identities.add_user``, grants read back by ``principal_for``."""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from govlake.context import Context
from govlake.control import audit, sharing
from govlake.control.identities import add_user, principal_for
from govlake.control.principal import Principal
from govlake.control.sharing import GrantState, RequestInvalid, ShareStatus
from govlake.control.workdays import CHINA, WorkCalendar, add_workdays
from govlake.errors import AccessDenied, ConfigError, RegistryError
from tests.conftest import PROJECT

from .conftest import PASSWORD

FRIDAY = datetime(2026, 11, 20, 10, 0, tzinfo=CHINA)  # a Friday with no holiday in the following week
TEXT = {"purpose": "核对辖区常住人口底数用于网格化服务", "scenario": "街道网格员上门核查",
        "legal_basis": "《广东省政务数据资源共享管理办法》"}


def _user(ctx: Context, owner: Principal, name: str, node: str, role: str = "analyst") -> Principal:
    u = add_user(ctx.settings, ctx.registry, name, node, role, PASSWORD, by=owner)
    return principal_for(ctx.settings, ctx.registry, u["id"], "password")


def _file(ctx: Context, who: Principal, dataset: str, fields=None, days=None, now=None) -> dict:
    return sharing.request_share(ctx.settings, ctx.registry, who, dataset, fields, period_days=days, now=now, **TEXT)


def _live(ctx: Context, who: Principal) -> dict[int, object]:
    return {g.id: g for g in principal_for(ctx.settings, ctx.registry, who.user_id, "password").grants}


def _actions(ctx: Context) -> list[tuple[str, str]]:
    return [(r["action"], r["outcome"]) for r in reversed(audit.rows(ctx.settings, action="share", limit=1000))]


# -- working days ---------------------------------------------------------------------------------------------

def test_working_days_skip_weekends_holidays_and_count_make_up_days(ctx: Context) -> None:
    plain = WorkCalendar()
    due = plain.add(FRIDAY, 5)
    assert due.astimezone(CHINA).date() == date(2026, 11, 27)  # Mon..Fri of the next week
    assert due > datetime(2026, 11, 27, 23, 0, tzinfo=CHINA)   # the end of that day, not 10:00
    assert plain.add(FRIDAY, 1).astimezone(CHINA).date() == date(2026, 11, 23)  # Saturday and Sunday skipped
    assert plain.add(FRIDAY, 0) == FRIDAY

    cal = sharing.load_rules(ctx.settings).calendar  # catalog/sharing.yaml: 2026 国庆 off, Sat 10-10 worked
    eve = datetime(2026, 9, 30, 9, 0, tzinfo=CHINA)
    assert cal.add(eve, 3).astimezone(CHINA).date() == date(2026, 10, 10)
    assert cal.add(eve, 5).astimezone(CHINA).date() == date(2026, 10, 13)
    assert plain.add(eve, 5).astimezone(CHINA).date() == date(2026, 10, 7)
    # 16:30 UTC on Sunday is 00:30 on Monday in Beijing: a Monday request, so one working day is Tuesday.
    monday_cst = datetime(2026, 11, 22, 16, 30, tzinfo=timezone.utc)
    assert add_workdays(monday_cst, 1).astimezone(CHINA).date() == date(2026, 11, 24)


# -- 无条件共享 -----------------------------------------------------------------------------------------------

def test_unconditional_request_is_granted_at_once(ctx: Context, owner: Principal) -> None:
    district = _user(ctx, owner, "tianhe.analyst", "440106")
    dept = _user(ctx, owner, "gaj.analyst", "gaj")
    contract = ctx.registry.contracts["air_quality_daily"]
    assert contract.catalog.share == "无条件共享"
    fields = ["station_code", "aqi", "district_code"]

    r = _file(ctx, district, "air_quality_daily", fields, days=30)
    assert r["status"] == ShareStatus.APPROVED and r["grant_id"] is not None
    g = _live(ctx, district)[r["grant_id"]]
    assert g.dataset == "air_quality_daily" and g.layer == "silver"
    assert g.columns == tuple(fields)
    assert g.max_grade == max(contract.field(f).grade for f in fields)
    assert g.row_scope == "440106"  # a district node's user: their district's rows only
    assert g.expires_at - r["created_at"] == timedelta(days=30)

    everything = _file(ctx, dept, "air_quality_daily")  # no fields: all of them, default period
    g2 = _live(ctx, dept)[everything["grant_id"]]
    assert g2.columns is None and g2.row_scope is None
    assert g2.max_grade == max(f.grade for f in contract.fields)
    assert everything["period_days"] == sharing.load_rules(ctx.settings).rule("无条件共享").default_days
    assert _actions(ctx) == [("share.request", "ok"), ("share.approve", "ok")] * 2


def test_request_input_is_checked(ctx: Context, owner: Principal) -> None:
    who = _user(ctx, owner, "tianhe.analyst", "440106")
    with pytest.raises(RegistryError) as e:
        _file(ctx, who, "air_quality_dialy")
    assert "air_quality_daily" in e.value.hint
    with pytest.raises(RequestInvalid) as e:
        _file(ctx, who, "air_quality_daily", ["aqi", "pm2_5"])
    assert "pm25" in e.value.hint
    with pytest.raises(RequestInvalid, match="用途"):
        sharing.request_share(ctx.settings, ctx.registry, who, "air_quality_daily", None, "  ", "场景", "依据", 30)
    with pytest.raises(RequestInvalid, match="使用期限"):
        _file(ctx, who, "air_quality_daily", days=sharing.load_rules(ctx.settings).rule("无条件共享").max_days + 1)
    with pytest.raises(RequestInvalid, match="无需"):
        _file(ctx, owner, "air_quality_daily")  # the administrator reads everything already
    assert sharing.mine(ctx.settings, who) == []


# -- 有条件共享 -----------------------------------------------------------------------------------------------

def test_conditional_request_waits_for_the_owner_steward(ctx: Context, owner: Principal) -> None:
    analyst = _user(ctx, owner, "tianhe.analyst", "440106")
    gaj = _user(ctx, owner, "gaj.steward", "gaj", "steward")
    other = _user(ctx, owner, "sthjj.steward", "sthjj", "steward")
    contract = ctx.registry.contracts["hukou_population"]
    assert contract.catalog.share == "有条件共享" and contract.owner == "gaj"
    fields = ["district_code", "name", "id_number"]

    r = _file(ctx, analyst, "hukou_population", fields, days=60, now=FRIDAY)
    assert r["status"] == ShareStatus.PENDING and r["grant_id"] is None and r["owner_node"] == "gaj"
    reply_days = sharing.load_rules(ctx.settings).rule("有条件共享").reply_days
    assert r["due_at"] == WorkCalendar().add(FRIDAY, reply_days)  # no holiday that week: plain working days
    assert r["due_at"].astimezone(CHINA).date() > (FRIDAY + timedelta(days=reply_days)).date()  # weekend skipped
    assert _live(ctx, analyst) == {}

    assert [p["id"] for p in sharing.pending_for(ctx.settings, gaj, now=FRIDAY)] == [r["id"]]
    assert sharing.pending_for(ctx.settings, other, now=FRIDAY) == []
    assert sharing.pending_for(ctx.settings, analyst, now=FRIDAY) == []
    with pytest.raises(AccessDenied):
        sharing.decide(ctx.settings, ctx.registry, other, r["id"], True, "同意")
    with pytest.raises(AccessDenied):
        sharing.decide(ctx.settings, ctx.registry, analyst, r["id"], True, "同意")
    assert _live(ctx, analyst) == {}

    done = sharing.decide(ctx.settings, ctx.registry, gaj, r["id"], True, "符合履职需要")
    assert done["status"] == ShareStatus.APPROVED and done["decided_by"] == "gaj.steward"
    g = _live(ctx, analyst)[done["grant_id"]]
    assert g.columns == tuple(fields) and g.row_scope == "440106"
    assert g.max_grade == max(contract.field(f).grade for f in fields) > 1
    with pytest.raises(RequestInvalid):
        sharing.decide(ctx.settings, ctx.registry, gaj, r["id"], False, "再驳回")
    assert _actions(ctx) == [("share.request", "ok"), ("share.approve", "denied"), ("share.approve", "denied"),
                             ("share.approve", "ok")]


def test_reject_needs_a_reason(ctx: Context, owner: Principal) -> None:
    analyst = _user(ctx, owner, "tianhe.analyst", "440106")
    gaj = _user(ctx, owner, "gaj.steward", "gaj", "steward")
    r = _file(ctx, analyst, "hukou_population", ["district_code"])
    with pytest.raises(RequestInvalid, match="理由"):
        sharing.decide(ctx.settings, ctx.registry, gaj, r["id"], False, "  ")
    assert sharing.mine(ctx.settings, analyst)[0]["status"] == ShareStatus.PENDING
    done = sharing.decide(ctx.settings, ctx.registry, gaj, r["id"], False, "申请用途与所列字段不符")
    assert done["status"] == ShareStatus.REJECTED and done["grant_id"] is None
    assert done["decision_reason"] == "申请用途与所列字段不符"
    assert _live(ctx, analyst) == {}
    assert sharing.pending_for(ctx.settings, gaj) == []


def test_withdraw_by_the_requester_only(ctx: Context, owner: Principal) -> None:
    analyst = _user(ctx, owner, "tianhe.analyst", "440106")
    other = _user(ctx, owner, "yuexiu.analyst", "440104")
    r = _file(ctx, analyst, "hukou_population", ["district_code"])
    with pytest.raises(AccessDenied):
        sharing.withdraw(ctx.settings, other, r["id"])
    assert sharing.withdraw(ctx.settings, analyst, r["id"])["status"] == ShareStatus.WITHDRAWN
    with pytest.raises(RequestInvalid):
        sharing.withdraw(ctx.settings, analyst, r["id"])
    again = _file(ctx, analyst, "hukou_population", ["district_code"])  # a withdrawn request does not block
    with pytest.raises(RequestInvalid, match="待审核"):
        _file(ctx, analyst, "hukou_population", ["name"])  # ... but a pending one does
    assert again["status"] == ShareStatus.PENDING


def test_overdue_requests_are_flagged(ctx: Context, owner: Principal) -> None:
    analyst = _user(ctx, owner, "tianhe.analyst", "440106")
    gaj = _user(ctx, owner, "gaj.steward", "gaj", "steward")
    r = _file(ctx, analyst, "hukou_population", ["district_code"], now=FRIDAY)
    on_time = r["due_at"] - timedelta(hours=1)
    late = r["due_at"] + timedelta(minutes=1)
    assert sharing.pending_for(ctx.settings, gaj, now=on_time)[0]["flag"] is None
    flagged = sharing.pending_for(ctx.settings, gaj, now=late)[0]
    assert flagged["overdue"] and flagged["flag"] == sharing.OVERDUE == "已超期"
    assert flagged["status"] == ShareStatus.PENDING  # a flag, not a state: it can still be decided

    swept = sharing.expire_and_flag(ctx.settings, now=late)
    assert [x["id"] for x in swept["overdue"]] == [r["id"]] and swept["expired"] == []
    assert ("share.overdue", "flagged") in _actions(ctx)
    assert sharing.decide(ctx.settings, ctx.registry, gaj, r["id"], True, None, now=late)["status"] == ShareStatus.APPROVED
    assert "late=" in audit.rows(ctx.settings, action="share.approve")[0]["detail"]


# -- 不予共享 -------------------------------------------------------------------------------------------------

BASIS = "依据《中华人民共和国档案法》第二十七条，该类档案数据不予共享"


@pytest.fixture()
def closed_ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    """A copy of the project in which air_quality_daily is 不予共享 with a stated basis."""
    project = tmp_path / "project"
    for folder in ("schemas", "catalog", "expectations"):
        shutil.copytree(PROJECT / folder, project / folder)
    path = project / "schemas" / "datasets" / "air_quality_daily.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["catalog"].update(share="不予共享", share_basis=BASIS)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    monkeypatch.setenv("GOVLAKE_PROJECT", str(project))
    monkeypatch.setenv("GOVLAKE_PSEUDONYM_KEY", "test-key-not-secret")
    return Context.from_env(str(tmp_path / "lake"))


def test_not_shareable_is_refused_citing_the_basis(closed_ctx: Context) -> None:
    ctx = closed_ctx
    owner = Principal.lake_owner(ctx.registry.city.code)
    assert ctx.registry.contracts["air_quality_daily"].catalog.share_basis == BASIS
    analyst = _user(ctx, owner, "tianhe.analyst", "440106")
    with pytest.raises(AccessDenied) as e:
        _file(ctx, analyst, "air_quality_daily", ["aqi"])
    assert BASIS in e.value.message and "不予共享" in e.value.message
    assert sharing.mine(ctx.settings, analyst) == [] and _live(ctx, analyst) == {}
    assert _actions(ctx) == [("share.request", "denied")]  # the refused attempt is recorded


def test_contract_schema_requires_a_basis_for_not_shareable(closed_ctx: Context) -> None:
    from govlake.contracts import load_contract

    path = closed_ctx.settings.schemas_dir / "datasets" / "air_quality_daily.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    del doc["catalog"]["share_basis"]
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_contract(path, closed_ctx.settings.schemas_dir)
    assert "share_basis" in e.value.message and "catalog" in e.value.where


def test_sharing_rules_are_validated(closed_ctx: Context) -> None:
    path = closed_ctx.settings.catalog_dir / "sharing.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["rules"]["有条件共享"]["reply_days"] = "五"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        sharing.load_rules(closed_ctx.settings)
    assert "共享申请规则" in e.value.message and "rules.有条件共享.reply_days" in e.value.where


# -- revocation and expiry -----------------------------------------------------------------------------------

def test_revoked_grant_is_no_longer_live(ctx: Context, owner: Principal) -> None:
    analyst = _user(ctx, owner, "tianhe.analyst", "440106")
    sthjj = _user(ctx, owner, "sthjj.steward", "sthjj", "steward")
    other = _user(ctx, owner, "gaj.steward", "gaj", "steward")
    r = _file(ctx, analyst, "air_quality_daily", ["aqi"])
    gid = r["grant_id"]
    assert gid in _live(ctx, analyst)
    with pytest.raises(AccessDenied):
        sharing.revoke(ctx.settings, ctx.registry, other, gid, "不是提供方")
    with pytest.raises(RequestInvalid, match="理由"):
        sharing.revoke(ctx.settings, ctx.registry, sthjj, gid, "")
    assert gid in _live(ctx, analyst)

    g = sharing.revoke(ctx.settings, ctx.registry, sthjj, gid, "数据用途已完成")
    assert g["state"] == GrantState.REVOKED and g["revoked_by"] == "sthjj.steward"
    assert gid not in _live(ctx, analyst)
    assert sharing.mine(ctx.settings, analyst)[0]["status"] == ShareStatus.REVOKED
    with pytest.raises(RequestInvalid):
        sharing.revoke(ctx.settings, ctx.registry, analyst, gid, "再撤销")

    own = _file(ctx, analyst, "air_quality_daily", ["pm25"])  # the grantee may give up their own grant
    sharing.revoke(ctx.settings, ctx.registry, analyst, own["grant_id"], "不再需要")
    assert _live(ctx, analyst) == {}


def test_expired_grant_is_not_live_and_the_sweep_records_it_once(ctx: Context, owner: Principal) -> None:
    analyst = _user(ctx, owner, "tianhe.analyst", "440106")
    long_ago = datetime.now(timezone.utc) - timedelta(days=100)
    old = _file(ctx, analyst, "air_quality_daily", ["aqi"], days=30, now=long_ago)
    fresh = _file(ctx, analyst, "schools", None, days=30)
    assert set(_live(ctx, analyst)) == {fresh["grant_id"]}
    mine = {m["id"]: m for m in sharing.mine(ctx.settings, analyst)}
    assert mine[old["id"]]["status"] == ShareStatus.EXPIRED and mine[old["id"]]["grant_state"] == GrantState.EXPIRED
    assert mine[fresh["id"]]["grant_state"] == GrantState.LIVE

    first = sharing.expire_and_flag(ctx.settings, by=owner)
    assert [x["id"] for x in first["expired"]] == [old["id"]]
    assert sharing.expire_and_flag(ctx.settings, by=owner)["expired"] == []  # idempotent
    expiries = audit.rows(ctx.settings, action="share.expire")
    assert len(expiries) == 1 and expiries[0]["grant_ids"] == [old["grant_id"]]


# -- the audit trail ------------------------------------------------------------------------------------------

def test_every_step_is_audited_without_free_text(ctx: Context, owner: Principal) -> None:
    analyst = _user(ctx, owner, "tianhe.analyst", "440106")
    gaj = _user(ctx, owner, "gaj.steward", "gaj", "steward")
    a = _file(ctx, analyst, "hukou_population", ["district_code"])
    sharing.decide(ctx.settings, ctx.registry, gaj, a["id"], True, "同意共享户籍区划")
    sharing.revoke(ctx.settings, ctx.registry, gaj, sharing.mine(ctx.settings, analyst)[0]["grant_id"], "核查结束")
    b = _file(ctx, analyst, "hukou_population", ["name"])
    sharing.decide(ctx.settings, ctx.registry, gaj, b["id"], False, "姓名字段超出履职需要")
    c = _file(ctx, analyst, "migrant_population", ["hukou_district_code"])
    sharing.withdraw(ctx.settings, analyst, c["id"])

    rows = list(reversed(audit.rows(ctx.settings, action="share", limit=100)))
    assert [r["action"] for r in rows] == ["share.request", "share.approve", "share.revoke", "share.request",
                                           "share.reject", "share.request", "share.withdraw"]
    assert all(r["tables"] for r in rows) and rows[1]["grant_ids"] and rows[2]["grant_ids"]
    assert {r["user_name"] for r in rows} == {"tianhe.analyst", "gaj.steward"}
    free_text = [*TEXT.values(), "同意共享户籍区划", "核查结束", "姓名字段超出履职需要"]
    assert not [t for r in rows for t in free_text if t in (r["detail"] or "")]
    assert audit.verify(ctx.settings).ok


# -- the CLI (the lake owner) --------------------------------------------------------------------------------

def test_cli_lists_approves_and_revokes(ctx: Context, owner: Principal, govlake) -> None:
    analyst = _user(ctx, owner, "tianhe.analyst", "440106")
    old = _file(ctx, analyst, "hukou_population", ["district_code"], now=datetime.now(timezone.utc) - timedelta(days=30))
    fresh = _file(ctx, analyst, "migrant_population", ["hukou_district_code"])

    listed = govlake("share", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["id"]: r for r in json.loads(listed.stdout)}
    assert rows[old["id"]]["flag"] == "已超期" and rows[fresh["id"]]["flag"] is None
    assert rows[old["id"]]["status"] == "待审核"
    only_gaj = json.loads(govlake("share", "list", "--node", "gaj", "--format", "json").stdout)
    assert [r["id"] for r in only_gaj] == [old["id"]]
    bad = govlake("share", "list", "--status", "待审")
    assert bad.returncode == 2 and "待审核" in bad.stderr + bad.stdout

    done = govlake("share", "approve", str(old["id"]), "--reason", "同意")
    assert done.returncode == 0, done.stderr
    assert "已批准" in done.stdout
    again = govlake("share", "reject", str(old["id"]), "--reason", "重复处理")
    assert again.returncode == 2 and "Traceback" not in again.stderr
    gid = sharing.mine(ctx.settings, analyst)[-1]["grant_id"]
    assert gid in _live(ctx, analyst)

    grants = json.loads(govlake("share", "grants", "--user", "tianhe.analyst", "--format", "json").stdout)
    assert [(g["id"], g["state"]) for g in grants] == [(gid, "生效中")]
    assert govlake("share", "revoke", str(gid), "--reason", "测试撤销").returncode == 0
    assert gid not in _live(ctx, analyst)
    swept = govlake("share", "sweep")
    assert swept.returncode == 0 and "已超期未答复的申请：0 个" in swept.stdout  # the fresh one is not yet due
    owner_rows = [r for r in audit.rows(ctx.settings, action="share") if r["auth"] == "local-owner"]
    assert {r["action"] for r in owner_rows} == {"share.approve", "share.revoke"}
    assert audit.verify(ctx.settings).ok
