"""The relay against a scripted upstream: exact pass-through, auth, handshake errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import InvalidStatus

from bridge.apikeys import ServerKey
from bridge.app import create_app
from bridge.config import Settings, UpstreamSettings
from tests.support.servers import free_port, run_app, run_ws_server

KEY = "rtb_test_key"


class ScriptedUpstream:
    """Records what the relay sends; sends what the test queues (raw frames)."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[str] = asyncio.Queue()
        self.outgoing: asyncio.Queue[str | None] = asyncio.Queue()
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.paths.append(ws.request.path)
        self.headers.append({k.lower(): v for k, v in ws.request.headers.raw_items()})

        async def reader() -> None:
            async for msg in ws:
                await self.received.put(msg if isinstance(msg, str) else msg.decode())

        async def writer() -> None:
            while (frame := await self.outgoing.get()) is not None:
                await ws.send(frame)
            await ws.close(1011, "upstream went away")

        tasks = [asyncio.create_task(reader()), asyncio.create_task(writer())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[tuple[str, ScriptedUpstream]]:
    up = ScriptedUpstream()
    async with run_ws_server(up.handler) as (_, url):
        settings = Settings.model_validate({"server": {"data_dir": str(tmp_path)}})
        upstream = UpstreamSettings(url=url + "/v1/realtime", dialect="ga")
        app = create_app(settings, ServerKey(KEY), upstream=upstream)
        async with run_app(app) as base:
            yield base.replace("http://", "ws://") + "/v1/realtime", up


async def test_unknown_events_and_fields_pass_unchanged(
    relay: tuple[str, ScriptedUpstream],
) -> None:
    url, up = relay
    async with connect(
        url + "?model=m1", additional_headers={"Authorization": f"Bearer {KEY}"}, compression=None
    ) as ws:
        client_frames = [
            '{"type":"session.update","session":{"type":"realtime","x_vendor":{"a":1}}}',
            '{"type":"vendor.custom_event","payload":[1,2,3],"event_id":"e1"}',
            '{"type":"input_audio_buffer.append","audio":"AAAA"}',
        ]
        for f in client_frames:
            await ws.send(f)
        for f in client_frames:
            assert await asyncio.wait_for(up.received.get(), 5) == f  # byte-identical
        server_frames = [
            '{"type":"session.updated","session":{"type":"realtime"},"future_field":true}',
            '{"type":"vendor.server_thing","n":1}',
        ]
        for f in server_frames:
            await up.outgoing.put(f)
        for f in server_frames:
            assert await asyncio.wait_for(ws.recv(), 5) == f
    assert up.paths == ["/v1/realtime?model=m1"]


async def test_browser_subprotocol_auth_answers_realtime(
    relay: tuple[str, ScriptedUpstream],
) -> None:
    url, _ = relay
    async with connect(url, subprotocols=["realtime", f"openai-insecure-api-key.{KEY}"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "realtime"


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, "missing_api_key"), ({"Authorization": "Bearer wrong"}, "invalid_api_key")],
)
async def test_handshake_without_valid_key_is_401(
    relay: tuple[str, ScriptedUpstream], headers: dict[str, str], code: str
) -> None:
    url, up = relay
    with pytest.raises(InvalidStatus) as err:
        async with connect(url, additional_headers=headers):
            pass
    assert err.value.response.status_code == 401
    assert json.loads(err.value.response.body)["error"]["code"] == code
    assert up.paths == []  # nothing reached (or paid for) upstream


async def test_upstream_closing_closes_client_with_reason(
    relay: tuple[str, ScriptedUpstream],
) -> None:
    url, up = relay
    async with connect(url, additional_headers={"Authorization": f"Bearer {KEY}"}) as ws:
        await up.outgoing.put(None)
        with pytest.raises(Exception):  # noqa: B017 - ConnectionClosedError
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1011


async def test_unreachable_upstream_is_503(tmp_path: Path) -> None:
    settings = Settings.model_validate({"server": {"data_dir": str(tmp_path)}})
    dead = UpstreamSettings(url=f"ws://127.0.0.1:{free_port()}/v1/realtime")
    app = create_app(settings, ServerKey(KEY), upstream=dead)
    async with run_app(app) as base:
        with pytest.raises(InvalidStatus) as err:
            async with connect(
                base.replace("http", "ws") + "/v1/realtime",
                additional_headers={"Authorization": f"Bearer {KEY}"},
            ):
                pass
        assert err.value.response.status_code == 503
        assert "Upstream unavailable" in json.loads(err.value.response.body)["error"]["message"]
        async with httpx.AsyncClient() as client:
            assert (await client.get(base + "/healthz")).json() == {"status": "ok"}
