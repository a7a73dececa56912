"""The Gemini Live translator on the documented message shapes (fixtures/gemini/).

Both directions: GA client events -> Gemini messages (the setup built from the first
``session.update``, resampled audio, turns, tool responses) and Gemini messages -> GA events (the
lifecycle rtbridge makes, interruption as a barge-in, tool calls as function_call items, the
resumption and go-away events). Round trips through the local agent's Gemini edge close the loop:
what the agent understands is what the translator sends, and the other way round.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest

from bridge.agent.core import AgentCore
from bridge.agent.edge import Close, EdgeClose, Native
from bridge.agent.gemini_edge import GeminiEdge
from bridge.config import AgentSettings, Dialect
from bridge.realtime.dialects import CAPABILITIES, GeminiTranslator, Handling, Routed
from bridge.realtime.dialects.gemini import duration_ms
from bridge.realtime.dialects.lifecycle import IdMinter
from tests.support.audio import best_correlation, voiced_signal

from ._fixtures import load

Event = dict[str, Any]
PCM24 = {"type": "audio/pcm", "rate": 24000}
SESSION = {
    "type": "realtime",
    "model": "gpt-realtime",
    "instructions": "You are the support line of Acme.",
    "audio": {
        "input": {"format": PCM24, "turn_detection": {"type": "server_vad"}},
        "output": {"format": PCM24, "voice": "Kore"},
    },
    "tools": [
        {
            "type": "function",
            "name": "end_call",
            "description": "Hang up.",
            "parameters": {"type": "object", "properties": {}},
        }
    ],
}


def fixture(name: str, side: str = "server") -> Event:
    for param in load("gemini", side):
        if param.id == name:
            event: Event = param.values[0]
            return event
    raise KeyError(name)


def types(events: tuple[Event, ...] | list[Event]) -> list[str]:
    return [str(e["type"]) for e in events]


def started(**session: Any) -> GeminiTranslator:
    """A translator whose setup was sent and confirmed."""
    tr = GeminiTranslator("gemini-live-2.5", ids=IdMinter("t"))
    tr.to_upstream({"type": "session.update", "session": {**SESSION, **session}})
    tr.from_upstream({"setupComplete": {}}, 0.0)
    return tr


def test_capabilities_describe_what_the_translator_fills_in() -> None:
    caps = CAPABILITIES[Dialect.GEMINI]
    tr = GeminiTranslator("m")
    assert tr.capabilities is caps
    assert not caps.response_lifecycle and caps.cancel is Handling.LOCAL
    assert caps.truncate is Handling.LOCAL and not caps.dtmf_event and caps.resumption
    assert (caps.input_rate, caps.output_rate, caps.formats) == (16000, 24000, {"pcm16"})
    assert caps.mutable_session == frozenset()
    assert not tr.passthrough and not tr.model_in_url
    assert all(d in CAPABILITIES for d in Dialect)


# --------------------------------------------------------------------------- the setup


def test_opening_is_a_ga_session_created_and_nothing_upstream() -> None:
    tr = GeminiTranslator("gemini-live-2.5")
    opening = tr.opening()
    assert opening.upstream == () and types(opening.client) == ["session.created"]


def test_first_session_update_becomes_the_setup_and_setup_complete_answers_it() -> None:
    tr = GeminiTranslator("gemini-live-2.5", ids=IdMinter("t"))
    out = tr.to_upstream({"type": "session.update", "session": SESSION})
    assert out.client == ()
    (frame,) = out.upstream
    setup = frame["setup"]
    assert setup["model"] == "models/gemini-live-2.5"  # the configured model, not GA's
    assert setup["generationConfig"] == {
        "responseModalities": ["AUDIO"],
        "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}},
    }
    assert setup["systemInstruction"] == {"parts": [{"text": "You are the support line of Acme."}]}
    assert setup["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "end_call",
                    "description": "Hang up.",
                    "parametersJsonSchema": {"type": "object", "properties": {}},
                }
            ]
        }
    ]
    assert setup["outputAudioTranscription"] == {} and setup["sessionResumption"] == {}
    assert "inputAudioTranscription" not in setup
    done = tr.from_upstream(fixture("setupComplete"), 0.0)
    (updated,) = done.client
    assert updated["type"] == "session.updated"
    assert updated["session"]["audio"]["output"]["voice"] == "Kore"
    assert "not_applied" not in updated


def test_setup_is_what_the_local_agent_understands() -> None:
    """GA -> Gemini (translator) -> GA (agent edge) keeps the session's meaning."""
    tr = GeminiTranslator("gemini-live-2.5")
    (frame,) = tr.to_upstream({"type": "session.update", "session": SESSION}).upstream
    edge = GeminiEdge(AgentCore(AgentSettings(dialect=Dialect.GEMINI)), {})
    (update,) = edge.inbound(json.loads(json.dumps(frame)))
    session = update["session"]
    assert session["instructions"] == SESSION["instructions"]
    assert session["audio"]["output"]["voice"] == "Kore"
    assert [t["name"] for t in session["tools"]] == ["end_call"]
    assert session["tools"][0]["parameters"] == SESSION["tools"][0]["parameters"]
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"


