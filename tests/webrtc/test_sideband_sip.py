"""The sideband attaches to a live phone call as well: SIPp calls rtbridge (A-law audio and
the RFC 4733 digit "1"), and an observer on ``/v1/realtime?call_id=`` sees the call's session,
its events and the digit, and a ``session.update`` it sends reaches the agent."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from bridge.apikeys import ServerKey
from bridge.app import create_app
from tests.calls.conftest import Stack, stack, stack_options  # noqa: F401 (fixtures)
from tests.sip.sipp_support import free_port, run_sipp
from tests.support.peers import require_peer
from tests.support.servers import run_app
from tests.webrtc.conftest import KEY


@pytest.mark.peer("sipp")
async def test_sideband_on_a_sip_call(stack: Stack, tmp_path: Path) -> None:  # noqa: F811
    sipp = require_peer("sipp")
    (tmp_path / "pcap").symlink_to("/usr/share/sip-tester")
    app = create_app(stack.settings, ServerKey(KEY))
    app.state.manager = stack.manager
    app.state.store = stack.store
    async with run_app(app) as url:
        caller = asyncio.create_task(
            run_sipp(
                sipp,
                "-sn",
                "uac_pcap",
                f"127.0.0.1:{stack.sip_port}",
                "-m",
                "1",
                "-p",
                str(free_port()),
                "-mp",
                str(free_port()),
                cwd=tmp_path,
                timeout=90,
            )
        )
        async with asyncio.timeout(30):
            while not stack.manager.calls:
                await asyncio.sleep(0.02)
        call_id = next(iter(stack.manager.calls))
        ws_url = url.replace("http://", "ws://") + f"/v1/realtime?call_id={call_id}"
        seen: list[dict[str, Any]] = []
        async with connect(ws_url, additional_headers={"Authorization": f"Bearer {KEY}"}) as ws:
            first = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert first["type"] == "session.created"
            assert first["session"]["audio"]["input"]["format"] == {"type": "audio/pcma"}
            await ws.send(
                json.dumps(
                    {
                        "type": "session.update",
                        "session": {"type": "realtime", "instructions": "Observed."},
                    }
                )
            )
            async with asyncio.timeout(60):
                async for frame in ws:  # until the call ends and the sideband closes
                    seen.append(json.loads(frame))
        res = await caller
        assert res.returncode == 0, res.summary()
    kinds = [e["type"] for e in seen]
    assert "session.updated" in kinds
    assert "input_audio_buffer.speech_started" in kinds
    digits = [e for e in seen if e["type"] == "input_audio_buffer.dtmf_event_received"]
    assert digits and digits[0]["event"] == "1"
    assert stack.agent.sessions[0].instructions == "Observed."
    # the leg kept its format: the observer's update did not change it
    assert stack.agent.sessions[0].session["audio"]["input"]["format"] == {"type": "audio/pcma"}
