"""Web-facing defaults, each attack replayed over HTTP against the app (uvicorn on loopback):
a cross-origin page asking for a demo key, a 200 MB body, an old cookie after logout, a
cross-site POST riding the login cookie; plus docs off, /metrics keyed when asked, and the
security events each refusal leaves."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.apikeys import ServerKey
from bridge.app import create_app
from bridge.config import Settings
from bridge.control.auth import COOKIE_NAME
from bridge.control.sessions import SESSIONS_FILE, LoginSessions
from tests.support.servers import run_app

KEY = "rtb_web_defaults_key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@dataclass
class Web:
    url: str
    origin: str  # this server's own origin
    app: Any

    def client(self, **kw: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30, **kw)

    async def events(self, kind: str) -> list[dict[str, Any]]:
        async with self.client() as c:
            r = await c.get("/v1/security/events", params={"kind": kind}, headers=AUTH)
            assert r.status_code == 200, r.text
            data: list[dict[str, Any]] = r.json()["data"]
            return data


@contextlib.asynccontextmanager
async def serve(tmp_path: Path, **server: Any) -> AsyncIterator[Web]:
    settings = Settings.model_validate({"server": {"data_dir": str(tmp_path), **server}})
    app = create_app(settings, ServerKey(KEY))
    async with run_app(app) as url:
        yield Web(url, url, app)


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[Web]:
    async with serve(tmp_path) as w:
        yield w


# -- the demo page's key -------------------------------------------------------------------


async def test_only_the_demo_page_itself_gets_a_key_without_the_server_key(web: Web) -> None:
    port = web.url.rsplit(":", 1)[1]
    async with web.client() as c:
        ok = await c.post("/demo/client_secret", headers={"Origin": web.origin})
        assert ok.status_code == 200 and ok.json()["value"].startswith("ek_")
        attacks = [
            {"Origin": "http://evil.example"},  # any web page the operator visits
            {"Origin": "http://127.0.0.1:3000"},  # another local port: same site, other origin
            {"Origin": "null"},  # a sandboxed frame
            {},  # no Origin at all
            # DNS rebinding: evil.example resolves to 127.0.0.1, so it is "same origin"
            {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"},
        ]
        for headers in attacks:
            r = await c.post("/demo/client_secret", headers=headers)
            assert r.status_code == 403, (headers, r.text)
            assert r.json()["error"]["code"] == "origin_not_allowed"
            assert "ek_" not in r.text
            assert "access-control-allow-origin" not in r.headers
        # and no CORS preflight lets a page try
        pre = await c.options(
            "/demo/client_secret",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in pre.headers
        # the OpenAI-compatible API keeps CORS for browser SDKs (with their own bearer keys)
        api = await c.options(
            "/v1/realtime/calls",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert api.headers["access-control-allow-origin"] in ("*", "http://evil.example")
        # but the control plane and the dashboard answer no cross-origin reads
        for path in ("/v1/calls", "/dashboard", "/v1/security/events"):
            r = await c.get(path, headers={"Origin": "http://evil.example", **AUTH})
            assert "access-control-allow-origin" not in r.headers, path
    refused = await web.events("origin-refused")
    assert len(refused) == len(attacks)
    assert all(e["detail"].startswith("demo key requested by Origin") for e in refused)


# -- request sizes -----------------------------------------------------------------------------


class _Collect(asyncio.Protocol):
    """What the server sends, kept even when the connection ends in a reset."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.data += data

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def _raw_post(
    url: str, path: str, headers: dict[str, str], body_bytes: int, chunked: bool
) -> tuple[int, bytes, int]:
    """POST ``body_bytes`` of junk (fast, as an attacker would) while reading the answer;
    returns (status, body, bytes of body sent before the server closed)."""
    host, port = url.removeprefix("http://").split(":")
    loop = asyncio.get_running_loop()
    transport, peer = await loop.create_connection(_Collect, host, int(port))
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {body_bytes}")
    transport.write(("\r\n".join(head) + "\r\n\r\n").encode())
    chunk = b"v=0\r\n" + b"a" * (64 * 1024 - 5)
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk
    sent = 0
    while sent < body_bytes and not transport.is_closing():
        transport.write(frame)
        sent += len(chunk)
        await asyncio.sleep(0)
        while transport.get_write_buffer_size() > 1024 * 1024 and not transport.is_closing():
            await asyncio.sleep(0.001)  # the kernel's buffers are full: the server stopped
    await asyncio.wait_for(peer.closed, 30)
    transport.abort()
    data = bytes(peer.data)
    assert data.startswith(b"HTTP/1.1 "), (sent, data[:200])
    return int(data.split(b" ", 2)[1]), data.partition(b"\r\n\r\n")[2], sent


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_200_mb_offer_is_refused_before_it_is_read(web: Web, chunked: bool) -> None:
    async with web.client() as c:  # the attacker holds a browser's ek_ key
        ek = (await c.post("/demo/client_secret", headers={"Origin": web.origin})).json()["value"]
    status, body, sent = await _raw_post(
        web.url,
        "/v1/realtime/calls",
        {"Authorization": f"Bearer {ek}", "Content-Type": "application/sdp"},
        200 * 1024 * 1024,
        chunked,
    )
    assert status == 413
    err = json.loads(body)["error"]
    assert err["code"] == "request_too_large" and "65536 bytes" in err["message"]
    assert err["type"] == "invalid_request_error"
    # the server stopped reading at once: what got out before it closed is its discard budget
    # (1 MB) and the sockets' buffers, not the 200 MB
    assert sent < 32 * 1024 * 1024, sent
    (event,) = await web.events("oversized-message")
    assert event["detail"].startswith("POST /v1/realtime/calls: ")


