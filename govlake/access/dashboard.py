"""The CDO dashboard: ``govlake serve``, a small web app in Chinese, behind a login.

Pages: 总览 (the 1+11+N nodes with health, indicator cards, quality ranking), 数据资源目录 (search and
filters, a resource's metadata, items and lineage), 职能数据清单 (coverage, 缺位, 越位, 一数一源), 指标
(cards against target with trend charts), 数据质量 (ranking by node and district), 血缘 (per table), and the
city service's workflows: 我的申请 and 待办 (共享申请, ``govlake.control.sharing``) and 数据异议
(``govlake.control.objections``).

Server-rendered with Jinja2 (pages work without scripts; ECharts, vendored from npm, draws the charts). It
reads gold tables and caches each per Delta version; every request then applies the caller's
``govlake.control.policy`` access to the cached table (rows of other districts filtered out, columns
projected and masked), so a district user's pages show their district only and enforcement stays in one
place.

Who may call: every page and API route needs a session (login form, ``websession``) or, for ``GET /api/*``,
an API token (``Authorization: Bearer glk_...``). Only ``/static`` and ``/login`` are public. Every POST
carries the session's CSRF token as the hidden field ``csrf_token`` (checked in constant time) and, when the
browser sends one, an Origin/Referer naming this site; the session cookie is HttpOnly, SameSite=Strict and
Secure when TLS terminates in front (``secure_cookies``).

Hardening kept from the pre-login dashboard: every template is auto-escaped, every response carries a strict
Content-Security-Policy (scripts and styles only from ``/static``; chart data travels as JSON, not inline
script) and anti-framing / no-sniff / referrer headers, requests must name a loopback host or a configured
``allowed_hosts`` name (no DNS rebinding), there is no OpenAPI schema or docs UI, and the lake location is
not shown. ``serve`` binds a non-loopback address only when TLS is in front (``secure_cookies=True``).
"""


import ipaddress
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from govlake.context import Context
from govlake.errors import AccessDenied, ConfigError, GovlakeError
from govlake.tables import (
    CATALOG_ITEMS, CATALOG_NODES, CATALOG_RESOURCES, DUTY_DATA_LIST, DUTY_FINDINGS, INDICATOR_PROGRESS, INDICATOR_VALUES,
    QUALITY_SCORES, LakeTable,
)

STATIC = Path(__file__).parent.parent / "static"
TEMPLATES = Path(__file__).parent.parent / "templates" / "dashboard"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

CSRF_FIELD = "csrf_token"
LOGIN_CSRF_COOKIE = "govlake_login_csrf"  # double-submit token of the login form (no session exists yet)

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    # same-origin, not no-referrer: under no-referrer a browser sends "Origin: null" even on our own form
    # posts, and the Origin check of every POST would have nothing to compare. Other sites still get nothing.
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost``: the addresses the dashboard listens on by default."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


def check_loopback(host: str, *, secure_cookies: bool = False) -> None:
    """Refuse a non-loopback bind unless TLS terminates in front (``secure_cookies``): the login's cookie and
    password would otherwise cross the network in clear text."""
    if not is_loopback(host) and not secure_cookies:
        raise ConfigError(f"拒绝在地址 {host} 上启动驾驶舱：未声明前置 TLS（HTTPS）时，登录密码和会话 Cookie "
                          "会以明文经过网络，只能在本机回环地址（127.0.0.1、::1 或 localhost）上提供服务",
                          where="govlake serve --host",
                          hint="去掉 --host（默认 127.0.0.1）并用 SSH 端口转发（ssh -L 8765:127.0.0.1:8765 本服务器）；"
                               "或在前面部署 TLS 反向代理并以安全 Cookie 模式启动（见 docs/security.md）")


def _host_header(headers: list[tuple[bytes, bytes]]) -> str:
    return next((v for k, v in headers if k == b"host"), b"").decode("latin-1")


def _host_of(raw: str) -> str:
    """The host name of a Host header, without the port (``[::1]:8765`` -> ``[::1]``)."""
    if raw.startswith("["):
        return raw[: raw.find("]") + 1] if "]" in raw else raw
    return raw.rsplit(":", 1)[0] if raw.count(":") == 1 else raw


