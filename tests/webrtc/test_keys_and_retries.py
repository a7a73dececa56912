"""Ephemeral keys and call creation rules: only the server key mints, lifetimes are bounded,
unknown or expired keys get 401, and a retried POST of the same offer creates one call."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest
from openai import AsyncOpenAI
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from bridge.webrtc.ephemeral import EphemeralKeys
from bridge.webrtc.peer import ClientPeer
from media.clock import VirtualClock
from tests.webrtc.conftest import KEY, Bridge


def _sdk(bridge: Bridge, key: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{bridge.url}/v1", api_key=key, max_retries=0)


async def test_only_the_server_key_mints(bridge: Bridge) -> None:
    secret = await _sdk(bridge, KEY).realtime.client_secrets.create()
    assert secret.value.startswith("ek_")
    assert secret.expires_at > 0
    with pytest.raises(openai.PermissionDeniedError):
        await _sdk(bridge, secret.value).realtime.client_secrets.create()
    with pytest.raises(openai.AuthenticationError):
        await _sdk(bridge, "ek_unknown").realtime.client_secrets.create()
    with pytest.raises(openai.AuthenticationError):
        await _sdk(bridge, "rtb_wrong").realtime.client_secrets.create()


@pytest.mark.parametrize("seconds", [5, 7201])
async def test_lifetime_out_of_range_is_refused(bridge: Bridge, seconds: int) -> None:
    with pytest.raises(openai.BadRequestError):
        await _sdk(bridge, KEY).realtime.client_secrets.create(
            expires_after={"anchor": "created_at", "seconds": seconds}
        )


async def test_default_lifetime_is_600_s(bridge: Bridge) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.post(
            f"{bridge.url}/v1/realtime/client_secrets",
            headers={"Authorization": f"Bearer {KEY}"},
            json={"session": {"type": "realtime"}},
        )
    body = r.json()
    assert r.status_code == 200
    assert body["session"]["expires_at"] == body["expires_at"]
    key = bridge.app_state.webrtc.keys.lookup(body["value"])
    assert key is not None and key.expires_at - key.created_at == 600


async def test_unknown_and_expired_keys_get_401(bridge: Bridge) -> None:
    clock = VirtualClock(epoch=1_800_000_000.0)
    bridge.app_state.webrtc.keys = EphemeralKeys(clock)
    secret = await _sdk(bridge, KEY).realtime.client_secrets.create(
        expires_after={"anchor": "created_at", "seconds": 10}
    )
    peer = ClientPeer()
    try:
        offer = await peer.offer()
        with pytest.raises(openai.AuthenticationError):
            await _sdk(bridge, "ek_never_minted").realtime.calls.create(sdp=offer)
        clock.advance(10)
        with pytest.raises(openai.AuthenticationError):
            await _sdk(bridge, secret.value).realtime.calls.create(sdp=offer)
        assert not bridge.manager.calls
        assert not bridge.agent.sessions  # nothing was opened upstream
    finally:
        await peer.close()


async def test_retried_post_creates_one_call(bridge: Bridge) -> None:
    peer = ClientPeer()
    try:
        offer = await peer.offer()
        headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/sdp"}
        async with httpx.AsyncClient(timeout=30) as http:
            url = f"{bridge.url}/v1/realtime/calls"
            # two attempts in flight at once, then a late retry
            first, second = await asyncio.gather(
                http.post(url, content=offer, headers=headers),
                http.post(url, content=offer, headers=headers),
            )
            third = await http.post(url, content=offer, headers=headers)
        assert first.status_code == second.status_code == third.status_code == 201
        assert first.headers["location"] == second.headers["location"] == third.headers["location"]
        assert first.text == second.text == third.text
        assert first.headers["content-type"].startswith("application/sdp")
        assert len(bridge.manager.calls) == 1
        assert len(bridge.agent.sessions) == 1
        await peer.accept(first.text)
        async with asyncio.timeout(20):
            await peer.wait_event("session.created")
    finally:
        await peer.close()


async def test_cors_exposes_location(bridge: Bridge) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.options(
            f"{bridge.url}/v1/realtime/calls",
            headers={
                "Origin": "http://localhost:5173",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] in ("*", "http://localhost:5173")
        r = await http.post(
            f"{bridge.url}/v1/realtime/calls",
            headers={"Origin": "http://localhost:5173", "Authorization": "Bearer ek_nope"},
            content=b"v=0",
        )
        assert r.status_code == 401
        assert "location" in r.headers["access-control-expose-headers"].lower()


async def test_offer_without_audio_or_ice_is_refused(bridge: Bridge) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.post(
            f"{bridge.url}/v1/realtime/calls",
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/sdp"},
            content=b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n",
        )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_sdp"
    assert not bridge.manager.calls


async def test_browser_key_on_the_websocket_relay(bridge: Bridge) -> None:
    """A browser's WebSocket transport authenticates with its ``ek_`` key as a subprotocol;
    the key's bound session is applied before the client's first event."""
    secret = await _sdk(bridge, KEY).realtime.client_secrets.create(
        session={"type": "realtime", "instructions": "From the key."}
    )
    # the relay's upstream is the profile's agent here
    bridge.app_state.upstream_settings = bridge.settings.profiles["default"].upstream
    url = bridge.url.replace("http://", "ws://") + "/v1/realtime?model=gpt-realtime"
    protocols = [Subprotocol("realtime"), Subprotocol(f"openai-insecure-api-key.{secret.value}")]
    async with connect(url, subprotocols=protocols) as ws:
        assert ws.subprotocol == "realtime"
        async with asyncio.timeout(10):
            while True:
                event = json.loads(await ws.recv())
                if event["type"] == "session.updated":
                    break
        assert event["session"]["instructions"] == "From the key."
    assert bridge.agent.sessions[-1].instructions == "From the key."
    with pytest.raises(InvalidStatus, match="401"):
        async with connect(url, subprotocols=[protocols[0], "openai-insecure-api-key.ek_nope"]):
            pass


async def test_a_browser_key_opens_the_model_it_was_minted_for(bridge: Bridge) -> None:
    """The relay's upstream session is opened for the key's model, whatever model the
    browser's URL names (before: a browser could pick a dearer model than its backend)."""
    secret = await _sdk(bridge, KEY).realtime.client_secrets.create(
        session={"type": "realtime", "model": "gpt-realtime-mini"}
    )
    bridge.app_state.upstream_settings = bridge.settings.profiles["default"].upstream
    url = bridge.url.replace("http://", "ws://") + "/v1/realtime?model=gpt-realtime-expensive"
    protocols = [Subprotocol("realtime"), Subprotocol(f"openai-insecure-api-key.{secret.value}")]
    async with connect(url, subprotocols=protocols) as ws:
        async with asyncio.timeout(10):
            while json.loads(await ws.recv())["type"] != "session.created":
                pass
    assert bridge.agent.sessions[-1].query.get("model") == "gpt-realtime-mini"


