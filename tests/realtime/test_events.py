"""Typed events: every fixture parses to its class and dumps back to exactly its input."""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.errors import RemoteProtocolError
from bridge.realtime import events as E
from bridge.realtime.events import (
    BETA_SERVER_EVENT_NAMES,
    CLIENT_EVENTS,
    GA_SERVER_EVENT_NAMES,
    SERVER_EVENTS,
    event_to_dict,
    parse_client_event,
    parse_server_event,
)
from bridge.realtime.session import RealtimeSession, SessionAudioConfig

from ._fixtures import load, names

# Written out by hand (not derived from the registries) so that a registry mistake fails here.
EXPECTED_CLIENT = {
    "session.update": E.SessionUpdateEvent,
    "conversation.item.create": E.ConversationItemCreateEvent,
    "conversation.item.delete": E.ConversationItemDeleteEvent,
    "conversation.item.retrieve": E.ConversationItemRetrieveEvent,
    "conversation.item.truncate": E.ConversationItemTruncateEvent,
    "input_audio_buffer.append": E.InputAudioBufferAppendEvent,
    "input_audio_buffer.clear": E.InputAudioBufferClearEvent,
    "input_audio_buffer.commit": E.InputAudioBufferCommitEvent,
    "output_audio_buffer.clear": E.OutputAudioBufferClearEvent,
    "response.cancel": E.ResponseCancelEvent,
    "response.create": E.ResponseCreateEvent,
}
EXPECTED_SERVER = {
    "session.created": E.SessionCreatedEvent,
    "session.updated": E.SessionUpdatedEvent,
    "conversation.created": E.ConversationCreatedEvent,
    "conversation.item.added": E.ConversationItemAddedEvent,
    "conversation.item.done": E.ConversationItemDoneEvent,
    "conversation.item.deleted": E.ConversationItemDeletedEvent,
    "conversation.item.retrieved": E.ConversationItemRetrievedEvent,
    "conversation.item.truncated": E.ConversationItemTruncatedEvent,
    "conversation.item.input_audio_transcription.completed": (
        E.InputAudioTranscriptionCompletedEvent
    ),
    "conversation.item.input_audio_transcription.delta": E.InputAudioTranscriptionDeltaEvent,
    "conversation.item.input_audio_transcription.failed": E.InputAudioTranscriptionFailedEvent,
    "conversation.item.input_audio_transcription.segment": E.InputAudioTranscriptionSegmentEvent,
    "input_audio_buffer.cleared": E.InputAudioBufferClearedEvent,
    "input_audio_buffer.committed": E.InputAudioBufferCommittedEvent,
    "input_audio_buffer.speech_started": E.InputAudioBufferSpeechStartedEvent,
    "input_audio_buffer.speech_stopped": E.InputAudioBufferSpeechStoppedEvent,
    "input_audio_buffer.timeout_triggered": E.InputAudioBufferTimeoutTriggeredEvent,
    "input_audio_buffer.dtmf_event_received": E.InputAudioBufferDtmfEventReceivedEvent,
    "output_audio_buffer.started": E.OutputAudioBufferStartedEvent,
    "output_audio_buffer.stopped": E.OutputAudioBufferStoppedEvent,
    "output_audio_buffer.cleared": E.OutputAudioBufferClearedEvent,
    "response.created": E.ResponseCreatedEvent,
    "response.done": E.ResponseDoneEvent,
    "response.output_item.added": E.ResponseOutputItemAddedEvent,
    "response.output_item.done": E.ResponseOutputItemDoneEvent,
    "response.content_part.added": E.ResponseContentPartAddedEvent,
    "response.content_part.done": E.ResponseContentPartDoneEvent,
    "response.output_text.delta": E.ResponseOutputTextDeltaEvent,
    "response.output_text.done": E.ResponseOutputTextDoneEvent,
    "response.output_audio.delta": E.ResponseOutputAudioDeltaEvent,
    "response.output_audio.done": E.ResponseOutputAudioDoneEvent,
    "response.output_audio_transcript.delta": E.ResponseOutputAudioTranscriptDeltaEvent,
    "response.output_audio_transcript.done": E.ResponseOutputAudioTranscriptDoneEvent,
    "response.function_call_arguments.delta": E.ResponseFunctionCallArgumentsDeltaEvent,
    "response.function_call_arguments.done": E.ResponseFunctionCallArgumentsDoneEvent,
    "response.mcp_call_arguments.delta": E.ResponseMcpCallArgumentsDeltaEvent,
    "response.mcp_call_arguments.done": E.ResponseMcpCallArgumentsDoneEvent,
    "response.mcp_call.in_progress": E.ResponseMcpCallInProgressEvent,
    "response.mcp_call.completed": E.ResponseMcpCallCompletedEvent,
    "response.mcp_call.failed": E.ResponseMcpCallFailedEvent,
    "mcp_list_tools.in_progress": E.McpListToolsInProgressEvent,
    "mcp_list_tools.completed": E.McpListToolsCompletedEvent,
    "mcp_list_tools.failed": E.McpListToolsFailedEvent,
    "rate_limits.updated": E.RateLimitsUpdatedEvent,
    "error": E.ErrorEvent,
    # beta-only names (seed 001)
    "conversation.item.created": E.ConversationItemCreatedEvent,
    "transcription_session.created": E.TranscriptionSessionCreatedEvent,
    "transcription_session.updated": E.TranscriptionSessionUpdatedEvent,
    "response.text.delta": E.ResponseTextDeltaEvent,
    "response.text.done": E.ResponseTextDoneEvent,
    "response.audio.delta": E.ResponseAudioDeltaEvent,
    "response.audio.done": E.ResponseAudioDoneEvent,
    "response.audio_transcript.delta": E.ResponseAudioTranscriptDeltaEvent,
    "response.audio_transcript.done": E.ResponseAudioTranscriptDoneEvent,
}
# Every server event seed 001 (beta) names.
SEED_001_NAMES = {
    "conversation.created",
    "conversation.item.created",
    "conversation.item.deleted",
    "conversation.item.input_audio_transcription.completed",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.failed",
    "conversation.item.retrieved",
    "conversation.item.truncated",
    "error",
    "input_audio_buffer.cleared",
    "input_audio_buffer.committed",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "rate_limits.updated",
    "response.audio.delta",
    "response.audio.done",
    "response.audio_transcript.delta",
    "response.audio_transcript.done",
    "response.content_part.added",
    "response.content_part.done",
    "response.created",
    "response.done",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.output_item.added",
    "response.output_item.done",
    "response.text.delta",
    "response.text.done",
    "session.created",
    "session.updated",
    "transcription_session.created",
    "transcription_session.updated",
}
# Beta events whose payload is not GA-shaped: they must be translated before parsing.
BETA_NOT_GA_SHAPED = {"session.created", "session.updated"}


