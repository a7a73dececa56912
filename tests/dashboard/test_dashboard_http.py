"""The dashboard's page, login and streams over HTTP: the login form until the key was typed,
the key only in a POST body, a session cookie (a random token, HttpOnly, SameSite=Strict), 401
for the streams without it, and strict page headers (no inline script, no framing)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bridge.apikeys import ServerKey
from bridge.app import create_app
from bridge.config import Settings

KEY = "rtb_dashboard_http_key"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings.model_validate({"server": {"data_dir": str(tmp_path)}})
    app = create_app(settings, ServerKey(KEY))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        yield c


async def test_login_form_until_the_key_is_typed(client: httpx.AsyncClient) -> None:
    r = await client.get("/dashboard")
    assert r.status_code == 401
    assert 'method="post" action="/dashboard/login"' in r.text
    assert 'name="key" type="password"' in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"

    bad = await client.post("/dashboard/login", data={"key": "nope"})
    assert bad.status_code == 401
    assert "not the server key" in bad.text
    assert "set-cookie" not in bad.headers

    ok = await client.post("/dashboard/login", data={"key": KEY})
    assert ok.status_code == 303 and ok.headers["location"] == "/dashboard"
    cookie = ok.headers["set-cookie"]
    assert cookie.startswith("rtbridge_session=")
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Path=/" in cookie
    assert KEY not in cookie

    page = await client.get("/dashboard")  # the client kept the cookie
    assert page.status_code == 200
    assert '<script src="/dashboard/static/dashboard.js" defer></script>' in page.text
    assert "<script>" not in page.text  # nothing inline: the CSP forbids it

    out = await client.post("/dashboard/logout", headers={"Origin": "http://127.0.0.1"})
    assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
    client.cookies.clear()
    assert (await client.get("/dashboard")).status_code == 401


async def test_bearer_also_opens_the_dashboard(client: httpx.AsyncClient) -> None:
    r = await client.get("/dashboard", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200 and "Live calls" in r.text
    wrong = await client.get("/dashboard", headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 401


async def test_streams_need_the_key(client: httpx.AsyncClient) -> None:
    for path in ("/dashboard/api/stream", "/dashboard/api/calls/call_x/stream"):
        r = await client.get(path)
        assert r.status_code == 401, path
        assert r.json()["error"]["code"] == "invalid_api_key"
        client.cookies.set("rtbridge_session", KEY)  # the key itself is not a valid cookie
        assert (await client.get(path)).status_code == 401
        client.cookies.clear()
    # authorised, but this app runs no calls
    r = await client.get("/dashboard/api/stream", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 503


async def test_assets_are_served_and_nothing_else(client: httpx.AsyncClient) -> None:
    js = await client.get("/dashboard/static/dashboard.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "EventSource" in js.text
    css = await client.get("/dashboard/static/dashboard.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    for name in ("index.html", "dashboard.html", "..%2Fapp.py", "nope.js"):
        assert (await client.get(f"/dashboard/static/{name}")).status_code == 404, name