def test_documented_setup_reads_into_a_ga_session() -> None:
    edge = GeminiEdge(AgentCore(AgentSettings(dialect=Dialect.GEMINI)), {})
    (update,) = edge.inbound(fixture("setup", "client"))
    session = update["session"]
    assert session["model"] == "models/gemini-2.5-flash-native-audio-preview-12-2025"
    assert session["instructions"].startswith("You are a helpful assistant")
    assert session["audio"]["output"]["voice"] == "Kore"
    assert [t["name"] for t in session["tools"]] == ["turn_on_the_lights", "get_weather"]
    assert session["tools"][1]["parameters"]["required"] == ["city"]
    td = session["audio"]["input"]["turn_detection"]
    assert (td["silence_duration_ms"], td["prefix_padding_ms"]) == (500, 20)
    assert session["audio"]["input"]["transcription"] is not None


@pytest.mark.parametrize("fmt", [{"type": "audio/pcmu"}, {"type": "audio/pcma"}, "g711_ulaw"])
def test_g711_is_refused_like_openai_so_the_call_falls_back_to_pcm16(fmt: Any) -> None:
    tr = GeminiTranslator("m")
    session = {**SESSION, "audio": {"input": {"format": fmt}, "output": {"format": fmt}}}
    out = tr.to_upstream({"type": "session.update", "event_id": "e1", "session": session})
    assert out.upstream == ()
    (err,) = out.client
    assert err["type"] == "error" and err["error"]["code"] == "invalid_value"
    assert (
        err["error"]["param"] == "session.audio.input.format" and err["error"]["event_id"] == "e1"
    )
    assert not tr.started  # the fallback update becomes the setup
    assert "setup" in tr.to_upstream({"type": "session.update", "session": SESSION}).upstream[0]


def test_fields_gemini_cannot_hold_are_named_in_session_updated() -> None:
    session = {**SESSION, "tool_choice": "required", "truncation": "auto"}
    session["audio"] = {
        "input": {
            "format": PCM24,
            "turn_detection": {"type": "server_vad", "create_response": False},
        },
        "output": {"format": PCM24, "speed": 1.5},
    }
    tr = GeminiTranslator("m")
    tr.to_upstream({"type": "session.update", "session": session})
    (updated,) = tr.from_upstream({"setupComplete": {}}, 0.0).client
    assert sorted(updated["not_applied"]) == [
        "audio.input.turn_detection.create_response",
        "audio.output.speed",
        "tool_choice",
    ]


def test_manual_turns_and_resumption_handle_in_the_setup() -> None:
    manual = {**SESSION, "audio": {"input": {"format": PCM24, "turn_detection": None}}}
    tr = GeminiTranslator("m", resume_handle="h-42")
    (frame,) = tr.to_upstream({"type": "session.update", "session": manual}).upstream
    assert frame["setup"]["realtimeInputConfig"] == {
        "automaticActivityDetection": {"disabled": True}
    }
    assert frame["setup"]["sessionResumption"] == {"handle": "h-42"}
    tr.from_upstream({"setupComplete": {}}, 0.0)
    frames = tr.append_audio(np.zeros(480, np.int16).tobytes()).frames
    assert json.loads(frames[0]) == {"realtimeInput": {"activityStart": {}}}
    assert len(tr.append_audio(np.zeros(480, np.int16).tobytes()).frames) == 1
    commit = tr.to_upstream({"type": "input_audio_buffer.commit"})
    assert commit.upstream == ({"realtimeInput": {"activityEnd": {}}},)
    assert types(commit.client) == ["input_audio_buffer.committed"]
    # Gemini answers an activityEnd by itself: the client's response.create sends nothing
    assert tr.to_upstream({"type": "response.create"}) == Routed()


