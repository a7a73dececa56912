"""The agent's events as the call path reads them: every GA server event of the fixtures (one
per event seed 004 names) parses, into its typed value or the pass-through type, keeping the
event as received; bad fields become Malformed, never an exception."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.calls.agent_events import (
    AudioDelta,
    BufferEvent,
    FunctionCall,
    FunctionCallDone,
    ItemTruncated,
    Malformed,
    Other,
    ResponseCreated,
    ResponseDone,
    Resumption,
    SessionEnding,
    SessionRenewed,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    Transcript,
    TranscriptDelta,
    UpstreamErrorEvent,
    parse_agent_event,
)
from bridge.realtime.names import CLIENT_EVENT_NAMES, GA_SERVER_EVENT_NAMES
from tests.realtime._fixtures import load, names

TYPED = {
    "session.updated": SessionUpdated,
    "response.created": ResponseCreated,
    "response.done": ResponseDone,
    "response.output_audio.delta": AudioDelta,
    "response.output_audio_transcript.delta": TranscriptDelta,
    "response.output_audio_transcript.done": Transcript,
    "conversation.item.truncated": ItemTruncated,
    "conversation.item.input_audio_transcription.completed": Transcript,
    "input_audio_buffer.speech_started": SpeechStarted,
    "input_audio_buffer.speech_stopped": SpeechStopped,
    "response.function_call_arguments.done": FunctionCallDone,
    "error": UpstreamErrorEvent,
    "output_audio_buffer.started": BufferEvent,
    "output_audio_buffer.stopped": BufferEvent,
    "output_audio_buffer.cleared": BufferEvent,
}


def test_the_fixtures_cover_every_ga_event() -> None:
    assert names("ga", "server") >= GA_SERVER_EVENT_NAMES
    assert names("ga", "client") >= CLIENT_EVENT_NAMES
    assert set(TYPED) <= GA_SERVER_EVENT_NAMES


@pytest.mark.parametrize("raw", load("ga", "server"))
def test_every_ga_server_event_parses_into_its_type(raw: dict[str, Any]) -> None:
    event = parse_agent_event(raw)
    assert type(event) is TYPED.get(raw["type"], Other), event
    assert event.raw is raw  # forwarded to clients exactly as received


def test_fields_the_call_reads() -> None:
    pcm = b"\x01\x02" * 240
    delta = parse_agent_event(
        {
            "type": "response.output_audio.delta",
            "response_id": "r",
            "item_id": "i",
            "delta": base64.b64encode(pcm).decode(),
        }
    )
    assert delta == AudioDelta(delta.raw, "r", "i", pcm)
    done = parse_agent_event(
        {
            "type": "response.done",
            "response": {
                "id": "r",
                "status": "cancelled",
                "output": [
                    {"type": "message", "id": "m"},
                    {"type": "function_call", "call_id": "c", "name": "f", "status": "incomplete"},
                ],
            },
        }
    )
    assert isinstance(done, ResponseDone)
    assert (done.response_id, done.status) == ("r", "cancelled")
    assert done.function_calls == (FunctionCall("c", "f", "incomplete"),)
    err = parse_agent_event({"type": "error", "error": {"code": "session_expired", "message": "m"}})
    assert isinstance(err, UpstreamErrorEvent) and (err.code, err.message) == (
        "session_expired",
        "m",
    )


def test_the_upstreams_end_of_session_events_and_truncations_are_typed() -> None:
    going = parse_agent_event({"type": "rtbridge.upstream.going_away", "time_left_ms": 9500})
    assert going == SessionEnding(going.raw, "going_away", 9500, None)
    closed = parse_agent_event({"type": "rtbridge.upstream.session_closed", "reason": "x"})
    assert closed == SessionEnding(closed.raw, "closed", None, "x")
    handle = parse_agent_event(
        {"type": "rtbridge.upstream.resumption", "handle": "h1", "resumable": True}
    )
    assert handle == Resumption(handle.raw, "h1", True)
    gone = parse_agent_event({"type": "rtbridge.upstream.resumption", "handle": None})
    assert isinstance(gone, Resumption) and (gone.handle, gone.resumable) == (None, False)
    cut = parse_agent_event(
        {
            "type": "conversation.item.truncated",
            "item_id": "i",
            "audio_end_ms": 800,
            "transcript": "It shipped",
        }
    )
    assert cut == ItemTruncated(cut.raw, "i", 800, "It shipped")
    bad = parse_agent_event({"type": "conversation.item.truncated", "item_id": "i"})
    assert isinstance(bad, Malformed)
    renewed = SessionRenewed("resumed", "going_away", 0, 1, 0, 0)
    assert renewed.raw["type"] == "rtbridge.session_renewed"


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "response.output_audio.delta", "delta": "not base64!"},
        {"type": "response.output_audio.delta", "delta": "\x80"},  # not ASCII (hypothesis)
        {"type": "response.output_audio.delta", "delta": 5},
        {"type": "response.created", "response": {}},
        {"type": "response.done", "response": "done"},
        {"type": "session.updated"},
        {"type": "session.updated", "session": {"audio": "x"}},
        {"type": "session.updated", "session": {"audio": {"input": "x"}}},
        {"type": "session.updated", "session": {"audio": {"output": [1]}}},
        {"type": "session.updated", "session": {"audio": {"input": {"turn_detection": 1}}}},
        {"type": "session.updated", "session": {"tools": "x"}},
        {"type": "session.updated", "session": {"tools": ["x"]}},
        {"type": "response.function_call_arguments.done", "name": "f"},
    ],
)
def test_unusable_fields_make_a_malformed_event_not_an_exception(raw: dict[str, Any]) -> None:
    event = parse_agent_event(raw)
    assert isinstance(event, Malformed) and event.reason


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


@given(
    kind=st.sampled_from(sorted(TYPED)),
    fields=st.dictionaries(
        st.sampled_from(
            ["response", "delta", "item_id", "response_id", "call_id", "session", "error"]
        ),
        _JSON,
    ),
)
def test_no_input_raises(kind: str, fields: dict[str, Any]) -> None:
    parse_agent_event({**fields, "type": kind})