async def test_an_oversized_body_awaiting_100_continue_is_refused_at_once(web: Web) -> None:
    """A client that declares too much and waits for ``100 Continue`` gets the 413 (in the error
    shape) without a 100 first: it is never asked for the body it would then send."""
    host, port = web.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        f"POST /v1/calls HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {KEY}\r\n"
        "Content-Type: application/json\r\nExpect: 100-continue\r\n"
        "Content-Length: 99999999999\r\n\r\n"
    )
    writer.write(head.encode())
    try:
        answer = await asyncio.wait_for(reader.read(), 10)  # to the close (Connection: close)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:100]
    assert b"100 Continue" not in answer
    assert b"content-type: application/json" in answer.lower()
    body = answer.partition(b"\r\n\r\n")[2]
    assert json.loads(body)["error"]["code"] == "request_too_large"


async def test_each_kind_of_body_has_its_limit(tmp_path: Path) -> None:
    async with serve(tmp_path, max_json_bytes=4096, max_multipart_bytes=8192) as web:
        async with web.client() as c:
            big = {"target": "sip:a@127.0.0.1", "caller": "x" * 5000}
            r = await c.post("/v1/calls", json=big, headers=AUTH)
            assert r.status_code == 413 and "4096 bytes, the limit for a JSON body" in r.text
            files = {"sdp": (None, "v=0\r\n" + "a" * 9000), "session": (None, "{}")}
            r = await c.post("/v1/realtime/calls", files=files, headers=AUTH)
            assert r.status_code == 413 and "a multipart body" in r.text
            r = await c.post("/dashboard/login", data={"key": "k" * 20000})
            assert r.status_code == 413 and "a form" in r.text
            r = await c.post(
                "/v1/realtime/calls",
                content=b"v=0\r\n" + b"a" * 70000,
                headers={**AUTH, "Content-Type": "application/sdp"},
            )
            assert r.status_code == 413 and "an SDP offer" in r.text
            # under the limits, the same routes work as before (here: 4xx for other reasons)
            r = await c.post("/v1/calls", json={"target": "sip:a@127.0.0.1"}, headers=AUTH)
            assert r.status_code == 503  # no calls in this process
        assert len(await web.events("oversized-message")) == 4


# -- login sessions ------------------------------------------------------------------------


async def _login(web: Web, c: httpx.AsyncClient) -> str:
    r = await c.post("/dashboard/login", data={"key": KEY}, headers={"Origin": web.origin})
    assert r.status_code == 303
    return c.cookies[COOKIE_NAME]


async def test_an_old_cookie_is_dead_after_logout(web: Web) -> None:
    async with web.client() as c:
        first = await _login(web, c)
        assert KEY not in first and len(first) >= 43
        c.cookies.clear()
        second = await _login(web, c)
        assert second != first  # a fresh random token per login
        assert (await c.get("/v1/calls")).status_code != 401
        out = await c.post("/dashboard/logout", headers={"Origin": web.origin})
        assert out.status_code == 303
    async with web.client() as thief:  # replays the cookie it copied before the logout
        thief.cookies.set(COOKIE_NAME, second)
        assert (await thief.get("/dashboard")).status_code == 401  # the login form
        assert (await thief.get("/dashboard/api/stream")).status_code == 401
        r = await thief.get("/v1/calls")
        assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
        thief.cookies.set(COOKIE_NAME, first)  # the other login is still live
        assert (await thief.get("/dashboard")).status_code == 200
    failures = await web.events("auth-failure")
    assert len(failures) == 3
    assert all("expired or revoked dashboard session" in e["detail"] for e in failures)