class SecurityHeaders:
    """ASGI middleware: security headers on every HTTP response (pages, static files, 404s), and requests
    whose Host is neither a loopback name nor one of ``allowed_hosts`` refused (a web page that rebinds its
    DNS name to 127.0.0.1 must not read the dashboard)."""

    def __init__(self, app: Any, allowed_hosts: Iterable[str] = ()) -> None:
        self.app = app
        self.headers = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
        self.allowed = frozenset(h.lower() for h in allowed_hosts)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        host = _host_of(_host_header(scope.get("headers", [])))
        if not (is_loopback(host) or host.lower() in self.allowed):
            from starlette.responses import PlainTextResponse

            await PlainTextResponse("拒绝访问：Host 须为本机地址（127.0.0.1、::1 或 localhost）或已配置的服务域名",
                                    status_code=400)(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


# -- data: gold tables cached per Delta version, scoped per request -----------------------------------------

class _Rollups:
    """Derived views over ``rows`` (shared by the raw and the scoped data)."""

    def rows(self, table: LakeTable) -> list[dict]:  # pragma: no cover - abstract
        raise NotImplementedError

    def latest_scores(self, scope: str) -> list[dict]:
        latest: dict[tuple, dict] = {}
        trend: dict[tuple, list] = {}
        for r in sorted(self.rows(QUALITY_SCORES), key=lambda r: r["run_id"]):
            if r["scope"] != scope:
                continue
            key = (r["dataset"], r["node"], r["district"])
            latest[key] = r
            trend.setdefault(key, []).append(r["score"])
        return sorted((dict(v, trend=trend[k]) for k, v in latest.items()), key=lambda r: -(r["score"] or 0))

    def indicator_series(self) -> dict[str, list[tuple[str, float]]]:
        out: dict[str, list] = {}
        for v in sorted(self.rows(INDICATOR_VALUES), key=lambda v: v["period"]):
            if v["district_code"] is None and v["value"] is not None:
                out.setdefault(v["indicator_id"], []).append((v["period"], v["value"]))
        return out


class DashboardData(_Rollups):
    """Gold tables as Arrow, re-read only when their Delta version changes; rows per access, memoised."""

    ROW_CACHE = 64  # (table, version, access) entries: a handful of roles and districts per table

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._tables: dict[str, tuple[int, Any]] = {}
        self._rows: OrderedDict[tuple, list[dict]] = OrderedDict()

    def table(self, table: LakeTable) -> tuple[int, Any] | None:
        """(version, pyarrow.Table) of a gold table, or None when it does not exist yet."""
        dt = self.ctx.lake.table(*table.ref)
        if dt is None:
            return None
        version = dt.version()
        hit = self._tables.get(table.qualified)
        if hit is None or hit[0] != version:
            hit = (version, self.ctx.lake.dataset(dt).to_table())
            self._tables[table.qualified] = hit
        return hit

    def rows(self, table: LakeTable, access: Any = None) -> list[dict]:
        """The rows of ``table``; with ``access`` (a policy ``TableAccess``) only what it lets through."""
        hit = self.table(table)
        if hit is None:
            return []
        version, arrow = hit
        try:
            key = (table.qualified, version, access)
            hash(key)
        except TypeError:  # an unhashable access cannot be memoised: apply it every time
            return (access.apply(arrow) if access is not None else arrow).to_pylist()
        out = self._rows.get(key)
        if out is None:
            out = (access.apply(arrow) if access is not None else arrow).to_pylist()
            self._rows[key] = out
            while len(self._rows) > self.ROW_CACHE:
                self._rows.popitem(last=False)
        else:
            self._rows.move_to_end(key)
        return out

    def for_principal(self, principal: Any) -> "ScopedData":
        return ScopedData(self, principal)


class ScopedData(_Rollups):
    """What one principal may see of the gold tables: each table through the ``TableAccess`` the policy
    gives it (``govlake.control.policy.table_access``, the per-table step of ``policy.resolve``, computed
    over the cached table's own columns, so a page does not list and open every table of the lake). A table
    the policy refuses is empty here (fail closed)."""

    def __init__(self, data: DashboardData, principal: Any) -> None:
        self.data, self.principal = data, principal
        self._access: dict[str, Any] = {}
        self.read: set[str] = set()  # tables this request read (for the audit row)

    def access(self, table: LakeTable, column_names: list[str]) -> Any:
        if table.qualified not in self._access:
            from govlake.control.policy import table_access

            self._access[table.qualified] = table_access(self.principal, table.layer, table.name, column_names,
                                                         self.data.ctx.registry)
        return self._access[table.qualified]

    def rows(self, table: LakeTable) -> list[dict]:
        hit = self.data.table(table)
        if hit is None:
            return []
        acc = self.access(table, hit[1].column_names)
        if acc is None:
            return []
        self.read.add(table.qualified)
        return self.data.rows(table, acc)


def fmt_num(v: Any) -> str:
    """Numbers as a CDO reads them: thousands separators, at most two decimals, small values significant."""
    if v is None:
        return "—"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if v != 0 and abs(v) < 1:
        return f"{v:.3g}"
    return f"{v:,.2f}".rstrip("0").rstrip(".")


def fmt_time(v: Any) -> str:
    """A timestamp as local-looking text (UTC, to the minute)."""
    if isinstance(v, datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=timezone.utc)
        return v.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")
    return "—" if v is None else str(v)


def template_env():
    """The dashboard's Jinja environment, escaping every template.

    Starlette's default (``select_autoescape()``) escapes only names ending in .html/.htm/.xml, and ours end
    in ``.html.j2``: it escaped nothing, so ``/catalog?q=<script>`` ran the script."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True)
    env.filters["num"] = fmt_num
    env.filters["time"] = fmt_time
    return env


# -- who is calling -------------------------------------------------------------------------------------------

@dataclass
class Viewer:
    """The authenticated caller of one request: a principal, and the session (None for an API token)."""

    principal: Any
    session: Any = None
    data: ScopedData | None = field(default=None, repr=False)

    @property
    def csrf(self) -> str:
        return self.session.csrf_token if self.session is not None else ""


class NeedLogin(Exception):
    """No valid session or token: pages redirect to /login, the API answers 401."""


class Refused(Exception):
    """A request refused with 403 (bad CSRF token, foreign origin, a token used where it may not be)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def same_origin(request: Any) -> bool:
    """Whether the Origin (or, without it, the Referer) header, when the browser sent one, names this site.

    Absent headers pass (non-browser clients; the CSRF token still applies); ``Origin: null`` (a sandboxed
    frame, a redirect from another site) does not."""
    host = request.headers.get("host", "").lower()
    origin = request.headers.get("origin")
    if origin is not None:
        return origin != "null" and urlsplit(origin).netloc.lower() == host
    referer = request.headers.get("referer")
    if referer:
        return urlsplit(referer).netloc.lower() == host
    return True


def _principal_of_session(ctx: Context, session: Any) -> Any:
    """The session user's principal with their live grants (reloaded per request, so a revoked grant or a
    disabled account takes effect at once); None if the account is gone or disabled."""
    from govlake.control.identities import AuthenticationFailed, principal_for

    try:
        return principal_for(ctx.settings, ctx.registry, session.user_id, "session")
    except AuthenticationFailed:
        return None


def _principal_of_token(ctx: Context, token: str) -> Any:
    """An API token's principal, or None. A token (``glk_<id>_<secret>``) names its row; the row names the
    user, whose name ``identities.authenticate`` then checks the whole token against (hash, expiry,
    revocation, a disabled or locked account), auditing the attempt."""
    import sqlalchemy as sa

    from govlake.control.db import control_engine
    from govlake.control.identities import AuthenticationFailed, authenticate
    from govlake.control.schema import tokens, users

    parts = token.split("_", 2)
    if len(parts) != 3 or not parts[1].isdigit() or len(token) > 200:
        return None
    with control_engine(ctx.settings).connect() as con:
        name = con.execute(sa.select(users.c.name).join(tokens, tokens.c.user_id == users.c.id)
                           .where(tokens.c.id == int(parts[1]))).scalar()
    try:
        return authenticate(ctx.settings, ctx.registry, name or "", token, channel="web")
    except AuthenticationFailed:
        return None


def identify(ctx: Context, request: Any) -> Viewer | None:
    """The caller of ``request``: a Bearer token on ``GET /api/*``, else the session cookie."""
    from govlake.access import websession

    auth = request.headers.get("authorization")
    if auth and request.url.path.startswith("/api/") and request.method in ("GET", "HEAD"):
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip().startswith("glk_"):
            return None
        principal = _principal_of_token(ctx, token.strip())
        return Viewer(principal) if principal is not None else None
    session = websession.lookup(ctx.settings, request.cookies.get(websession.COOKIE))
    if session is None:
        return None
    principal = _principal_of_session(ctx, session)
    return Viewer(principal, session) if principal is not None else None


# -- the app --------------------------------------------------------------------------------------------------

def create_app(ctx: Context, *, secure_cookies: bool = False, allowed_hosts: Iterable[str] = ()):
    """The dashboard as an ASGI app.

    ``secure_cookies``: TLS terminates in front (cookies get Secure); ``allowed_hosts``: the public names
    the proxy forwards as Host, accepted besides the loopback names."""
    from fastapi import APIRouter, Depends, FastAPI, Query, Request
    from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
    from fastapi.staticfiles import StaticFiles
    from fastapi.templating import Jinja2Templates

    from govlake.access import websession
    from govlake.control import audit
    from govlake.jobs.governance.lineage import lineage_edges
    from govlake.lineage_graph import walk

    data = DashboardData(ctx)
    settings = ctx.settings
    templates = Jinja2Templates(env=template_env())
    cookie_opts = websession.cookie_options(secure=secure_cookies)
    # No OpenAPI schema or docs UI: they list every route and parameter to anyone who can reach the port.
    app = FastAPI(title="govlake 数据治理驾驶舱", openapi_url=None, docs_url=None, redoc_url=None)
    app.add_middleware(SecurityHeaders, allowed_hosts=tuple(allowed_hosts))
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    def is_api(request: Request) -> bool:
        return request.url.path.startswith("/api/")

    @app.exception_handler(NeedLogin)
    async def need_login(request: Request, _exc: NeedLogin):
        if is_api(request):
            return JSONResponse({"error": "需要登录会话或有效的 API 令牌（Authorization: Bearer glk_...）"},
                                status_code=401, headers={"www-authenticate": "Bearer"})
        resp = RedirectResponse("/login", status_code=303)
        if websession.COOKIE in request.cookies:  # a dead session's cookie is dropped
            resp.delete_cookie(websession.COOKIE, **cookie_opts)
        return resp

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused):
        if is_api(request):
            return JSONResponse({"error": exc.message}, status_code=403)
        return templates.TemplateResponse(request, "forbidden.html.j2", {"message": exc.message, "viewer": None},
                                          status_code=403)

    @app.exception_handler(GovlakeError)
    async def failed(request: Request, exc: GovlakeError):
        """The control database or the audit log unavailable (the audit fails closed): a Chinese message,
        no stack trace, and nothing of what was being read."""
        if is_api(request):
            return JSONResponse({"error": exc.message}, status_code=503)
        return templates.TemplateResponse(request, "error.html.j2", {"message": exc.message, "hint": exc.hint,
                                                                     "viewer": None}, status_code=503)

    async def gate(request: Request) -> Viewer:
        """Every protected route: an authenticated caller; on POST also the CSRF token and the origin."""
        viewer = identify(ctx, request)
        if viewer is None:
            raise NeedLogin()
        if request.method not in ("GET", "HEAD"):
            if viewer.session is None:
                raise Refused("API 令牌只能用于 GET /api/ 接口；提交表单请先登录")
            if not same_origin(request):
                raise Refused("请求来源不是本站，已拒绝（跨站提交）")
            form = await request.form()
            if not viewer.session.csrf_ok(str(form.get(CSRF_FIELD) or "")):
                raise Refused("表单校验令牌（CSRF）缺失或不正确，已拒绝。请返回页面刷新后重新提交")
        viewer.data = data.for_principal(viewer.principal)
        request.state.viewer = viewer
        return viewer

    protected = APIRouter(dependencies=[Depends(gate)])

    def viewer_of(request: Request) -> Viewer:
        return request.state.viewer

    def node_label(code: str | None) -> str:
        node = ctx.registry.nodes.get(code or "")
        return node.name if node else (code or "")

    def page(request: Request, name: str, status: int = 200, **kw: Any) -> HTMLResponse:
        viewer = getattr(request.state, "viewer", None)
        if viewer is not None:
            _audit_view(request, viewer, status)
            kw.setdefault("node_name", node_label(viewer.principal.node))
        return templates.TemplateResponse(request, name, {"viewer": viewer, "csrf_field": CSRF_FIELD, **kw},
                                          status_code=status)

    def _audit_view(request: Request, viewer: Viewer, status: int) -> None:
        """One audit row per page: who read which tables (the path, never the query string, which may hold
        what a user typed)."""
        tables = sorted(viewer.data.read) if viewer.data is not None else []
        audit.record(settings, viewer.principal, audit.AuditEvent(
            action="web.view", outcome="ok" if status < 400 else "missing", tables=tables,
            detail=f"{request.method} {request.url.path}"[:200]))

    # -- login / logout ------------------------------------------------------------------------------------

    def login_page(request: Request, error: str | None = None, status: int = 200, name: str = "") -> HTMLResponse:
        import secrets

        token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
        resp = templates.TemplateResponse(request, "login.html.j2", {"viewer": None, "error": error, "name": name,
                                                                     "csrf_field": CSRF_FIELD, "login_csrf": token},
                                          status_code=status)
        resp.set_cookie(LOGIN_CSRF_COOKIE, token, **cookie_opts)
        return resp

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request):
        if identify(ctx, request) is not None:
            return RedirectResponse("/", status_code=303)
        return login_page(request)

    @app.post("/login", response_class=HTMLResponse)
    async def login(request: Request):
        import hmac

        from govlake.control.identities import AuthenticationFailed, authenticate

        form = await request.form()
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        submitted = str(form.get(CSRF_FIELD) or "")
        if not same_origin(request) or not expected or not hmac.compare_digest(submitted.encode(), expected.encode()):
            raise Refused("登录表单校验令牌（CSRF）缺失或不正确，已拒绝。请重新打开登录页后再试")
        name, password = str(form.get("username") or "").strip(), str(form.get("password") or "")
        try:
            if not name or not password:
                raise AuthenticationFailed("用户名或密码错误，或账号已被停用或锁定")
            principal = authenticate(settings, ctx.registry, name, password, channel="web")
        except AuthenticationFailed as exc:
            return login_page(request, exc.message, 401, name=name)
        except GovlakeError as exc:  # the control database or the audit log is unavailable
            return login_page(request, exc.message, 503, name=name)
        old = websession.lookup(settings, request.cookies.get(websession.COOKIE))
        if old is not None:
            websession.revoke(settings, old)
        value, _session = websession.open_session(settings, principal.user_id)  # always a new id
        resp = RedirectResponse("/", status_code=303)
        resp.set_cookie(websession.COOKIE, value, **cookie_opts)
        resp.delete_cookie(LOGIN_CSRF_COOKIE, **cookie_opts)
        return resp

    @protected.post("/logout")
    def logout(request: Request):
        viewer = viewer_of(request)
        websession.revoke(settings, viewer.session)
        audit.record(settings, viewer.principal, audit.AuditEvent(action="web.logout", outcome="ok"))
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(websession.COOKIE, **cookie_opts)
        return resp

    # -- gold pages ----------------------------------------------------------------------------------------

    @protected.get("/", response_class=HTMLResponse)
    def overview(request: Request):
        d = viewer_of(request).data
        nodes = d.rows(CATALOG_NODES)
        health = {h: sum(1 for n in nodes if n["health"] == h) for h in ("正常", "滞后", "无数据", "无报送职责")}
        chart = lambda rows: [[r["label"], r["score"]] for r in rows]  # noqa: E731
        return page(request, "overview.html.j2", nodes=nodes, health=health, indicators=d.rows(INDICATOR_PROGRESS),
                    node_chart=chart(d.latest_scores("node")[:12]), district_chart=chart(d.latest_scores("district")),
                    resources=len(d.rows(CATALOG_RESOURCES)), findings=d.rows(DUTY_FINDINGS),
                    by_district=_latest_by_district(d))

    @protected.get("/catalog", response_class=HTMLResponse)
    def catalog(request: Request, q: str = "", node: str = "", share: str = "", open_: str = Query("", alias="open")):
        d = viewer_of(request).data
        res = d.rows(CATALOG_RESOURCES)
        rows = res
        if node:
            rows = [r for r in rows if node in (r["delivered_by"] or "").split("、")]
        if share:
            rows = [r for r in rows if r["share"] == share]
        if open_:
            rows = [r for r in rows if r["open"] == open_]
        if q:
            words = q.split()
            fields = ("code", "name", "dataset", "category", "provider", "summary", "items")
            rows = [r for r in rows if all(any(w.lower() in str(r.get(f) or "").lower() for f in fields) for w in words)]
        providers = sorted({(r["provider_code"], r["provider"]) for r in res})
        return page(request, "catalog.html.j2", rows=rows, total=len(res), q=q, node=node, share=share, open=open_,
                    providers=providers, nodes=d.rows(CATALOG_NODES))

    @protected.get("/catalog/{dataset}", response_class=HTMLResponse)
    def resource(request: Request, dataset: str):
        d = viewer_of(request).data
        r = next((x for x in d.rows(CATALOG_RESOURCES) if x["dataset"] == dataset), None)
        if r is None:
            return page(request, "missing.html.j2", 404, what=f"数据资源 {dataset}")
        items = [i for i in d.rows(CATALOG_ITEMS) if i["dataset"] == dataset]
        duties = [x for x in d.rows(DUTY_DATA_LIST) if x["dataset"] == dataset]
        return page(request, "resource.html.j2", r=r, items=items, duties=duties)

    @protected.get("/duties", response_class=HTMLResponse)
    def duties(request: Request):
        d = viewer_of(request).data
        lst = d.rows(DUTY_DATA_LIST)
        ids = {x["duty_id"] for x in lst}
        covered = {x["duty_id"] for x in lst if x["relation"] == "产生" and x["silver_rows"]}
        findings = d.rows(DUTY_FINDINGS)
        return page(request, "duties.html.j2", duties=lst, total=len(ids), covered=len(covered & ids), findings=findings,
                    counts={k: sum(1 for f in findings if f["kind"] == k) for k in ("缺位", "越位", "一数一源")})

    @protected.get("/indicators", response_class=HTMLResponse)
    def indicators(request: Request):
        d = viewer_of(request).data
        return page(request, "indicators.html.j2", indicators=d.rows(INDICATOR_PROGRESS), series=d.indicator_series(),
                    by_district=_latest_by_district(d))

    @protected.get("/quality", response_class=HTMLResponse)
    def quality(request: Request):
        d = viewer_of(request).data
        return page(request, "quality.html.j2", nodes=d.latest_scores("node"), districts=d.latest_scores("district"),
                    datasets=d.latest_scores("dataset"))

    @protected.get("/lineage", response_class=HTMLResponse)
    def lineage(request: Request, table: str = "gold.population"):
        edges = lineage_edges(ctx)
        tables = sorted({e.source for e in edges} | {e.target for e in edges})
        if table not in tables:
            return page(request, "missing.html.j2", 404, what=f"血缘图中的表 {table}")
        up = walk(edges, table, direction="upstream")
        down = walk(edges, table, direction="downstream")
        near = {table} | {s.table for s in up} | {s.table for s in down}
        links = sorted({(e.source, e.target) for e in edges if e.source in near and e.target in near})
        return page(request, "lineage.html.j2", table=table, tables=tables, up=up, down=down, links=links,
                    graph_nodes=sorted(near))

    # -- API (session or Bearer token) ---------------------------------------------------------------------

    def api(request: Request, payload: dict) -> JSONResponse:
        viewer = viewer_of(request)
        _audit_view(request, viewer, 200)
        return JSONResponse(payload)

    @protected.get("/api/me")
    def api_me(request: Request):
        p = viewer_of(request).principal
        return api(request, {"name": p.name, "node": p.node, "role": p.role, "district": p.district,
                             "auth": p.auth})

    @protected.get("/api/indicators")
    def api_indicators(request: Request):
        d = viewer_of(request).data
        keep = ("indicator_id", "name", "period", "value", "unit", "level", "district_code", "district_name")
        return api(request, {"values": [{k: v.get(k) for k in keep} for v in d.rows(INDICATOR_VALUES)]})

    @protected.get("/api/quality")
    def api_quality(request: Request, scope: str = "district"):
        d = viewer_of(request).data
        keep = ("dataset", "node", "district", "label", "score", "run_id")
        return api(request, {"scores": [{k: r.get(k) for k in keep} for r in d.latest_scores(scope)]})

    _workflow_routes(ctx, protected, page, viewer_of)
    app.include_router(protected)
    return app


