"""The dialect normaliser: every fixture through every dialect and back, plus each rule."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.config import Dialect
from bridge.realtime.dialects import XAI_VOICES, Translator, snake_to_dotted
from bridge.realtime.names import (
    BETA_SERVER_EVENT_NAMES,
    CLIENT_EVENT_NAMES,
    GA_SERVER_EVENT_NAMES,
)

from ._fixtures import load

SERVER_EVENT_NAMES = GA_SERVER_EVENT_NAMES | BETA_SERVER_EVENT_NAMES

Event = dict[str, Any]
DIALECTS = [Dialect.BETA, Dialect.XAI]


def _run(fn: Callable[[Event], list[Event]], events: list[Event]) -> list[Event]:
    out: list[Event] = []
    for ev in events:
        before = copy.deepcopy(ev)
        res = fn(ev)
        assert ev == before, "translator mutated its input"
        assert all(r is not ev for r in res), "translator returned its input object"
        out += res
    return out


# --------------------------------------------------------------------------- GA -> dialect -> GA


def _voice_lowercased(ev: Event) -> Event:
    """The documented lossy case of GA -> xAI -> GA: built-in voices come back lowercase."""
    session = ev.get("session")
    try:
        voice = session["audio"]["output"]["voice"]  # type: ignore[index]
    except (KeyError, TypeError):
        return ev
    if not isinstance(voice, str) or voice.lower() not in XAI_VOICES:
        return ev
    out = copy.deepcopy(ev)
    out["session"]["audio"]["output"]["voice"] = voice.lower()
    return out


# GA -> xAI -> GA: the first conversation.created / session.updated from xAI with no
# session.created seen is preceded by a synthesised session.created (fresh translator per event).
XAI_EXPANDS = {"conversation.created", "session.updated"}


def test_ga_translator_is_a_no_op() -> None:
    t = Translator(Dialect.GA)
    assert t.needs_translation is False
    ev = {"type": "response.output_audio.delta", "delta": "AAAA"}
    for fn in (
        t.client_to_dialect,
        t.server_from_dialect,
        t.client_from_dialect,
        t.server_to_dialect,
    ):
        assert _run(fn, [ev]) == [ev]
    assert Translator(Dialect.BETA).needs_translation
    assert Translator(Dialect.XAI).needs_translation


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("event", load("ga", "client"))
def test_ga_client_event_survives_a_dialect_trip(dialect: Dialect, event: Event) -> None:
    sent = _run(Translator(dialect).client_to_dialect, [event])
    assert len(sent) == 1
    assert snake_to_dotted(sent[0]["type"]) is None  # dotted names go out, never snake tags
    back = _run(Translator(dialect).client_from_dialect, sent)
    assert back == [_voice_lowercased(event) if dialect is Dialect.XAI else event]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("event", load("ga", "server"))
def test_ga_server_event_survives_a_dialect_trip(dialect: Dialect, event: Event) -> None:
    sent = _run(Translator(dialect).server_to_dialect, [event])
    assert len(sent) == 1
    back = _run(Translator(dialect).server_from_dialect, sent)
    if dialect is Dialect.XAI:
        event = _voice_lowercased(event)
    if dialect is Dialect.XAI and event["type"] in XAI_EXPANDS:
        assert [e["type"] for e in back] == ["session.created", event["type"]]
        assert back[0]["session"] == {"type": "realtime"}
        back = back[1:]
    assert back == [event]


def test_ga_session_to_beta_is_flattened_exactly() -> None:
    [ga] = [p.values[0] for p in load("ga", "client") if p.id == "session.update"]
    [beta] = Translator(Dialect.BETA).client_to_dialect(ga)
    assert beta == {
        "type": "session.update",
        "session": {
            "model": "gpt-realtime",
            "instructions": ga["session"]["instructions"],
            "modalities": ["audio", "text"],
            "input_audio_format": "pcm16",
            "output_audio_format": "pcm16",
            "input_audio_transcription": {"model": "gpt-4o-mini-transcribe", "language": "en"},
            "input_audio_noise_reduction": None,
            "turn_detection": ga["session"]["audio"]["input"]["turn_detection"],
            "voice": "marin",
            "speed": 1,
            "tools": ga["session"]["tools"],
            "tool_choice": "auto",
            "tracing": "auto",
            "max_response_output_tokens": "inf",
        },
    }


def test_ga_session_to_xai_moves_voice_and_turn_detection_only() -> None:
    [ga] = [p.values[0] for p in load("ga", "client") if p.id == "session.update@telephony"]
    [xai] = Translator(Dialect.XAI).client_to_dialect(ga)
    s = xai["session"]
    assert s["voice"] == {"id": "voice_1234abcd"}
    assert s["turn_detection"] == ga["session"]["audio"]["input"]["turn_detection"]
    assert s["audio"]["input"]["format"] == {"type": "audio/pcmu"}  # GA objects go out
    assert "voice" not in s["audio"]["output"]
    assert "turn_detection" not in s["audio"]["input"]
    assert s["type"] == "realtime"


def test_transcription_session_travels_as_beta_transcription_session() -> None:
    [ga] = [p.values[0] for p in load("ga", "client") if p.id == "session.update@transcription"]
    [beta] = Translator(Dialect.BETA).client_to_dialect(ga)
    assert beta["type"] == "transcription_session.update"
    assert beta["session"]["input_audio_format"] == "pcm16"
    assert beta["session"]["input_audio_noise_reduction"] == {"type": "near_field"}
    assert "type" not in beta["session"]
    [created] = [
        p.values[0] for p in load("ga", "server") if p.id == "session.created@transcription"
    ]
    assert Translator(Dialect.BETA).server_to_dialect(created)[0]["type"] == (
        "transcription_session.created"
    )


def test_pcm_rate_is_lossy_towards_beta() -> None:
    ga = {
        "type": "session.update",
        "session": {"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcm"}}}},
    }
    [beta] = Translator(Dialect.BETA).client_to_dialect(ga)
    assert beta["session"]["input_audio_format"] == "pcm16"
    [back] = Translator(Dialect.BETA).client_from_dialect(beta)
    assert back["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}


# --------------------------------------------------------------------------- beta -> GA -> beta


def _modalities_ordered(ev: Event) -> Event:
    """Beta ``["text", "audio"]`` is GA ``["audio"]``, which goes back as ``["audio", "text"]``."""
    out = copy.deepcopy(ev)
    for key in ("session", "response"):
        obj = out.get(key)
        if isinstance(obj, dict) and obj.get("modalities") == ["text", "audio"]:
            obj["modalities"] = ["audio", "text"]
    return out


# Documented lossy cases of beta -> GA -> beta, by fixture id.
BETA_LOSSY: dict[str, Callable[[Event], Event]] = {
    "session.created": _modalities_ordered,
    "response.created": _modalities_ordered,
    "response.done": _modalities_ordered,
    "session.update": _modalities_ordered,
}


@pytest.mark.parametrize("event", load("beta", "server"))
def test_beta_server_event_to_ga_and_back(event: Event, request: pytest.FixtureRequest) -> None:
    fixture_id = request.node.callspec.id
    ga = _run(Translator(Dialect.BETA).server_from_dialect, [event])
    assert len(ga) == 1
    assert ga[0]["type"] in GA_SERVER_EVENT_NAMES
    back = _run(Translator(Dialect.BETA).server_to_dialect, ga)
    expected = BETA_LOSSY.get(fixture_id, lambda e: e)(event)
    assert back == [expected]


@pytest.mark.parametrize("event", load("beta", "client"))
def test_beta_client_event_to_ga_and_back(event: Event, request: pytest.FixtureRequest) -> None:
    fixture_id = request.node.callspec.id
    ga = _run(Translator(Dialect.BETA).client_from_dialect, [event])
    assert len(ga) == 1
    assert ga[0]["type"] in CLIENT_EVENT_NAMES
    back = _run(Translator(Dialect.BETA).client_to_dialect, ga)
    assert back == [BETA_LOSSY.get(fixture_id, lambda e: e)(event)]


def test_beta_session_becomes_ga_exactly() -> None:
    [beta] = [p.values[0] for p in load("beta", "server") if p.id == "session.updated"]
    [ga] = Translator(Dialect.BETA).server_from_dialect(beta)
    s = ga["session"]
    assert s["type"] == "realtime"
    assert s["output_modalities"] == ["text"]
    assert s["max_output_tokens"] == "inf"
    assert s["audio"] == {
        "input": {
            "format": {"type": "audio/pcma"},
            "transcription": {"model": "whisper-1"},
            "turn_detection": None,
            "noise_reduction": None,
        },
        "output": {"format": {"type": "audio/pcma"}, "voice": "alloy", "speed": 1.1},
    }
    for flat in ("voice", "modalities", "input_audio_format", "turn_detection", "speed"):
        assert flat not in s
    assert s["temperature"] == 0.8  # beta-only field passes through


def test_beta_assistant_content_renamed_in_response_output() -> None:
    [beta] = [p.values[0] for p in load("beta", "server") if p.id == "response.done"]
    [ga] = Translator(Dialect.BETA).server_from_dialect(beta)
    assert ga["response"]["output"][0]["content"][0]["type"] == "output_audio"
    assert ga["response"]["audio"] == {
        "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy"}
    }
    assert ga["response"]["output_modalities"] == ["audio"]


def test_audio_delta_rename_is_a_shallow_copy() -> None:
    ev = {"type": "response.audio.delta", "event_id": "e", "delta": "QUJD" * 100, "item_id": "i"}
    [out] = Translator(Dialect.BETA).server_from_dialect(ev)
    assert out == {**ev, "type": "response.output_audio.delta"}
    assert out["delta"] is ev["delta"]


# --------------------------------------------------------------------------- xAI

EXPECTED_XAI_TYPES = {
    "session_update": "session.update",
    "input_audio_buffer_append": "input_audio_buffer.append",
    "response_audio_delta": "response.output_audio.delta",
    "response_audio_transcript_delta": "response.output_audio_transcript.delta",
    "response_text_delta": "response.output_text.delta",
    "conversation_item_created": "conversation.item.added",
    "response.text.delta": "response.output_text.delta",
    "rate_limits_updated": "rate_limits.updated",
}


# Every snake_case tag seed 003 (the xAI client library) serialises.
SEED_003_CLIENT_TAGS = {
    "session_update",
    "input_audio_buffer_append",
    "input_audio_buffer_commit",
    "input_audio_buffer_clear",
    "conversation_item_create",
    "response_create",
    "response_cancel",
}
SEED_003_SERVER_TAGS = {
    "session_created",
    "session_updated",
    "conversation_item_created",
    "input_audio_buffer_committed",
    "input_audio_buffer_cleared",
    "input_audio_buffer_speech_started",
    "input_audio_buffer_speech_stopped",
    "response_created",
    "response_audio_delta",
    "response_audio_transcript_delta",
    "response_text_delta",
    "response_done",
    "error",
    "rate_limits_updated",
}


def test_xai_fixtures_cover_every_seed_003_tag() -> None:
    assert {p.values[0]["type"] for p in load("xai", "client")} >= SEED_003_CLIENT_TAGS
    assert {p.values[0]["type"] for p in load("xai", "server")} >= SEED_003_SERVER_TAGS


@pytest.mark.parametrize("event", load("xai", "server"))
def test_xai_server_event_becomes_ga(event: Event, request: pytest.FixtureRequest) -> None:
    fixture_id = request.node.callspec.id
    t = Translator(Dialect.XAI)
    t.server_from_dialect({"type": "session.created", "session": {}})  # no synthesis here
    [ga] = _run(t.server_from_dialect, [event])
    if fixture_id in EXPECTED_XAI_TYPES:
        assert ga["type"] == EXPECTED_XAI_TYPES[fixture_id]
    assert snake_to_dotted(ga["type"]) is None
    if ga["type"] not in GA_SERVER_EVENT_NAMES:  # no GA counterpart: passed through
        assert ga == event  # (ping, transcription .updated)
    # dialect -> GA is lossy (snake tags, flat formats...) but stable: GA -> xAI -> GA is exact
    again = Translator(Dialect.XAI)
    again.server_from_dialect({"type": "session.created", "session": {}})
    assert _run(
        again.server_from_dialect, _run(Translator(Dialect.XAI).server_to_dialect, [ga])
    ) == [_voice_lowercased(ga)]


@pytest.mark.parametrize("event", load("xai", "client"))
def test_xai_client_event_becomes_ga(event: Event, request: pytest.FixtureRequest) -> None:
    fixture_id = request.node.callspec.id
    [ga] = _run(Translator(Dialect.XAI).client_from_dialect, [event])
    if fixture_id in EXPECTED_XAI_TYPES:
        assert ga["type"] == EXPECTED_XAI_TYPES[fixture_id]
    assert ga["type"] in CLIENT_EVENT_NAMES
    sent = _run(Translator(Dialect.XAI).client_to_dialect, [ga])
    assert _run(Translator(Dialect.XAI).client_from_dialect, sent) == [_voice_lowercased(ga)]


def test_xai_flat_session_becomes_ga() -> None:
    ev = {
        "type": "session_created",
        "session": {
            "model": "grok-4",
            "voice": "ara",
            "input_audio_format": "g711_ulaw",
            "output_audio_format": "pcm16",
            "turn_detection": {"type": "server_vad"},
        },
    }
    [ga] = Translator(Dialect.XAI).server_from_dialect(ev)
    assert ga == {
        "type": "session.created",
        "session": {
            "type": "realtime",
            "model": "grok-4",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcmu"},
                    "turn_detection": {"type": "server_vad"},
                },
                "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "ara"},
            },
        },
    }


def test_xai_voices_are_case_insensitive_and_custom_ids_pass() -> None:
    t = Translator(Dialect.XAI)
    for voice, sent in [
        ("Ara", "ara"),
        ("REX", "rex"),
        ("sal", "sal"),
        ("Eve", "eve"),
        ("leo", "leo"),
        ("my-clone-7", "my-clone-7"),
        ({"id": "v_1"}, {"id": "v_1"}),
    ]:
        ev = {
            "type": "session.update",
            "session": {"type": "realtime", "audio": {"output": {"voice": voice}}},
        }
        [out] = t.client_to_dialect(ev)
        assert out["session"]["voice"] == sent
        assert "audio" not in out["session"]
    assert {"ara", "rex", "sal", "eve", "leo"} == XAI_VOICES


def test_xai_synthesises_session_created_from_what_the_client_sent() -> None:
    t = Translator(Dialect.XAI)
    t.client_to_dialect(
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "instructions": "a",
                "audio": {"output": {"voice": "Ara"}},
            },
        }
    )
    t.client_to_dialect(
        {
            "type": "session.update",
            "session": {"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcmu"}}}},
        }
    )
    out = t.server_from_dialect(
        {"type": "conversation_created", "event_id": "x1", "conversation": {"id": "c"}}
    )
    assert [e["type"] for e in out] == ["session.created", "conversation.created"]
    assert out[0]["session"] == {
        "type": "realtime",
        "instructions": "a",
        "audio": {"output": {"voice": "Ara"}, "input": {"format": {"type": "audio/pcmu"}}},
    }
    assert out[1] == {"type": "conversation.created", "event_id": "x1", "conversation": {"id": "c"}}
    # only once
    assert len(t.server_from_dialect({"type": "conversation.created", "conversation": {}})) == 1


def test_xai_late_session_created_becomes_session_updated() -> None:
    t = Translator(Dialect.XAI)
    first = t.server_from_dialect({"type": "conversation.created", "conversation": {"id": "c"}})
    assert [e["type"] for e in first] == ["session.created", "conversation.created"]
    late = t.server_from_dialect({"type": "session.created", "session": {"voice": "eve"}})
    assert late == [
        {
            "type": "session.updated",
            "session": {"type": "realtime", "audio": {"output": {"voice": "eve"}}},
        }
    ]


def test_xai_no_synthesis_after_a_real_session_created() -> None:
    t = Translator(Dialect.XAI)
    assert len(t.server_from_dialect({"type": "session.created", "session": {"voice": "eve"}})) == 1
    assert len(t.server_from_dialect({"type": "conversation.created", "conversation": {}})) == 1
    assert len(t.server_from_dialect({"type": "session.updated", "session": {}})) == 1


def test_xai_dtmf_digit() -> None:
    t = Translator(Dialect.XAI)
    assert t.server_from_dialect(
        {"type": "input_audio_buffer.dtmf_event_received", "digit": "7", "received_at": 1}
    ) == [{"type": "input_audio_buffer.dtmf_event_received", "event": "7", "received_at": 1}]
    both = {"type": "input_audio_buffer.dtmf_event_received", "event": "7", "digit": "7"}
    assert t.server_from_dialect(both) == [
        {"type": "input_audio_buffer.dtmf_event_received", "event": "7"}
    ]
    odd = {"type": "input_audio_buffer.dtmf_event_received", "event": "7", "digit": "8"}
    assert t.server_from_dialect(odd) == [odd]
    assert t.server_to_dialect(
        {"type": "input_audio_buffer.dtmf_event_received", "event": "#", "received_at": 2}
    ) == [
        {
            "type": "input_audio_buffer.dtmf_event_received",
            "event": "#",
            "digit": "#",
            "received_at": 2,
        }
    ]


def test_xai_sends_dotted_names() -> None:
    t = Translator(Dialect.XAI)
    for name in CLIENT_EVENT_NAMES:
        [out] = t.client_to_dialect({"type": name})
        assert out["type"] == name


# --------------------------------------------------------------------------- snake tags


def test_snake_to_dotted() -> None:
    assert snake_to_dotted("session_update") == "session.update"
    assert snake_to_dotted("input_audio_buffer_append") == "input_audio_buffer.append"
    assert snake_to_dotted("response_audio_delta") == "response.audio.delta"
    assert snake_to_dotted("response_output_audio_delta") == "response.output_audio.delta"
    assert snake_to_dotted("conversation_item_input_audio_transcription_completed") == (
        "conversation.item.input_audio_transcription.completed"
    )
    assert snake_to_dotted("transcription_session_update") == "transcription_session.update"
    for not_snake in ("session.update", "error", "ping", "no_such_event", ""):
        assert snake_to_dotted(not_snake) is None


def test_snake_table_is_unambiguous_and_complete() -> None:
    dotted = {n for n in (*CLIENT_EVENT_NAMES, *SERVER_EVENT_NAMES) if "." in n}
    snakes = {n.replace(".", "_") for n in dotted}
    assert len(snakes) == len(dotted)
    assert {snake_to_dotted(s) for s in snakes} == dotted


# --------------------------------------------------------------------------- pass-through rule

PASS_THROUGH = [
    (
        Dialect.BETA,
        "server_to_dialect",
        {
            "type": "conversation.item.done",
            "item": {"type": "message", "role": "assistant", "content": [{"type": "output_audio"}]},
        },
    ),
    (
        Dialect.BETA,
        "server_to_dialect",
        {
            "type": "conversation.item.input_audio_transcription.segment",
            "item_id": "i",
            "text": "x",
        },
    ),
    (Dialect.BETA, "server_to_dialect", {"type": "response.mcp_call.completed", "item_id": "i"}),
    (
        Dialect.BETA,
        "server_to_dialect",
        {"type": "output_audio_buffer.started", "response_id": "r"},
    ),
    (Dialect.XAI, "server_to_dialect", {"type": "mcp_list_tools.completed", "item_id": "i"}),
    (Dialect.XAI, "server_from_dialect", {"type": "ping", "timestamp": 1}),
    (
        Dialect.XAI,
        "server_from_dialect",
        {"type": "conversation.item.input_audio_transcription.updated", "transcript": "x"},
    ),
    (Dialect.XAI, "client_from_dialect", {"type": "ping"}),
    (Dialect.BETA, "client_to_dialect", {"type": "output_audio_buffer.clear"}),
    (Dialect.BETA, "server_from_dialect", {"type": "x.future", "a": [1]}),
    (Dialect.BETA, "server_from_dialect", {"type": 5}),
    (Dialect.XAI, "client_from_dialect", {"no": "type"}),
]


@pytest.mark.parametrize(("dialect", "method", "event"), PASS_THROUGH)
def test_events_without_counterpart_pass_through_unchanged(
    dialect: Dialect, method: str, event: Event
) -> None:
    assert _run(getattr(Translator(dialect), method), [event]) == [event]


_KEYS = st.sampled_from(
    [
        "type",
        "session",
        "audio",
        "input",
        "output",
        "format",
        "voice",
        "turn_detection",
        "item",
        "content",
        "response",
        "part",
        "output",
        "digit",
        "event",
        "modalities",
        "output_modalities",
        "input_audio_format",
        "output_audio_format",
        "role",
        "rate",
    ]
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(_KEYS | st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=15,
)
_names = sorted(
    {
        *CLIENT_EVENT_NAMES,
        *SERVER_EVENT_NAMES,
        "transcription_session.update",
        "session_update",
        "conversation_created",
        "response_done",
        "session_created",
    }
)
_METHODS = ["client_to_dialect", "server_from_dialect", "client_from_dialect", "server_to_dialect"]
_ALL_FIXTURES = [
    p.values[0]
    for d in ("ga", "beta", "xai")
    for side in ("client", "server")
    for p in load(d, side)
]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(DIALECTS),
    st.sampled_from(_METHODS),
    st.builds(
        lambda t, rest: {**rest, "type": t}, st.sampled_from(_names), st.dictionaries(_KEYS, _json)
    ),
)
def test_translator_never_raises_or_mutates(dialect: Dialect, method: str, event: Event) -> None:
    out = _run(getattr(Translator(dialect), method), [event])
    assert 1 <= len(out) <= 2


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(DIALECTS), st.sampled_from(_METHODS), st.data())
def test_translator_survives_mutated_fixtures(
    dialect: Dialect, method: str, data: st.DataObject
) -> None:
    event = copy.deepcopy(data.draw(st.sampled_from(_ALL_FIXTURES)))
    node: Any = event
    while isinstance(node, dict | list) and node and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(list(node) if isinstance(node, dict) else range(len(node))))
        if not isinstance(node[key], dict | list) or data.draw(st.booleans()):
            node[key] = data.draw(_json)
            break
        node = node[key]
    out = _run(getattr(Translator(dialect), method), [event])
    assert 1 <= len(out) <= 2


@pytest.mark.parametrize(
    ("dialect", "method", "event", "expected"),
    [
        (
            Dialect.BETA,
            "client_from_dialect",
            {"type": "session.update", "session": {"voice": "alloy", "audio": 5}},
            {
                "type": "session.update",
                "session": {"type": "realtime", "voice": "alloy", "audio": 5},
            },
        ),
        (
            Dialect.BETA,
            "client_to_dialect",
            {"type": "session.update", "session": {"type": "realtime", "audio": {"input": "x"}}},
            {"type": "session.update", "session": {"audio": {"input": "x"}}},
        ),
        (
            Dialect.BETA,
            "server_to_dialect",
            {"type": "response.done", "response": {"output": "none", "output_modalities": 3}},
            {"type": "response.done", "response": {"output": "none", "modalities": 3}},
        ),
        (
            Dialect.XAI,
            "server_from_dialect",
            {"type": "session.created", "session": None},
            {"type": "session.created", "session": None},
        ),
    ],
)
def test_malformed_containers_are_left_alone(
    dialect: Dialect, method: str, event: Event, expected: Event
) -> None:
    assert _run(getattr(Translator(dialect), method), [event]) == [expected]