async def test_sessions_expire_and_survive_a_restart_but_not_a_new_key(tmp_path: Path) -> None:
    now = [1_000.0]
    path = tmp_path / SESSIONS_FILE
    sessions = LoginSessions(ServerKey(KEY), path, ttl_s=3600, clock=lambda: now[0])
    token = sessions.create()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and token not in path.read_text()
    restarted = LoginSessions(ServerKey(KEY), path, ttl_s=3600, clock=lambda: now[0])
    assert restarted.valid(token)
    assert not LoginSessions(ServerKey("rotated"), path, ttl_s=3600).valid(token)
    now[0] += 3599
    assert restarted.valid(token)
    now[0] += 2
    assert not restarted.valid(token)
    for _ in range(5):
        restarted.create()
    capped = LoginSessions(ServerKey(KEY), path, ttl_s=3600, max_sessions=2, clock=lambda: now[0])
    tokens = [capped.create() for _ in range(3)]
    assert [capped.valid(t) for t in tokens] == [False, True, True]  # the oldest went


# -- cross-site requests ----------------------------------------------------------------------


async def test_cookie_requests_from_another_origin_are_refused(tmp_path: Path) -> None:
    async with serve(tmp_path, allowed_origins=["https://ops.example"]) as web:
        async with web.client() as c:
            await _login(web, c)
            hangup = "/v1/calls/call_nope/hangup"
            port = web.url.rsplit(":", 1)[1]
            for origin in ("http://evil.example", "http://127.0.0.1:1", "null", None):
                headers = {"Origin": origin} if origin else {}
                r = await c.post(hangup, headers=headers)
                assert r.status_code == 403, (origin, r.text)
                assert r.json()["error"]["code"] == "origin_not_allowed"
            # the page's own requests, and an origin the operator listed, pass (then 503: this
            # app runs no calls)
            for origin in (web.origin, f"http://127.0.0.1:{port}", "https://ops.example"):
                r = await c.post(hangup, headers={"Origin": origin})
                assert r.status_code == 503, (origin, r.text)
            # a form posted cross-site cannot log the browser out (or in) either
            r = await c.post("/dashboard/logout", headers={"Origin": "http://evil.example"})
            assert r.status_code == 403
            assert (await c.get("/v1/calls")).status_code == 503  # still logged in
            r = await c.post(
                "/dashboard/login", data={"key": KEY}, headers={"Origin": "http://evil.example"}
            )
            assert r.status_code == 403
        async with web.client() as script:  # a Bearer key is not ambient: no Origin needed
            r = await script.post(hangup, headers=AUTH)
            assert r.status_code == 503
            r = await script.post(hangup, headers={**AUTH, "Origin": "http://evil.example"})
            assert r.status_code == 503
        refused = await web.events("origin-refused")
        assert len(refused) == 6
        assert any("POST /v1/calls/call_nope/hangup" in e["detail"] for e in refused)


# -- docs, metrics, the events route ---------------------------------------------------------


async def test_docs_are_off_unless_asked(tmp_path: Path) -> None:
    async with serve(tmp_path) as web, web.client() as c:
        assert (await c.get("/docs")).status_code == 404
        assert (await c.get("/redoc")).status_code == 404
        assert (await c.get("/openapi.json")).status_code == 200
    async with serve(tmp_path, docs=True) as web, web.client() as c:
        assert (await c.get("/docs")).status_code == 200


async def test_metrics_can_be_keyed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(os.environ, "RTB_SCRAPE_KEY", "scrape-only-key")
    async with serve(tmp_path, metrics_auth="key", metrics_key_env="RTB_SCRAPE_KEY") as web:
        async with web.client() as c:
            assert (await c.get("/metrics")).status_code == 401
            bad = await c.get("/metrics", headers={"Authorization": "Bearer nope"})
            assert bad.status_code == 401
            assert (await c.get("/metrics", headers=AUTH)).status_code == 200
            scrape = {"Authorization": "Bearer scrape-only-key"}
            assert (await c.get("/metrics", headers=scrape)).status_code == 200
            assert (await c.get("/v1/calls", headers=scrape)).status_code == 401  # scrape only
        assert len(await web.events("auth-failure")) == 2
    async with serve(tmp_path) as web, web.client() as c:  # the default: open
        assert (await c.get("/metrics")).status_code == 200


async def test_the_events_route_needs_the_key_and_filters(web: Web) -> None:
    security = web.app.state.security
    security.record("auth-failure", source="198.51.100.1:5060", detail="digest")
    security.record("foreign-rtp", source="198.51.100.2:4000", detail="one packet")
    async with web.client() as c:
        assert (await c.get("/v1/security/events")).status_code == 401
        r = await c.get("/v1/security/events", headers=AUTH)
        body = r.json()
        assert [e["kind"] for e in body["data"]] == ["foreign-rtp", "auth-failure"]
        assert body["counts"]["foreign-rtp"] == 1 and body["last_seq"] == 2
        only = await c.get("/v1/security/events?kind=auth-failure&limit=5", headers=AUTH)
        assert [e["source"] for e in only.json()["data"]] == ["198.51.100.1:5060"]
        newer = await c.get("/v1/security/events?after_seq=1", headers=AUTH)
        assert [e["seq"] for e in newer.json()["data"]] == [2]
        bad = await c.get("/v1/security/events?kind=nonsense", headers=AUTH)
        assert bad.status_code == 422
