"""A browser call to an upstream that speaks another dialect (OpenAI beta, xAI, Azure, Gemini
Live, GPT-Live): the data channel still carries GA events both ways, and the parrot still comes
back on the track. A mid-session ``session.update`` the upstream cannot take (Gemini and
GPT-Live fix the instructions at the start) is refused with an error that says so."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from bridge.config import Dialect
from bridge.realtime.dialects import CAPABILITIES
from bridge.webrtc.peer import ClientPeer
from media.resample import Resampler
from tests.support.audio import best_correlation, voiced_signal
from tests.webrtc.conftest import Bridge, place_call


@pytest.fixture(params=["beta", "xai", "azure", "gemini", "gpt-live"])
def agent_dialect(request: pytest.FixtureRequest) -> str:
    dialect: str = request.param
    return dialect


async def test_browser_call_to_a_translated_upstream(bridge: Bridge, agent_dialect: str) -> None:
    peer = ClientPeer()
    try:
        await place_call(bridge, peer)
        async with asyncio.timeout(20):
            await peer.wait_event("session.created")
        # a GA session.update from the browser reaches the upstream in its dialect
        peer.send(
            {"type": "session.update", "session": {"type": "realtime", "instructions": "Echo."}}
        )
        mutable = CAPABILITIES[Dialect(agent_dialect)].mutable_session
        if mutable is None or "instructions" in mutable:
            async with asyncio.timeout(20):  # (xAI also reports its late session.created as one)
                index = 0
                while True:
                    updated = await peer.wait_event("session.updated", after=index)
                    if updated["session"].get("instructions") == "Echo.":
                        break
                    index = peer.events.index(updated) + 1
            assert bridge.agent.sessions[-1].instructions == "Echo."
        else:  # fixed at the start: refused, with the field named, never silently dropped
            async with asyncio.timeout(20):
                error = await peer.wait_event("error")
            assert error["error"]["code"] == "session_update_not_applied"
            assert "instructions" in error["error"]["message"]
            assert bridge.agent.sessions[-1].instructions != "Echo."
        assert bridge.agent.sessions[-1].dialect == agent_dialect

        utterance = voiced_signal(1.2)
        r48 = Resampler(24000, 48000)
        sent = np.concatenate([r48.process(utterance), r48.flush()])
        mark = len(peer.events)
        peer.mic.play(sent)
        async with asyncio.timeout(30):
            await peer.wait_event("output_audio_buffer.stopped", after=mark)
        kinds = {e["type"] for e in peer.events}
        assert "response.output_audio_transcript.done" in kinds  # GA names on the channel
        assert not kinds & {"response.audio_transcript.done", "response.audio.done"}
        assert "response.output_audio.delta" not in kinds
        assert best_correlation(sent[2400:-2400], peer.heard) > 0.75
    finally:
        await peer.close()