def test_registries_match_the_expected_classes() -> None:
    assert dict(CLIENT_EVENTS) == EXPECTED_CLIENT
    assert dict(SERVER_EVENTS) == EXPECTED_SERVER
    assert set(BETA_SERVER_EVENT_NAMES) | set(GA_SERVER_EVENT_NAMES) == set(EXPECTED_SERVER)


def test_fixtures_cover_every_event_type() -> None:
    assert names("ga", "client") == set(EXPECTED_CLIENT)
    assert names("ga", "server") == set(GA_SERVER_EVENT_NAMES)
    assert names("beta", "server") == SEED_001_NAMES
    assert set(BETA_SERVER_EVENT_NAMES) <= SEED_001_NAMES


@pytest.mark.parametrize("event", load("ga", "client"))
def test_ga_client_event_round_trip(event: dict[str, Any]) -> None:
    parsed = parse_client_event(event)
    assert type(parsed) is EXPECTED_CLIENT[event["type"]]
    assert event_to_dict(parsed) == event
    from_frame = parse_client_event(json.dumps(event).encode())
    assert event_to_dict(from_frame) == event


@pytest.mark.parametrize("event", load("ga", "server"))
def test_ga_server_event_round_trip(event: dict[str, Any]) -> None:
    parsed = parse_server_event(event)
    assert type(parsed) is EXPECTED_SERVER[event["type"]]
    assert event_to_dict(parsed) == event
    assert event_to_dict(parse_server_event(json.dumps(event))) == event


