"""The dashboard as an attacker sees it (issue 11, point 5), through Starlette's TestClient on a lake built by
the real pipeline: reflected input and hostile gold values come back escaped, every response carries the
security headers, there is no OpenAPI schema or docs UI, the lake's location is not shown, foreign Host
headers are refused, and ``govlake serve`` refuses to listen on anything but loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from markupsafe import escape

from govlake.access.dashboard import SECURITY_HEADERS, create_app, is_loopback
from tests.access.dashboard.conftest import HOSTILE, XSS, login

GOVLAKE = Path(sys.executable).parent / "govlake"
PAGES = ["/", "/catalog", "/catalog/hukou_population", "/duties", "/indicators", "/quality", "/lineage",
         "/lineage?table=gold.population"]


def reflecting(payload: str) -> list[str]:
    """Every route, with the payload in every parameter and path segment it has."""
    p = quote(payload, safe="")
    return [f"/?q={p}", f"/catalog?q={p}", f"/catalog?node={p}&share={p}&open={p}", f"/catalog/{p}",
            f"/duties?x={p}", f"/indicators?x={p}", f"/quality?x={p}", f"/lineage?table={p}", f"/{p}"]


@pytest.fixture(scope="module")
def client(demo_lake, accounts):
    from starlette.testclient import TestClient

    with TestClient(create_app(demo_lake), base_url="http://127.0.0.1:8765") as c:
        assert login(c).status_code == 303
        yield c


@pytest.fixture(scope="module")
def hostile_client(hostile_lake, accounts):
    from starlette.testclient import TestClient

    with TestClient(create_app(hostile_lake), base_url="http://127.0.0.1:8765") as c:
        assert login(c).status_code == 303
        yield c


def assert_inert(body: str, payload: str) -> None:
    """No tag of the payload survives as markup, neither in the page nor in its chart-data block."""
    for tag in ("<script>alert", "<img", "</script><img"):
        if tag in payload:
            assert tag not in body, f"{tag!r} reflected unescaped"


@pytest.mark.parametrize("payload", XSS)
def test_every_route_reflects_input_only_escaped(client, payload: str) -> None:
    seen_escaped = 0
    for url in reflecting(payload):
        resp = client.get(url)
        assert resp.status_code in (200, 404), url
        assert_inert(resp.text, payload)
        seen_escaped += str(escape(payload)) in resp.text
    # /catalog?q=..., /catalog/<name> and /lineage?table=... echo the input: as text.
    assert seen_escaped >= 2 if "/" in payload else seen_escaped >= 3


def test_catalog_search_box_keeps_the_query_as_an_attribute_value(client) -> None:
    body = client.get("/catalog", params={"q": XSS[1]}).text
    assert f'value="{escape(XSS[1])}"' in body


def test_hostile_gold_values_render_as_text(hostile_client) -> None:
    pages = {u: hostile_client.get(u) for u in ["/", "/catalog", "/catalog/hukou_population", "/duties",
                                                f"/lineage?table={quote('gold.population')}",
                                                f"/lineage?table={quote('gold.x' + XSS[1], safe='')}"]}
    for url, resp in pages.items():
        assert resp.status_code == 200, url
        assert "<img" not in resp.text and "<script>alert" not in resp.text, url
        assert "</script><img" not in resp.text, url
    assert str(escape(HOSTILE)) in pages["/catalog"].text and str(escape(XSS[0])) in pages["/catalog/hukou_population"].text
    assert str(escape(HOSTILE)) in pages["/duties"].text
    # Chart labels travel as JSON inside <script type="application/json">: |tojson escapes < > & '.
    assert "\\u003c/script\\u003e\\u003cimg" in pages["/"].text
    assert "\\u003cimg src=x onerror=alert(1)\\u003e" in pages["/lineage?table=gold.population"].text


def test_security_headers_on_every_response(client) -> None:
    urls = PAGES + ["/static/dashboard.js", "/static/dashboard.css", "/static/echarts.min.js", "/nowhere",
                    "/catalog/nowhere", "/lineage?table=nowhere"]
    for url in urls:
        resp = client.get(url)
        for name, value in SECURITY_HEADERS.items():
            assert resp.headers.get(name) == value, (url, name)
    csp = {d.split()[0]: d.split()[1:] for d in SECURITY_HEADERS["content-security-policy"].split("; ")}
    assert csp["script-src"] == ["'self'"] and csp["default-src"] == ["'self'"] and csp["object-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    assert not any("unsafe" in v for vals in csp.values() for v in vals)
    assert client.post("/").headers["x-frame-options"] == "DENY"  # 405 too


def test_pages_have_no_inline_script_or_style(client, demo_lake) -> None:
    """What the CSP forbids must not be needed: every script is a file or a JSON data block (the login and
    workflow pages included)."""
    import re

    from starlette.testclient import TestClient

    with TestClient(create_app(demo_lake), base_url="http://127.0.0.1:8765") as anonymous:
        bodies = {"/login": anonymous.get("/login").text}
    bodies |= {url: client.get(url).text for url in PAGES + ["/sharing/mine", "/sharing/todo", "/objections"]}
    for url, body in bodies.items():
        for tag in re.findall(r"<script\b[^>]*>", body):
            assert 'src="/static/' in tag or 'type="application/json"' in tag, (url, tag)
        assert "<style" not in body and " style=" not in body and "onclick" not in body, url


@pytest.mark.parametrize("url", ["/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect"])
def test_no_openapi_schema_or_docs(client, url: str) -> None:
    resp = client.get(url)
    assert resp.status_code == 404 and "openapi" not in resp.text.lower()


def test_footer_and_pages_hold_no_lake_path(client, demo_lake) -> None:
    root = str(demo_lake.settings.lake_root)
    for url in PAGES + ["/nowhere", "/catalog/nowhere"]:
        body = client.get(url).text
        assert root not in body and str(Path(root).parent) not in body, url
    assert "数据湖" not in client.get("/").text.split('id="page-end"')[1]


def test_foreign_host_header_is_refused(demo_lake, accounts) -> None:
    """DNS rebinding: a page whose name resolves to 127.0.0.1 must not read the dashboard."""
    from starlette.testclient import TestClient

    with TestClient(create_app(demo_lake), base_url="http://evil.example") as c:
        resp = c.get("/")
        assert resp.status_code == 400 and "本机" in resp.text
        assert resp.headers["content-security-policy"] == SECURITY_HEADERS["content-security-policy"]
    with TestClient(create_app(demo_lake), base_url="http://localhost:8765") as c:
        assert login(c).status_code == 303 and c.get("/quality").status_code == 200
    with TestClient(create_app(demo_lake), base_url="http://[::1]:8765") as c:
        assert login(c).status_code == 303 and c.get("/quality").status_code == 200


def test_a_non_loopback_bind_needs_tls_in_front() -> None:
    """With a login, a public bind is allowed only when TLS terminates in front (secure cookies); without it
    the password and the session cookie would cross the network in clear text."""
    from govlake.access.dashboard import check_loopback
    from govlake.errors import ConfigError

    for host in ("0.0.0.0", "192.168.1.5", "gov.example.cn"):
        with pytest.raises(ConfigError) as refused:
            check_loopback(host)
        assert "拒绝" in refused.value.message and host in refused.value.message and "TLS" in refused.value.message
        check_loopback(host, secure_cookies=True)  # accepted
    check_loopback("127.0.0.1")


def test_a_configured_public_host_name_is_accepted(demo_lake, accounts) -> None:
    """Behind a TLS proxy the Host is the service's public name: accepted when configured, others still not."""
    from starlette.testclient import TestClient

    app = create_app(demo_lake, secure_cookies=True, allowed_hosts=["data.gz.gov.example"])
    with TestClient(app, base_url="https://data.gz.gov.example") as c:
        assert login(c).status_code == 303 and c.get("/quality").status_code == 200
    with TestClient(app, base_url="https://evil.example") as c:
        assert c.get("/login").status_code == 400


