"""The dashboard's streams over a live SIPp call, without a browser: the overview stream tells
``offered`` -> ``answered`` -> ``stats`` (with the call's jitter, loss and levels, and the fleet
view's buckets) -> ``ended`` with the end reason; a call's stream replays its log (the agent's
greeting transcript) and ends with the record; unknown calls are 404. A browser call shows up,
with level meters, and goes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.apikeys import ServerKey
from bridge.app import create_app
from bridge.webrtc.peer import ClientPeer
from tests.calls import sipp_scenario as sc
from tests.calls.conftest import Stack, stack, stack_options  # noqa: F401 (fixtures)
from tests.sip.sipp_support import free_port, run_sipp
from tests.support.peers import require_peer
from tests.support.servers import run_app
from tests.webrtc.conftest import KEY as WEBRTC_KEY
from tests.webrtc.conftest import (  # noqa: F401 (fixtures)
    Bridge,
    agent_dialect,
    agent_kwargs,
    agent_settings,
    bridge,
    webrtc_options,
)

KEY = "rtb_dashboard_stream_key"
AUTH = {"Authorization": f"Bearer {KEY}"}
WEBRTC_AUTH = {"Authorization": f"Bearer {WEBRTC_KEY}"}


@pytest.fixture
def stack_options() -> dict[str, Any]:  # noqa: F811
    return {"profile": {"greeting": "Hello"}}


async def sse(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """(event, data) pairs of a server-sent-event stream."""
    event, data = "message", []
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif not line and data:
            yield event, json.loads("\n".join(data))
            event, data = "message", []


@pytest.mark.peer("sipp")
async def test_overview_and_call_streams_follow_a_sipp_call(
    stack: Stack,  # noqa: F811
    tmp_path: Path,
) -> None:
    sipp = require_peer("sipp")
    app = create_app(stack.settings, ServerKey(KEY))
    app.state.manager = stack.manager
    app.state.store = stack.store
    scenario = tmp_path / "caller.xml"
    scenario.write_text(sc.uac(sc.pause(2500), sc.send_bye(2)))
    seen: list[tuple[str, Any]] = []
    async with run_app(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        async with client.stream("GET", "/dashboard/api/stream", headers=AUTH) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            events = sse(r)
            kind, snap = await anext(events)
            assert kind == "snapshot" and snap["calls"] == [] and snap["recent"] == []
            fleet = snap["fleet"]  # the fleet view's hour: only the open bucket so far
            assert fleet["bucket_s"] == 10.0 and len(fleet["buckets"]) == 1
            assert fleet["buckets"][0]["answered"] == 0
            assert "auth-failure" in fleet["security_kinds"]  # the chart's series: every kind
            sipp_task = asyncio.create_task(
                run_sipp(
                    sipp,
                    "-sf",
                    str(scenario),
                    "-m",
                    "1",
                    "-p",
                    str(free_port()),
                    "-mp",
                    str(free_port()),
                    f"127.0.0.1:{stack.sip_port}",
                    cwd=tmp_path,
                )
            )
            async with asyncio.timeout(30):
                async for kind, data in events:
                    seen.append((kind, data))
                    if kind == "ended":
                        break
            res = await sipp_task
            assert res.returncode == 0, res.summary()

        kinds = [k for k, _ in seen if k != "stats"]
        assert kinds == ["offered", "answered", "ended"], kinds
        offered, answered, ended = (d for k, d in seen if k != "stats")
        call_id = offered["id"]
        assert offered["direction"] == "inbound" and offered["from"].startswith("sip:sipp@")
        assert answered["id"] == call_id and answered["codec"] == "PCMU"
        assert ended["id"] == call_id and ended["end_reason"] == "remote-bye"
        ticks = [d["calls"][call_id] for k, d in seen if k == "stats" and call_id in d["calls"]]
        assert ticks, "no stats tick while the call was up"
        for tick in ticks:
            assert tick["jitter_ms"] is not None and tick["loss_pct"] == 0.0
            assert tick["level_out"] is not None  # we send the agent's audio (or silence)
        # the fleet buckets each tick carries: the call set up, live, no failure
        buckets: dict[float, dict[str, Any]] = {}
        for k, d in seen:
            if k == "stats":
                buckets.update({b["t"]: b for b in d["fleet"]})
        assert sum(b["answered"] for b in buckets.values()) == 1, buckets
        assert max(b["active"] for b in buckets.values()) == 1, buckets
        assert sum(b["failed"] for b in buckets.values()) == 0, buckets

        async with client.stream(
            "GET", f"/dashboard/api/calls/{call_id}/stream", headers=AUTH
        ) as r:
            assert r.status_code == 200
            detail = [item async for item in sse(r)]
        assert [k for k, _ in detail] == ["log", "ended"]
        log = detail[0][1]
        assert log[0]["kind"] == "answered"
        agent_said = [e["data"]["text"] for e in log if e["kind"] == "transcript.agent"]
        assert agent_said and agent_said[0].startswith("tones")  # the greeting
        assert detail[1][1]["end_reason"] == "remote-bye"

        unknown = await client.get("/dashboard/api/calls/call_nope/stream", headers=AUTH)
        assert unknown.status_code == 404
        assert unknown.json()["error"]["param"] == "call_id"


async def test_a_browser_call_appears_and_disappears_too(bridge: Bridge) -> None:  # noqa: F811
    """Browser calls publish no lifecycle events; the stream's tick finds them anyway."""
    peer = ClientPeer()
    async with (
        httpx.AsyncClient(base_url=bridge.url, timeout=30) as client,
        client.stream("GET", "/dashboard/api/stream", headers=WEBRTC_AUTH) as r,
    ):
        events = sse(r)
        kind, _ = await anext(events)
        assert kind == "snapshot"
        try:
            created = await client.post(
                "/v1/realtime/calls",
                content=await peer.offer(),
                headers={**WEBRTC_AUTH, "Content-Type": "application/sdp"},
            )
            assert created.status_code == 201
            call_id = created.headers["location"].rsplit("/", 1)[-1]
            await peer.accept(created.text)
            async with asyncio.timeout(20):
                async for kind, data in events:
                    if kind == "answered" and data["id"] == call_id:
                        assert data["leg"] == "webrtc"
                        break
            # its meters: the browser leg measures levels too (the agent's silence, at least)
            async with asyncio.timeout(20):
                async for kind, data in events:
                    tick = data["calls"].get(call_id) if kind == "stats" else None
                    if tick is not None and tick["level_out"] is not None:
                        break
            hangup = await client.post(f"/v1/calls/{call_id}/hangup", headers=WEBRTC_AUTH)
            assert hangup.status_code == 200
            async with asyncio.timeout(20):
                async for kind, data in events:
                    if kind == "ended" and data["id"] == call_id:
                        assert data["end_reason"] == "api-hangup"
                        break
        finally:
            await peer.close()
