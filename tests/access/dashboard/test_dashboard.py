"""The CDO dashboard in real headless Chromium: every page renders in Chinese with the lake's content,
charts are drawn, filters work, and the catalog page holds 1,000 resources. Screenshots go to the test's
tmp dir (and to docs/screenshots/ when GOVLAKE_SCREENSHOTS is set)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def shot(browser, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    browser.save_screenshot(str(path))
    if os.environ.get("GOVLAKE_SCREENSHOTS"):
        target = Path(os.environ["GOVLAKE_SCREENSHOTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / path.name)
    assert path.stat().st_size > 10_000  # a real rendering, not a blank page
    return path


def csp_violations(browser) -> list[str]:
    """The page's Content-Security-Policy violations: DOM events, and the console's "Refused to ..." lines."""
    events = browser.execute_script("return window.__csp || []")
    console = [e["message"] for e in browser.get_log("browser")
               if "Content Security Policy" in e["message"] or "Refused to" in e["message"]]
    return events + console


def go(browser, site, path: str):
    """Load a page (logging in as the city's administrator first when sent to the login page) and wait until
    the whole document is parsed (the footer comes last) and scripts ran; the page must need nothing its CSP
    refuses (every test page is checked)."""
    from urllib.parse import urlsplit

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from govlake.access.dashboard import browser_login
    from tests.access.dashboard.conftest import PASSWORD

    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(site.url + path)
    if urlsplit(browser.current_url).path == "/login":  # this lake's control database has no session of ours yet
        browser_login(browser, site.url, "cdo", PASSWORD)
        browser.get(site.url + path)
    WebDriverWait(browser, 15).until(ec.presence_of_element_located((By.ID, "page-end")))
    WebDriverWait(browser, 15).until(lambda b: b.execute_script("return document.readyState") == "complete")
    assert not csp_violations(browser), path
    return lambda css: browser.find_elements(By.CSS_SELECTOR, css)


def test_overview_shows_every_node_indicators_and_charts(browser, site, demo_lake, tmp_path: Path) -> None:
    find = go(browser, site, "/")
    nodes = find(".node")
    assert len(nodes) == len(demo_lake.registry.nodes) == 36
    codes = {n.get_attribute("data-code") for n in nodes}
    assert {"440100", "440106", "gaj", "scjgj", "lsj"} <= codes
    gaj = next(n for n in nodes if n.get_attribute("data-code") == "gaj")
    assert "市公安局" in gaj.text and "正常" in gaj.text
    cards = {c.get_attribute("data-id"): c.text for c in find(".indicator")}
    assert "电子证照用证率" in cards["e_license_usage_rate"] and "2025 目标 80" in cards["e_license_usage_rate"]
    assert len(find("#chart-nodes canvas")) == 1 and len(find("#chart-districts canvas")) == 1  # ECharts drew
    shot(browser, tmp_path, "overview")


def test_catalog_search_filters_and_resource_page(browser, site, demo_lake, tmp_path: Path) -> None:
    find = go(browser, site, "/catalog")
    assert len(find("tr.resource")) == len(demo_lake.registry.contracts)
    find = go(browser, site, "/catalog?q=人口")
    assert {r.get_attribute("data-dataset") for r in find("tr.resource")} == {"hukou_population", "migrant_population"}
    find = go(browser, site, "/catalog?share=无条件共享")
    expected = {d for d, c in demo_lake.registry.contracts.items() if c.catalog.share == "无条件共享"}
    assert {r.get_attribute("data-dataset") for r in find("tr.resource")} == expected
    shot(browser, tmp_path, "catalog")
    find = go(browser, site, "/catalog/market_entities")
    meta = find("#metadata")[0].text
    assert "市场主体登记信息" in meta and "B02-01-01-0001" in meta and "有条件共享" in meta and "gold.legal_entities" in meta
    assert "统一社会信用代码" in find("#items")[0].text
    shot(browser, tmp_path, "resource")


def test_duties_page_shows_gaps_and_overreach(browser, site, demo_lake, tmp_path: Path) -> None:
    find = go(browser, site, "/duties")
    findings = demo_lake.lake.read("gold", "duty_findings").to_pylist()
    kinds = [f.get_attribute("data-kind") for f in find("tr.finding")]
    assert sorted(kinds) == sorted(f["kind"] for f in findings) and "缺位" in kinds
    assert "覆盖率" in find("#coverage")[0].text
    shot(browser, tmp_path, "duties")


def test_indicator_cards_have_trend_charts(browser, site, demo_lake, tmp_path: Path) -> None:
    find = go(browser, site, "/indicators")
    cards = find(".indicator")
    prog = demo_lake.lake.read("gold", "indicator_progress").to_pylist()
    assert len(cards) == len(prog) >= 9
    with_data = [p["indicator_id"] for p in prog if p["value"] is not None]
    drawn = [c.get_attribute("data-id") for c in cards if c.find_elements("css selector", "canvas")]
    assert set(with_data) <= set(drawn)
    assert "城市运行数字体征" in find("h2")[-1].text or find("#by-district")
    shot(browser, tmp_path, "indicators")


def test_quality_ranking_and_lineage(browser, site, demo_lake, tmp_path: Path) -> None:
    find = go(browser, site, "/quality")
    ranked = find("#rank-districts tr.rank")
    assert len(ranked) == 11
    scores = [float(r.find_elements("css selector", "td")[2].text) for r in ranked]
    assert scores == sorted(scores, reverse=True)
    shot(browser, tmp_path, "quality")
    find = go(browser, site, "/lineage?table=gold.population")
    up = find("#upstream")[0].text
    assert "silver.hukou_population" in up and "bronze.migrant_population" in up
    assert "gold.district_profile" in find("#downstream")[0].text
    assert len(find("#graph canvas")) == 1
    shot(browser, tmp_path, "lineage")


def test_catalog_with_1000_resources(browser, demo_lake, tmp_path: Path) -> None:
    """Scale: a catalog of 1,000 resources renders completely (load times: govlake bench --dashboard)."""
    from govlake.access.dashboard import BackgroundServer
    from govlake.devkit.dashboard_scale import inflate_catalog

    from tests.access.dashboard.conftest import add_accounts

    ctx = inflate_catalog(demo_lake, tmp_path / "big", 1000)
    add_accounts(ctx)  # the copy has its own control database
    site = BackgroundServer(ctx)
    try:
        find = go(browser, site, "/catalog")
        assert len(find("tr.resource")) == 1000
        assert "目录总数 1000" in find("#result-count")[0].text
        find = go(browser, site, "/")
        assert "数据资源 1000 项" in find("#network")[0].text
    finally:
        site.stop()


def test_charts_draw_under_the_csp_and_tooltips_need_no_inline_style(browser, site) -> None:
    """Issue 11, point 5: scripts only from /static. The charts still draw, and hovering (a tooltip) does
    not need the inline styles the policy refuses."""
    import time

    from selenium.webdriver.support.ui import WebDriverWait

    for path, chart in [("/", "#chart-nodes"), ("/indicators", ".indicator .chart"), ("/lineage", "#graph")]:
        find = go(browser, site, path)
        assert find(chart + " canvas"), path
        assert browser.execute_script("return document.scripts.length") >= 2
        browser.execute_script(
            "const el = [...document.querySelectorAll(arguments[0])].find(e => e.querySelector('canvas'));"
            "echarts.getInstanceByDom(el).dispatchAction({type: 'showTip', seriesIndex: 0, dataIndex: 0});", chart)
        time.sleep(0.5)  # ECharts renders the tooltip on a later frame
        assert not csp_violations(browser), path
    # Positive control: the policy is in force, so an inline script is refused and reported.
    go(browser, site, "/quality")
    browser.execute_script("const s = document.createElement('script'); s.textContent = 'window.ran = 1';"
                           "document.body.appendChild(s);")
    WebDriverWait(browser, 5).until(lambda b: b.execute_script("return window.__csp.length"))
    assert browser.execute_script("return window.ran") is None
    assert any("script-src" in v for v in csp_violations(browser))


def test_hostile_gold_values_render_as_text(browser, hostile_lake, accounts, tmp_path: Path) -> None:
    """A gold row holding <img onerror> (e.g. forged through a Delta log) shows as text and runs nothing."""
    from govlake.access.dashboard import BackgroundServer
    from tests.access.dashboard.conftest import HOSTILE

    site = BackgroundServer(hostile_lake)
    try:
        for path in ["/catalog", "/catalog/hukou_population", "/duties", "/", "/lineage?table=gold.population"]:
            find = go(browser, site, path)
            assert not find("main img") and not find("main script:not([src]):not([type='application/json'])"), path
            assert browser.title != "pwned", path  # an alert() would fail the next WebDriver call
        find = go(browser, site, "/catalog")
        assert HOSTILE in find("tr.resource[data-dataset='hukou_population']")[0].text
        find = go(browser, site, "/duties")
        assert HOSTILE in find("#findings")[0].text
        find = go(browser, site, "/")
        assert len(find("#chart-nodes canvas")) == 1  # the hostile chart labels are only labels
        shot(browser, tmp_path, "hostile-catalog")
    finally:
        site.stop()