def _latest_by_district(d: _Rollups) -> list[dict]:
    """Each indicator's latest per-district values (the rows the viewer may see)."""
    rows = d.rows(INDICATOR_PROGRESS)
    latest = {p["indicator_id"]: p["period"] for p in rows}
    return [v for v in d.rows(INDICATOR_VALUES)
            if v["district_code"] is not None and v["period"] == latest.get(v["indicator_id"])]


# -- workflow pages: 共享申请 (我的申请, 待办) and 数据异议 ----------------------------------------------------

STEWARDS = ("steward", "admin")


def _next_states() -> dict[str, list[str]]:
    """State -> the states a handler may move it to, in workflow order (the workflow's own table)."""
    from govlake.control.objections import TRANSITIONS

    order = list(TRANSITIONS)
    return {str(k): [str(s) for s in sorted(v, key=order.index)] for k, v in TRANSITIONS.items() if v}


def _form_text(form: Any, name: str, limit: int = 2000) -> str:
    return str(form.get(name) or "").strip()[:limit]


def _failure(exc: GovlakeError) -> tuple[str, int]:
    """A workflow step's refusal as the page shows it (message and hint) and its status code."""
    return exc.message + (f"（{exc.hint}）" if exc.hint else ""), 403 if isinstance(exc, AccessDenied) else 400


