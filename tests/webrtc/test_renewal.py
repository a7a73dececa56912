"""A browser call outlives its agent's upstream sessions: the local agent ends every session
after 2.5 s the way its dialect does; the browser sees exactly one ``rtbridge.session_renewed``
per renewal on its data channel (and nothing of the upstream's own end-of-session events), the
event log records each, and the parrot still answers on the media track afterwards."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from bridge.webrtc.peer import ClientPeer
from media.resample import Resampler
from tests.support.audio import best_correlation, voiced_signal
from tests.webrtc.conftest import Bridge, place_call


@pytest.fixture
def agent_settings() -> dict[str, Any]:
    return {"session_max_s": 2.5}


@pytest.fixture(params=["ga", "gemini", "gpt-live"])
def agent_dialect(request: pytest.FixtureRequest) -> str:
    dialect: str = request.param
    return dialect


async def test_a_browser_call_through_two_renewals(bridge: Bridge, agent_dialect: str) -> None:
    peer = ClientPeer()
    try:
        call_id = await place_call(bridge, peer)
        async with asyncio.timeout(20):
            await peer.wait_event("session.created")
            while sum(e["type"] == "rtbridge.session_renewed" for e in peer.events) < 2:
                await asyncio.sleep(0.05)
        utterance = voiced_signal(1.2, seed=7)
        r48 = Resampler(24000, 48000)
        sent = np.concatenate([r48.process(utterance), r48.flush()])
        mark = len(peer.events)
        heard_from = len(peer.heard)
        peer.mic.play(sent)
        async with asyncio.timeout(30):
            await peer.wait_event("output_audio_buffer.stopped", after=mark)
        assert best_correlation(sent[2400:-2400], peer.heard[heard_from:]) > 0.75
        kinds = [e["type"] for e in peer.events]
        renewed = [e for e in peer.events if e["type"] == "rtbridge.session_renewed"]
        if agent_dialect == "gemini":  # told beforehand: the next session was ready in time
            assert {e["cause"] for e in renewed} == {"going_away"}
            assert {e["gap_ms"] for e in renewed} == {0}
        else:
            assert {(e["how"], e["cause"]) for e in renewed} == {("replayed", "session_expired")}
        assert not [k for k in kinds if k.startswith("rtbridge.upstream.") or k == "error"], [
            e for e in peer.events if e["type"].startswith("rtbridge.upstream")
        ]
    finally:
        await peer.close()
    async with asyncio.timeout(20):
        while call_id in bridge.manager.calls:
            await asyncio.sleep(0.05)
    bridge.store.flush()
    logged = [e.data for e in bridge.store.events(call_id) if e.kind == "session.renewed"]
    assert len(logged) == len(renewed)  # one each: the channel's and the log's
    assert [e["gap_ms"] for e in logged] == [e["gap_ms"] for e in renewed]
