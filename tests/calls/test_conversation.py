"""The conversation as the call saw it: what a renewed session is told is what the caller
heard (cut where the caller barged in, never what was not played), in the item types the
upstream takes."""

from __future__ import annotations

import base64
import json
from typing import Any

from bridge.calls.agent_events import parse_agent_event
from bridge.calls.conversation import CallConversation
from bridge.config import Dialect
from bridge.realtime.dialects import CAPABILITIES
from bridge.realtime.formats import AudioFormat

GA = CAPABILITIES[Dialect.GA].history_items
GEMINI = CAPABILITIES[Dialect.GEMINI].history_items
PCM = AudioFormat.PCM16


def _see(conv: CallConversation, *events: dict[str, Any]) -> None:
    for raw in events:
        conv.observe(parse_agent_event(raw), PCM)


def _audio(item_id: str, ms: int) -> dict[str, Any]:
    delta = base64.b64encode(b"\0\0" * 24 * ms).decode()
    return {"type": "response.output_audio.delta", "item_id": item_id, "delta": delta}


def _words(item_id: str, text: str) -> dict[str, Any]:
    return {"type": "response.output_audio_transcript.delta", "item_id": item_id, "delta": text}


def _agent_says(conv: CallConversation, item_id: str, *pieces: str) -> None:
    """Each piece of transcript comes with 100 ms of audio, as OpenAI streams them."""
    for piece in pieces:
        _see(conv, _words(item_id, piece), _audio(item_id, 100))
    _see(
        conv,
        {
            "type": "response.output_audio_transcript.done",
            "item_id": item_id,
            "transcript": "".join(pieces),
        },
    )


def test_a_barge_in_keeps_what_was_heard_and_drops_what_was_not_played() -> None:
    conv = CallConversation()
    _see(
        conv,
        {"type": "input_audio_buffer.speech_started", "item_id": "u1", "audio_start_ms": 0},
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": "u1",
            "transcript": "Where is my order?",
        },
    )
    _agent_says(conv, "a1", "It ", "shipped ", "on ", "Monday ", "from ", "Leeds.")
    assert conv.truncate("a1", 250) == "It shipped on "  # 3 pieces had started by 250 ms
    _agent_says(conv, "a2", "Anything ", "else?")
    conv.sent({"type": "conversation.item.delete", "item_id": "a2"})  # never played
    replay = conv.replay(GA)
    assert [(i["role"], i["content"][0]["text"]) for i in replay] == [
        ("user", "Where is my order?"),
        ("assistant", "It shipped on "),
    ]
    assert [i["id"] for i in replay] == ["u1", "a1"]  # replayed as themselves
    assert conv.heard("a1") == "It shipped on "


def test_texts_tools_and_outputs_in_the_types_each_upstream_takes() -> None:
    conv = CallConversation()
    conv.sent(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "The caller pressed 5 on the keypad."}],
            },
        }
    )
    _see(
        conv,
        {
            "type": "response.function_call_arguments.done",
            "response_id": "r1",
            "item_id": "f1",
            "call_id": "call_1",
            "name": "lookup_order",
            "arguments": '{"id": 427}',
        },
    )
    output = json.dumps({"status": "shipped"})
    conv.sent(
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": "call_1", "output": output},
        }
    )
    _see(conv, {"type": "input_audio_buffer.speech_started", "item_id": "u2"})  # no transcript
    ga = conv.replay(GA)
    assert [i["type"] for i in ga] == ["message", "function_call", "function_call_output"]
    assert ga[1]["call_id"] == ga[2]["call_id"] == "call_1"
    gemini = conv.replay(GEMINI)  # messages only: the call and its output told as text
    assert [i["type"] for i in gemini] == ["message"] * 3
    texts = [i["content"][0]["text"] for i in gemini]
    assert texts[1] == '(called lookup_order with {"id": 427})'
    assert texts[2] == '(lookup_order returned {"status":"shipped"})'
    assert all(len(i["id"]) <= 32 for i in gemini)


def test_it_is_bounded_and_an_orphan_output_is_not_replayed() -> None:
    conv = CallConversation(max_items=3)
    _see(
        conv,
        {
            "type": "response.function_call_arguments.done",
            "item_id": "f1",
            "call_id": "c1",
            "name": "t",
            "arguments": "{}",
        },
    )
    conv.sent(
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": "c1", "output": "{}"},
        }
    )
    for n in range(3):
        _agent_says(conv, f"a{n}", f"answer {n}")
    assert len(conv) == 3
    assert [i["id"] for i in conv.replay(GA)] == ["a0", "a1", "a2"]
    conv2 = CallConversation(max_items=2)
    _see(
        conv2,
        {
            "type": "response.function_call_arguments.done",
            "item_id": "f1",
            "call_id": "c1",
            "name": "t",
            "arguments": "{}",
        },
    )
    conv2.sent(
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": "c1", "output": "{}"},
        }
    )
    _agent_says(conv2, "a0", "hi")  # the call falls out; its output alone is not replayed
    assert [i["id"] for i in conv2.replay(GA)] == ["a0"]
