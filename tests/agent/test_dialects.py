"""The agent speaks beta and xAI on the wire (GA inside, translated at the socket edge)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import numpy as np
import pytest
from websockets.asyncio.client import connect

from bridge.agent import LocalAgent
from bridge.config import AgentSettings, Dialect
from media import g711
from tests.agent.conftest import Client
from tests.support.audio import best_correlation, voiced_signal


async def _agent(dialect: Dialect, **kw: float) -> AsyncIterator[LocalAgent]:
    settings = AgentSettings(port=0, dialect=dialect)
    async with LocalAgent(settings, chunk_interval_s=0.005, **kw) as agent:
        yield agent


@pytest.fixture
async def beta_agent() -> AsyncIterator[LocalAgent]:
    async for a in _agent(Dialect.BETA):
        yield a


@pytest.fixture
async def xai_agent() -> AsyncIterator[LocalAgent]:
    async for a in _agent(Dialect.XAI, ping_interval_s=0.05):
        yield a


def _audio(events: list[dict[str, object]], name: str) -> bytes:
    return b"".join(base64.b64decode(str(e["delta"])) for e in events if e["type"] == name)


async def test_beta_dialect_parrot(beta_agent: LocalAgent) -> None:
    async with connect(beta_agent.url, additional_headers={"OpenAI-Beta": "realtime=v1"}) as ws:
        c = Client(ws)
        created = await c.recv()
        assert created["type"] == "session.created"
        assert created["session"]["input_audio_format"] == "pcm16"
        assert "audio" not in created["session"]
        assert (await c.recv())["type"] == "conversation.created"
        await c.send(
            {
                "type": "session.update",
                "session": {
                    "input_audio_format": "g711_ulaw",
                    "output_audio_format": "g711_ulaw",
                    "turn_detection": {"type": "server_vad", "silence_duration_ms": 300},
                },
            }
        )
        updated = (await c.until("session.updated", "error"))[-1]
        assert updated["type"] == "session.updated", updated
        assert updated["session"]["input_audio_format"] == "g711_ulaw"
        utterance = voiced_signal(0.8, rate=8000)
        await c.append_bytes(
            g711.ulaw_encode(np.concatenate([utterance, np.zeros(8000, np.int16)])), 160
        )
        events = await c.until("response.done")
        types = [e["type"] for e in events]
        assert "conversation.item.created" in types
        assert "response.audio.delta" in types
        assert "response.audio_transcript.done" in types
        assert "response.output_audio.delta" not in types
        got = g711.ulaw_decode(_audio(events, "response.audio.delta"))
        assert best_correlation(utterance, got) > 0.9
    record = beta_agent.sessions[0]
    assert record.dialect == "beta"
    assert record.session["audio"]["input"]["format"] == {"type": "audio/pcmu"}


async def test_xai_dialect_ready_signal_pings_and_parrot(xai_agent: LocalAgent) -> None:
    async with connect(xai_agent.url) as ws:
        c = Client(ws)
        first = await c.recv()
        assert first["type"] == "conversation.created"
        assert first["conversation"]["id"].startswith("conv_")
        await c.send(
            {
                "type": "session.update",
                "session": {
                    "voice": "Ara",
                    "turn_detection": {"type": "server_vad"},
                    "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}}},
                },
            }
        )
        updated = (await c.until("session.updated", "error"))[-1]
        assert updated["type"] == "session.updated", updated
        assert updated["session"]["voice"] == "ara"
        utterance = voiced_signal(0.8)
        await c.append_pcm(np.concatenate([utterance, np.zeros(24000, np.int16)]))
        events = await c.until("response.done")
        got = np.frombuffer(_audio(events, "response.output_audio.delta"), "<i2")
        assert best_correlation(utterance, got) > 0.9
        await c.until("ping")
    assert xai_agent.sessions[0].sent_types[:2] == ["conversation.created", "session.created"]
