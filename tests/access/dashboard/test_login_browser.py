"""Dashboard login in real headless Chromium (issue 13, point 4): the form logs in, a page shows the user, a
CSRF-protected form (a 共享申请) goes through, logout ends the session and protected pages send the browser
back to the login page; and a form on another origin posting to the dashboard is refused."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from govlake.access.dashboard import browser_login
from govlake.control.db import control_engine
from govlake.control.identities import GENERIC_FAILURE
from govlake.control.schema import share_requests
from tests.access.dashboard.conftest import PASSWORD
from tests.access.dashboard.test_dashboard import csp_violations, go, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def path_of(browser) -> str:
    return urlsplit(browser.current_url).path


def signed_out(browser, site) -> None:
    """No cookies of the dashboard's host left in the shared browser."""
    browser.get(site.url + "/static/dashboard.css")
    browser.delete_all_cookies()


def requests_filed(ctx) -> int:
    with control_engine(ctx.settings).connect() as con:
        return con.execute(sa.select(sa.func.count()).select_from(share_requests)).scalar_one()


def test_login_a_page_a_csrf_form_logout_and_refused_access(browser, site, demo_lake, accounts, tmp_path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    signed_out(browser, site)
    browser.get(site.url + "/quality")
    assert path_of(browser) == "/login"  # refused access: sent to the login page
    assert "登录" in browser.find_element(By.TAG_NAME, "h2").text
    shot(browser, tmp_path, "login")

    browser_login(browser, site.url, "gaj.analyst", "Not-the-password-1")
    assert path_of(browser) == "/login" and browser.find_element(By.ID, "login-error").text == GENERIC_FAILURE

    browser_login(browser, site.url, "gaj.analyst", PASSWORD)
    assert path_of(browser) == "/"
    assert browser.find_element(By.TAG_NAME, "h1").text == "广州市公共数据治理驾驶舱"
    who = browser.find_element(By.ID, "whoami").text
    assert "gaj.analyst" in who and "市公安局" in who and "分析人员" in who
    cookie = browser.get_cookie("govlake_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert browser.execute_script("return document.cookie").find("govlake_session") == -1  # scripts cannot read it

    before = requests_filed(demo_lake)
    find = go(browser, site, "/sharing/mine")
    form = find("#request-form")[0]
    Select(form.find_element(By.NAME, "dataset")).select_by_value("water_quality_sections")
    form.find_element(By.NAME, "purpose").send_keys("河涌水质与排水执法联动")
    form.find_element(By.NAME, "scenario").send_keys("专项执法研判")
    form.find_element(By.NAME, "legal_basis").send_keys("《广州市排水条例》")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 15).until(lambda b: b.find_elements(By.ID, "filed") or b.find_elements(By.ID, "refused"))
    assert not browser.find_elements(By.ID, "refused"), browser.page_source[:2000]
    assert requests_filed(demo_lake) == before + 1
    rid = browser.find_element(By.ID, "filed").text.split("编号 ")[1].split("）")[0]
    row = browser.find_element(By.CSS_SELECTOR, f"tr.request[data-id='{rid}']")
    assert row.get_attribute("data-status") == "已批准"  # 无条件共享: granted at once
    assert not csp_violations(browser)
    shot(browser, tmp_path, "sharing-mine")

    browser.find_element(By.CSS_SELECTOR, "form#logout button").click()
    WebDriverWait(browser, 15).until(lambda b: path_of(b) == "/login")
    assert browser.get_cookie("govlake_session") is None
    for url in ["/", "/sharing/mine", "/catalog"]:
        browser.get(site.url + url)
        assert path_of(browser) == "/login", url


ATTACK = """<!doctype html><html><body><h1>领取补贴</h1>
<form id="forge-request" method="post" action="{site}/sharing/request">
  <input type="hidden" name="dataset" value="hukou_population"><input type="hidden" name="purpose" value="x">
  <input type="hidden" name="scenario" value="x"><input type="hidden" name="legal_basis" value="x">
  <input type="hidden" name="period_days" value="365"><input type="hidden" name="csrf_token" value="guessed">
  <button type="submit" id="go-request">领取</button></form>
<form id="forge-logout" method="post" action="{site}/logout"><button type="submit" id="go-logout">退出</button></form>
</body></html>"""


class _Attacker:
    """Another origin (a different port, or a different site name) serving a page with forms aimed at the
    dashboard."""

    def __init__(self, site_url: str) -> None:
        page = ATTACK.format(site=site_url).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


@pytest.mark.parametrize("attacker_host", ["127.0.0.1", "localhost"])  # same site other port; another site
def test_a_forged_cross_site_post_is_refused(browser, site, demo_lake, accounts, attacker_host: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    signed_out(browser, site)
    browser_login(browser, site.url, "mz.analyst", PASSWORD)
    assert path_of(browser) == "/"
    before = requests_filed(demo_lake)
    attacker = _Attacker(site.url)
    try:
        for button in ("go-request", "go-logout"):
            browser.get(f"http://{attacker_host}:{attacker.port}/")
            browser.find_element(By.ID, button).click()
            # Refused: our 403 page (cross-origin, or no valid CSRF token), or, where the browser withheld the
            # SameSite=Strict cookie, the login page. Never the action.
            WebDriverWait(browser, 15).until(lambda b: urlsplit(b.current_url).port == site.port)
            WebDriverWait(browser, 15).until(lambda b: b.execute_script("return document.readyState") == "complete")
            landed = urlsplit(browser.current_url)
            assert landed.path == "/login" or "拒绝访问" in browser.page_source, button
    finally:
        attacker.stop()
    assert requests_filed(demo_lake) == before
    browser.get(site.url + "/sharing/mine")
    assert path_of(browser) == "/sharing/mine"  # the forged logout did not end the session
    assert "mz.analyst" in browser.find_element(By.ID, "whoami").text