def test_events_before_the_setup_is_confirmed_are_held_then_sent_in_order() -> None:
    tr = GeminiTranslator("m")
    assert "setup" in tr.to_upstream({"type": "session.update", "session": SESSION}).upstream[0]
    held = tr.append_audio(np.zeros(480, np.int16).tobytes())
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    created = tr.to_upstream({"type": "conversation.item.create", "item": item})
    assert held.frames == () and created.upstream == ()
    assert types(created.client) == ["conversation.item.added", "conversation.item.done"]
    out = tr.from_upstream({"setupComplete": {}}, 0.0)
    assert [next(iter(f)) for f in out.upstream] == ["clientContent"]
    assert len(out.frames) == 1 and json.loads(out.frames[0])["realtimeInput"]["audio"]


def test_any_first_event_starts_the_session_with_defaults() -> None:
    tr = GeminiTranslator("m")
    out = tr.append_audio(np.zeros(480, np.int16).tobytes())
    assert "setup" in out.upstream[0] and out.frames == ()


# --------------------------------------------------------------------------- audio


def test_caller_audio_is_resampled_to_16k_in_one_stream() -> None:
    tr = started()
    voice = voiced_signal(0.5, rate=24000)
    data = b""
    for i in range(0, len(voice), 480):  # 20 ms frames
        for frame in tr.append_audio(voice[i : i + 480].tobytes()).frames:
            msg = json.loads(frame)
            assert msg["realtimeInput"]["audio"]["mimeType"] == "audio/pcm;rate=16000"
            data += base64.b64decode(msg["realtimeInput"]["audio"]["data"])
    got = np.frombuffer(data, np.int16)
    assert abs(len(got) - len(voice) * 2 // 3) <= 40  # the resampler's delay, nothing lost
    assert best_correlation(voiced_signal(0.5, rate=16000), got) > 0.9


def test_model_audio_at_another_rate_is_resampled_to_24k() -> None:
    tr = started()
    pcm16 = voiced_signal(0.2, rate=16000)
    msg = {
        "serverContent": {
            "modelTurn": {
                "parts": [
                    {
                        "inlineData": {
                            "mimeType": "audio/pcm;rate=16000",
                            "data": base64.b64encode(pcm16.tobytes()).decode(),
                        }
                    }
                ]
            }
        }
    }
    out = tr.from_upstream(msg, 0.0).client
    (delta,) = [e for e in out if e["type"] == "response.output_audio.delta"]
    assert abs(len(base64.b64decode(delta["delta"])) // 2 - len(pcm16) * 3 // 2) <= 60


# --------------------------------------------------------------------------- lifecycle


def test_a_model_turn_becomes_one_ga_response_in_openais_order() -> None:
    tr = started()
    out: list[Event] = []
    out += tr.from_upstream(fixture("serverContent@modelTurn"), 0.0).client
    out += tr.from_upstream(fixture("serverContent@outputTranscription"), 0.0).client
    out += tr.from_upstream(fixture("serverContent@modelTurn"), 0.0).client
    out += tr.from_upstream(fixture("serverContent@generationComplete"), 0.0).client
    out += tr.from_upstream(fixture("serverContent@turnComplete"), 0.0).client
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
    resp_id = out[0]["response"]["id"]
    item_id = out[1]["item"]["id"]
    assert all(e.get("response_id", resp_id) == resp_id for e in out)
    assert all(e.get("item_id", item_id) == item_id for e in out)
    done = out[-1]["response"]
    assert done["status"] == "completed"
    assert done["output"][0]["content"] == [{"type": "output_audio", "transcript": "Hello there"}]
    assert resp_id.startswith("resp_") and item_id.startswith("item_")


def test_interrupted_is_a_barge_in_and_the_rest_of_the_turn_is_dropped() -> None:
    tr = started()
    tr.from_upstream(fixture("serverContent@modelTurn"), 0.0)
    out = tr.from_upstream(fixture("serverContent@interrupted"), 0.0).client
    assert types(out)[0] == "input_audio_buffer.speech_started"
    done = out[-1]
    assert done["type"] == "response.done"
    assert done["response"]["status"] == "cancelled"
    assert done["response"]["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    assert done["response"]["output"][0]["status"] == "incomplete"
    assert tr.from_upstream(fixture("serverContent@modelTurn"), 0.0) == Routed()  # late audio
    assert types(tr.from_upstream(fixture("serverContent@turnComplete"), 0.0).client) == []
    assert types(tr.from_upstream(fixture("serverContent@modelTurn"), 0.0).client)[0] == (
        "response.created"
    )


def test_interrupted_after_generation_complete_still_tells_the_client_to_stop_playout() -> None:
    tr = started()
    tr.from_upstream(fixture("serverContent@modelTurn"), 0.0)
    tr.from_upstream(fixture("serverContent@generationComplete"), 0.0)
    out = tr.from_upstream(fixture("serverContent@interrupted"), 0.0).client
    assert types(out) == ["input_audio_buffer.speech_started"]


def test_input_transcription_becomes_a_user_item_completed_when_the_model_answers() -> None:
    tr = started()
    out = list(tr.from_upstream(fixture("serverContent@inputTranscription"), 0.0).client)
    out += tr.from_upstream(fixture("serverContent@modelTurn"), 0.0).client
    assert types(out)[:5] == [
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.done",
        "conversation.item.input_audio_transcription.completed",
    ]
    assert out[4]["transcript"] == "What's the weather like?"
    assert out[1]["item"]["role"] == "user" and out[1]["item"]["id"] == out[4]["item_id"]


def test_usage_metadata_fills_the_response_usage() -> None:
    tr = started()
    tr.from_upstream(fixture("serverContent@modelTurn"), 0.0)
    out = tr.from_upstream(fixture("serverContent@turnComplete"), 0.0).client
    usage = out[-1]["response"]["usage"]
    assert usage == {"total_tokens": 126, "input_tokens": 96, "output_tokens": 30}


# --------------------------------------------------------------------------- tools


def test_tool_calls_both_ways() -> None:
    tr = started()
    out = tr.from_upstream(fixture("toolCall@args"), 0.0).client
    assert types(out) == [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    args_done = out[4]
    assert args_done["call_id"] == "function-call-9" and args_done["name"] == "get_weather"
    assert json.loads(args_done["arguments"]) == {"city": "Paris"}
    assert out[-1]["response"]["output"][0]["type"] == "function_call"
    result = {"type": "function_call_output", "call_id": "function-call-9", "output": '{"t": 18}'}
    sent = tr.to_upstream({"type": "conversation.item.create", "item": result})
    assert sent.upstream == (
        {
            "toolResponse": {
                "functionResponses": [
                    {
                        "id": "function-call-9",
                        "name": "get_weather",
                        "response": {"output": {"t": 18}},
                    }
                ]
            }
        },
    )
    assert types(sent.client) == ["conversation.item.added", "conversation.item.done"]
    # Gemini goes on by itself after a tool response: response.create sends nothing
    assert tr.to_upstream({"type": "response.create"}) == Routed()


def test_tool_response_round_trips_through_the_agent_edge() -> None:
    edge = GeminiEdge(AgentCore(AgentSettings(dialect=Dialect.GEMINI)), {})
    edge.inbound(fixture("setup", "client"))
    ga = edge.inbound(fixture("toolResponse", "client"))
    assert types(ga) == ["conversation.item.create", "response.create"]
    tr = started()
    tr.from_upstream(fixture("toolCall"), 0.0)
    (back,) = tr.to_upstream(ga[0]).upstream
    original = fixture("toolResponse", "client")["toolResponse"]["functionResponses"][0]
    sent = back["toolResponse"]["functionResponses"][0]
    assert (sent["id"], sent["name"]) == (original["id"], original["name"])
    assert sent["response"] == {"output": original["response"]}


def test_tool_call_cancellation_go_away_and_resumption_are_typed_events() -> None:
    tr = started()
    (cancelled,) = tr.from_upstream(fixture("toolCallCancellation"), 0.0).client
    assert cancelled["type"] == "rtbridge.upstream.tool_calls_cancelled"
    assert cancelled["call_ids"] == ["function-call-4477236829548542718"]
    (going,) = tr.from_upstream(fixture("goAway"), 0.0).client
    assert going == {**going, "type": "rtbridge.upstream.going_away", "time_left_ms": 50000}
    (resume,) = tr.from_upstream(fixture("sessionResumptionUpdate"), 0.0).client
    assert resume["type"] == "rtbridge.upstream.resumption" and resume["resumable"] is True
    assert tr.resume_handle == "Cj4KNGNoYXRfc2Vzc2lvbl8xMjM0NTY"
    tr.from_upstream(fixture("sessionResumptionUpdate@unresumable"), 0.0)
    assert tr.resume_handle == "Cj4KNGNoYXRfc2Vzc2lvbl8xMjM0NTY"  # the last resumable one
    renewed = GeminiTranslator("m", resume_handle=tr.resume_handle)
    (setup,) = renewed.to_upstream({"type": "session.update", "session": SESSION}).upstream
    assert setup["setup"]["sessionResumption"] == {"handle": "Cj4KNGNoYXRfc2Vzc2lvbl8xMjM0NTY"}


@pytest.mark.parametrize(("text", "ms"), [("50s", 50000), ("0.5s", 500), ("1.25s", 1250)])
def test_durations(text: str, ms: int) -> None:
    assert duration_ms(text) == ms


def test_unknown_messages_and_fields_survive() -> None:
    tr = started()
    (kept,) = tr.from_upstream(fixture("voiceActivity"), 0.0).client
    assert kept["type"] == "rtbridge.upstream.event" and kept["dialect"] == "gemini"
    assert kept["event"] == fixture("voiceActivity")
    msg = {
        "serverContent": {
            "turnComplete": True,
            "waitingForInput": True,
            "outputTranscription": {"text": "hi", "finished": True},
        }
    }
    out = tr.from_upstream(msg, 0.0).client
    assert out[0]["event"] == {"serverContent": {"waitingForInput": True}}
    (delta,) = [e for e in out if e["type"] == "response.output_audio_transcript.delta"]
    assert delta["finished"] is True  # a field of a message with a GA counterpart stays on it


# --------------------------------------------------------------------------- local answers


def _heard_response(tr: GeminiTranslator) -> str:
    chunk = {
        "serverContent": {
            "modelTurn": {
                "parts": [
                    {
                        "inlineData": {
                            "mimeType": "audio/pcm;rate=24000",
                            "data": base64.b64encode(np.zeros(2400, np.int16).tobytes()).decode(),
                        }
                    }
                ]
            }
        }
    }
    item_id = ""
    for i in range(5):  # 5 x 100 ms, one transcript word after each chunk
        for ev in tr.from_upstream(chunk, 0.0).client:
            item_id = ev.get("item_id", item_id)
        tr.from_upstream({"serverContent": {"outputTranscription": {"text": f"w{i} "}}}, 0.0)
    return item_id


def test_truncate_is_answered_locally_with_the_heard_transcript() -> None:
    tr = started()
    item_id = _heard_response(tr)
    out = tr.to_upstream(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": 250,
        }
    )
    assert out.upstream == ()
    (truncated,) = out.client
    assert truncated["type"] == "conversation.item.truncated"
    assert truncated["audio_end_ms"] == 250 and truncated["transcript"] == "w0 w1 "
    tr.from_upstream(fixture("serverContent@turnComplete"), 0.0)
    (retrieved,) = tr.to_upstream({"type": "conversation.item.retrieve", "item_id": item_id}).client
    assert retrieved["item"]["content"][0]["transcript"] == "w0 w1 "


def test_cancel_is_local_and_drops_the_rest_of_the_turn() -> None:
    tr = started()
    _heard_response(tr)
    out = tr.to_upstream({"type": "response.cancel"})
    assert out.upstream == ()
    assert out.client[-1]["response"]["status_details"]["reason"] == "client_cancelled"
    assert tr.from_upstream(fixture("serverContent@modelTurn"), 0.0) == Routed()
    (err,) = tr.to_upstream({"type": "response.cancel"}).client
    assert err["error"]["code"] == "response_cancel_not_active"


def test_delete_and_unknown_items() -> None:
    tr = started()
    item_id = _heard_response(tr)
    tr.from_upstream(fixture("serverContent@turnComplete"), 0.0)
    assert types(
        tr.to_upstream({"type": "conversation.item.delete", "item_id": item_id}).client
    ) == ["conversation.item.deleted"]
    for kind in ("conversation.item.delete", "conversation.item.truncate"):
        (err,) = tr.to_upstream(
            {"type": kind, "item_id": item_id, "content_index": 0, "audio_end_ms": 1}
        ).client
        assert err["type"] == "error" and err["error"]["param"] == "item_id"


def test_mid_session_updates_are_refused_by_name_and_kept_for_the_next_session() -> None:
    tr = started()
    out = tr.to_upstream(
        {
            "type": "session.update",
            "event_id": "e9",
            "session": {"instructions": "Be terse.", "audio": {"output": {"voice": "Puck"}}},
        }
    )
    assert out.upstream == ()
    (err,) = out.client
    assert err["error"]["code"] == "session_update_not_applied"
    assert err["error"]["param"] == "session.instructions" and err["error"]["event_id"] == "e9"
    assert "instructions" in err["error"]["message"]
    assert "audio.output.voice" in err["error"]["message"]
    assert tr.session["instructions"] == SESSION["instructions"]
    assert tr.desired_session["instructions"] == "Be terse."
    # the same session again changes nothing: answered at once
    (same,) = tr.to_upstream({"type": "session.update", "session": SESSION}).client
    assert same["type"] == "session.updated"


def test_text_messages_become_turns_and_response_create_completes_the_turn() -> None:
    tr = started()
    msg = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "The caller pressed 5 on the keypad."}],
    }
    out = tr.to_upstream({"type": "conversation.item.create", "item": msg})
    assert out.upstream == (
        {
            "clientContent": {
                "turns": [
                    {"role": "user", "parts": [{"text": "The caller pressed 5 on the keypad."}]}
                ],
                "turnComplete": False,
            }
        },
    )
    assert tr.to_upstream({"type": "response.create"}).upstream == (
        {"clientContent": {"turnComplete": True}},
    )
    edge = GeminiEdge(AgentCore(AgentSettings(dialect=Dialect.GEMINI)), {})
    edge.inbound(fixture("setup", "client"))
    assert types(edge.inbound(fixture("clientContent", "client"))) == [
        "conversation.item.create",
        "response.create",
    ]