@pytest.mark.parametrize("event", load("beta", "server"))
def test_beta_server_event_parses_by_its_own_name(event: dict[str, Any]) -> None:
    if event["type"] in BETA_NOT_GA_SHAPED:
        with pytest.raises(RemoteProtocolError) as info:
            parse_server_event(event)
        assert (info.value.code, info.value.param) == ("missing_required_parameter", "session.type")
        return
    parsed = parse_server_event(event)
    assert type(parsed) is EXPECTED_SERVER[event["type"]]
    assert event_to_dict(parsed) == event


def test_beta_names_are_subclasses_of_their_ga_class() -> None:
    assert issubclass(E.ResponseAudioDeltaEvent, E.ResponseOutputAudioDeltaEvent)
    assert issubclass(E.ResponseTextDoneEvent, E.ResponseOutputTextDoneEvent)
    assert issubclass(E.ConversationItemCreatedEvent, E.ConversationItemAddedEvent)


# --------------------------------------------------------------------------- unknowns survive


def test_unknown_event_type_round_trips() -> None:
    event = {"type": "ping", "timestamp": 1763605100123, "nested": {"a": [1, None, {"b": 2.5}]}}
    for parse in (parse_client_event, parse_server_event):
        parsed = parse(event)
        assert type(parsed) is E.UnknownEvent
        assert event_to_dict(parsed) == event


def test_unknown_fields_and_nulls_survive_everywhere() -> None:
    event = {
        "type": "session.update",
        "event_id": None,
        "x_top": {"k": [1, 2]},
        "session": {
            "type": "realtime",
            "model": None,
            "x_session": True,
            "audio": {
                "x_audio": 1,
                "input": {
                    "format": {"type": "audio/pcm", "rate": 16000, "x_fmt": "?"},
                    "turn_detection": {"type": "future_vad", "knob": 3},
                    "x_input": None,
                },
                "output": {
                    "voice": {"id": "voice_x", "x_voice": 1},
                    "format": {"type": "audio/opus"},
                },
            },
            "tools": [
                {"type": "web_search", "x": 1},
                {"type": "function", "name": "f", "strict": True},
            ],
            "tool_choice": {"type": "file_search"},
        },
    }
    assert event_to_dict(parse_client_event(event)) == event


def test_unknown_item_and_content_types_survive() -> None:
    event = {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "developer",
            "content": [{"type": "input_video", "url": "x"}, {"text": "no type"}],
        },
    }
    assert event_to_dict(parse_client_event(event)) == event
    ref = {"type": "conversation.item.create", "item": {"type": "item_reference", "id": "item_1"}}
    assert event_to_dict(parse_client_event(ref)) == ref


def test_numbers_keep_their_json_type() -> None:
    event = {
        "type": "rate_limits.updated",
        "rate_limits": [{"name": "requests", "reset_seconds": 60}],
    }
    dumped = event_to_dict(parse_server_event(event))
    assert orjson.dumps(dumped) == orjson.dumps(event)


