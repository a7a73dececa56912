"""Handshake and session lifecycle of the local agent, driven by a plain websockets client."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bridge.agent import LocalAgent
from bridge.config import AgentSettings
from tests.agent.conftest import Client


async def test_session_created_is_a_full_ga_session(agent: LocalAgent) -> None:
    async with connect(agent.url + "?model=gpt-test") as ws:
        ev = await Client(ws).recv()
    assert ev["type"] == "session.created"
    assert ev["event_id"].startswith("event_")
    s = ev["session"]
    assert s["type"] == "realtime"
    assert s["id"].startswith("sess_")
    assert s["model"] == "gpt-test"
    assert s["output_modalities"] == ["audio"]
    assert s["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert s["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
    td = s["audio"]["input"]["turn_detection"]
    assert td["type"] == "server_vad"
    assert td["create_response"] is True and td["interrupt_response"] is True
    assert {"threshold", "prefix_padding_ms", "silence_duration_ms"} <= td.keys()
    assert s["audio"]["output"]["voice"]
    assert agent.sessions[0].query == {"model": "gpt-test"}


async def test_session_update_merges_and_answers_full_session(
    agent: LocalAgent, client: Client
) -> None:
    ev = await client.update(
        {
            "instructions": "Be brief.",
            "audio": {
                "input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 700}}
            },
            "tools": [{"type": "function", "name": "lookup", "parameters": {}}],
            "x_unknown": {"kept": True},
        }
    )
    assert ev["type"] == "session.updated"
    s = ev["session"]
    assert s["instructions"] == "Be brief."
    td = s["audio"]["input"]["turn_detection"]
    assert td["silence_duration_ms"] == 700 and td["prefix_padding_ms"] == 300
    assert s["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert s["tools"][0]["name"] == "lookup"
    assert s["x_unknown"] == {"kept": True}
    record = agent.sessions[0]
    assert record.instructions == "Be brief."
    assert "session.update" in record.received_types

    ev = await client.update({"audio": {"input": {"turn_detection": None}}})
    assert ev["session"]["audio"]["input"]["turn_detection"] is None
    assert ev["session"]["instructions"] == "Be brief."


async def test_session_update_needs_session_type(client: Client) -> None:
    await client.send({"type": "session.update", "session": {"instructions": "x"}})
    ev = (await client.until("error", "session.updated"))[-1]
    assert ev["type"] == "error"
    assert ev["error"]["code"] == "missing_required_parameter"
    assert ev["error"]["param"] == "session.type"


async def test_g711_accepted_by_default(client: Client) -> None:
    ev = await client.update(
        {
            "audio": {
                "input": {"format": {"type": "audio/pcmu"}},
                "output": {"format": {"type": "audio/pcma"}},
            }
        }
    )
    assert ev["type"] == "session.updated"
    assert ev["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert ev["session"]["audio"]["output"]["format"] == {"type": "audio/pcma"}


@pytest.mark.parametrize("agent_settings", [AgentSettings(port=0, formats=["pcm16"])])
@pytest.mark.parametrize(("direction", "fmt"), [("input", "audio/pcmu"), ("output", "audio/pcma")])
async def test_formats_pcm16_refuses_g711(
    agent: LocalAgent, client: Client, direction: str, fmt: str
) -> None:
    ev = await client.update({"audio": {direction: {"format": {"type": fmt}}}})
    assert ev["type"] == "error"
    assert ev["error"]["type"] == "invalid_request_error"
    assert ev["error"]["code"] == "invalid_value"
    assert ev["error"]["param"] == f"session.audio.{direction}.format"
    # the session keeps pcm16, and the connection still works
    ev = await client.update({"instructions": "still here"})
    assert ev["type"] == "session.updated"
    assert ev["session"]["audio"][direction]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert agent.sessions[0].errors[0]["param"] == f"session.audio.{direction}.format"


async def test_pcm_other_rate_refused(client: Client) -> None:
    ev = await client.update({"audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}})
    assert ev["type"] == "error"
    assert ev["error"]["param"] == "session.audio.input.format"


async def test_other_path_is_404(agent: LocalAgent) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with connect(f"ws://127.0.0.1:{agent.port}/v1/other"):
            pass
    assert info.value.response.status_code == 404


async def test_subprotocol_realtime_is_answered(agent: LocalAgent) -> None:
    async with connect(agent.url, subprotocols=["realtime"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "realtime"


@pytest.fixture
def keyed_settings(monkeypatch: pytest.MonkeyPatch) -> AgentSettings:
    monkeypatch.setenv("RTB_TEST_AGENT_KEY", "sk-local-test")
    return AgentSettings(port=0, api_key_env="RTB_TEST_AGENT_KEY")


async def test_api_key_required_when_configured(keyed_settings: AgentSettings) -> None:
    async with LocalAgent(keyed_settings) as agent:
        with pytest.raises(InvalidStatus) as info:
            async with connect(agent.url):
                pass
        assert info.value.response.status_code == 401
        with pytest.raises(InvalidStatus) as info:
            async with connect(agent.url, additional_headers={"Authorization": "Bearer nope"}):
                pass
        assert info.value.response.status_code == 401
        headers = {"Authorization": "Bearer sk-local-test"}
        async with connect(agent.url, additional_headers=headers) as ws:
            assert (await Client(ws).recv())["type"] == "session.created"
        protocols = ["realtime", "openai-insecure-api-key.sk-local-test"]
        async with connect(agent.url, subprotocols=protocols) as ws:  # type: ignore[arg-type]
            assert ws.subprotocol == "realtime"
            assert (await Client(ws).recv())["type"] == "session.created"


async def test_no_key_needed_by_default(agent: LocalAgent) -> None:
    async with connect(agent.url) as ws:
        assert (await Client(ws).recv())["type"] == "session.created"


async def test_session_record_closed_after_disconnect(agent: LocalAgent) -> None:
    async with connect(agent.url) as ws:
        await Client(ws).recv()
    for _ in range(100):
        if agent.sessions[0].closed:
            break
        await asyncio.sleep(0.01)
    assert agent.sessions[0].closed


async def test_stop_closes_open_connections(agent_settings: AgentSettings) -> None:
    agent = LocalAgent(agent_settings, chunk_interval_s=0.5)
    url = await agent.start()
    assert url == agent.url and agent.port > 0
    async with connect(url) as ws:
        c = Client(ws)
        await c.recv()
        await c.send({"type": "response.create"})
        await c.until("response.created")
        async with asyncio.timeout(10):
            await agent.stop()
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
    assert agent.sessions[0].closed


async def test_debug_log_redacts_audio(
    agent: LocalAgent, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="rtbridge.agent")
    await client.append_pcm(np.full(2400, 3000, np.int16))
    await client.send({"type": "response.create"})
    await client.until("response.done")
    text = caplog.text
    assert "input_audio_buffer.append" in text and "response.output_audio.delta" in text
    assert "chars base64>" in text
    assert max(len(r.getMessage()) for r in caplog.records) < 5000