def test_unsupported_client_events_get_an_error_never_silence() -> None:
    tr = started()
    (err,) = tr.to_upstream({"type": "output_audio_buffer.clear", "event_id": "x"}).client
    assert err["error"]["code"] == "unsupported_event" and err["error"]["event_id"] == "x"
    audio_item = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_audio", "audio": "AAAA"}],
    }
    (err,) = tr.to_upstream({"type": "conversation.item.create", "item": audio_item}).client
    assert err["error"]["code"] == "unsupported_content"


# --------------------------------------------------------------------------- the agent's rules


def test_agent_edge_enforces_setup_first_and_once() -> None:
    edge = GeminiEdge(AgentCore(AgentSettings(dialect=Dialect.GEMINI)), {})
    with pytest.raises(EdgeClose) as first:
        edge.inbound(fixture("clientContent", "client"))
    assert first.value.close.code == 1007
    edge.inbound(fixture("setup", "client"))
    with pytest.raises(EdgeClose) as again:
        edge.inbound(fixture("setup", "client"))
    assert again.value.close.code == 1007
    with pytest.raises(EdgeClose):
        edge.inbound({"realtimeInput": {"text": "a"}, "clientContent": {}})
    with pytest.raises(EdgeClose):  # activity signals need manual activity detection
        edge.inbound(fixture("realtimeInput@activityStart", "client"))


