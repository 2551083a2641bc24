"""The CDO dashboard: ``govlake serve``, a small web app on localhost, in Chinese.

Pages: 总览 (the 1+11+N nodes with health, indicator cards, quality ranking), 数据资源目录 (search and
filters, a resource's metadata, items and lineage), 职能数据清单 (coverage, 缺位, 越位, 一数一源), 指标
(cards against target with trend charts), 数据质量 (ranking by node and district) and 血缘 (per table).

Server-rendered with Jinja2 (pages work without scripts; ECharts, vendored from npm, draws the charts). It
reads only gold tables (the analyst's view) and caches each table per Delta version, so a page costs one
version check per table once warm.

It has no login yet, so it is hardened as a local, read-only page: every template is auto-escaped (query
parameters and gold values alike are delivered or typed by someone else), every response carries a strict
Content-Security-Policy (scripts and styles only from ``/static``; chart data travels as JSON, not inline
script) and anti-framing / no-sniff / no-referrer headers, requests must name a loopback host (no DNS
rebinding), there is no OpenAPI schema or docs UI, the lake location is not shown, and ``serve`` refuses to
bind anything but a loopback address.
"""


import ipaddress
from pathlib import Path
from typing import Any

from govlake.context import Context
from govlake.errors import ConfigError
from govlake.tables import (
    CATALOG_ITEMS, CATALOG_NODES, CATALOG_RESOURCES, DUTY_DATA_LIST, DUTY_FINDINGS, INDICATOR_PROGRESS, INDICATOR_VALUES,
    QUALITY_SCORES, LakeTable,
)

STATIC = Path(__file__).parent.parent / "static"
TEMPLATES = Path(__file__).parent.parent / "templates" / "dashboard"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost``: the only addresses the dashboard may listen on (and be called by)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


def check_loopback(host: str) -> None:
    """Refuse a non-loopback bind: without login, anyone who can reach the port could read every gold table."""
    if not is_loopback(host):
        raise ConfigError(f"拒绝在地址 {host} 上启动驾驶舱：驾驶舱尚无登录和权限控制，只能在本机回环地址"
                          "（127.0.0.1、::1 或 localhost）上提供服务",
                          where="govlake serve --host",
                          hint="去掉 --host（默认 127.0.0.1）；需要从其他机器查看时，用 SSH 端口转发："
                               "ssh -L 8765:127.0.0.1:8765 本服务器")


def _host_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The host name of the request's Host header, without the port (``[::1]:8765`` -> ``[::1]``)."""
    raw = next((v for k, v in headers if k == b"host"), b"").decode("latin-1")
    if raw.startswith("["):
        return raw[: raw.find("]") + 1] if "]" in raw else raw
    return raw.rsplit(":", 1)[0] if raw.count(":") == 1 else raw


class SecurityHeaders:
    """ASGI middleware: security headers on every HTTP response (pages, static files, 404s), and requests
    whose Host is not a loopback name refused (a web page that rebinds its DNS name to 127.0.0.1 must not
    read the dashboard)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.headers = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        if not is_loopback(_host_of(scope.get("headers", []))):
            from starlette.responses import PlainTextResponse

            await PlainTextResponse("仅接受本机访问（Host 须为 127.0.0.1、::1 或 localhost）", status_code=400)(
                scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


class DashboardData:
    """Gold tables as Python rows, re-read only when their Delta version changes."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._cache: dict[str, tuple[int, list[dict]]] = {}

    def rows(self, table: LakeTable) -> list[dict]:
        dt = self.ctx.lake.table(*table.ref)
        if dt is None:
            return []
        version = dt.version()
        hit = self._cache.get(table.qualified)
        if hit is None or hit[0] != version:
            hit = (version, self.ctx.lake.dataset(dt).to_table().to_pylist())
            self._cache[table.qualified] = hit
        return hit[1]

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


