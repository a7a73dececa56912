"""Fixtures for the local agent tests: a running agent and a plain websockets client."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import orjson
import pytest
from numpy.typing import NDArray
from websockets.asyncio.client import ClientConnection, connect

from bridge.agent import LocalAgent
from bridge.config import AgentSettings

TIMEOUT_S = 20.0


class Client:
    """A thin Realtime client over one websocket: send events, wait for event types."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(event).decode())

    async def send_raw(self, frame: str | bytes) -> None:
        await self.ws.send(frame)

    async def recv(self) -> dict[str, Any]:
        async with asyncio.timeout(TIMEOUT_S):
            frame = await self.ws.recv()
        ev: dict[str, Any] = orjson.loads(frame)
        self.seen.append(ev)
        return ev

    async def until(self, *types: str) -> list[dict[str, Any]]:
        """Events up to and including the first whose type is in ``types``."""
        out: list[dict[str, Any]] = []
        while True:
            ev = await self.recv()
            out.append(ev)
            if ev["type"] in types:
                return out

    async def append_pcm(self, pcm: NDArray[np.int16], chunk_ms: int = 20) -> None:
        await self.append_bytes(pcm.astype("<i2").tobytes(), 48 * chunk_ms)

    async def append_bytes(self, data: bytes, chunk: int) -> None:
        for i in range(0, len(data), chunk):
            await self.send(
                {
                    "type": "input_audio_buffer.append",
                    "audio": base64.b64encode(data[i : i + chunk]).decode(),
                }
            )

    async def update(self, session: dict[str, Any]) -> dict[str, Any]:
        await self.send({"type": "session.update", "session": {"type": "realtime", **session}})
        return (await self.until("session.updated", "error"))[-1]


def audio_of(events: list[dict[str, Any]]) -> bytes:
    return b"".join(
        base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
    )


def types_of(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


@pytest.fixture
def agent_settings() -> AgentSettings:
    return AgentSettings(port=0)


@pytest.fixture
async def agent(agent_settings: AgentSettings) -> AsyncIterator[LocalAgent]:
    async with LocalAgent(agent_settings, chunk_interval_s=0.005) as running:
        yield running


@pytest.fixture
async def client(agent: LocalAgent) -> AsyncIterator[Client]:
    async with connect(agent.url + "?model=gpt-realtime", subprotocols=None) as ws:
        c = Client(ws)
        first = await c.recv()
        assert first["type"] == "session.created"
        yield c