def test_agent_edge_maps_ga_output_to_gemini_messages() -> None:
    edge = GeminiEdge(AgentCore(AgentSettings(dialect=Dialect.GEMINI)), {})
    edge.inbound(fixture("setup", "client"))
    assert edge.outbound({"type": "session.updated", "session": {}}) == [{"setupComplete": {}}]
    (audio,) = edge.outbound({"type": "response.output_audio.delta", "delta": "AAAA"})
    assert audio == {
        "serverContent": {
            "modelTurn": {
                "parts": [{"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": "AAAA"}}]
            }
        }
    }
    (call,) = edge.outbound(
        {
            "type": "response.function_call_arguments.done",
            "call_id": "c1",
            "name": "get_weather",
            "arguments": '{"city": "Paris"}',
        }
    )
    assert call == {
        "toolCall": {
            "functionCalls": [{"id": "c1", "name": "get_weather", "args": {"city": "Paris"}}]
        }
    }
    (cancel,) = edge.outbound({"type": "input_audio_buffer.speech_started"})
    assert cancel == {"toolCallCancellation": {"ids": ["c1"]}}
    cut = edge.outbound(
        {"type": "response.done", "response": {"status": "cancelled", "output": []}}
    )
    assert cut[:2] == [
        {"serverContent": {"interrupted": True}},
        {"serverContent": {"turnComplete": True}},
    ]
    assert isinstance(cut[-1], dict) and "sessionResumptionUpdate" in cut[-1]
    (warning,) = edge.going_away(1.5)
    assert isinstance(warning, Native) and warning.event == {"goAway": {"timeLeft": "1.5s"}}
    (closed,) = edge.outbound({"type": "error", "error": {"message": "bad"}})
    assert isinstance(closed, Close) and closed.code == 1007
