"""Response control, conversation items, tool calls and malformed input."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from bridge.agent import LocalAgent
from bridge.config import AgentSettings
from tests.agent.conftest import Client, audio_of, types_of
from tests.support.audio import voiced_signal


async def test_response_create_while_active_is_refused(client: Client) -> None:
    await client.send({"type": "response.create"})
    created = (await client.until("response.created"))[-1]
    await client.send({"type": "response.create", "event_id": "evt_2"})
    events = await client.until("error")
    err = events[-1]["error"]
    assert err["code"] == "conversation_already_has_active_response"
    assert err["type"] == "invalid_request_error"
    assert err["event_id"] == "evt_2"
    assert created["response"]["id"] in err["message"]
    done = (await client.until("response.done"))[-1]
    assert done["response"]["status"] == "completed"


async def test_response_cancel(agent: LocalAgent, client: Client) -> None:
    # a long parrot, cancelled after its first audio delta
    await client.update({"audio": {"input": {"turn_detection": None}}})
    await client.append_pcm(voiced_signal(3.0))
    await client.send({"type": "input_audio_buffer.commit"})
    await client.send({"type": "response.create"})
    await client.until("response.output_audio.delta")
    await client.send({"type": "response.cancel"})
    events = await client.until("response.done")
    done = events[-1]["response"]
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    assert done["output"][0]["status"] == "incomplete"
    types = types_of(events)
    assert types[-6:] == [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    record = agent.sessions[0].responses[0]
    assert record.status == "cancelled"
    assert record.audio_ms < 3000

    # nothing to cancel now
    await client.send({"type": "response.cancel"})
    err = (await client.until("error"))[-1]["error"]
    assert err["code"] == "response_cancel_not_active"
    # and a new response can start
    await client.send({"type": "response.create"})
    assert (await client.until("response.done"))[-1]["response"]["status"] == "completed"


async def _finished_tone_response(client: Client) -> tuple[str, int]:
    await client.send({"type": "response.create"})
    events = await client.until("response.done")
    item_id = events[-1]["response"]["output"][0]["id"]
    ms = len(audio_of(events)) // 48
    return item_id, ms


async def test_truncate_ok_and_errors(agent: LocalAgent, client: Client) -> None:
    item_id, audio_ms = await _finished_tone_response(client)
    assert audio_ms > 500

    await client.send(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": audio_ms + 85,
        }
    )
    err = (await client.until("error"))[-1]["error"]
    assert err["code"] == "invalid_value"
    assert err["param"] == "audio_end_ms"
    assert "already shorter than" in err["message"]

    await client.send(
        {
            "type": "conversation.item.truncate",
            "item_id": "item_nope",
            "content_index": 0,
            "audio_end_ms": 10,
        }
    )
    err = (await client.until("error"))[-1]["error"]
    assert err["param"] == "item_id"

    await client.send(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": 300,
        }
    )
    ev = (await client.until("conversation.item.truncated", "error"))[-1]
    assert ev == {
        **ev,
        "type": "conversation.item.truncated",
        "item_id": item_id,
        "content_index": 0,
        "audio_end_ms": 300,
    }
    assert agent.sessions[0].truncations == [
        {"item_id": item_id, "audio_end_ms": 300, "audio_ms_before": audio_ms}
    ]
    # the item's audio was cut: 400 ms is now too long
    await client.send(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": 400,
        }
    )
    err = (await client.until("error"))[-1]["error"]
    assert "Audio content of 300ms" in err["message"]
    await client.send({"type": "conversation.item.retrieve", "item_id": item_id})
    item = (await client.until("conversation.item.retrieved"))[-1]["item"]
    assert item["content"][0]["transcript"] == ""


async def test_truncate_missing_fields(client: Client) -> None:
    await client.send({"type": "conversation.item.truncate", "item_id": "x", "content_index": 0})
    err = (await client.until("error"))[-1]["error"]
    assert err["code"] == "missing_required_parameter"
    assert err["param"] == "audio_end_ms"


async def test_item_retrieve_and_delete(client: Client) -> None:
    await client.send(
        {
            "type": "conversation.item.create",
            "item": {
                "id": "item_mine",
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hi"}],
            },
        }
    )
    await client.until("conversation.item.done")
    await client.send({"type": "conversation.item.retrieve", "item_id": "item_mine"})
    item = (await client.until("conversation.item.retrieved"))[-1]["item"]
    assert item["content"][0]["text"] == "hi"
    await client.send({"type": "conversation.item.delete", "item_id": "item_mine"})
    ev = (await client.until("conversation.item.deleted"))[-1]
    assert ev["item_id"] == "item_mine"
    await client.send({"type": "conversation.item.delete", "item_id": "item_mine"})
    assert (await client.until("error"))[-1]["error"]["param"] == "item_id"
    await client.send({"type": "conversation.item.retrieve", "item_id": "item_mine"})
    assert (await client.until("error"))[-1]["type"] == "error"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_json"),
        ('{"no_type": 1}', "missing_required_parameter"),
        ('{"type": "no.such.event"}', "invalid_value"),
        ('{"type": "input_audio_buffer.append"}', "missing_required_parameter"),
        ('{"type": "input_audio_buffer.append", "audio": "***"}', "invalid_value"),
        ('{"type": "conversation.item.create"}', "missing_required_parameter"),
        ('{"type": "conversation.item.create", "item": {"type": "bogus"}}', "invalid_value"),
        ('{"type": "conversation.item.delete"}', "missing_required_parameter"),
        ('{"type": "session.update", "session": 5}', "invalid_type"),
        ('{"type": "response.create", "response": 5}', "invalid_type"),
    ],
)
async def test_malformed_input_gets_error_and_socket_stays_open(
    agent: LocalAgent, client: Client, frame: str, code: str
) -> None:
    await client.send_raw(frame)
    ev = await client.recv()
    assert ev["type"] == "error"
    assert ev["error"]["code"] == code
    assert ev["error"]["type"] == "invalid_request_error"
    # still open and working
    ev = await client.update({"instructions": "ok"})
    assert ev["type"] == "session.updated"
    assert agent.sessions[0].errors[0]["code"] == code


async def test_binary_frame_gets_error(client: Client) -> None:
    await client.send_raw(b"\x00\x01")
    assert (await client.recv())["type"] == "error"
    assert (await client.update({}))["type"] == "session.updated"


def _tool_settings(**kw: object) -> AgentSettings:
    return AgentSettings(port=0, tool_after_turns=1, **kw)


@pytest.mark.parametrize(
    "agent_settings",
    [_tool_settings(tool_name="get_weather", tool_arguments='{"city": "Paris"}')],
)
async def test_tool_rule_round_trip(agent: LocalAgent, client: Client) -> None:
    utterance = voiced_signal(0.6)
    await client.append_pcm(np.concatenate([utterance, np.zeros(12000, np.int16)]))
    events = await client.until("response.done")
    types = types_of(events)
    assert "response.output_audio.delta" not in types
    i = types.index("response.created")
    assert types[i:] == [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    args_done = events[types.index("response.function_call_arguments.done")]
    assert args_done["name"] == "get_weather"
    assert orjson.loads(args_done["arguments"]) == {"city": "Paris"}
    call_id = args_done["call_id"]
    assert call_id.startswith("call_")
    deltas = "".join(
        e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"
    )
    assert deltas == args_done["arguments"]
    item = events[-1]["response"]["output"][0]
    assert item["type"] == "function_call" and item["call_id"] == call_id

    await client.send(
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": call_id, "output": "sunny, 21C"},
        }
    )
    await client.until("conversation.item.done")
    await client.send({"type": "response.create"})
    events = await client.until("response.done")
    assert len(audio_of(events)) > 0
    transcript = events[-1]["response"]["output"][0]["content"][0]["transcript"]
    assert "sunny, 21C" in transcript
    sources = [r.source for r in agent.sessions[0].responses]
    assert sources == ["tool_call", "tool_answer"]

    # the rule fires once: the next turn is a parrot again
    await client.append_pcm(np.concatenate([utterance, np.zeros(12000, np.int16)]))
    events = await client.until("response.done")
    assert len(audio_of(events)) > 0


@pytest.mark.parametrize("agent_settings", [_tool_settings()])
async def test_tool_rule_uses_session_tool(client: Client) -> None:
    await client.update({"tools": [{"type": "function", "name": "lookup_order", "parameters": {}}]})
    await client.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "where is my order?"}],
            },
        }
    )
    await client.send({"type": "response.create"})
    events = await client.until("response.done")
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert done["name"] == "lookup_order"
    assert done["arguments"] == "{}"


@pytest.mark.parametrize("agent_settings", [_tool_settings()])
async def test_tool_rule_needs_a_tool(client: Client) -> None:
    await client.send({"type": "response.create"})
    events = await client.until("response.done")
    assert "response.function_call_arguments.done" not in types_of(events)


async def test_out_of_band_response_with_overrides(agent: LocalAgent, client: Client) -> None:
    await client.send(
        {
            "type": "response.create",
            "response": {
                "conversation": "none",
                "output_modalities": ["text"],
                "instructions": "Say the magic word.",
                "metadata": {"topic": "test"},
            },
        }
    )
    events = await client.until("response.done")
    types = types_of(events)
    assert "conversation.item.added" not in types and "conversation.item.done" not in types
    response = events[-1]["response"]
    assert response["conversation_id"] is None
    assert response["metadata"] == {"topic": "test"}
    assert response["output_modalities"] == ["text"]
    record = agent.sessions[0].responses[0]
    assert record.instructions == "Say the magic word."
    # the out-of-band item is not in the conversation
    await client.send({"type": "conversation.item.retrieve", "item_id": record.item_id})
    assert (await client.until("error"))[-1]["error"]["param"] == "item_id"
