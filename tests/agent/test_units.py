"""Sans-IO pieces of the local agent: VAD, session updates, formats, the core without sockets."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import orjson
import pytest

from bridge.agent import AgentCore
from bridge.agent.audio import InputDecoder, encode_output
from bridge.agent.buffer import StreamBuffer
from bridge.agent.ids import IdFactory
from bridge.agent.session import SessionUpdateError, apply_update, default_session
from bridge.agent.tones import tone_phrase
from bridge.agent.vad import EnergyVad, VadConfig, VadEventKind
from bridge.config import AgentSettings
from bridge.realtime.formats import AudioFormat
from media import g711
from tests.support.audio import best_correlation, voiced_signal

ALL = frozenset(AudioFormat)


def _turn(voiced_s: float = 1.0, silence_s: float = 1.0, lead_s: float = 0.0) -> np.ndarray:
    return np.concatenate(
        [
            np.zeros(int(lead_s * 24000), np.int16),
            voiced_signal(voiced_s),
            np.zeros(int(silence_s * 24000), np.int16),
        ]
    )


# ---- VAD -------------------------------------------------------------------------------
def test_vad_turn_boundaries_and_padding() -> None:
    vad = EnergyVad(VadConfig(prefix_padding_ms=300, silence_duration_ms=500))
    events = vad.process(_turn(lead_s=1.0))
    assert [e.kind for e in events] == [VadEventKind.SPEECH_STARTED, VadEventKind.SPEECH_STOPPED]
    started, stopped = events
    assert 650 <= started.start_ms <= 720  # onset ~1000 ms minus 300 ms padding
    assert 2450 <= stopped.end_ms <= 2560  # speech end ~2000 ms plus 500 ms silence
    assert stopped.start_ms == started.start_ms


def test_vad_is_chunking_invariant() -> None:
    signal = _turn(lead_s=0.37)
    whole = EnergyVad(VadConfig()).process(signal)
    vad = EnergyVad(VadConfig())
    pieces = []
    rng = np.random.default_rng(3)
    i = 0
    while i < len(signal):
        n = int(rng.integers(0, 777))
        pieces += vad.process(signal[i : i + n])
        i += n
    assert pieces == whole


def test_vad_silence_and_high_threshold() -> None:
    assert EnergyVad(VadConfig()).process(np.zeros(48000, np.int16)) == []
    quiet = (voiced_signal(1.0) // 8).astype(np.int16)  # about -35 dBFS
    assert EnergyVad(VadConfig(threshold=0.9)).process(quiet) == []
    assert EnergyVad(VadConfig(threshold=0.3)).process(quiet)[0].kind is VadEventKind.SPEECH_STARTED


def test_vad_idle_timeout() -> None:
    vad = EnergyVad(VadConfig(idle_timeout_ms=1000))
    assert vad.process(np.zeros(24000 * 3, np.int16)) == []  # not armed yet
    vad.arm_idle(vad.position_ms + 500)  # a response is still playing for 500 ms
    events = vad.process(np.zeros(24000 * 2, np.int16))
    assert [e.kind for e in events] == [VadEventKind.TIMEOUT]
    assert events[0].start_ms == 3500 and events[0].end_ms == 4500


def test_semantic_vad_eagerness_maps_to_silence() -> None:
    high = VadConfig.from_turn_detection({"type": "semantic_vad", "eagerness": "high"})
    low = VadConfig.from_turn_detection({"type": "semantic_vad", "eagerness": "low"})
    assert high.silence_duration_ms < low.silence_duration_ms


# ---- session ---------------------------------------------------------------------------
def test_apply_update_rules() -> None:
    base = default_session("sess_1", "m", 0)
    new = apply_update(
        base,
        {
            "type": "realtime",
            "id": "sess_hacked",
            "audio": {"input": {"turn_detection": {"type": "semantic_vad"}}},
        },
        allowed_formats=ALL,
    )
    assert new["id"] == "sess_1"
    td = new["audio"]["input"]["turn_detection"]
    assert td == {
        "type": "semantic_vad",
        "eagerness": "auto",
        "create_response": True,
        "interrupt_response": True,
    }
    assert base["audio"]["input"]["turn_detection"]["type"] == "server_vad"  # not mutated
    new = apply_update(
        base, {"type": "realtime", "audio": {"input": {"format": "g711_alaw"}}}, allowed_formats=ALL
    )
    assert new["audio"]["input"]["format"] == {"type": "audio/pcma"}


@pytest.mark.parametrize(
    ("update", "param"),
    [
        ({"audio": {"input": {"turn_detection": {"threshold": 2}}}}, "threshold"),
        ({"audio": {"input": {"turn_detection": {"type": "magic"}}}}, "turn_detection.type"),
        ({"audio": {"output": {"format": {"type": "audio/ogg"}}}}, "session.audio.output.format"),
        ({"output_modalities": ["audio", "text"]}, "session.output_modalities"),
        ({"instructions": 5}, "session.instructions"),
        ({"type": "transcription"}, "session.type"),
    ],
)
def test_apply_update_refusals(update: dict[str, Any], param: str) -> None:
    base = default_session("sess_1", "m", 0)
    with pytest.raises(SessionUpdateError) as info:
        apply_update(base, {"type": "realtime", **update}, allowed_formats=ALL)
    assert info.value.param is not None and info.value.param.endswith(param)


# ---- audio -----------------------------------------------------------------------------
def test_formats_from_wire() -> None:
    assert AudioFormat.from_wire({"type": "audio/pcm"}) is AudioFormat.PCM16
    assert AudioFormat.from_wire({"type": "audio/pcmu"}) is AudioFormat.PCMU
    assert AudioFormat.from_wire("g711_alaw") is AudioFormat.PCMA
    with pytest.raises(ValueError):
        AudioFormat.from_wire({"type": "audio/pcm", "rate": 8000})
    assert AudioFormat.PCMU.duration_ms(800) == 100
    assert AudioFormat.PCM16.duration_ms(4800) == 100


def test_pcm_decoder_carries_odd_bytes() -> None:
    pcm = voiced_signal(0.1)
    raw = pcm.astype("<i2").tobytes()
    dec = InputDecoder(AudioFormat.PCM16)
    out = np.concatenate([dec.decode(raw[:101]), dec.decode(raw[101:])])
    assert np.array_equal(out, pcm)


def test_g711_output_round_trip() -> None:
    pcm = voiced_signal(0.5)
    wire = encode_output(pcm, AudioFormat.PCMU)
    assert len(wire) == 4000
    back = InputDecoder(AudioFormat.PCMU).decode(wire)
    assert best_correlation(pcm, back) > 0.9
    assert len(g711.ulaw_decode(wire)) == 4000


def test_stream_buffer_positions() -> None:
    buf = StreamBuffer()
    buf.append(np.arange(100, dtype=np.int16))
    buf.append(np.arange(100, 150, dtype=np.int16))
    buf.discard_before(40)
    assert (buf.start, buf.end, len(buf)) == (40, 150, 110)
    assert buf.slice(0, 45).tolist() == [40, 41, 42, 43, 44]
    assert buf.slice(140, 1000).tolist() == list(range(140, 150))


def test_tone_phrase_is_audible_and_sized() -> None:
    tones = tone_phrase()
    assert len(tones) == 24000 * (3 * 200 + 2 * 40) // 1000
    assert np.max(np.abs(tones)) > 8000


# ---- the core, without sockets ---------------------------------------------------------
def _core(**kw: Any) -> AgentCore:
    return AgentCore(AgentSettings(port=0, **kw), ids=IdFactory(seed=7))


def _drain(core: AgentCore) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while core.streaming:
        out += core.pump()
    return out


def _append(core: AgentCore, pcm: np.ndarray) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    raw = pcm.astype("<i2").tobytes()
    for i in range(0, len(raw), 960):
        frame = orjson.dumps(
            {
                "type": "input_audio_buffer.append",
                "audio": base64.b64encode(raw[i : i + 960]).decode(),
            }
        ).decode()
        out += core.receive(frame)
    return out


def test_core_ids_are_reproducible_and_shaped() -> None:
    a, b = _core().opening(), _core().opening()
    assert a == b
    assert a[0]["session"]["id"].startswith("sess_") and a[0]["event_id"].startswith("event_")


def test_core_queues_turn_when_interrupt_response_is_false() -> None:
    core = _core()
    core.handle(
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "audio": {
                    "input": {"turn_detection": {"type": "server_vad", "interrupt_response": False}}
                },
            },
        }
    )
    _append(core, _turn(1.0, 0.5))
    assert core.streaming
    first_id = core.active.id if core.active else ""
    out = _append(core, _turn(0.5, 0.5))  # the caller speaks over the first response
    assert "response.done" not in [
        e["type"] for e in out if e.get("response", {}).get("id") == first_id
    ]
    events = _drain(core)
    dones = [e["response"] for e in events if e["type"] == "response.done"]
    assert [d["status"] for d in dones] == ["completed", "completed"]
    assert dones[0]["id"] == first_id


def test_core_item_create_previous_item_id() -> None:
    core = _core()

    def create(item_id: str, previous: str | None = None) -> list[dict[str, Any]]:
        ev: dict[str, Any] = {
            "type": "conversation.item.create",
            "item": {
                "id": item_id,
                "type": "message",
                "role": "system",
                "content": [{"type": "input_text", "text": item_id}],
            },
        }
        if previous is not None:
            ev["previous_item_id"] = previous
        return core.handle(ev)

    create("item_a")
    create("item_b")
    out = create("item_c", previous="root")
    assert out[0]["previous_item_id"] is None
    out = create("item_d", previous="item_a")
    assert out[0]["previous_item_id"] == "item_a"
    assert [s.id for s in core.conversation] == ["item_c", "item_a", "item_d", "item_b"]
    err = create("item_e", previous="item_zzz")[0]
    assert err["type"] == "error" and err["error"]["param"] == "previous_item_id"
    err = create("item_a")[0]
    assert err["type"] == "error" and err["error"]["param"] == "item.id"


def test_core_truncate_during_active_response_cancels_it() -> None:
    core = _core()
    core.handle({"type": "response.create"})
    core.pump()
    core.pump()
    assert core.active is not None
    item_id = core.active.item_id
    out = core.handle(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": 50,
        }
    )
    types = [e["type"] for e in out]
    assert types[-2:] == ["response.done", "conversation.item.truncated"]
    assert not core.streaming


def test_core_transcription_event_when_configured() -> None:
    core = _core()
    core.handle(
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "audio": {"input": {"transcription": {"model": "whisper-1"}}},
            },
        }
    )
    out = _append(core, _turn(0.5, 0.5))
    done = [e for e in out if e["type"] == "conversation.item.input_audio_transcription.completed"]
    assert done and "ms of audio" in done[0]["transcript"]


def test_core_prefix_padding_does_not_overlap_previous_turn() -> None:
    core = _core()
    core.handle(
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "audio": {
                    "input": {
                        "turn_detection": {
                            "type": "server_vad",
                            "silence_duration_ms": 200,
                            "prefix_padding_ms": 1000,
                            "create_response": False,
                        }
                    }
                },
            },
        }
    )
    out = _append(core, _turn(0.5, 0.3))
    out += _append(core, _turn(0.5, 0.5))
    started = [e for e in out if e["type"] == "input_audio_buffer.speech_started"]
    stopped = [e for e in out if e["type"] == "input_audio_buffer.speech_stopped"]
    assert len(started) == len(stopped) == 2
    assert started[1]["audio_start_ms"] >= stopped[0]["audio_end_ms"]
    users = [s for s in core.conversation if s.item.get("role") == "user"]
    total_ms = sum(s.audio_ms for s in users)
    assert total_ms <= 1600  # 1.6 s of audio was sent; nothing is counted twice


def test_core_survives_its_own_bugs_and_translator_bugs(monkeypatch: pytest.MonkeyPatch) -> None:
    core = _core()

    def boom(ev: dict[str, Any]) -> list[dict[str, Any]]:
        raise RuntimeError("bug")

    out = core.receive('{"type": "response.create"}', boom)
    assert out[0]["type"] == "error" and out[0]["error"]["code"] == "invalid_event"
    monkeypatch.setitem(core._handlers, "response.create", boom)
    out = core.receive('{"type": "response.create", "event_id": "e1"}')
    assert out[0]["error"]["type"] == "server_error"
    assert out[0]["error"]["event_id"] == "e1"


def test_vad_config_nulls_mean_defaults() -> None:
    cfg = VadConfig.from_turn_detection(
        {
            "type": "server_vad",
            "threshold": None,
            "silence_duration_ms": None,
            "prefix_padding_ms": 0,
        }
    )
    assert cfg == VadConfig(prefix_padding_ms=0)