def _workflow_routes(ctx: Context, router: Any, page: Callable, viewer_of: Callable) -> None:
    from fastapi import Request
    from fastapi.responses import RedirectResponse

    from govlake.control import objections, sharing

    settings, registry = ctx.settings, ctx.registry

    def datasets() -> list[tuple[str, str, str]]:
        return sorted((c.dataset, c.title, c.catalog.share) for c in registry.contracts.values())

    # 我的申请
    def mine_page(request: Request, *, error: str | None = None, status: int = 200, form: dict | None = None):
        rows = sharing.mine(settings, viewer_of(request).principal)
        filed = request.query_params.get("filed")
        return page(request, "sharing_mine.html.j2", status, rows=rows, datasets=datasets(), error=error,
                    form=form or {}, filed=filed)

    @router.get("/sharing/mine")
    def sharing_mine(request: Request):
        return mine_page(request)

    @router.post("/sharing/request")
    async def sharing_request(request: Request):
        form = await request.form()
        values = {k: _form_text(form, k) for k in ("dataset", "fields", "purpose", "scenario", "legal_basis",
                                                   "period_days", "layer")}
        fields = [f.strip() for f in values["fields"].replace("，", ",").split(",") if f.strip()] or None
        try:
            try:
                period = int(values["period_days"])
            except ValueError:
                raise GovlakeError("使用期限须为天数（正整数）", where="共享申请表单：使用期限",
                                   hint="例如填写 90") from None
            result = sharing.request_share(settings, registry, viewer_of(request).principal, values["dataset"], fields,
                                           values["purpose"], values["scenario"], values["legal_basis"], period,
                                           layer=values["layer"] or "silver")
        except GovlakeError as exc:
            text, code = _failure(exc)
            return mine_page(request, error=text, status=code, form=values)
        return RedirectResponse(f"/sharing/mine?filed={int(result.get('id') or 0)}", status_code=303)

    # 待办
    def todo_page(request: Request, *, error: str | None = None, status: int = 200):
        principal = viewer_of(request).principal
        if principal.role not in STEWARDS:
            return page(request, "sharing_todo.html.j2", 403, rows=[], steward=False, error=None)
        rows = sharing.pending_for(settings, principal)
        return page(request, "sharing_todo.html.j2", status, rows=rows, steward=True, error=error,
                    done=request.query_params.get("done"))

    @router.get("/sharing/todo")
    def sharing_todo(request: Request):
        return todo_page(request)

    @router.post("/sharing/{request_id}/decide")
    async def sharing_decide(request: Request, request_id: int):
        form = await request.form()
        decision, reason = _form_text(form, "decision"), _form_text(form, "reason")
        try:
            if decision not in ("approve", "reject"):
                raise GovlakeError("请选择同意或驳回", where=f"共享申请 {request_id} 的审核表单")
            if not reason:
                raise GovlakeError("审核意见（理由）不能为空", where=f"共享申请 {request_id} 的审核表单",
                                   hint="写明同意或驳回的理由，它将记入审计并告知申请人")
            sharing.decide(settings, registry, viewer_of(request).principal, request_id, decision == "approve", reason)
        except GovlakeError as exc:
            text, code = _failure(exc)
            return todo_page(request, error=text, status=code)
        return RedirectResponse(f"/sharing/todo?done={request_id}", status_code=303)

    # 数据异议
    def objections_page(request: Request, *, error: str | None = None, status: int = 200, form: dict | None = None):
        principal = viewer_of(request).principal
        mine, routed = _objection_lists(settings, principal)
        return page(request, "objections.html.j2", status, mine=mine, routed=routed,
                    steward=principal.role in STEWARDS, next_states=_next_states(), error=error, form=form or {},
                    filed=request.query_params.get("filed"), tables=_objection_tables(registry))

    @router.get("/objections")
    def objections_list(request: Request):
        return objections_page(request)

    @router.post("/objections")
    async def objection_file(request: Request):
        form = await request.form()
        values = {k: _form_text(form, k, 500) for k in ("table", "record_ref", "field", "reason")}
        try:
            result = objections.file_objection(settings, registry, viewer_of(request).principal, values["table"],
                                               values["record_ref"], values["field"] or None, values["reason"])
        except GovlakeError as exc:
            text, code = _failure(exc)
            return objections_page(request, error=text, status=code, form=values)
        return RedirectResponse(f"/objections?filed={int(result.get('id') or 0)}", status_code=303)

    @router.post("/objections/{objection_id}/advance")
    async def objection_advance(request: Request, objection_id: int):
        form = await request.form()
        try:
            objections.advance(settings, registry, viewer_of(request).principal, objection_id,
                               _form_text(form, "status", 16), _form_text(form, "note"))
        except GovlakeError as exc:
            text, code = _failure(exc)
            return objections_page(request, error=text, status=code)
        return RedirectResponse("/objections", status_code=303)


