"""Real headless Chromium (Debian's chromium + chromium-driver, installed here when missing) driving the
dashboard served by uvicorn on a free localhost port, over a lake built by the real pipeline."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from govlake.access.dashboard import CHROMEDRIVER as DRIVER, CHROMIUM


FONTS = Path("/usr/share/fonts/opentype/noto")  # fonts-noto-cjk: Chinese text renders as glyphs, not boxes


def ensure_chromium() -> None:
    if Path(CHROMIUM).exists() and Path(DRIVER).exists() and FONTS.exists():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("Chromium is not installed and cannot be installed here (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True)
    done = subprocess.run(["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver", "fonts-noto-cjk"], env=env, capture_output=True)
    if done.returncode != 0:
        pytest.fail("apt-get install chromium chromium-driver fonts-noto-cjk failed:\n" + done.stderr.decode()[-2000:])


@pytest.fixture(scope="session")
def browser():
    ensure_chromium()
    from govlake.access.dashboard import headless_chromium

    driver = headless_chromium()
    # Record every CSP violation of every page (a DevTools script runs before the page's own and is exempt).
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": (
        "window.__csp = []; document.addEventListener('securitypolicyviolation', "
        "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));")})
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def demo_lake(tmp_path_factory: pytest.TempPathFactory):
    """A lake from the real pipeline: generated deliveries for every node, ingested and run."""
    from tests.conftest import build_lake

    return build_lake(tmp_path_factory.mktemp("dash"), rows=10_000)


PASSWORD = "Dash-board-2026!"  # every test account's password (the policy wants 12+ chars of 2+ classes)
# name -> (node, role): the city's administrator, a district analyst (天河区), a department steward and analyst.
ACCOUNTS = {"cdo": ("440100", "admin"), "tianhe": ("440106", "analyst"), "gaj.steward": ("gaj", "steward"),
            "gaj.analyst": ("gaj", "analyst"), "mz.analyst": ("mzj", "analyst")}


def add_accounts(ctx) -> dict[str, tuple[str, str]]:
    """The test accounts in ``ctx``'s control database, created by the lake owner as ``govlake users add``
    would (idempotent: lakes that share a control database share the accounts)."""
    from govlake.control.identities import IdentityError, add_user
    from govlake.control.principal import Principal

    owner = Principal.lake_owner(ctx.registry.city.code)
    for name, (node, role) in ACCOUNTS.items():
        if node not in ctx.registry.nodes:
            continue
        try:
            add_user(ctx.settings, ctx.registry, name, node, role, PASSWORD, by=owner)
        except IdentityError as exc:
            if "已存在" not in exc.message:
                raise
    return {n: v for n, v in ACCOUNTS.items() if v[0] in ctx.registry.nodes}


@pytest.fixture(scope="session")
def accounts(demo_lake) -> dict[str, tuple[str, str]]:
    return add_accounts(demo_lake)


def login(client, name: str = "cdo", password: str = PASSWORD):
    """Log a TestClient in through the form (GET /login for its CSRF token, then POST); returns the POST's
    response."""
    import re

    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return client.post("/login", data={"username": name, "password": password, "csrf_token": token},
                       follow_redirects=False)


def csrf_of(client, path: str = "/") -> str:
    """The session's CSRF token, as a page's forms carry it."""
    import re

    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text).group(1)


@pytest.fixture(scope="session")
def site(demo_lake, accounts):
    from govlake.access.dashboard import BackgroundServer

    s = BackgroundServer(demo_lake)
    yield s
    s.stop()


# What an attacker would put where the dashboard shows text: a script tag, an attribute break-out, and a
# break-out of the <script type="application/json"> block that carries the chart data.
XSS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "</script><img src=x onerror=alert(2)>"]
HOSTILE = '<img src=x onerror="document.title=\'pwned\'">'


@pytest.fixture(scope="session")
def hostile_lake(demo_lake, tmp_path_factory: pytest.TempPathFactory):
    """A copy of the demo lake's gold layer in which a resource, a duty finding, a quality-score label (a chart
    label) and a lineage edge hold markup, as a forged gold row would (issue 11, points 1 and 5)."""
    import dataclasses

    import pyarrow as pa

    from govlake.context import Context

    dst = tmp_path_factory.mktemp("hostile") / "lake"
    shutil.copytree(Path(demo_lake.settings.lake_root) / "gold", dst / "gold")
    ctx = Context(dataclasses.replace(demo_lake.settings, lake_root=str(dst)))

    def poison(table: str, change) -> None:
        t = ctx.lake.read("gold", table)
        rows = t.to_pylist()
        change(rows)
        ctx.lake.overwrite("gold", table, pa.Table.from_pylist(rows, schema=t.schema))

    def resource(rows):
        r = next(r for r in rows if r["dataset"] == "hukou_population")
        r.update(name=f"户籍{HOSTILE}", summary=XSS[0], category=XSS[1])

    def finding(rows):
        rows[0].update(detail=HOSTILE, action=XSS[0])

    def scores(rows):
        for r in rows:
            if r["scope"] == "node":
                r["label"] = XSS[2]

    def edge(rows):
        rows.append(dict(rows[0], source="gold.population", target=f"gold.x{XSS[1]}", job=HOSTILE))

    poison("catalog_resources", resource)
    poison("duty_findings", finding)
    poison("quality_scores", scores)
    poison("lineage_edges", edge)
    return ctx
