"""The GPT-Live translator on the documented event shapes (fixtures/gpt-live/).

Every fixture is first checked against the openai SDK's own ``types.live`` models (the vendor's
typed reference), and so is every message the translator sends. Then: the ``session.start``
built from the first GA ``session.update``, the response lifecycle rtbridge makes (ended by a
pause in the model's audio, on virtual time, or cut by the caller), tools through Responses
delegation, text messages, local answers, and the session's end.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest
from openai.types.live import ClientEvent, ServerEvent
from pydantic import TypeAdapter

from bridge.agent.core import AgentCore
from bridge.agent.live_edge import LiveEdge
from bridge.agent.requests import ClientError
from bridge.config import AgentSettings, Dialect
from bridge.realtime.dialects import CAPABILITIES, GptLiveTranslator, Routed
from bridge.realtime.dialects.gpt_live import OUTPUT_IDLE_S
from bridge.realtime.dialects.lifecycle import IdMinter

from ._fixtures import load

Event = dict[str, Any]
PCM24 = {"type": "audio/pcm", "rate": 24000}
SESSION = {
    "type": "realtime",
    "instructions": "Answer briefly.",
    "audio": {
        "input": {"format": PCM24, "turn_detection": {"type": "server_vad"}},
        "output": {"format": PCM24, "voice": "marin"},
    },
    "tools": [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Get current weather for a location.",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
        }
    ],
}
CLIENT = TypeAdapter(ClientEvent)
SERVER = TypeAdapter(ServerEvent)


def fixture(name: str, side: str = "server") -> Event:
    for param in load("gpt-live", side):
        if param.id == name:
            event: Event = param.values[0]
            return event
    raise KeyError(name)


def types(events: tuple[Event, ...] | list[Event]) -> list[str]:
    return [str(e["type"]) for e in events]


def sent(routed: Routed) -> list[Event]:
    """What went upstream, each message validated as a GPT-Live client event."""
    out = [*routed.upstream, *(json.loads(f) for f in routed.frames)]
    for ev in out:
        CLIENT.validate_python(ev)
    return out


def started(**session: Any) -> GptLiveTranslator:
    tr = GptLiveTranslator("gpt-live-1", ids=IdMinter("t"))
    tr.to_upstream({"type": "session.update", "session": {**SESSION, **session}})
    tr.from_upstream(fixture("session.started"), 0.0)
    return tr


def audio(ms: int = 100) -> Event:
    pcm = np.zeros(24 * ms, np.int16).tobytes()
    return {"type": "session.output_audio.delta", "delta": base64.b64encode(pcm).decode()}


@pytest.mark.parametrize("side", ["client", "server"])
def test_fixtures_are_valid_gpt_live_events(side: str) -> None:
    adapter = CLIENT if side == "client" else SERVER
    for param in load("gpt-live", side):
        adapter.validate_python(param.values[0])


def test_capabilities() -> None:
    caps = CAPABILITIES[Dialect.GPT_LIVE]
    assert GptLiveTranslator("m").capabilities is caps
    assert caps.model_owns_turns and not caps.response_lifecycle and not caps.dtmf_event
    assert caps.mutable_session == frozenset({"tools", "tool_choice"})


def test_session_start_from_the_first_session_update() -> None:
    tr = GptLiveTranslator("gpt-live-1", delegation_model="gpt-5.5")
    out = tr.to_upstream({"type": "session.update", "session": SESSION})
    (start,) = sent(out)
    assert start == {
        "type": "session.start",
        "session": {
            "model": "gpt-live-1",
            "audio": {"format": PCM24, "output": {"voice": "marin"}},
            "instructions": "Answer briefly.",
            "delegation": {
                "type": "responses",
                "responses": {"model": "gpt-5.5", "tools": SESSION["tools"]},
            },
        },
    }
    assert out.client == ()
    (updated,) = tr.from_upstream(fixture("session.started"), 0.0).client
    assert updated["type"] == "session.updated" and "not_applied" not in updated
    assert tr.expires_at == 1767225600


def test_session_start_is_what_the_local_agent_accepts() -> None:
    tr = GptLiveTranslator("gpt-live-1")
    (start,) = sent(tr.to_upstream({"type": "session.update", "session": SESSION}))
    edge = LiveEdge(AgentCore(AgentSettings(dialect=Dialect.GPT_LIVE)))
    (update,) = edge.inbound(start)
    assert update["session"]["instructions"] == "Answer briefly."
    assert [t["name"] for t in update["session"]["tools"]] == ["get_weather"]


@pytest.mark.parametrize(
    ("fmt_in", "fmt_out"),
    [(PCM24, {"type": "audio/pcmu"}), ({"type": "audio/pcm", "rate": 44100}, None)],
)
def test_one_format_both_ways_or_an_error_the_call_path_falls_back_on(
    fmt_in: Any, fmt_out: Any
) -> None:
    session = {**SESSION, "audio": {"input": {"format": fmt_in}, "output": {"format": fmt_out}}}
    (err,) = (
        GptLiveTranslator("m").to_upstream({"type": "session.update", "session": session}).client
    )
    assert err["error"]["code"] == "invalid_value"
    assert err["error"]["param"].startswith("session.audio.")


def test_g711_sessions_start_with_rate_8000() -> None:
    g711 = {"type": "audio/pcmu"}
    session = {**SESSION, "audio": {"input": {"format": g711}, "output": {"format": g711}}}
    (start,) = sent(
        GptLiveTranslator("m").to_upstream({"type": "session.update", "session": session})
    )
    assert start["session"]["audio"]["format"] == {"type": "audio/pcmu", "rate": 8000}


def test_fields_gpt_live_has_no_place_for_are_named() -> None:
    session = {**SESSION, "output_modalities": ["text"], "max_output_tokens": 200}
    session["audio"] = {
        "input": {"format": PCM24, "turn_detection": None},
        "output": {"format": PCM24},
    }
    tr = GptLiveTranslator("m")
    (start,) = sent(tr.to_upstream({"type": "session.update", "session": session}))
    assert set(start["session"]) <= {"model", "audio", "instructions", "delegation"}
    (updated,) = tr.from_upstream(fixture("session.started"), 0.0).client
    assert sorted(updated["not_applied"]) == [
        "audio.input.turn_detection",
        "max_output_tokens",
        "output_modalities",
    ]


def test_audio_appends_are_templated_and_held_until_started() -> None:
    tr = GptLiveTranslator("m")
    tr.to_upstream({"type": "session.update", "session": SESSION})
    pcm = np.arange(480, dtype=np.int16).tobytes()
    assert tr.append_audio(pcm) == Routed()
    out = tr.from_upstream(fixture("session.started"), 0.0)
    (append,) = sent(out)
    assert append == {"type": "session.input_audio.append", "audio": base64.b64encode(pcm).decode()}
    (again,) = sent(tr.append_audio(pcm))
    assert again == append


def test_a_run_of_model_audio_is_one_response_ended_by_a_pause() -> None:
    tr = started()
    out = list(tr.from_upstream(audio(), 10.0).client)
    out += tr.from_upstream(fixture("session.output_transcript.delta"), 10.05).client
    out += tr.from_upstream(audio(), 10.1).client
    assert tr.deadline() == pytest.approx(10.1 + OUTPUT_IDLE_S)
    assert tr.tick(10.1 + OUTPUT_IDLE_S / 2) == Routed()
    out += tr.tick(10.1 + OUTPUT_IDLE_S).client
    assert types(out) == [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        "response.output_audio.delta",
        "response.output_audio_transcript.delta",
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    assert out[-1]["response"]["status"] == "completed"
    assert out[-1]["response"]["output"][0]["content"][0]["transcript"] == "It is sunny"
    # the timeline survives onto the GA transcript delta
    assert (out[5]["start_ms"], out[5]["end_ms"]) == (1200, 1900)
    assert tr.deadline() is None


def test_caller_heard_over_the_model_cuts_the_response() -> None:
    tr = started()
    for _ in range(50):  # 1 s of caller audio: the session timeline is at 1000 ms
        tr.append_audio(np.zeros(480, np.int16).tobytes())
    tr.from_upstream(audio(), 1.0)
    late = {**fixture("session.input_transcript.delta"), "start_ms": 300}
    out = tr.from_upstream(late, 1.05).client  # the turn that started this response
    assert "response.done" not in types(out)
    over = {**fixture("session.input_transcript.delta"), "start_ms": 1200, "delta": "wait"}
    out = tr.from_upstream(over, 1.2).client
    kinds = types(out)  # the earlier user turn is completed first
    assert kinds.index("input_audio_buffer.speech_started") < kinds.index("response.done")
    done = next(e for e in out if e["type"] == "response.done")
    assert done["response"]["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    assert tr.from_upstream(audio(), 1.25) == Routed()  # the rest of the cut answer
    tr.tick(1.25 + OUTPUT_IDLE_S)
    assert "response.created" in types(tr.from_upstream(audio(), 3.0).client)  # the next one


def test_tools_through_responses_delegation() -> None:
    tr = started()
    out = tr.from_upstream(fixture("response.event@function_call"), 0.0).client
    assert types(out)[-1] == "response.done"
    args = next(e for e in out if e["type"] == "response.function_call_arguments.done")
    assert (args["call_id"], args["name"]) == ("call_12345", "get_weather")
    assert json.loads(args["arguments"]) == {"location": "Paris"}
    # the call is open: response.create waits until it is answered
    assert tr.to_upstream({"type": "response.create"}) == Routed()
    result = {"type": "function_call_output", "call_id": "call_12345", "output": '{"t": 18}'}
    msgs = sent(tr.to_upstream({"type": "conversation.item.create", "item": result}))
    assert msgs == [
        {
            "type": "response.item.create",
            "item": {
                "type": "function_call_output",
                "call_id": "call_12345",
                "output": '{"t": 18}',
            },
        },
        {"type": "response.create"},
    ]
    assert msgs[0] == {k: v for k, v in fixture("response.item.create", "client").items()} | {
        "item": {**fixture("response.item.create", "client")["item"], "output": '{"t": 18}'}
    }


def test_other_responses_events_are_kept_whole() -> None:
    tr = started()
    (kept,) = tr.from_upstream(fixture("response.event@created"), 0.0).client
    assert kept["type"] == "rtbridge.upstream.event" and kept["event"] == fixture(
        "response.event@created"
    )
    for name in ("session.delegation.created", "session.usage.updated", "info"):
        (kept,) = tr.from_upstream(fixture(name), 0.0).client
        assert kept["type"] == "rtbridge.upstream.event" and kept["event"]["type"] == name


def test_text_messages_are_appended_instructions() -> None:
    tr = started()
    msg = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "The caller pressed 5 on the keypad."}],
    }
    out = tr.to_upstream({"type": "conversation.item.create", "item": msg})
    assert sent(out) == [fixture("session.instructions.append", "client")]
    assert types(out.client) == ["conversation.item.added", "conversation.item.done"]
    assert tr.to_upstream({"type": "response.create"}) == Routed()  # the model owns turns


def test_session_end_and_errors() -> None:
    tr = started()
    (expired,) = tr.from_upstream(fixture("session.closed"), 0.0).client
    assert expired["type"] == "error" and expired["error"]["code"] == "session_expired"
    (closed,) = tr.from_upstream(fixture("session.closed@remote_hangup"), 0.0).client
    assert closed == {
        **closed,
        "type": "rtbridge.upstream.session_closed",
        "reason": "remote_hangup",
    }
    (err,) = tr.from_upstream(fixture("error"), 0.0).client
    assert err["type"] == "error" and err["error"]["param"] == "session.turn_detection"


def test_mid_session_tools_change_is_sent_other_changes_refused() -> None:
    tr = started()
    tools = [{**SESSION["tools"][0], "description": "Weather now."}]
    (update,) = sent(tr.to_upstream({"type": "session.update", "session": {"tools": tools}}))
    assert update["type"] == "session.update"
    assert update["session"]["delegation"]["responses"]["tools"] == tools
    (updated,) = tr.from_upstream(
        {
            "type": "session.updated",
            "event_id": "e",
            "session": fixture("session.started")["session"],
        },
        0.0,
    ).client
    assert updated["type"] == "session.updated"
    (err,) = tr.to_upstream(
        {"type": "session.update", "session": {"instructions": "Be terse."}}
    ).client
    assert err["error"]["code"] == "session_update_not_applied"
    assert err["error"]["param"] == "session.instructions"


def test_truncate_and_cancel_are_local() -> None:
    tr = started()
    item_id = ""
    for i in range(3):
        for ev in tr.from_upstream(audio(), 0.0).client:
            item_id = ev.get("item_id", item_id)
        tr.from_upstream({**fixture("session.output_transcript.delta"), "delta": f"w{i} "}, 0.0)
    (truncated,) = tr.to_upstream(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": 150,
        }
    ).client
    assert truncated["transcript"] == "w0 "
    out = tr.to_upstream({"type": "response.cancel"})
    assert out.upstream == () and out.client[-1]["response"]["status"] == "cancelled"


# --------------------------------------------------------------------------- the agent's rules


def test_agent_edge_is_strict_about_session_start() -> None:
    edge = LiveEdge(AgentCore(AgentSettings(dialect=Dialect.GPT_LIVE)))
    with pytest.raises(ClientError) as not_started:
        edge.inbound(fixture("session.input_audio.append", "client"))
    assert not_started.value.code == "session_not_started"
    bad = fixture("session.start", "client")
    bad = {**bad, "session": {**bad["session"], "turn_detection": {"type": "server_vad"}}}
    with pytest.raises(ClientError) as unknown:
        edge.inbound(bad)
    assert (unknown.value.code, unknown.value.param) == (
        "unknown_parameter",
        "session.turn_detection",
    )
    (update,) = edge.inbound(fixture("session.start", "client"))
    assert update["type"] == "session.update"
    (started_ev,) = edge.outbound({"type": "session.updated", "session": {}})
    assert SERVER.validate_python(started_ev).type == "session.started"
