"""A call's agent session against the local agent: formats, fallback, reconnect, failure."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.server import ServerConnection

from bridge.agent import LocalAgent
from bridge.calls.agent_events import (
    Malformed,
    SessionRenewed,
    SessionUpdated,
    SpeechStarted,
    UpstreamErrorEvent,
)
from bridge.calls.agent_session import AgentSession
from bridge.calls.control import merge_telephony_tools
from bridge.calls.negotiation import enforce_formats
from bridge.config import AgentProfile, AgentSettings, UpstreamSettings
from bridge.errors import UpstreamConnectError, UpstreamError
from bridge.realtime.formats import AudioFormat
from tests.support.servers import free_port, run_ws_server


def _profile(url: str, **kw: object) -> AgentProfile:
    return AgentProfile(upstream=UpstreamSettings(url=url), instructions="Be brief.", **kw)


async def test_g711_pass_through_is_negotiated_and_instructions_arrive() -> None:
    async with LocalAgent(AgentSettings(port=0)) as agent:
        async with AgentSession(_profile(agent.url), preferred=AudioFormat.PCMU) as session:
            assert session.format is AudioFormat.PCMU
        record = agent.sessions[0]
        assert record.instructions == "Be brief."
        assert record.session["audio"]["input"]["format"] == {"type": "audio/pcmu"}


async def test_falls_back_to_pcm16_when_upstream_refuses_g711() -> None:
    async with (
        LocalAgent(AgentSettings(port=0, formats=["pcm16"])) as agent,
        AgentSession(_profile(agent.url), preferred=AudioFormat.PCMA) as session,
    ):
        assert session.format is AudioFormat.PCM16
        assert "audio/pcma" in session.refusals[0]
        # a client's session.update cannot switch the format back to G.711
        await session.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"format": {"type": "audio/pcma"}}},
                },
            }
        )
        async with asyncio.timeout(10):
            async for event in session.events():
                if isinstance(event, SessionUpdated | UpstreamErrorEvent):
                    break
        assert isinstance(event, SessionUpdated)
        assert event.session["audio"]["input"]["format"]["type"] == "audio/pcm"


async def test_reconnects_within_window_then_gives_up() -> None:
    port = free_port()
    settings = AgentSettings(port=port)
    first = LocalAgent(settings)
    await first.start()
    session = AgentSession(_profile(first.url), preferred=AudioFormat.PCMU, reconnect_window_s=5.0)
    await session.open()
    events = session.events()
    await first.stop()  # the agent goes away ...
    second = LocalAgent(settings)
    await second.start()  # ... and comes back on the same address within the window
    async with asyncio.timeout(15):
        async for event in events:
            if isinstance(event, SessionRenewed):
                break
    assert session.renewals == 1
    assert second.sessions and second.sessions[0].instructions == "Be brief."
    session._window = 0.5  # shorten the window for the give-up half
    await second.stop()
    with pytest.raises(UpstreamError):
        async with asyncio.timeout(15):
            async for _ in events:
                pass
    await session.close()


async def test_unreachable_upstream_fails_fast_and_is_retryable() -> None:
    session = AgentSession(
        _profile(f"ws://127.0.0.1:{free_port()}/v1/realtime"), preferred=AudioFormat.PCMU
    )
    with pytest.raises(UpstreamConnectError) as err:
        await session.open()
    assert err.value.retryable


async def test_xai_upstream_negotiates_pass_through_despite_its_late_session_created() -> None:
    async with LocalAgent(AgentSettings(port=0, dialect="xai")) as agent:
        profile = AgentProfile(upstream=UpstreamSettings(url=agent.url, dialect="xai"))
        async with AgentSession(profile, preferred=AudioFormat.PCMU) as session:
            assert session.format is AudioFormat.PCMU
            assert session.refusals == []


async def test_a_send_during_an_outage_waits_for_the_reconnect_and_arrives() -> None:
    """Call control's writer never dies with the socket: a control event sent while the
    upstream is gone is delivered to the new session once the reconnect succeeds."""
    port = free_port()
    settings = AgentSettings(port=port)
    first = LocalAgent(settings)
    await first.start()
    session = AgentSession(_profile(first.url), preferred=AudioFormat.PCMU, reconnect_window_s=10)
    await session.open()
    reconnected = asyncio.Event()

    async def read() -> None:
        async for event in session.events():
            if isinstance(event, SessionRenewed):
                reconnected.set()

    reader = asyncio.create_task(read())
    await first.stop()
    await asyncio.sleep(0.2)  # the reader has noticed; the session is being replaced
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    sending = asyncio.create_task(session.send({"type": "conversation.item.create", "item": item}))
    await asyncio.sleep(0.3)
    assert not sending.done()  # waits for the new socket instead of failing
    second = LocalAgent(settings)
    await second.start()
    try:
        await asyncio.wait_for(sending, 15)
        await asyncio.wait_for(reconnected.wait(), 15)
        for _ in range(100):
            if "conversation.item.create" in second.sessions[0].received_types:
                break
            await asyncio.sleep(0.05)
        assert "conversation.item.create" in second.sessions[0].received_types
    finally:
        reader.cancel()
        await session.close()
        await second.stop()


async def test_frames_that_are_no_realtime_event_are_skipped_and_the_session_goes_on() -> None:
    """A GA upstream that sends an HTML error page before answering, then non-JSON text, a
    JSON array, an object without a type and a binary frame: the session is set up and its
    events go on (was a RemoteProtocolError: the SIP caller got 500, a live call ended)."""
    bad: list[str | bytes] = ["<html>502 Bad Gateway</html>", "[1, 2]", '{"no": "type"}', b"\xff"]

    async def upstream(ws: ServerConnection) -> None:
        await ws.send(bad[0])  # before the session is configured
        async for msg in ws:
            event = json.loads(msg)
            if event["type"] == "session.update":
                for frame in bad:
                    await ws.send(frame)
                await ws.send(json.dumps({"type": "session.updated", "session": event["session"]}))
                for frame in bad:
                    await ws.send(frame)
                speech = {"type": "input_audio_buffer.speech_started", "item_id": "i1"}
                await ws.send(json.dumps({**speech, "audio_start_ms": 10}))

    async with run_ws_server(upstream) as (_, url):
        session = AgentSession(_profile(url + "/v1/realtime"), preferred=AudioFormat.PCMU)
        async with session:
            assert session.format is AudioFormat.PCMU
            async with asyncio.timeout(10):
                async for event in session.events():
                    if isinstance(event, SpeechStarted):
                        break
            assert event.item_id == "i1"


async def test_a_ga_upstream_cannot_send_rtbridges_own_going_away() -> None:
    """``rtbridge.upstream.*`` events are what rtbridge's translators make of a dialect's own
    signals; a pass-through upstream sending one (a going-away after every answer looped
    renewals) has it skipped: the session is never renewed."""

    async def upstream(ws: ServerConnection) -> None:
        async for msg in ws:
            event = json.loads(msg)
            if event["type"] == "session.update":
                await ws.send(json.dumps({"type": "session.updated", "session": event["session"]}))
                going = {"type": "rtbridge.upstream.going_away", "time_left_ms": 0}
                for _ in range(3):
                    await ws.send(json.dumps(going))
                speech = {"type": "input_audio_buffer.speech_started", "item_id": "i1"}
                await ws.send(json.dumps({**speech, "audio_start_ms": 10}))
                await asyncio.sleep(1.0)
                await ws.send(json.dumps({**speech, "item_id": "i2", "audio_start_ms": 20}))

    async with run_ws_server(upstream) as (_, url):
        session = AgentSession(_profile(url + "/v1/realtime"), preferred=AudioFormat.PCMU)
        seen: list[object] = []
        async with session:
            async with asyncio.timeout(10):
                async for event in session.events():
                    seen.append(event)
                    if isinstance(event, SpeechStarted) and event.item_id == "i2":
                        break
        assert not [e for e in seen if isinstance(e, SessionRenewed)]
        assert session.renewals == 0


async def test_a_malformed_session_updated_is_not_adopted_and_the_call_goes_on() -> None:
    """``session.updated`` whose audio is no object, before and after set-up: neither is
    adopted (the later one was, and call control crashed on it at the next speech_started);
    the later one comes out as Malformed, to be logged."""

    async def upstream(ws: ServerConnection) -> None:
        async for msg in ws:
            event = json.loads(msg)
            if event["type"] == "session.update":
                bad = {"type": "session.updated", "session": {"audio": "x"}}
                await ws.send(json.dumps(bad))  # ignored while waiting for the answer
                await ws.send(json.dumps({"type": "session.updated", "session": event["session"]}))
                bad = {"type": "session.updated", "session": {"audio": {"input": "x"}}}
                await ws.send(json.dumps(bad))
                speech = {"type": "input_audio_buffer.speech_started", "item_id": "i1"}
                await ws.send(json.dumps(speech))

    async with run_ws_server(upstream) as (_, url):
        session = AgentSession(_profile(url + "/v1/realtime"), preferred=AudioFormat.PCMU)
        async with session:
            assert session.format is AudioFormat.PCMU
            seen = []
            async with asyncio.timeout(10):
                async for event in session.events():
                    seen.append(event)
                    if isinstance(event, SpeechStarted):
                        break
            assert isinstance(seen[0], Malformed) and "audio.input" in seen[0].reason
            assert session.session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
            assert enforce_formats(session.session, AudioFormat.PCM16)["audio"]["input"]


def test_a_session_with_parts_of_the_wrong_type_is_read_without_error() -> None:
    """What reads a session tolerates parts of the wrong type (a client's session.update)."""
    odd = {"audio": {"input": "x", "output": 5}, "tools": "x"}
    assert enforce_formats(odd, AudioFormat.PCMU)["audio"]["output"] == {
        "format": {"type": "audio/pcmu"}
    }
    names = [t["name"] for t in merge_telephony_tools(odd)["tools"]]
    assert names == ["end_call", "transfer_call", "send_dtmf"]
    assert merge_telephony_tools({"tools": ["x", {"name": "end_call"}]})["tools"][0] == "x"
