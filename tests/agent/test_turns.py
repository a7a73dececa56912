"""User turns: server VAD and manual commits, answered by the parrot or the tone phrase."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from bridge.agent import LocalAgent
from media import g711
from tests.agent.conftest import Client, audio_of, types_of
from tests.support.audio import best_correlation, voiced_signal

RESPONSE_AUDIO_LIFECYCLE = [
    "response.created",
    "response.output_item.added",
    "conversation.item.added",
    "response.content_part.added",
]
RESPONSE_AUDIO_CLOSING = [
    "response.output_audio.done",
    "response.output_audio_transcript.done",
    "response.content_part.done",
    "response.output_item.done",
    "conversation.item.done",
    "response.done",
]


def pcm_of(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2")


async def test_vad_turn_parrots_pcm16(agent: LocalAgent, client: Client) -> None:
    utterance = voiced_signal(1.0)
    await client.append_pcm(np.concatenate([utterance, np.zeros(24000, np.int16)]))
    events = await client.until("response.done")
    types = types_of(events)
    assert types[:5] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    assert types[5:9] == RESPONSE_AUDIO_LIFECYCLE
    assert types[-6:] == RESPONSE_AUDIO_CLOSING
    assert types.count("response.output_audio.delta") >= 10  # 100 ms chunks, not one blob
    started, stopped, committed = events[0], events[1], events[2]
    assert started["audio_start_ms"] == 0
    assert started["item_id"] == stopped["item_id"] == committed["item_id"]
    assert 1000 <= stopped["audio_end_ms"] <= 1400
    assert events[3]["item"]["role"] == "user"

    got = pcm_of(audio_of(events))
    assert best_correlation(utterance, got) > 0.9
    done = events[-1]["response"]
    assert done["status"] == "completed"
    assert done["id"].startswith("resp_")
    assert done["usage"]["total_tokens"] > 0
    assert done["output"][0]["content"][0]["transcript"].startswith("parrot: ")
    transcript = "".join(
        e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta"
    )
    assert transcript == done["output"][0]["content"][0]["transcript"]

    record = agent.sessions[0]
    assert sum(record.audio_chunk_sizes) == 2 * 48000  # 2 s of 16-bit samples
    assert set(record.audio_chunk_sizes) == {960}
    assert len(record.decoded_pcm) == 48000
    assert record.responses[0].source == "parrot"


@pytest.mark.parametrize(
    ("fmt", "encode", "decode"),
    [
        ("audio/pcmu", g711.ulaw_encode, g711.ulaw_decode),
        ("audio/pcma", g711.alaw_encode, g711.alaw_decode),
    ],
)
async def test_vad_turn_parrots_g711(
    agent: LocalAgent, client: Client, fmt: str, encode: object, decode: object
) -> None:
    ev = await client.update(
        {"audio": {"input": {"format": {"type": fmt}}, "output": {"format": {"type": fmt}}}}
    )
    assert ev["type"] == "session.updated"
    utterance = voiced_signal(1.0, rate=8000)
    wire = encode(np.concatenate([utterance, np.zeros(8000, np.int16)]))  # type: ignore[operator]
    await client.append_bytes(wire, 160)
    events = await client.until("response.done")
    got = decode(audio_of(events))  # type: ignore[operator]
    assert abs(len(got) - len(utterance)) < 8000 * 0.5
    assert best_correlation(utterance, got) > 0.9
    assert abs(len(agent.sessions[0].decoded_pcm) - 48000) <= 480  # decoded to 24 kHz


async def test_manual_commit_then_response_create(client: Client) -> None:
    ev = await client.update({"audio": {"input": {"turn_detection": None}}})
    assert ev["session"]["audio"]["input"]["turn_detection"] is None
    utterance = voiced_signal(0.6)
    await client.append_pcm(utterance)
    await client.send({"type": "input_audio_buffer.commit"})
    events = await client.until("conversation.item.done")
    assert types_of(events) == [
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    assert "speech_started" not in " ".join(types_of(client.seen))
    await client.send({"type": "response.create"})
    events = await client.until("response.done")
    assert best_correlation(utterance, pcm_of(audio_of(events))) > 0.9


async def test_commit_empty_and_clear(client: Client) -> None:
    await client.update({"audio": {"input": {"turn_detection": None}}})
    await client.send({"type": "input_audio_buffer.commit", "event_id": "evt_c1"})
    ev = (await client.until("error"))[-1]
    assert ev["error"]["code"] == "input_audio_buffer_commit_empty"
    assert ev["error"]["event_id"] == "evt_c1"
    await client.append_pcm(voiced_signal(0.3))
    await client.send({"type": "input_audio_buffer.clear"})
    assert (await client.until("input_audio_buffer.cleared"))[-1]["type"] == (
        "input_audio_buffer.cleared"
    )
    await client.send({"type": "input_audio_buffer.commit"})
    ev = (await client.until("error", "input_audio_buffer.committed"))[-1]
    assert ev["type"] == "error"


async def test_text_turn_gets_audible_tones(agent: LocalAgent, client: Client) -> None:
    await client.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hello"}],
            },
        }
    )
    added = await client.until("conversation.item.done")
    assert types_of(added) == ["conversation.item.added", "conversation.item.done"]
    assert added[0]["item"]["id"].startswith("item_")
    await client.send({"type": "response.create"})
    events = await client.until("response.done")
    types = types_of(events)
    assert types[:4] == RESPONSE_AUDIO_LIFECYCLE
    assert types[-6:] == RESPONSE_AUDIO_CLOSING
    pcm = pcm_of(audio_of(events)).astype(np.float64)
    assert len(pcm) >= 24000 * 0.6
    rms_dbfs = 20 * np.log10(np.sqrt(np.mean(pcm * pcm)) / 32768)
    assert rms_dbfs > -25
    assert agent.sessions[0].responses[0].source == "tones"

    # a bare response.create is answered the same way
    await client.send({"type": "response.create"})
    events = await client.until("response.done")
    assert len(audio_of(events)) > 0


async def test_text_modality_sends_text_events(client: Client) -> None:
    await client.update({"output_modalities": ["text"]})
    await client.send({"type": "response.create"})
    events = await client.until("response.done")
    types = types_of(events)
    assert "response.output_audio.delta" not in types
    assert "response.output_text.delta" in types
    text_done = next(e for e in events if e["type"] == "response.output_text.done")
    delta = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text_done["text"] == delta and delta
    part = next(e for e in events if e["type"] == "response.content_part.added")["part"]
    assert part["type"] == "text"
    assert events[-1]["response"]["output_modalities"] == ["text"]
    assert events[-1]["response"]["output"][0]["content"][0]["type"] == "output_text"


async def test_create_response_false_commits_without_response(client: Client) -> None:
    await client.update(
        {"audio": {"input": {"turn_detection": {"type": "server_vad", "create_response": False}}}}
    )
    utterance = voiced_signal(0.5)
    await client.append_pcm(np.concatenate([utterance, np.zeros(12000, np.int16)]))
    await client.until("conversation.item.done")
    # no response was started; an explicit one parrots the turn
    await client.send({"type": "response.create"})
    events = await client.until("response.done")
    assert events[0]["type"] == "response.created"
    assert best_correlation(utterance, pcm_of(audio_of(events))) > 0.9


async def test_speech_during_response_interrupts_it(agent: LocalAgent, client: Client) -> None:
    utterance = voiced_signal(3.0)
    await client.append_pcm(np.concatenate([utterance, np.zeros(12000, np.int16)]))
    await client.until("response.created")
    # the caller speaks again before the (3 s) parrot is finished
    await client.append_pcm(voiced_signal(0.2, seed=2))
    events = await client.until("response.done")
    first_done = events[-1]
    assert "input_audio_buffer.speech_started" in types_of(events)
    assert first_done["response"]["status"] == "cancelled"
    assert first_done["response"]["status_details"]["reason"] == "turn_detected"
    assert agent.sessions[0].responses[0].status == "cancelled"


async def test_idle_timeout_triggers_a_response(client: Client) -> None:
    await client.update(
        {"audio": {"input": {"turn_detection": {"type": "server_vad", "idle_timeout_ms": 500}}}}
    )
    await client.send({"type": "response.create"})
    done = (await client.until("response.done"))[-1]
    assert done["response"]["status"] == "completed"
    # silence after the response's audio (about 0.7 s) plus the idle timeout
    await client.append_pcm(np.zeros(24000 * 2, np.int16))
    events = await client.until("response.done")
    types = types_of(events)
    assert types[0] == "input_audio_buffer.timeout_triggered"
    timeout = events[0]
    assert timeout["audio_end_ms"] - timeout["audio_start_ms"] >= 500
    assert "input_audio_buffer.committed" in types
    assert len(audio_of(events)) > 0


async def test_semantic_vad_served_by_energy_vad(client: Client) -> None:
    ev = await client.update(
        {"audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "high"}}}}
    )
    assert ev["session"]["audio"]["input"]["turn_detection"]["type"] == "semantic_vad"
    utterance = voiced_signal(0.8)
    await client.append_pcm(np.concatenate([utterance, np.zeros(24000, np.int16)]))
    events = await client.until("response.done")
    assert best_correlation(utterance, pcm_of(audio_of(events))) > 0.9


async def test_user_audio_item_is_parroted(client: Client) -> None:
    utterance = voiced_signal(0.5)
    audio = base64.b64encode(utterance.astype("<i2").tobytes()).decode()
    await client.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_audio", "audio": audio}],
            },
        }
    )
    added = (await client.until("conversation.item.added"))[-1]
    assert "audio" not in added["item"]["content"][0]
    await client.send({"type": "response.create"})
    events = await client.until("response.done")
    assert best_correlation(utterance, pcm_of(audio_of(events))) > 0.9