async def test_draining_refuses_new_calls_with_retry_after(bridge: Bridge) -> None:
    bridge.manager.draining = True
    peer = ClientPeer()
    try:
        offer = await peer.offer()
        async with httpx.AsyncClient() as http:
            r = await http.post(
                f"{bridge.url}/v1/realtime/calls",
                content=offer,
                headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/sdp"},
            )
        assert r.status_code == 503
        assert r.headers["retry-after"] == str(bridge.settings.calls.retry_after_s)
        assert not bridge.agent.sessions  # refused before any upstream session was opened
        # the refusal is not remembered: once the drain is over, the same offer gets a call
        bridge.manager.draining = False
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.post(
                f"{bridge.url}/v1/realtime/calls",
                content=offer,
                headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/sdp"},
            )
        assert r.status_code == 201
    finally:
        await peer.close()


def _multipart(*parts: tuple[str, str | None, bytes]) -> bytes:
    """A multipart/form-data body with boundary ``x``: (name, filename or None, bytes)."""
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += b"--x\r\nContent-Disposition: " + disposition.encode() + b"\r\n\r\n" + data + b"\r\n"
    return out + b"--x--\r\n"


def _nested(depth: int) -> bytes:
    """A session object ``depth`` levels deep."""
    return b'{"type": "realtime", "x": ' + b'{"x": ' * (depth - 2) + b"{}" + b"}" * (depth - 1)


async def test_malformed_session_parts_are_400_in_the_error_shape(bridge: Bridge) -> None:
    """A browser key's holder sending a session part that is not UTF-8, nested too deep for
    Python's parser (100,000 levels) or for the upstream's encoder (300 levels) gets 400
    invalid_json (was 500 text/plain, or for 300 levels a record left offered for ever); an SDP
    file part that is not UTF-8 is read as an application/sdp body is."""
    peer = ClientPeer()
    try:
        sdp = (await peer.offer()).encode()
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.post(
                f"{bridge.url}/v1/realtime/client_secrets",
                headers={"Authorization": f"Bearer {KEY}"},
                json={},
            )
            ek = {"Authorization": f"Bearer {r.json()['value']}"}
            ctype = {"Content-Type": "multipart/form-data; boundary=x"}
            for session in (b"\xff\xfe{}", b"[" * 100_000 + b"]" * 100_000, _nested(300)):
                for filename in (None, "s.json"):
                    body = _multipart(("sdp", None, sdp), ("session", filename, session))
                    r = await http.post(
                        f"{bridge.url}/v1/realtime/calls", content=body, headers=ek | ctype
                    )
                    assert r.status_code == 400, r.text
                    assert r.headers["content-type"] == "application/json"
                    assert r.json()["error"]["code"] == "invalid_json"
                    assert r.json()["error"]["param"] == "session"
            body = _multipart(("sdp", "o.sdp", b"\xff\xfe" + sdp[:40]))
            r = await http.post(f"{bridge.url}/v1/realtime/calls", content=body, headers=ek | ctype)
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_sdp"
        assert not bridge.manager.calls
        bridge.store.flush()
        assert not bridge.store.list_calls(state="setting_up")
        assert not bridge.agent.sessions
    finally:
        await peer.close()


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, _nested(65), b"\xff{}"])
async def test_client_secrets_refuse_unreadable_sessions(bridge: Bridge, body: bytes) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.post(
            f"{bridge.url}/v1/realtime/client_secrets",
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
            content=body,
        )
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"]["code"] == "invalid_json"
    assert r.json()["error"]["type"] == "invalid_request_error"


async def test_a_setup_failure_ends_the_record(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever fails while the agent session opens (here the upstream's encoder refusing a
    session: a bug, not an UpstreamError), the call's record ends and the client gets a 500 in
    the error shape with a reference (was: the record stayed offered for ever)."""
    from bridge.calls.agent_session import AgentSession

    async def refused(self: AgentSession) -> None:
        raise RuntimeError("the encoder refused the session")

    monkeypatch.setattr(AgentSession, "open", refused)
    peer = ClientPeer()
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.post(
                f"{bridge.url}/v1/realtime/calls",
                content=await peer.offer(),
                headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/sdp"},
            )
    finally:
        await peer.close()
    assert r.status_code == 500 and r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert (error["type"], error["code"]) == ("server_error", "server_error")
    assert "ref_" in error["message"] and "encoder" not in error["message"]
    bridge.store.flush()
    (record,) = bridge.store.list_calls()
    assert (record.state, record.end_reason) == ("ended", "internal-error")
