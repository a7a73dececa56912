"""How browser calls end: never connected (ICE), hung up through the control plane, the
browser leaving; and who may use the demo page's key minting."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from bridge.apikeys import ServerKey
from bridge.app import create_app
from bridge.config import Settings
from bridge.webrtc.peer import ClientPeer
from tests.webrtc.conftest import KEY, Bridge


@pytest.fixture
def webrtc_options() -> dict[str, Any]:
    return {"connect_timeout_s": 1.5}


async def _post_offer(bridge: Bridge, peer: ClientPeer) -> httpx.Response:
    offer = await peer.offer()
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(
            f"{bridge.url}/v1/realtime/calls",
            content=offer,
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/sdp"},
        )


async def _ended(bridge: Bridge, call_id: str) -> str | None:
    async with asyncio.timeout(20):
        while call_id in bridge.manager.calls:
            await asyncio.sleep(0.05)
    bridge.store.flush()
    record = bridge.store.get_call(call_id)
    assert record is not None
    return record.end_reason


async def test_a_call_that_never_connects_ends(bridge: Bridge) -> None:
    peer = ClientPeer()
    try:
        r = await _post_offer(bridge, peer)  # the answer is never applied
        assert r.status_code == 201
        call_id = r.headers["location"].rsplit("/", 1)[-1]
        assert await _ended(bridge, call_id) in ("ice-timeout", "ice-failed")
        async with asyncio.timeout(5):  # the agent session was released with it
            while not bridge.agent.sessions[-1].closed:
                await asyncio.sleep(0.05)
    finally:
        await peer.close()


async def test_hangup_through_the_control_plane(bridge: Bridge) -> None:
    peer = ClientPeer()
    try:
        r = await _post_offer(bridge, peer)
        call_id = r.headers["location"].rsplit("/", 1)[-1]
        await peer.accept(r.text)
        async with asyncio.timeout(20):
            await peer.wait_event("session.created")
        async with httpx.AsyncClient() as http:
            listed = await http.get(
                f"{bridge.url}/v1/calls", headers={"Authorization": f"Bearer {KEY}"}
            )
            assert any(c["id"] == call_id and c["leg"] == "webrtc" for c in listed.json()["data"])
            # the control plane drives a browser call like a phone call
            mark = len(peer.events)
            said = await http.post(
                f"{bridge.url}/v1/calls/{call_id}/say",
                headers={"Authorization": f"Bearer {KEY}"},
                json={"text": "Hello from the operator.", "role": "user"},
            )
            assert said.status_code == 200
            async with asyncio.timeout(20):
                await peer.wait_event("response.done", after=mark)
            hung = await http.post(
                f"{bridge.url}/v1/realtime/calls/{call_id}/hangup",
                headers={"Authorization": f"Bearer {KEY}"},
            )
        assert hung.status_code == 200
        assert await _ended(bridge, call_id) == "api-hangup"
        async with asyncio.timeout(10):  # the browser side learns it: its channel closes
            while peer.channel.readyState != "closed":
                await asyncio.sleep(0.05)
    finally:
        await peer.close()


def _asgi(app: Any, host: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(host, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080")


@pytest.mark.parametrize(
    ("host", "status"), [("127.0.0.1", 200), ("::1", 200), ("203.0.113.9", 401)]
)
async def test_demo_page_mints_without_the_key_only_on_loopback(host: str, status: int) -> None:
    app = create_app(Settings(), ServerKey(KEY))
    async with _asgi(app, host) as http:
        page = await http.get("/")
        assert page.status_code == 200 and "oai-events" in page.text
        # the page's own fetch: same origin (the cross-origin cases: tests/security)
        r = await http.post("/demo/client_secret", headers={"Origin": "http://127.0.0.1:8080"})
        assert r.status_code == status
        if status == 200:
            assert r.json()["value"].startswith("ek_")
        # with the server key anyone may mint, as any backend would
        r = await http.post(
            "/v1/realtime/client_secrets",
            headers={"Authorization": f"Bearer {KEY}"},
            json={"session": {"type": "realtime"}},
        )
        assert r.status_code == 200


async def test_demo_page_can_be_switched_off() -> None:
    app = create_app(Settings.model_validate({"webrtc": {"demo": False}}), ServerKey(KEY))
    async with _asgi(app, "127.0.0.1") as http:
        assert (await http.get("/")).status_code == 404
        assert (await http.post("/demo/client_secret")).status_code == 404
