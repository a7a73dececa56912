"""The local agent is faithful to each new dialect's wire, seen by a raw websockets client.

Gemini: the path, ``?key=``/``x-goog-api-key``, setup first and only once (1007), 16 kHz in and
24 kHz inline audio out, transcriptions, ``interrupted`` on barge-in, tool calls, resumption, and
the session timer (``goAway`` then the close). GPT-Live: driven by the openai SDK's own
``client.live`` (it parses every event with the vendor's types), strict ``session.start``, the
parrot, tool calls through ``response.event``, ``session.closed``. Azure: GA events with the
``api-key`` header. And the GA timer end: ``error`` ``session_expired``, then the close.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from openai import AsyncOpenAI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bridge.agent import LocalAgent
from bridge.config import AgentSettings, Dialect
from tests.support.audio import best_correlation, voiced_signal

TIMEOUT_S = 20.0
KEY = "agent-wire-test-key"
GEMINI_SETUP = {
    "setup": {
        "model": "models/gemini-live-test",
        "generationConfig": {"responseModalities": ["AUDIO"]},
        "realtimeInputConfig": {"automaticActivityDetection": {"silenceDurationMs": 300}},
        "inputAudioTranscription": {},
        "outputAudioTranscription": {},
        "sessionResumption": {},
        "tools": [{"functionDeclarations": [{"name": "lookup", "description": "Look up."}]}],
    }
}


@pytest.fixture
def agent_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AGENT_WIRE_KEY", KEY)
    return KEY


async def _agent(dialect: Dialect, **settings: Any) -> AsyncIterator[LocalAgent]:
    cfg = AgentSettings(port=0, dialect=dialect, **settings)
    async with LocalAgent(cfg, chunk_interval_s=0.005) as agent:
        yield agent


async def recv(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(TIMEOUT_S):
        msg: dict[str, Any] = json.loads(await ws.recv())
    return msg


async def until(ws: ClientConnection, pred: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        msg = await recv(ws)
        out.append(msg)
        if pred(msg):
            return out


def _content(msgs: list[dict[str, Any]], key: str) -> list[Any]:
    return [m["serverContent"][key] for m in msgs if key in m.get("serverContent", {})]


async def _send_pcm16k(ws: ClientConnection, pcm: np.ndarray) -> None:
    for i in range(0, len(pcm), 320):  # 20 ms at 16 kHz
        chunk = base64.b64encode(pcm[i : i + 320].astype("<i2").tobytes()).decode()
        await ws.send(
            json.dumps(
                {"realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=16000", "data": chunk}}}
            )
        )


# --------------------------------------------------------------------------- Gemini


async def test_gemini_key_and_path(agent_key: str) -> None:
    async for agent in _agent(Dialect.GEMINI, api_key_env="AGENT_WIRE_KEY"):
        assert agent.url.endswith(".GenerativeService.BidiGenerateContent")
        with pytest.raises(InvalidStatus) as denied:
            async with connect(agent.url):
                pass
        assert denied.value.response.status_code == 401
        async with connect(agent.url + f"?key={KEY}") as ws:
            await ws.send(json.dumps(GEMINI_SETUP))
            assert await recv(ws) == {"setupComplete": {}}
        async with connect(agent.url, additional_headers={"x-goog-api-key": KEY}) as ws:
            await ws.send(json.dumps(GEMINI_SETUP))
            assert await recv(ws) == {"setupComplete": {}}
        with pytest.raises(InvalidStatus):  # the realtime path is not Gemini's
            async with connect(agent.url.split("/ws/")[0] + "/v1/realtime?key=" + KEY):
                pass
        assert "key" not in agent.sessions[0].query


async def test_gemini_setup_first_and_only_once() -> None:
    async for agent in _agent(Dialect.GEMINI):
        async with connect(agent.url) as ws:
            await ws.send(json.dumps({"clientContent": {"turnComplete": True}}))
            with pytest.raises(ConnectionClosed) as first:
                await recv(ws)
        assert first.value.rcvd is not None and first.value.rcvd.code == 1007
        async with connect(agent.url) as ws:
            await ws.send(json.dumps(GEMINI_SETUP))
            assert await recv(ws) == {"setupComplete": {}}
            await ws.send(json.dumps(GEMINI_SETUP))
            with pytest.raises(ConnectionClosed) as again:
                await recv(ws)
        assert again.value.rcvd is not None and again.value.rcvd.code == 1007
        assert agent.sessions[-1].close_code == 1007


async def test_gemini_parrot_transcripts_and_turn_end() -> None:
    async for agent in _agent(Dialect.GEMINI):
        async with connect(agent.url) as ws:
            await ws.send(json.dumps(GEMINI_SETUP))
            assert await recv(ws) == {"setupComplete": {}}
            speech = voiced_signal(0.8, rate=16000)
            await _send_pcm16k(ws, np.concatenate([speech, np.zeros(16000, np.int16)]))
            msgs = await until(ws, lambda m: m.get("serverContent", {}).get("turnComplete"))
            msgs += [await recv(ws)]  # the resumption update that follows a finished turn
        parts = [p for t in _content(msgs, "modelTurn") for p in t["parts"]]
        assert {p["inlineData"]["mimeType"] for p in parts} == {"audio/pcm;rate=24000"}
        audio = np.frombuffer(
            b"".join(base64.b64decode(p["inlineData"]["data"]) for p in parts), np.int16
        )
        assert best_correlation(voiced_signal(0.8, rate=24000), audio) > 0.9
        assert _content(msgs, "inputTranscription") and _content(msgs, "outputTranscription")
        ends = [
            k
            for m in msgs
            for k in m.get("serverContent", {})
            if k in ("generationComplete", "turnComplete")
        ]
        assert ends == ["generationComplete", "turnComplete"]
        assert msgs[-1]["sessionResumptionUpdate"]["resumable"] is True
        assert not any("type" in m for m in msgs)  # no GA event leaks onto the Gemini wire


async def test_gemini_barge_in_is_interrupted_then_turn_complete() -> None:
    async for agent in _agent(Dialect.GEMINI):
        async with connect(agent.url) as ws:
            await ws.send(json.dumps(GEMINI_SETUP))
            await recv(ws)
            await _send_pcm16k(
                ws, np.concatenate([voiced_signal(2.0, rate=16000), np.zeros(8000, np.int16)])
            )
            await until(ws, lambda m: "modelTurn" in m.get("serverContent", {}))
            await _send_pcm16k(ws, voiced_signal(0.6, rate=16000))
            msgs = await until(ws, lambda m: m.get("serverContent", {}).get("turnComplete"))
        flags = [
            k
            for m in msgs
            for k in m.get("serverContent", {})
            if k in ("interrupted", "generationComplete", "turnComplete")
        ]
        assert flags[-2:] == ["interrupted", "turnComplete"]


async def test_gemini_tool_call_and_response(monkeypatch: pytest.MonkeyPatch) -> None:
    async for agent in _agent(Dialect.GEMINI, tool_after_turns=1):
        async with connect(agent.url) as ws:
            await ws.send(json.dumps(GEMINI_SETUP))
            await recv(ws)
            await ws.send(
                json.dumps(
                    {
                        "clientContent": {
                            "turns": [{"role": "user", "parts": [{"text": "look it up"}]}],
                            "turnComplete": True,
                        }
                    }
                )
            )
            (call,) = (await until(ws, lambda m: "toolCall" in m))[-1]["toolCall"]["functionCalls"]
            assert call["name"] == "lookup" and isinstance(call["args"], dict)
            await ws.send(
                json.dumps(
                    {
                        "toolResponse": {
                            "functionResponses": [
                                {"id": call["id"], "name": "lookup", "response": {"result": "ok"}}
                            ]
                        }
                    }
                )
            )
            msgs = await until(ws, lambda m: m.get("serverContent", {}).get("turnComplete"))
        assert _content(msgs, "modelTurn")  # it speaks again after the tool response
        outputs = [i for i in agent.sessions[0].responses if i.source == "tool_answer"]
        assert outputs


async def test_gemini_resumption_continues_the_conversation() -> None:
    async for agent in _agent(Dialect.GEMINI):
        async with connect(agent.url) as ws:
            await ws.send(json.dumps(GEMINI_SETUP))
            await recv(ws)
            await ws.send(json.dumps({"realtimeInput": {"text": "remember me"}}))
            msgs = await until(ws, lambda m: "sessionResumptionUpdate" in m)
        handle = msgs[-1]["sessionResumptionUpdate"]["newHandle"]
        first_items = len(agent.sessions[0].responses)
        resume = {"setup": {**GEMINI_SETUP["setup"], "sessionResumption": {"handle": handle}}}
        async with connect(agent.url) as ws:
            await ws.send(json.dumps(resume))
            assert await recv(ws) == {"setupComplete": {}}
        assert agent.sessions[1].resumed_from == handle and first_items
        bad = {"setup": {**GEMINI_SETUP["setup"], "sessionResumption": {"handle": "nope"}}}
        async with connect(agent.url) as ws:
            await ws.send(json.dumps(bad))
            with pytest.raises(ConnectionClosed) as refused:
                await recv(ws)
        assert refused.value.rcvd is not None and refused.value.rcvd.code == 1007


async def test_gemini_session_timer_sends_go_away_then_closes() -> None:
    async for agent in _agent(Dialect.GEMINI, session_max_s=0.6, go_away_notice_s=0.3):
        async with connect(agent.url) as ws:
            await ws.send(json.dumps(GEMINI_SETUP))
            await recv(ws)
            going = await until(ws, lambda m: "goAway" in m)
            assert going[-1]["goAway"] == {"timeLeft": "0.3s"}
            with pytest.raises(ConnectionClosed) as closed:
                await recv(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000


# --------------------------------------------------------------------------- GPT-Live


def _live_client(agent: LocalAgent) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"http://127.0.0.1:{agent.port}/v1", api_key=KEY, max_retries=0)


LIVE_SESSION: dict[str, Any] = {
    "model": "gpt-live-1",
    "instructions": "Repeat after me.",
    "audio": {"format": {"type": "audio/pcm", "rate": 24000}, "output": {"voice": "marin"}},
    "delegation": {
        "type": "responses",
        "responses": {
            "model": "gpt-5.5",
            "tools": [
                {
                    "type": "function",
                    "name": "lookup",
                    "description": "Look up.",
                    "parameters": {"type": "object", "properties": {}},
                }
            ],
        },
    },
}


async def test_gpt_live_through_the_openai_sdk(agent_key: str) -> None:
    async for agent in _agent(Dialect.GPT_LIVE, api_key_env="AGENT_WIRE_KEY"):
        assert agent.url.endswith("/v1/live/sessions")
        async with _live_client(agent).live.connect() as conn:
            await conn.send({"type": "session.start", "session": LIVE_SESSION})
            started = await asyncio.wait_for(conn.recv(), TIMEOUT_S)
            assert started.type == "session.started"
            assert started.session.status == "active" and started.session.model == "gpt-live-1"
            speech = voiced_signal(0.8)
            pcm = np.concatenate([speech, np.zeros(24000, np.int16)]).tobytes()
            for i in range(0, len(pcm), 960):
                await conn.send(
                    {
                        "type": "session.input_audio.append",
                        "audio": base64.b64encode(pcm[i : i + 960]).decode(),
                    }
                )
            got = bytearray()
            kinds: list[str] = []
            async with asyncio.timeout(TIMEOUT_S):
                while len(got) < len(speech) * 2:
                    ev = await conn.recv()
                    kinds.append(ev.type)
                    if ev.type == "session.output_audio.delta":
                        got += base64.b64decode(ev.delta)
                    if ev.type == "session.output_transcript.delta":
                        assert ev.end_ms >= ev.start_ms
            assert "session.input_transcript.delta" in kinds
            assert best_correlation(speech, np.frombuffer(bytes(got), np.int16)) > 0.9
            await conn.send({"type": "session.close"})
            async with asyncio.timeout(TIMEOUT_S):
                while (ev := await conn.recv()).type != "session.closed":
                    pass
            assert ev.reason == "close_requested"


async def test_gpt_live_strict_start_and_tools() -> None:
    async for agent in _agent(Dialect.GPT_LIVE, tool_after_turns=1):
        async with connect(agent.url) as ws:
            await ws.send(json.dumps({"type": "session.input_audio.append", "audio": ""}))
            assert (await recv(ws))["error"]["code"] == "session_not_started"
            await ws.send(
                json.dumps(
                    {
                        "type": "session.start",
                        "session": {**LIVE_SESSION, "turn_detection": {"type": "server_vad"}},
                    }
                )
            )
            err = await recv(ws)
            assert err["type"] == "error" and err["error"]["code"] == "unknown_parameter"
            assert err["error"]["param"] == "session.turn_detection"
            await ws.send(json.dumps({"type": "session.start", "session": LIVE_SESSION}))
            assert (await recv(ws))["type"] == "session.started"
            await ws.send(
                json.dumps(
                    {
                        "type": "session.instructions.append",
                        "content": "The caller pressed 5.",
                        "delegation_id": None,
                    }
                )
            )
            assert (await recv(ws))["type"] == "session.instructions.appended"
            pcm = np.concatenate([voiced_signal(0.6), np.zeros(12000, np.int16)]).tobytes()
            for i in range(0, len(pcm), 960):  # a caller turn: the agent calls its tool
                await ws.send(
                    json.dumps(
                        {
                            "type": "session.input_audio.append",
                            "audio": base64.b64encode(pcm[i : i + 960]).decode(),
                        }
                    )
                )
            msgs = await until(
                ws,
                lambda m: (
                    m["type"] == "response.event"
                    and m["event"]["type"] == "response.output_item.done"
                ),
            )
            item = msgs[-1]["event"]["item"]
            assert item["type"] == "function_call" and item["name"] == "lookup"
            assert "session.delegation.created" in [m["type"] for m in msgs]
            await ws.send(
                json.dumps(
                    {
                        "type": "response.item.create",
                        "item": {
                            "type": "function_call_output",
                            "call_id": item["call_id"],
                            "output": "{}",
                        },
                    }
                )
            )
            await ws.send(json.dumps({"type": "response.create"}))
            answer = await until(ws, lambda m: m["type"] == "session.output_audio.delta")
            assert answer[-1]["delta"]


async def test_gpt_live_session_timer_sends_session_closed() -> None:
    async for agent in _agent(Dialect.GPT_LIVE, session_max_s=0.4):
        async with connect(agent.url) as ws:
            await ws.send(json.dumps({"type": "session.start", "session": LIVE_SESSION}))
            await recv(ws)
            closed = await until(ws, lambda m: m["type"] == "session.closed")
            assert closed[-1]["reason"] == "expired"
            with pytest.raises(ConnectionClosed):
                await recv(ws)


# --------------------------------------------------------------------------- Azure and GA


async def test_azure_takes_the_api_key_header_and_speaks_ga(agent_key: str) -> None:
    async for agent in _agent(Dialect.AZURE, api_key_env="AGENT_WIRE_KEY"):
        url = agent.url.replace("/v1/realtime", "/openai/v1/realtime") + "?model=my-deployment"
        async with connect(url, additional_headers={"api-key": os.environ["AGENT_WIRE_KEY"]}) as ws:
            created = await recv(ws)
            assert created["type"] == "session.created"
        assert agent.sessions[0].query["model"] == "my-deployment"


async def test_ga_session_timer_is_an_error_session_expired() -> None:
    async for agent in _agent(Dialect.GA, session_max_s=0.3):
        async with connect(agent.url) as ws:
            msgs = await until(ws, lambda m: m["type"] == "error")
            assert msgs[-1]["error"]["code"] == "session_expired"
            with pytest.raises(ConnectionClosed):
                await recv(ws)
