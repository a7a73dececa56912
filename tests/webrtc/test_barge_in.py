"""Barge-in on a browser call: the caller talks over the parrot; rtbridge flushes its playout,
tells the browser (``output_audio_buffer.cleared``) and truncates the agent's item at what was
actually sent, as on phone calls (the same call control)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from bridge.webrtc.peer import ClientPeer
from media.resample import Resampler
from tests.support.audio import voiced_signal
from tests.webrtc.conftest import Bridge, place_call


def _at_48k(pcm: np.ndarray) -> np.ndarray:
    r = Resampler(24000, 48000)
    return np.concatenate([r.process(pcm), r.flush()])


async def test_talking_over_the_agent_clears_and_truncates(bridge: Bridge) -> None:
    peer = ClientPeer()
    try:
        await place_call(bridge, peer)
        async with asyncio.timeout(20):
            await peer.wait_event("session.created")
        peer.mic.play(_at_48k(voiced_signal(3.0, seed=3)))  # a long turn: a long parrot
        async with asyncio.timeout(30):
            started = await peer.wait_event("output_audio_buffer.started")
        await asyncio.sleep(0.8)  # let the caller hear part of it
        mark = len(peer.events)
        peer.mic.play(_at_48k(voiced_signal(1.0, seed=4)))  # and talk over it
        async with asyncio.timeout(20):
            cleared = await peer.wait_event("output_audio_buffer.cleared", after=mark)
        assert cleared["response_id"] == started["response_id"]
        session = bridge.agent.sessions[-1]
        async with asyncio.timeout(10):
            while not session.truncations:
                await asyncio.sleep(0.05)
        cut = session.truncations[0]
        # what the caller heard: more than nothing, less than the whole 3 s item
        assert 300 <= cut["audio_end_ms"] < 3000
        kinds = [e["type"] for e in peer.events[mark:]]
        assert (
            "output_audio_buffer.stopped" not in kinds[: kinds.index("output_audio_buffer.cleared")]
        )
    finally:
        await peer.close()


@pytest.mark.parametrize(
    ("agent_dialect", "agent_kwargs"),
    [
        ("ga", {}),
        ("azure", {}),
        # Gemini says ``interrupted`` only while it is still generating: the agent speaks in
        # real time here, as Gemini does, rather than five times faster
        ("gemini", {"chunk_interval_s": 0.1}),
        # GPT-Live has no truncate: its translator cuts the transcript at what was played
        ("gpt-live", {}),
    ],
)
async def test_a_barge_in_leaves_the_heard_transcript_in_the_event_log(
    bridge: Bridge, agent_dialect: str
) -> None:
    peer = ClientPeer()
    try:
        call_id = await place_call(bridge, peer)
        async with asyncio.timeout(20):
            await peer.wait_event("session.created")
        peer.mic.play(_at_48k(voiced_signal(3.0, seed=3)))
        async with asyncio.timeout(30):
            await peer.wait_event("output_audio_buffer.started")
        await asyncio.sleep(0.8)
        mark = len(peer.events)
        peer.mic.play(_at_48k(voiced_signal(1.0, seed=4)))
        async with asyncio.timeout(20):
            await peer.wait_event("output_audio_buffer.cleared", after=mark)
        async with asyncio.timeout(10):
            while True:
                bridge.store.flush()
                cut = [
                    e.data
                    for e in bridge.store.events(call_id)
                    if e.kind == "conversation.item.truncated"
                ]
                if cut:
                    break
                await asyncio.sleep(0.05)
        (entry,) = cut
        said = bridge.agent.sessions[-1].responses[0].transcript  # "parrot: 3xxx ms"
        assert 300 <= entry["audio_end_ms"] < 3000
        # what the caller heard: what the agent said up to the cut (the local agent sends a
        # word of transcript with each of its first 100 ms chunks, so by 300 ms all of it)
        assert entry["transcript"] and said.startswith(entry["transcript"])
        kinds = [e.kind for e in bridge.store.events(call_id)]
        assert kinds.count("conversation.item.truncated") == 1
        # the call's log holds when the caller spoke (the dashboard's timeline draws it) beside
        # the cut it caused (whether a dialect says when speech stopped is its own affair)
        assert "input_audio_buffer.speech_started" in kinds, kinds
        assert "output_audio_buffer.cleared" in kinds, kinds
    finally:
        await peer.close()
