"""A browser (WebRTC) call under the control plane: listed with leg ``webrtc``, counted in
/metrics, announced on the lifecycle stream, not transferable nor holdable (409), hung up
through OpenAI's ``/hangup``."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx

from bridge.webrtc.peer import ClientPeer
from tests.control.conftest import AUTH, Control
from tests.control.test_live_calls import metric


async def test_browser_call_is_managed_like_a_phone_call(control: Control) -> None:
    control.app.state.ice_hosts = ["127.0.0.1"]  # loopback only (aioice never offers it)
    manager, store = control.stack.manager, control.stack.store
    lifecycle: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=control.url, headers=AUTH, timeout=30) as client:

        async def sse() -> None:
            async with client.stream("GET", "/v1/events", timeout=None) as r:
                async for line in r.aiter_lines():
                    if line.startswith("data: "):
                        lifecycle.append(json.loads(line[6:]))

        reader = asyncio.create_task(sse())
        await asyncio.sleep(0.2)
        peer = ClientPeer()
        try:
            offer = await peer.offer()
            r = await client.post(
                "/v1/realtime/calls",
                content=offer.encode(),
                headers={"content-type": "application/sdp"},
            )
            assert r.status_code == 201, r.text
            call_id = r.headers["location"].rsplit("/", 1)[-1]
            await peer.accept(r.text)
            listed = (await client.get("/v1/calls", params={"leg": "webrtc"})).json()["data"]
            assert [c["id"] for c in listed] == [call_id]
            assert listed[0]["state"] == "active"
            assert (await client.get("/v1/calls", params={"leg": "sip"})).json()["data"] == []
            text = (await client.get("/metrics")).text
            assert metric(text, "rtbridge_active_calls", 'leg="webrtc"') == 1
            assert (
                metric(text, "rtbridge_call_setups_total", 'direction="inbound",leg="webrtc"') == 1
            )
            # transfer is for SIP calls only
            r = await client.post(
                f"/v1/calls/{call_id}/transfer", json={"target": "sip:desk@127.0.0.1"}
            )
            assert r.status_code == 409
            # so is hold: a browser call has no re-INVITE to hold it with
            for action in ("hold", "resume"):
                r = await client.post(f"/v1/calls/{call_id}/{action}")
                assert r.status_code == 409, r.text
                assert r.json()["error"]["code"] == "hold_unavailable"
            r = await client.post(f"/v1/realtime/calls/{call_id}/hangup")
            assert r.status_code == 200
            async with asyncio.timeout(15):
                while call_id in manager.calls:
                    await asyncio.sleep(0.05)
                while not any(e["type"] == "call.ended" for e in lifecycle):
                    await asyncio.sleep(0.05)
        finally:
            await peer.close()
        store.flush()
        view = (await client.get(f"/v1/calls/{call_id}")).json()
        assert view["state"] == "ended" and view["end_reason"] == "api-hangup"
        text = (await client.get("/metrics")).text
        assert metric(text, "rtbridge_active_calls", 'leg="webrtc"') == 0
        assert metric(text, "rtbridge_calls_ended_total", 'reason="api-hangup"') == 1
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    mine = [(e["type"], e.get("leg")) for e in lifecycle if e["call_id"] == call_id]
    assert mine == [("call.offered", "webrtc"), ("call.answered", None), ("call.ended", None)]