def test_construct_by_keyword_fills_type() -> None:
    session = RealtimeSession(type="realtime", model="gpt-realtime", audio=SessionAudioConfig())
    ev = E.SessionUpdateEvent(session=session)
    assert event_to_dict(ev) == {
        "type": "session.update",
        "session": {"type": "realtime", "model": "gpt-realtime", "audio": {}},
    }
    assert event_to_dict(E.InputAudioBufferClearEvent()) == {"type": "input_audio_buffer.clear"}


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "frame", [b"{", "", "[]", "5", "null", '"session.update"', b"\xff\xfe", "{'type': 1}"]
)
def test_not_a_json_object(frame: str | bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_client_event(frame)
    assert info.value.code == "invalid_json"


@pytest.mark.parametrize("obj", [[], 5, None, 1.5])
def test_not_a_mapping(obj: Any) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_server_event(obj)
    assert info.value.code == "invalid_json"


@pytest.mark.parametrize(
    "event", [{}, {"type": ""}, {"type": 5}, {"type": None}, {"event_id": "e"}]
)
def test_missing_type(event: dict[str, Any]) -> None:
    for parse in (parse_client_event, parse_server_event):
        with pytest.raises(RemoteProtocolError) as info:
            parse(event)
        assert (info.value.code, info.value.param) == ("missing_required_parameter", "type")
        with pytest.raises(RemoteProtocolError) as info:
            parse(json.dumps(event))
        assert (info.value.code, info.value.param) == ("missing_required_parameter", "type")


CLIENT_ERRORS = [
    ({"type": "session.update"}, "missing_required_parameter", "session"),
    (
        {"type": "session.update", "session": {"model": "m"}},
        "missing_required_parameter",
        "session.type",
    ),
    ({"type": "session.update", "session": "realtime"}, "invalid_event", "session"),
    (
        {"type": "session.update", "session": {"type": "realtime", "instructions": 5}},
        "invalid_event",
        "session.instructions",
    ),
    (
        {
            "type": "session.update",
            "session": {"type": "realtime", "audio": {"input": {"format": {"rate": 8000}}}},
        },
        "missing_required_parameter",
        "session.audio.input.format.type",
    ),
    (
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "audio": {"input": {"format": {"type": "audio/pcm", "rate": "24000"}}},
            },
        },
        "invalid_event",
        "session.audio.input.format.rate",
    ),
    (
        {
            "type": "session.update",
            "session": {"type": "realtime", "audio": {"output": {"voice": 7}}},
        },
        "invalid_event",
        "session.audio.output.voice",
    ),
    (
        {"type": "session.update", "session": {"type": "realtime", "tools": [{"type": "mcp"}]}},
        "missing_required_parameter",
        "session.tools[0].server_label",
    ),
    (
        {"type": "session.update", "session": {"type": "realtime", "max_output_tokens": "lots"}},
        "invalid_event",
        "session.max_output_tokens",
    ),
    ({"type": "conversation.item.create"}, "missing_required_parameter", "item"),
    ({"type": "conversation.item.create", "item": {}}, "missing_required_parameter", "item.type"),
    ({"type": "conversation.item.create", "item": {"type": None}}, "invalid_event", "item.type"),
    ({"type": "conversation.item.create", "item": {"type": 3}}, "invalid_event", "item.type"),
    (
        {"type": "session.update", "session": {"type": None}},
        "invalid_event",
        "session.type",
    ),
    (
        {"type": "conversation.item.create", "item": {"type": "message", "content": []}},
        "missing_required_parameter",
        "item.role",
    ),
    (
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": ["x"]}],
            },
        },
        "invalid_event",
        "item.content[0].text",
    ),
    (
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": "c"},
        },
        "missing_required_parameter",
        "item.output",
    ),
    (
        {
            "type": "conversation.item.create",
            "item": {"type": "message", "role": "user", "content": {"type": "input_text"}},
        },
        "invalid_event",
        "item.content",
    ),
    (
        {"type": "conversation.item.truncate", "item_id": "i", "content_index": 0},
        "missing_required_parameter",
        "audio_end_ms",
    ),
    (
        {
            "type": "conversation.item.truncate",
            "item_id": "i",
            "content_index": 0,
            "audio_end_ms": "1500",
        },
        "invalid_event",
        "audio_end_ms",
    ),
    (
        {
            "type": "conversation.item.truncate",
            "item_id": "i",
            "content_index": True,
            "audio_end_ms": 1,
        },
        "invalid_event",
        "content_index",
    ),
    ({"type": "input_audio_buffer.append"}, "missing_required_parameter", "audio"),
    ({"type": "input_audio_buffer.append", "audio": None}, "invalid_event", "audio"),
    ({"type": "input_audio_buffer.commit", "event_id": 12}, "invalid_event", "event_id"),
    (
        {"type": "response.create", "response": {"input": [{"type": "message"}]}},
        "missing_required_parameter",
        "response.input[0].role",
    ),
    ({"type": "unknown.thing", "event_id": 12}, "invalid_event", "event_id"),
]


