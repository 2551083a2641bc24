"""Dashboard login (issue 13, point 4) through Starlette's TestClient against the real app, the real control
database of a lake built by the real pipeline, and users created by ``identities.add_user``: every page and
API needs a session or token, the cookie's flags, CSRF on every POST, logout and expiry end a session, a
district user sees only their district, Bearer tokens on /api, and the 共享申请 / 数据异议 pages."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from markupsafe import escape

from govlake.access import websession
from govlake.access.dashboard import create_app
from govlake.control.db import control_engine
from govlake.control.schema import share_requests, web_sessions
from tests.access.dashboard.conftest import PASSWORD, csrf_of, login

PAGES = ["/", "/catalog", "/catalog/hukou_population", "/duties", "/indicators", "/quality", "/lineage",
         "/sharing/mine", "/sharing/todo", "/objections"]


@pytest.fixture
def app(demo_lake, accounts):
    return create_app(demo_lake)


def client_for(app, base_url: str = "http://127.0.0.1:8765"):
    from starlette.testclient import TestClient

    return TestClient(app, base_url=base_url)


def session_row(ctx, cookie_value: str) -> dict:
    with control_engine(ctx.settings).connect() as con:
        return dict(con.execute(sa.select(web_sessions).where(
            web_sessions.c.id_hash == websession.digest(cookie_value))).mappings().one())


def set_session(ctx, cookie_value: str, **values) -> None:
    with control_engine(ctx.settings).begin() as con:
        con.execute(web_sessions.update().where(web_sessions.c.id_hash == websession.digest(cookie_value))
                    .values(**values))


def test_every_page_redirects_to_login_and_the_api_answers_401(app) -> None:
    with client_for(app) as c:
        for url in PAGES + ["/lineage?table=gold.population"]:
            resp = c.get(url, follow_redirects=False)
            assert resp.status_code == 303 and resp.headers["location"] == "/login", url
        for url in ["/api/me", "/api/indicators", "/api/quality"]:
            resp = c.get(url)
            assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer", url
            assert "令牌" in resp.json()["error"]
        for url in ["/logout", "/sharing/request", "/objections"]:
            assert c.post(url, follow_redirects=False).headers["location"] == "/login", url
        # Static files stay public (the login page needs its stylesheet).
        assert c.get("/static/dashboard.css").status_code == 200
        login_page = c.get("/login")
        assert login_page.status_code == 200
        assert all(w in login_page.text for w in ("用户名", "密码", "登录")) and 'type="password"' in login_page.text


def test_wrong_password_and_unknown_user_get_one_generic_message(app, demo_lake) -> None:
    from govlake.control.identities import GENERIC_FAILURE

    with client_for(app) as c:
        bodies = []
        for name, password in [("gaj.analyst", "Wrong-password-1"), ("nobody.here", PASSWORD), ("gaj.analyst", "")]:
            resp = login(c, name, password)
            assert resp.status_code == 401 and websession.COOKIE not in resp.cookies
            assert GENERIC_FAILURE in resp.text
            bodies.append(re.search(r'id="login-error">([^<]*)<', resp.text).group(1))
        assert len(set(bodies)) == 1
        assert c.get("/", follow_redirects=False).status_code == 303  # still not logged in
    ok = login(client_for(app), "gaj.analyst")  # the failures above did not lock the account (5 are needed)
    assert ok.status_code == 303


@pytest.mark.parametrize("secure", [False, True])
def test_login_sets_a_strict_httponly_session_cookie(demo_lake, accounts, secure: bool) -> None:
    base = "https://127.0.0.1" if secure else "http://127.0.0.1:8765"
    with client_for(create_app(demo_lake, secure_cookies=secure), base) as c:
        resp = login(c)
        assert resp.status_code == 303 and resp.headers["location"] == "/"
        header = next(h for h in resp.headers.get_list("set-cookie") if h.startswith(websession.COOKIE + "="))
        attrs = {a.strip().split("=")[0].lower(): a.strip() for a in header.split(";")[1:]}
        assert "httponly" in attrs and attrs["samesite"].lower() == "samesite=strict" and attrs["path"] == "Path=/"
        assert ("secure" in attrs) is secure
        value = resp.cookies[websession.COOKIE]
        assert len(value) >= 43  # token_urlsafe(32): 256 random bits
        row = session_row(demo_lake, value)
        assert row["id_hash"] != value and row["revoked_at"] is None  # only the digest is stored
        page = c.get("/")
        assert page.status_code == 200 and "cdo" in page.text and "系统管理员" in page.text
        assert 'action="/logout"' in page.text  # logout is a form (POST with CSRF), not a link


def test_login_always_issues_a_new_session_id(app, demo_lake) -> None:
    """Session fixation: a cookie planted before login is never adopted, and a second login replaces (and
    revokes) the first session."""
    with client_for(app) as c:
        c.cookies.set(websession.COOKIE, "planted-by-an-attacker")
        first = login(c).cookies[websession.COOKIE]
        assert first != "planted-by-an-attacker"
        assert c.get("/login", follow_redirects=False).headers["location"] == "/"  # logged in already
        # A second login posted while the first session is live (another tab's form): a new id, the old revoked.
        from govlake.access.dashboard import LOGIN_CSRF_COOKIE

        c.cookies.set(LOGIN_CSRF_COOKIE, "tab-token")
        resp = c.post("/login", data={"username": "cdo", "password": PASSWORD, "csrf_token": "tab-token"},
                      follow_redirects=False)
        second = resp.cookies[websession.COOKIE]
        assert second != first
        assert session_row(demo_lake, first)["revoked_at"] is not None


def test_a_post_without_or_with_a_wrong_csrf_token_is_refused(app, demo_lake) -> None:
    with client_for(app) as c:
        login(c, "gaj.analyst")
        token = csrf_of(c)
        form = {"dataset": "air_quality_daily", "purpose": "p", "scenario": "s", "legal_basis": "b",
                "period_days": "30"}
        before = count_requests(demo_lake)
        for data in [form, {**form, "csrf_token": "forged"}, {**form, "csrf_token": token[:-1]}]:
            resp = c.post("/sharing/request", data=data, follow_redirects=False)
            assert resp.status_code == 403 and "CSRF" in resp.text and "拒绝" in resp.text
        # The right token from another site's page (its Origin) is refused as well.
        resp = c.post("/logout", data={"csrf_token": token}, headers={"origin": "http://evil.example"},
                      follow_redirects=False)
        assert resp.status_code == 403 and "跨站" in resp.text
        resp = c.post("/logout", data={"csrf_token": token}, headers={"origin": "null"}, follow_redirects=False)
        assert resp.status_code == 403
        assert count_requests(demo_lake) == before  # nothing was filed
        assert c.get("/", follow_redirects=False).status_code == 200  # and the session is untouched
        # GET /logout changes nothing.
        assert c.get("/logout", follow_redirects=False).status_code == 405
        assert c.get("/", follow_redirects=False).status_code == 200
        # The login form has its own token (a double-submit cookie): a forged login post is refused.
        assert c.post("/login", data={"username": "cdo", "password": PASSWORD}).status_code == 403


def count_requests(ctx) -> int:
    with control_engine(ctx.settings).connect() as con:
        return con.execute(sa.select(sa.func.count()).select_from(share_requests)).scalar_one()


def test_logout_revokes_the_session(app, demo_lake) -> None:
    with client_for(app) as c:
        value = login(c).cookies[websession.COOKIE]
        resp = c.post("/logout", data={"csrf_token": csrf_of(c)}, follow_redirects=False)
        assert resp.status_code == 303 and resp.headers["location"] == "/login"
        assert session_row(demo_lake, value)["revoked_at"] is not None
    with client_for(app) as replay:  # the old cookie, kept by someone, no longer works
        replay.cookies.set(websession.COOKIE, value)
        assert replay.get("/", follow_redirects=False).headers["location"] == "/login"
        assert replay.get("/api/me").status_code == 401


@pytest.mark.parametrize("column, age", [("expires_at", timedelta(seconds=1)), ("last_seen_at", websession.IDLE)])
def test_expired_or_idle_session_is_refused(app, demo_lake, column: str, age: timedelta) -> None:
    now = datetime.now(timezone.utc)
    with client_for(app) as c:
        value = login(c).cookies[websession.COOKIE]
        assert c.get("/quality", follow_redirects=False).status_code == 200
        set_session(demo_lake, value, **{column: now - age})
        resp = c.get("/quality", follow_redirects=False)
        assert resp.status_code == 303 and resp.headers["location"] == "/login"


def test_session_lifetimes() -> None:
    assert websession.ABSOLUTE == timedelta(hours=8) and websession.IDLE == timedelta(minutes=30)


def test_a_disabled_user_loses_their_session_at_once(demo_lake, accounts) -> None:
    from govlake.control.identities import add_user, disable_user
    from govlake.control.principal import Principal

    owner = Principal.lake_owner(demo_lake.registry.city.code)
    add_user(demo_lake.settings, demo_lake.registry, "leaver", "jyj", "analyst", PASSWORD, by=owner)
    with client_for(create_app(demo_lake)) as c:
        login(c, "leaver")
        assert c.get("/quality", follow_redirects=False).status_code == 200
        disable_user(demo_lake.settings, "leaver", by=owner)
        assert c.get("/quality", follow_redirects=False).status_code == 303


def districts_shown(body: str) -> set[str]:
    return set(re.findall(r'class="district-value" data-district="([^"]*)"', body))


def test_a_district_user_sees_only_their_district(app) -> None:
    with client_for(app) as admin, client_for(app) as tianhe:
        login(admin, "cdo")
        login(tianhe, "tianhe")
        assert len(districts_shown(admin.get("/indicators").text)) == 11
        for url in ["/", "/indicators"]:
            body = tianhe.get(url).text
            assert districts_shown(body) == {"440106"}, url
            assert "天河区" in body
        values = tianhe.get("/api/indicators").json()["values"]
        assert values and {v["district_code"] for v in values} == {"440106"}
        assert len({v["district_code"] for v in admin.get("/api/indicators").json()["values"]}) > 2
        header = tianhe.get("/").text.split("</header>")[0]
        assert "tianhe" in header and "天河区政务数据节点" in header and "分析人员" in header


def test_a_bearer_token_works_on_the_api_only(app, demo_lake) -> None:
    from govlake.control.identities import issue_token
    from govlake.control.principal import Principal

    token = issue_token(demo_lake.settings, "tianhe", by=Principal.lake_owner(demo_lake.registry.city.code))
    with client_for(app) as c:
        auth = {"authorization": f"Bearer {token}"}
        me = c.get("/api/me", headers=auth)
        assert me.status_code == 200 and me.json()["name"] == "tianhe" and me.json()["district"] == "440106"
        assert {v["district_code"] for v in c.get("/api/indicators", headers=auth).json()["values"]} == {"440106"}
        assert c.get("/api/me", headers={"authorization": f"Bearer {token}x"}).status_code == 401
        assert c.get("/api/me", headers={"authorization": "Bearer glk_999999_nothing"}).status_code == 401
        assert c.get("/api/me", headers={"authorization": f"Basic {token}"}).status_code == 401
        # Not a substitute for a session on pages or forms.
        assert c.get("/", headers=auth, follow_redirects=False).status_code == 303
        assert c.post("/logout", headers=auth, follow_redirects=False).status_code == 303


def test_share_request_approval_and_overdue_flag_through_the_pages(app, demo_lake) -> None:
    hostile = "<script>alert(1)</script>"
    with client_for(app) as analyst, client_for(app) as steward:
        login(analyst, "mz.analyst")
        form = {"csrf_token": csrf_of(analyst, "/sharing/mine"), "dataset": "hukou_population", "layer": "silver",
                "fields": "gender,birth_date", "purpose": f"养老服务对象核查{hostile}", "scenario": "居家养老补贴发放",
                "legal_basis": "《广州市养老服务条例》", "period_days": "90"}
        resp = analyst.post("/sharing/request", data=form, follow_redirects=False)
        assert resp.status_code == 303, resp.text
        rid = int(resp.headers["location"].rsplit("=", 1)[1])
        mine = analyst.get(resp.headers["location"]).text
        row = re.search(rf'<tr class="request[^"]*" data-id="{rid}" data-status="([^"]+)"', mine)
        assert row and row.group(1) == "待审核" and "已超期" not in mine.split(f'data-id="{rid}"')[1].split("</tr>")[0]
        # An empty purpose is the workflow's error, shown on the page with the form kept.
        bad = analyst.post("/sharing/request", data={**form, "purpose": ""})
        assert bad.status_code == 400 and 'id="form-error"' in bad.text and "居家养老补贴发放" in bad.text
        # The analyst has no 待办; the owner node's steward does.
        assert analyst.get("/sharing/todo").status_code == 403
        login(steward, "gaj.steward")
        todo = steward.get("/sharing/todo").text
        assert f'data-id="{rid}"' in todo and hostile not in todo and str(escape(hostile)) in todo
        token = csrf_of(steward, "/sharing/todo")
        no_reason = steward.post(f"/sharing/{rid}/decide", data={"csrf_token": token, "decision": "approve",
                                                                 "reason": ""})
        assert no_reason.status_code == 400 and "理由" in no_reason.text
        # Past its reply deadline the request is flagged 已超期 on both pages.
        with control_engine(demo_lake.settings).begin() as con:
            con.execute(share_requests.update().where(share_requests.c.id == rid)
                        .values(due_at=datetime.now(timezone.utc) - timedelta(days=1)))
        assert "已超期" in steward.get("/sharing/todo").text.split(f'data-id="{rid}"')[1].split("</tr>")[0]
        assert "已超期" in analyst.get("/sharing/mine").text.split(f'data-id="{rid}"')[1].split("</tr>")[0]
        ok = steward.post(f"/sharing/{rid}/decide", data={"csrf_token": token, "decision": "approve",
                                                          "reason": "用途明确，依据充分"}, follow_redirects=False)
        assert ok.status_code == 303
        assert f'data-id="{rid}" data-status="已批准"' in analyst.get("/sharing/mine").text


def test_unconditional_share_is_granted_at_once(app) -> None:
    with client_for(app) as c:
        login(c, "gaj.analyst")
        resp = c.post("/sharing/request", follow_redirects=False, data={
            "csrf_token": csrf_of(c, "/sharing/mine"), "dataset": "air_quality_daily", "layer": "silver", "fields": "",
            "purpose": "治安与空气质量关联分析", "scenario": "专题研判", "legal_basis": "职责所需", "period_days": "30"})
        assert resp.status_code == 303
        rid = resp.headers["location"].rsplit("=", 1)[1]
        assert f'data-id="{rid}" data-status="已批准"' in c.get("/sharing/mine").text


def test_objection_pages(app, demo_lake) -> None:
    """Filing needs a real record: the form posts it with CSRF; the source node's steward then sees it routed
    to them and advances it; an analyst sees no handling forms."""
    from govlake.control.objections import key_columns

    table = "silver.market_entities"
    key = key_columns(demo_lake.settings, demo_lake.registry, table)
    ref = demo_lake.lake.read("silver", "market_entities").column(key[0])[0].as_py()
    with client_for(app) as admin:
        login(admin, "cdo")
        page = admin.get("/objections")
        assert page.status_code == 200 and "提出数据异议" in page.text
        resp = admin.post("/objections", follow_redirects=False, data={
            "csrf_token": csrf_of(admin, "/objections"), "table": table, "record_ref": ref, "field": "entity_type",
            "reason": "主体类型与营业执照不符"})
        assert resp.status_code == 303, resp.text
        oid = resp.headers["location"].rsplit("=", 1)[1]
        body = admin.get("/objections").text
        mine = body.split('id="my-objections"')[1].split('id="routed-objections"')[0]
        assert f'data-id="{oid}" data-status="已提交"' in mine
        routed = body.split('id="routed-objections"')[1]
        assert f'action="/objections/{oid}/advance"' in routed
        resp = admin.post(f"/objections/{oid}/advance", follow_redirects=False, data={
            "csrf_token": csrf_of(admin, "/objections"), "status": "已受理", "note": "已转来源部门核实"})
        assert resp.status_code == 303
        assert f'data-id="{oid}" data-status="已受理"' in admin.get("/objections").text
    with client_for(app) as analyst:
        login(analyst, "tianhe")
        body = analyst.get("/objections").text
        assert "routed-objections" not in body and "/advance" not in body


def test_page_views_and_logout_are_audited_with_the_user(app, demo_lake) -> None:
    from govlake.control import audit

    with client_for(app) as c:
        login(c, "tianhe")
        assert c.get("/indicators").status_code == 200
        c.post("/logout", data={"csrf_token": csrf_of(c)})
    rows = audit.rows(demo_lake.settings, user="tianhe", limit=20)
    view = next(r for r in rows if r["action"] == "web.view" and r["detail"] == "GET /indicators")
    assert view["auth"] == "session" and view["node"] == "440106" and "gold.indicator_values" in view["tables"]
    assert any(r["action"] == "web.logout" for r in rows)
    assert audit.verify(demo_lake.settings).ok
