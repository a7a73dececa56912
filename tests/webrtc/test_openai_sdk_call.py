"""A browser-style call made with aiortc and the real openai SDK: ``client_secrets.create``
with the server key, ``calls.create`` (multipart) with the ``ek_`` key, then speech in, the
parrot back on the media track, events on the data channel, and a sideband on the same call."""

from __future__ import annotations

import asyncio

import numpy as np
from openai import AsyncOpenAI

from bridge.webrtc.peer import ClientPeer
from media.resample import Resampler
from tests.support.audio import best_correlation, voiced_signal
from tests.webrtc.conftest import KEY, Bridge


def _at_48k(pcm24: np.ndarray) -> np.ndarray:
    r = Resampler(24000, 48000)
    return np.concatenate([r.process(pcm24), r.flush()])


async def test_sdk_call_parrot_data_channel_and_sideband(bridge: Bridge) -> None:
    server = AsyncOpenAI(base_url=f"{bridge.url}/v1", api_key=KEY)
    secret = await server.realtime.client_secrets.create(
        expires_after={"anchor": "created_at", "seconds": 120},
        session={"type": "realtime", "instructions": "Repeat after me."},
    )
    assert secret.value.startswith("ek_")

    peer = ClientPeer()
    try:
        offer = await peer.offer()
        browser = AsyncOpenAI(base_url=f"{bridge.url}/v1", api_key=secret.value)
        resp = await browser.realtime.calls.create(
            sdp=offer, session={"type": "realtime", "model": "gpt-realtime"}
        )
        assert resp.response.status_code == 201
        location = resp.response.headers["location"]
        call_id = location.rsplit("/", 1)[-1]
        assert location == f"/v1/realtime/calls/{call_id}"
        assert call_id in bridge.manager.calls
        await peer.accept(resp.text)

        async with asyncio.timeout(20):
            created = await peer.wait_event("session.created")
        # the key's bound session reached the agent session
        assert created["session"]["instructions"] == "Repeat after me."
        agent_session = bridge.agent.sessions[-1]
        assert agent_session.instructions == "Repeat after me."

        async with server.realtime.connect(call_id=call_id) as sideband:
            first = await asyncio.wait_for(sideband.recv(), 10)
            assert first.type == "session.created"

            utterance = voiced_signal(1.2)
            mark = len(peer.events)
            peer.mic.play(_at_48k(utterance))
            async with asyncio.timeout(30):
                await peer.wait_event("response.done", after=mark)
                await peer.wait_event("output_audio_buffer.stopped", after=mark)
            seen_sideband: list[str] = []
            async with asyncio.timeout(10):
                while "response.done" not in seen_sideband:
                    seen_sideband.append((await sideband.recv()).type)
            assert "input_audio_buffer.speech_started" in seen_sideband
            assert "response.created" in seen_sideband
            assert "response.output_audio.delta" not in seen_sideband  # not asked for

            # the agent heard the caller's speech
            got = agent_session.decoded_pcm
            assert best_correlation(utterance, got) > 0.8
            # the parrot came back on the media track
            heard = peer.heard
            assert best_correlation(_at_48k(utterance)[2400:-2400], heard) > 0.75
            # the data channel carried the call's events, but never audio deltas
            kinds = [e["type"] for e in peer.events]
            assert "response.output_audio_transcript.done" in kinds or "response.done" in kinds
            assert "output_audio_buffer.started" in kinds
            assert "response.output_audio.delta" not in kinds

            # a session.update on the sideband takes effect on the call
            await sideband.session.update(
                session={"type": "realtime", "instructions": "Speak like a pirate."}
            )
            async with asyncio.timeout(10):
                while True:
                    ev = await sideband.recv()
                    if ev.type == "session.updated":
                        break
            assert agent_session.instructions == "Speak like a pirate."
            # the leg kept its audio format
            fmt = agent_session.session["audio"]["input"]["format"]
            assert fmt == {"type": "audio/pcm", "rate": 24000}
            updated = await peer.wait_event("session.updated", after=mark)
            assert updated["session"]["instructions"] == "Speak like a pirate."
    finally:
        await peer.close()
    async with asyncio.timeout(15):
        while call_id in bridge.manager.calls:
            await asyncio.sleep(0.05)
    bridge.store.flush()
    record = bridge.store.get_call(call_id)
    assert record is not None and record.end_reason in ("peer-closed", "datachannel-closed")