def _objection_lists(settings: Any, principal: Any) -> tuple[list[dict], list[dict]]:
    """(objections this user filed, objections routed to their node — every node's for an admin)."""
    from govlake.control import objections

    everything = objections.listing(settings)
    mine = [o for o in everything if o.get("reporter_id") == principal.user_id]
    if principal.role == "admin":
        routed = everything
    elif principal.role == "steward":
        routed = [o for o in everything if o.get("source_node") == principal.node]
    else:
        routed = []
    return mine, routed


def _objection_tables(registry: Any) -> list[str]:
    """Suggestions for the objection form's table field: each dataset's silver table."""
    from govlake.tables import SILVER

    return sorted(SILVER.qualified(d) for d in registry.contracts)


class BackgroundServer:
    """The dashboard on a free localhost port in a background thread (tests and the page-load benchmark)."""

    def __init__(self, ctx: Context, **app_options: Any) -> None:
        import socket
        import threading
        import time

        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(create_app(ctx, **app_options), host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                break
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


def headless_chromium():
    """Debian's Chromium through its ChromeDriver, headless, Chinese UI."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1440,1000", "--lang=zh-CN"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console messages, CSP violations included
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def browser_login(driver: Any, base_url: str, name: str, password: str) -> None:
    """Log a WebDriver browser in through the login form (tests and the page-load benchmark)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(base_url + "/login")
    driver.find_element(By.NAME, "username").send_keys(name)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form#login button[type=submit]").click()
    WebDriverWait(driver, 15).until(lambda d: urlsplit(d.current_url).path != "/login"
                                    or d.find_elements(By.CSS_SELECTOR, "#login-error, #refused"))


def serve(ctx: Context, host: str = "127.0.0.1", port: int = 8765, *, secure_cookies: bool = False,
          allowed_hosts: Iterable[str] = ()) -> None:
    """Run the dashboard (blocking). A non-loopback ``host`` needs ``secure_cookies`` (TLS in front)."""
    import uvicorn

    check_loopback(host, secure_cookies=secure_cookies)
    app = create_app(ctx, secure_cookies=secure_cookies, allowed_hosts=allowed_hosts)
    # Behind a TLS proxy, uvicorn's proxy_headers stay at their default (trust only 127.0.0.1's X-Forwarded-*).
    uvicorn.run(app, host=host, port=port, log_level="warning")


__all__ = ["BackgroundServer", "DashboardData", "ScopedData", "Viewer", "browser_login", "check_loopback",
           "create_app", "headless_chromium", "identify", "is_loopback", "same_origin", "serve", "template_env"]
