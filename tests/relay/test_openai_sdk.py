"""The real openai SDK talks to ``rtbridge serve`` and hears its own voice back (the parrot).

Runs the actual command line: ``rtbridge serve`` with its in-process local agent (GA), and
``rtbridge serve --upstream`` in front of ``rtbridge agent --dialect beta|xai|azure|gemini|
gpt-live``, so dialect translation (and, for Gemini and GPT-Live, the GA lifecycle rtbridge makes
for them) is proven end to end with the SDK a user would use.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from openai import AsyncOpenAI

from bridge.agent.server import dialect_path
from bridge.config import Dialect
from tests.support.audio import best_correlation, voiced_signal
from tests.support.procs import run_rtbridge
from tests.support.servers import free_port

KEY = "rtb_sdk_test_key"


@pytest.fixture(params=["ga", "beta", "xai", "azure", "gemini", "gpt-live"])
async def service(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    env = {"RTBRIDGE_API_KEY": KEY, "XDG_DATA_HOME": str(tmp_path)}
    dialect = request.param
    if dialect == "ga":
        async with run_rtbridge("serve", "--http-port", str(free_port()), env=env) as url:
            yield url, dialect
        return
    agent_port = free_port()
    path = dialect_path(Dialect(dialect))
    async with (
        run_rtbridge("agent", "--port", str(agent_port), "--dialect", dialect, env=env),
        run_rtbridge(
            "serve",
            "--http-port",
            str(free_port()),
            "--upstream",
            f"ws://127.0.0.1:{agent_port}{path}",
            "--upstream-dialect",
            dialect,
            env=env,
        ) as url,
    ):
        yield url, dialect


async def test_parrot_round_trip_through_openai_sdk(service: tuple[str, str]) -> None:
    url, dialect = service
    client = AsyncOpenAI(base_url=f"{url}/v1", api_key=KEY)
    utterance = voiced_signal(1.2)
    silence = np.zeros(24000 * 2, dtype=np.int16)
    received = bytearray()
    seen: list[str] = []
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.session.update(
            session={
                "type": "realtime",
                "instructions": "Repeat after me.",
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": 24000},
                        "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
                    },
                    "output": {"format": {"type": "audio/pcm", "rate": 24000}},
                },
            }
        )
        async with asyncio.timeout(60):
            async for event in conn:
                seen.append(event.type)
                if event.type == "session.updated":
                    break
            pcm = np.concatenate([utterance, silence]).tobytes()
            for i in range(0, len(pcm), 960):  # 20 ms appends
                await conn.input_audio_buffer.append(
                    audio=base64.b64encode(pcm[i : i + 960]).decode()
                )
            async for event in conn:
                seen.append(event.type)
                if event.type == "response.output_audio.delta":
                    received += base64.b64decode(event.delta)
                elif event.type == "response.done":
                    break
    assert seen[0] == "session.created"
    # Gemini and GPT-Live report no speech events of their own (only a barge-in's, made by
    # rtbridge); their response lifecycle is rtbridge's
    vad = ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped"]
    lifecycle = [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.output_item.done",
        "response.done",
    ]
    for expected in (*([] if dialect in ("gemini", "gpt-live") else vad), *lifecycle):
        assert expected in seen, (expected, seen)
    assert seen.index("response.created") < seen.index("response.output_audio.delta")
    got = np.frombuffer(bytes(received), dtype=np.int16)
    assert len(got) >= len(utterance) * 0.9
    assert best_correlation(utterance, got) > 0.9
