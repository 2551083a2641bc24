"""The CDO dashboard: ``govlake serve``, a small web app on localhost, in Chinese.

Pages: 总览 (the 1+11+N nodes with health, indicator cards, quality ranking), 数据资源目录 (search and
filters, a resource's metadata, items and lineage), 职能数据清单 (coverage, 缺位, 越位, 一数一源), 指标
(cards against target with trend charts), 数据质量 (ranking by node and district) and 血缘 (per table).

Server-rendered with Jinja2 (pages work without scripts; ECharts, vendored from npm, draws the charts). It
reads only gold tables (the analyst's view) and caches each table per Delta version, so a page costs one
version check per table once warm.
"""


from pathlib import Path
from typing import Any

from govlake.context import Context

STATIC = Path(__file__).parent / "static"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


class DashboardData:
    """Gold tables as Python rows, re-read only when their Delta version changes."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._cache: dict[str, tuple[int, list[dict]]] = {}

    def rows(self, table: str) -> list[dict]:
        dt = self.ctx.lake.table("gold", table)
        if dt is None:
            return []
        version = dt.version()
        hit = self._cache.get(table)
        if hit is None or hit[0] != version:
            hit = (version, dt.to_pyarrow_table().to_pylist())
            self._cache[table] = hit
        return hit[1]

    def latest_scores(self, scope: str) -> list[dict]:
        latest: dict[tuple, dict] = {}
        trend: dict[tuple, list] = {}
        for r in sorted(self.rows("quality_scores"), key=lambda r: r["run_id"]):
            if r["scope"] != scope:
                continue
            key = (r["dataset"], r["node"], r["district"])
            latest[key] = r
            trend.setdefault(key, []).append(r["score"])
        return sorted((dict(v, trend=trend[k]) for k, v in latest.items()), key=lambda r: -(r["score"] or 0))

    def indicator_series(self) -> dict[str, list[tuple[str, float]]]:
        out: dict[str, list] = {}
        for v in sorted(self.rows("indicator_values"), key=lambda v: v["period"]):
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


def create_app(ctx: Context):
    from fastapi import FastAPI, Query, Request
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles
    from fastapi.templating import Jinja2Templates

    from govlake.jobs.lineage import lineage_edges, walk

    data = DashboardData(ctx)
    templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates" / "dashboard"))
    templates.env.filters["num"] = fmt_num
    app = FastAPI(title="govlake 数据治理驾驶舱", docs_url=None, redoc_url=None)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    def page(request: Request, name: str, status: int = 200, **kw: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"lake": ctx.settings.lake_root, **kw}, status_code=status)

    @app.get("/", response_class=HTMLResponse)
    def overview(request: Request):
        nodes = data.rows("catalog_nodes")
        health = {h: sum(1 for n in nodes if n["health"] == h) for h in ("正常", "滞后", "无数据", "无报送职责")}
        chart = lambda rows: [[r["label"], r["score"]] for r in rows]  # noqa: E731
        return page(request, "overview.html.j2", nodes=nodes, health=health, indicators=data.rows("indicator_progress"),
                    node_chart=chart(data.latest_scores("node")[:12]), district_chart=chart(data.latest_scores("district")),
                    resources=len(data.rows("catalog_resources")), findings=data.rows("duty_findings"))

    @app.get("/catalog", response_class=HTMLResponse)
    def catalog(request: Request, q: str = "", node: str = "", share: str = "", open_: str = Query("", alias="open")):
        res = data.rows("catalog_resources")
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
                    providers=providers, nodes=data.rows("catalog_nodes"))

    @app.get("/catalog/{dataset}", response_class=HTMLResponse)
    def resource(request: Request, dataset: str):
        r = next((x for x in data.rows("catalog_resources") if x["dataset"] == dataset), None)
        if r is None:
            return page(request, "missing.html.j2", 404, what=f"数据资源 {dataset}")
        items = [i for i in data.rows("catalog_items") if i["dataset"] == dataset]
        duties = [d for d in data.rows("duty_data_list") if d["dataset"] == dataset]
        return page(request, "resource.html.j2", r=r, items=items, duties=duties)

    @app.get("/duties", response_class=HTMLResponse)
    def duties(request: Request):
        lst = data.rows("duty_data_list")
        ids = {d["duty_id"] for d in lst}
        covered = {d["duty_id"] for d in lst if d["relation"] == "产生" and d["silver_rows"]}
        findings = data.rows("duty_findings")
        return page(request, "duties.html.j2", duties=lst, total=len(ids), covered=len(covered & ids), findings=findings,
                    counts={k: sum(1 for f in findings if f["kind"] == k) for k in ("缺位", "越位", "一数一源")})

    @app.get("/indicators", response_class=HTMLResponse)
    def indicators(request: Request):
        prog = data.rows("indicator_progress")
        latest = {p["indicator_id"]: p["period"] for p in prog}
        by_district = [v for v in data.rows("indicator_values")
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
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def serve(ctx: Context, host: str = "127.0.0.1", port: int = 8765) -> None:
    import uvicorn

    uvicorn.run(create_app(ctx), host=host, port=port, log_level="warning")


__all__ = ["BackgroundServer", "DashboardData", "create_app", "headless_chromium", "serve"]
