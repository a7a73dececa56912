"""The upstream client per dialect: where the key goes (never into what is logged), where the
model goes, and that a translated upstream's local answers and timed events reach ``frames()``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection

from bridge.config import Dialect, UpstreamAuth, UpstreamSettings
from bridge.logs import redact_secrets
from bridge.realtime.dialects.gpt_live import OUTPUT_IDLE_S
from bridge.upstream import UpstreamSession
from tests.support.servers import run_ws_server

SECRET = "AIzaSy-test-secret-0123456789abcdef"


class Peer:
    """A scripted upstream: records the handshake and every message, sends ``script``."""

    def __init__(self, script: list[dict[str, Any]] | None = None) -> None:
        self.path = ""
        self.headers: dict[str, str] = {}
        self.got: list[dict[str, Any]] = []
        self.script = script or []
        self.first = asyncio.Event()

    async def __call__(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.path = ws.request.path
        self.headers = {k.lower(): v for k, v in ws.request.headers.raw_items()}
        async for msg in ws:
            self.got.append(json.loads(msg))
            if len(self.got) == 1:
                for ev in self.script:
                    await ws.send(json.dumps(ev))
                self.first.set()


@pytest.mark.parametrize(
    ("dialect", "auth", "where"),
    [
        (Dialect.GA, None, "authorization"),
        (Dialect.AZURE, None, "api-key"),
        (Dialect.AZURE, UpstreamAuth.BEARER, "authorization"),
        (Dialect.GEMINI, None, "query"),
        (Dialect.GEMINI, UpstreamAuth.GOOG_HEADER, "x-goog-api-key"),
        (Dialect.GPT_LIVE, None, "authorization"),
    ],
)
async def test_the_key_goes_where_the_dialect_wants_and_is_never_logged(
    dialect: Dialect, auth: UpstreamAuth | None, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    peer = Peer()
    caplog.set_level(logging.DEBUG)
    async with run_ws_server(peer) as (_, base):
        cfg = UpstreamSettings(
            url=base + "/x", dialect=dialect, auth=auth, model="m-1", api_key_env="K"
        )
        up = UpstreamSession(cfg, environ={"K": SECRET})
        await up.connect()
        await up.send({"type": "session.update", "session": {"type": "realtime"}})
        await asyncio.wait_for(peer.first.wait(), 5)
        await up.close()
    assert SECRET not in up.url and SECRET not in repr(up)
    if where == "query":
        assert f"key={SECRET}" in peer.path
    elif where == "authorization":
        assert peer.headers["authorization"] == f"Bearer {SECRET}"
    else:
        assert peer.headers[where] == SECRET
    others = {"authorization", "api-key", "x-goog-api-key"} - {where}
    assert not others & set(peer.headers) and (where == "query") == ("key=" in peer.path)
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("bridge")]
    assert not any(SECRET in m for m in ours)
    # what libraries log (websockets' handshake lines) passes the secret filter
    assert all(SECRET not in redact_secrets(r.getMessage()) for r in caplog.records)
    # the model is in the URL only where the dialect puts it there
    assert ("model=m-1" in peer.path) == (dialect in (Dialect.GA, Dialect.AZURE))


async def test_a_gemini_upstream_gets_its_setup_and_the_client_sees_ga() -> None:
    peer = Peer([{"setupComplete": {}}])
    async with run_ws_server(peer) as (_, base):
        cfg = UpstreamSettings(url=base + "/ws", dialect=Dialect.GEMINI, model="gemini-x")
        async with UpstreamSession(cfg) as up:
            frames = up.events()
            assert (await anext(frames))["type"] == "session.created"  # before any upstream
            await up.send({"type": "session.update", "session": {"type": "realtime"}})
            assert (await asyncio.wait_for(anext(frames), 5))["type"] == "session.updated"
            await up.send({"type": "response.cancel"})
            err = await asyncio.wait_for(anext(frames), 5)
            assert err["error"]["code"] == "response_cancel_not_active"  # answered locally
    assert peer.got == [
        {
            "setup": {
                "model": "models/gemini-x",
                "generationConfig": {"responseModalities": ["AUDIO"]},
                "outputAudioTranscription": {},
                "sessionResumption": {},
            }
        }
    ]


async def test_a_gpt_live_response_ends_on_the_pause_without_any_upstream_event() -> None:
    started = {
        "type": "session.started",
        "event_id": "e",
        "session": {"id": "s", "expires_at": 0, "model": "gpt-live-1", "status": "active"},
    }
    delta = {"type": "session.output_audio.delta", "delta": "AAAA" * 400}
    peer = Peer([started, delta, delta])
    async with run_ws_server(peer) as (_, base):
        cfg = UpstreamSettings(url=base + "/v1/live/sessions", dialect=Dialect.GPT_LIVE)
        async with UpstreamSession(cfg) as up:
            await up.send({"type": "session.update", "session": {"type": "realtime"}})
            seen: list[str] = []
            async with asyncio.timeout(5 + OUTPUT_IDLE_S):
                async for ev in up.events():
                    seen.append(ev["type"])
                    if ev["type"] == "response.done":
                        break
    assert seen[:3] == ["session.created", "session.updated", "response.created"]
    assert seen.count("response.output_audio.delta") == 2 and seen[-1] == "response.done"
    assert peer.got[0]["type"] == "session.start"