def test_loopback_addresses() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "", "192.168.1.5", "10.0.0.1", "example.com",
                                            "localhost.evil.example", "128.0.0.1"))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "gov.example.cn"])
def test_serve_refuses_a_non_loopback_host(tmp_path: Path, host: str) -> None:
    done = subprocess.run([str(GOVLAKE), "serve", "--host", host, "--lake", str(tmp_path / "lake")],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "NO_COLOR": "1", "COLUMNS": "300"})
    assert done.returncode == 2, done.stderr
    assert "拒绝" in done.stderr and host in done.stderr and "127.0.0.1" in done.stderr
    assert "Traceback" not in done.stderr and "http://" not in done.stdout
    assert not (tmp_path / "lake").exists()  # refused before anything was opened


@pytest.mark.slow
def test_serve_on_loopback_answers_with_the_headers(demo_lake) -> None:
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(GOVLAKE), "serve", "--host", "127.0.0.1", "--port", str(port), "--no-sql",
                             "--lake", demo_lake.settings.lake_root], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/quality", timeout=2) as resp:
                    assert resp.status == 200
                    assert resp.headers["Content-Security-Policy"] == SECURITY_HEADERS["content-security-policy"]
                    assert resp.headers["X-Content-Type-Options"] == "nosniff"
                    break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()
                time.sleep(0.1)
        else:
            pytest.fail("govlake serve did not answer on loopback")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