def template_env():
    """The dashboard's Jinja environment, escaping every template.

    Starlette's default (``select_autoescape()``) escapes only names ending in .html/.htm/.xml, and ours end
    in ``.html.j2``: it escaped nothing, so ``/catalog?q=<script>`` ran the script."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True)
    env.filters["num"] = fmt_num
    return env


def create_app(ctx: Context):
    from fastapi import FastAPI, Query, Request
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles
    from fastapi.templating import Jinja2Templates

    from govlake.jobs.governance.lineage import lineage_edges
    from govlake.lineage_graph import walk

    data = DashboardData(ctx)
    templates = Jinja2Templates(env=template_env())
    # No OpenAPI schema or docs UI: they list every route and parameter to anyone who can reach the port.
    app = FastAPI(title="govlake 数据治理驾驶舱", openapi_url=None, docs_url=None, redoc_url=None)
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    def page(request: Request, name: str, status: int = 200, **kw: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, kw, status_code=status)

    @app.get("/", response_class=HTMLResponse)
    def overview(request: Request):
        nodes = data.rows(CATALOG_NODES)
        health = {h: sum(1 for n in nodes if n["health"] == h) for h in ("正常", "滞后", "无数据", "无报送职责")}
        chart = lambda rows: [[r["label"], r["score"]] for r in rows]  # noqa: E731
        return page(request, "overview.html.j2", nodes=nodes, health=health, indicators=data.rows(INDICATOR_PROGRESS),
                    node_chart=chart(data.latest_scores("node")[:12]), district_chart=chart(data.latest_scores("district")),
                    resources=len(data.rows(CATALOG_RESOURCES)), findings=data.rows(DUTY_FINDINGS))

    @app.get("/catalog", response_class=HTMLResponse)
    def catalog(request: Request, q: str = "", node: str = "", share: str = "", open_: str = Query("", alias="open")):
        res = data.rows(CATALOG_RESOURCES)
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
                    providers=providers, nodes=data.rows(CATALOG_NODES))

    @app.get("/catalog/{dataset}", response_class=HTMLResponse)
    def resource(request: Request, dataset: str):
        r = next((x for x in data.rows(CATALOG_RESOURCES) if x["dataset"] == dataset), None)
        if r is None:
            return page(request, "missing.html.j2", 404, what=f"数据资源 {dataset}")
        items = [i for i in data.rows(CATALOG_ITEMS) if i["dataset"] == dataset]
        duties = [d for d in data.rows(DUTY_DATA_LIST) if d["dataset"] == dataset]
        return page(request, "resource.html.j2", r=r, items=items, duties=duties)

    @app.get("/duties", response_class=HTMLResponse)
    def duties(request: Request):
        lst = data.rows(DUTY_DATA_LIST)
        ids = {d["duty_id"] for d in lst}
        covered = {d["duty_id"] for d in lst if d["relation"] == "产生" and d["silver_rows"]}
        findings = data.rows(DUTY_FINDINGS)
        return page(request, "duties.html.j2", duties=lst, total=len(ids), covered=len(covered & ids), findings=findings,
                    counts={k: sum(1 for f in findings if f["kind"] == k) for k in ("缺位", "越位", "一数一源")})

    @app.get("/indicators", response_class=HTMLResponse)
    def indicators(request: Request):
        prog = data.rows(INDICATOR_PROGRESS)
        latest = {p["indicator_id"]: p["period"] for p in prog}
        by_district = [v for v in data.rows(INDICATOR_VALUES)
                       if v["district_code"] is not None and v["period"] == latest.get(v["indicator_id"])]
        return page(request, "indicators.html.j2", indicators=prog, series=data.indicator_series(), by_district=by_district)

    @app.get("/quality", response_class=HTMLResponse)
    def quality(request: Request):
        return page(request, "quality.html.j2", nodes=data.latest_scores("node"), districts=data.latest_scores("district"),
                    datasets=data.latest_scores("dataset"))

    @app.get("/lineage", response_class=HTMLResponse)
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

    return app


class BackgroundServer:
    """The dashboard on a free localhost port in a background thread (tests and the page-load benchmark)."""

    def __init__(self, ctx: Context) -> None:
        import socket
        import threading
        import time

        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=self.port, log_level="warning"))
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


def serve(ctx: Context, host: str = "127.0.0.1", port: int = 8765) -> None:
    import uvicorn

    check_loopback(host)
    uvicorn.run(create_app(ctx), host=host, port=port, log_level="warning")


__all__ = ["BackgroundServer", "DashboardData", "check_loopback", "create_app", "headless_chromium", "is_loopback",
           "serve", "template_env"]