@pytest.mark.parametrize(("event", "code", "param"), CLIENT_ERRORS)
def test_client_event_errors_are_precise(event: dict[str, Any], code: str, param: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_client_event(event)
    assert (info.value.code, info.value.param) == (code, param)
    assert event["type"] in str(info.value)


SERVER_ERRORS = [
    (
        {"type": "response.output_audio.delta", "item_id": "i"},
        "missing_required_parameter",
        "delta",
    ),
    (
        {"type": "response.output_audio.delta", "delta": b"x".hex(), "output_index": "0"},
        "invalid_event",
        "output_index",
    ),
    (
        {"type": "input_audio_buffer.dtmf_event_received", "received_at": 1},
        "missing_required_parameter",
        "event",
    ),
    ({"type": "input_audio_buffer.dtmf_event_received", "event": 5}, "invalid_event", "event"),
    ({"type": "error", "error": "boom"}, "invalid_event", "error"),
    (
        {"type": "response.done", "response": {"output": [{"type": "function_call", "name": "f"}]}},
        "missing_required_parameter",
        "response.output[0].arguments",
    ),
    (
        {"type": "rate_limits.updated", "rate_limits": [{"limit": 1.5}]},
        "invalid_event",
        "rate_limits[0].limit",
    ),
    (
        {
            "type": "session.created",
            "session": {"type": "realtime", "audio": {"output": {"speed": "1"}}},
        },
        "invalid_event",
        "session.audio.output.speed",
    ),
]


@pytest.mark.parametrize(("event", "code", "param"), SERVER_ERRORS)
def test_server_event_errors_are_precise(event: dict[str, Any], code: str, param: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_server_event(event)
    assert (info.value.code, info.value.param) == (code, param)


def test_hand_made_mapping_with_bad_keys_is_a_protocol_error() -> None:
    with pytest.raises(RemoteProtocolError):
        parse_server_event({"type": "error", "error": {"message": "m", 5: "x"}})


# --------------------------------------------------------------------------- repr hides audio


@pytest.mark.parametrize(
    ("parse", "event"),
    [
        (parse_client_event, {"type": "input_audio_buffer.append", "audio": "QUJD" * 4000}),
        (parse_server_event, {"type": "response.output_audio.delta", "delta": "QUJD" * 4000}),
        (parse_server_event, {"type": "response.audio.delta", "delta": "QUJD" * 4000}),
        (
            parse_client_event,
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_audio", "audio": "QUJD" * 4000}],
                },
            },
        ),
        (
            parse_server_event,
            {
                "type": "conversation.item.retrieved",
                "item": {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_audio", "audio": "QUJD" * 4000}],
                },
            },
        ),
    ],
)
def test_repr_and_str_never_show_base64_audio(parse: Any, event: dict[str, Any]) -> None:
    parsed = parse(event)
    for text in (repr(parsed), str(parsed)):
        assert "QUJDQUJD" not in text
        assert "16000 chars base64" in text
        assert len(text) < 400
    assert event_to_dict(parsed) == event  # redaction is display-only


def test_text_deltas_stay_readable_in_repr() -> None:
    parsed = parse_server_event({"type": "response.output_text.delta", "delta": "Hello there"})
    assert "Hello there" in repr(parsed)


# --------------------------------------------------------------------------- properties

_ALL_NAMES = sorted(set(CLIENT_EVENTS) | set(SERVER_EVENTS))
_FIELD_NAMES = sorted(
    {
        name
        for cls in {*CLIENT_EVENTS.values(), *SERVER_EVENTS.values()}
        for name in cls.model_fields
    }
    | {"audio", "delta", "format", "voice", "content", "role", "rate", "text", "output"}
)
_text = st.text(st.characters(codec="utf-8"), max_size=8)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
)
_keys = st.sampled_from([*_FIELD_NAMES, "type"]) | _text
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=12,
)
_events = st.builds(
    lambda t, rest: {**rest, "type": t},
    st.sampled_from(_ALL_NAMES) | _text,
    st.dictionaries(_keys, _json, max_size=5),
)

_PROP = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(event: dict[str, Any]) -> None:
    for parse in (parse_client_event, parse_server_event):
        try:
            parsed = parse(event)
        except RemoteProtocolError:
            continue
        assert event_to_dict(parsed) == event
        assert event_to_dict(parse(orjson.dumps(event))) == event


@_PROP
@given(_events)
def test_any_object_with_a_string_type_round_trips_or_fails_cleanly(event: dict[str, Any]) -> None:
    _check(event)


_ALL_FIXTURES = [p.values[0] for side in ("client", "server") for p in load("ga", side)]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


@_PROP
@given(st.data())
def test_mutated_fixtures_round_trip_or_fail_cleanly(data: st.DataObject) -> None:
    event = copy.deepcopy(data.draw(st.sampled_from(_ALL_FIXTURES)))
    path = data.draw(st.sampled_from(_paths(event)))
    if path == ("type",):
        return
    node = event
    for step in path[:-1]:
        node = node[step]
    if data.draw(st.booleans()) and isinstance(node, dict):
        del node[path[-1]]
    else:
        node[path[-1]] = data.draw(_json)
    _check(event)
