"""The agent -> caller path both legs share, on virtual time: agent audio comes out paced one
frame per tick as wire payloads (G.711 untouched, transcoded to G.711, or encoded frame by
frame), barge-in says exactly what was played, and mute and hold behave as callers expect."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from media import g711
from media.agent_path import AgentPath
from media.codecs import G722Codec, OpusCodec
from media.codecs._pyav import PyAVEncoder
from media.level import SILENCE_DBFS
from media.playout import (
    MAX_BUFFERED_S,
    Frame,
    PlaybackEvent,
    PlaybackFinished,
    PlaybackStarted,
    PlayoutEncoding,
    PlayoutFormat,
)
from media.resample import Resampler
from tests.support.audio import best_correlation, voiced_signal

T0 = 100.0


class Wire:
    """Drives a path on the 20 ms grid and keeps (frame, payload) of every tick."""

    def __init__(self, path: AgentPath) -> None:
        self.path = path
        self.sent: list[tuple[Frame, bytes]] = []
        self.n = 0

    def tick(self, count: int = 1) -> None:
        for _ in range(count):
            deadline = T0 + 0.020 * self.n
            self.n += 1
            for frame in self.path.tick(deadline, deadline + 0.0004):
                self.sent.append((frame, self.path.encode(frame)))

    def payloads(self) -> list[bytes]:
        return [p for _, p in self.sent]


def deltas(audio: bytes, size: int) -> list[bytes]:
    return [audio[i : i + size] for i in range(0, len(audio), size)]


def test_pass_through_plays_the_agents_bytes_untouched_one_frame_per_tick() -> None:
    path = AgentPath.pass_through(PlayoutEncoding.PCMU)
    events: list[PlaybackEvent] = []
    path.on_playback = events.append
    wire = Wire(path)
    audio = g711.ulaw_encode(voiced_signal(0.5, rate=8000))  # 25 frames
    wire.tick(2)
    for d in deltas(audio, 777):  # deltas of any length
        path.push("r1", "i1", d)
    path.mark_done("r1")
    wire.tick(30)
    assert len(wire.sent) == 32  # one frame per tick, silence included
    payloads = wire.payloads()
    assert payloads[:2] == [b"\xff" * 160] * 2  # u-law silence before the response
    assert b"".join(payloads[2:27]) == audio  # bit-exact, in order
    assert payloads[27:] == [b"\xff" * 160] * 5
    assert [type(e) for e in events] == [PlaybackStarted, PlaybackFinished]
    assert isinstance(events[1], PlaybackFinished) and events[1].sent_ms == 500.0


def test_pcm16_to_g711_is_the_resampled_voice_encoded_as_it_arrives() -> None:
    path = AgentPath.to_g711(PlayoutEncoding.PCMA)
    wire = Wire(path)
    voice = voiced_signal(1.0)
    reference = Resampler(24000, 8000)
    expected = b""
    for d in deltas(voice.tobytes(), 4802):  # deltas of any (whole-sample) length
        assert path.push("r1", "i1", d)
        expected += g711.alaw_encode(reference.process(np.frombuffer(d, dtype=np.int16)))
    path.mark_done("r1")
    wire.tick(55)
    heard = b"".join(p for f, p in wire.sent if not f.is_silence)
    # the same G.711 bytes a per-frame encoder would have made, and the caller's voice
    assert heard[: len(expected)] == expected
    decoded = g711.alaw_decode(heard)
    assert best_correlation(Resampler(24000, 8000).process(voice)[800:7000], decoded) > 0.97
    assert {len(p) for p in wire.payloads()} == {160}
    assert all(p == b"\xd5" * 160 for f, p in wire.sent if f.is_silence)  # A-law silence


def test_odd_byte_of_a_pcm16_delta_is_ignored_not_misaligned() -> None:
    path = AgentPath.to_g711(PlayoutEncoding.PCMU)
    wire = Wire(path)
    voice = voiced_signal(0.2)
    assert path.push("r1", "i1", voice.tobytes() + b"\x01")
    path.mark_done("r1")
    wire.tick(12)
    decoded = g711.ulaw_decode(b"".join(p for f, p in wire.sent if not f.is_silence))
    assert best_correlation(Resampler(24000, 8000).process(voice)[400:1200], decoded) > 0.97


def _decoded_opus(payloads: list[bytes]) -> NDArray[np.int16]:
    dec = OpusCodec()
    to24 = Resampler(48000, 24000, channels_in=2)
    return np.concatenate([to24.process(dec.decode(p)) for p in payloads])


def test_frame_codec_encodes_each_frame_and_sends_the_constant_silence_between() -> None:
    silence = b"\xf8\xff\xfe"
    enc = PyAVEncoder("libopus", 24000, 1, 480, 32000, {"application": "audio"})
    path = AgentPath.encoding(enc.encode, 24000, silence=silence)
    wire = Wire(path)
    voice = voiced_signal(0.4)  # 20 frames
    wire.tick(3)
    for d in deltas(voice.tobytes(), 4800):
        path.push("r1", "i1", d)
    path.mark_done("r1")
    wire.tick(25)
    payloads = wire.payloads()
    assert payloads[:3] == [silence] * 3 and payloads[23:] == [silence] * 5
    assert all(p != silence for p in payloads[3:23])
    assert best_correlation(voice[2400:7200], _decoded_opus(payloads[3:23])) > 0.8


def test_frame_codec_resamples_to_the_codec_rate_and_encodes_silence_too() -> None:
    enc, dec = G722Codec(), G722Codec()
    path = AgentPath.encoding(enc.encode, enc.sample_rate)
    wire = Wire(path)
    voice = voiced_signal(0.6)
    wire.tick()
    path.push("r1", "i1", voice.tobytes())
    path.mark_done("r1")
    wire.tick(35)
    assert {len(p) for p in wire.payloads()} == {160}  # 64 kbit/s: 160 bytes per 20 ms
    heard = np.concatenate([dec.decode(p) for p in wire.payloads()])
    reference = Resampler(24000, 16000).process(voice)
    assert best_correlation(reference[1600:8000], heard) > 0.9


def test_barge_in_clear_reports_what_was_played_and_stops_before_the_next_frame() -> None:
    path = AgentPath.pass_through(PlayoutEncoding.PCMA)
    wire = Wire(path)
    tone = bytes([0xD5 ^ 0x10]) * 8000  # 1 s of non-silent A-law
    wire.tick()
    path.push("r1", "i1", tone[:4000])
    path.push("r1", "i2", tone[4000:])  # a second item, never reached
    wire.tick(13)
    result = path.clear()
    assert [(p.item_id, p.audio_end_ms) for p in result.played] == [("i1", 260)]
    assert [p.item_id for p in result.unplayed] == ["i2"]
    assert result.responses == ("r1",)
    assert not path.playing()
    before = len(wire.sent)
    assert not path.push("r1", "i1", tone[:160])  # late audio of a cleared response
    wire.tick(5)
    assert all(p == b"\xd5" * 160 for p in wire.payloads()[before:])  # silence after


def test_clear_forgets_the_resamplers_history() -> None:
    path = AgentPath.to_g711(PlayoutEncoding.PCMU)
    wire = Wire(path)
    wire.tick()
    path.push("r1", "i1", voiced_signal(0.2).tobytes())
    path.clear()
    path.push("r2", "i1", np.zeros(4800, dtype=np.int16).tobytes())
    path.mark_done("r2")
    wire.tick(12)
    audio = [p for f, p in wire.sent if not f.is_silence]
    assert audio and all(p == b"\xff" * 160 for p in audio)  # nothing of r1 leaks into r2


def test_mute_drops_what_is_buffered_and_refuses_new_audio() -> None:
    path = AgentPath.pass_through(PlayoutEncoding.PCMU)
    wire = Wire(path)
    wire.tick()
    path.push("r1", "i1", b"\x10" * 1600)
    assert path.playing()
    path.set_muted(True)
    assert not path.playing()
    assert not path.push("r2", "i1", b"\x10" * 160)
    wire.tick(3)
    assert all(p == b"\xff" * 160 for p in wire.payloads())
    path.set_muted(False)
    assert path.push("r3", "i1", b"\x10" * 160)


def test_hold_pauses_and_resumes_on_the_next_ticks_deadline() -> None:
    path = AgentPath.pass_through(PlayoutEncoding.PCMU)
    wire = Wire(path)
    wire.tick()
    path.push("r1", "i1", b"\x10" * 1600)  # 10 frames
    wire.tick(3)
    path.hold(True)
    wire.tick(4)
    assert len(wire.sent) == 4  # nothing while on hold
    path.hold(False)
    resume_deadline = T0 + 0.020 * wire.n
    wire.tick(8)
    frames = [f for f, _ in wire.sent]
    assert frames[4].deadline == pytest.approx(resume_deadline)  # on the ticker's grid
    assert sum(f.audio_samples for f in frames) == 1600  # every sample played, none lost


def test_level_follows_the_latest_frame() -> None:
    path = AgentPath.to_g711(PlayoutEncoding.PCMU)
    wire = Wire(path)
    assert path.level() is None
    wire.tick()
    assert path.level() == SILENCE_DBFS
    amp = 32768 * np.sqrt(2) * 10 ** (-30 / 20)
    tone = np.round(amp * np.sin(2 * np.pi * 440 * np.arange(4800) / 24000)).astype(np.int16)
    path.push("r1", "i1", tone.tobytes())
    wire.tick(3)
    level = path.level()
    assert level is not None and abs(level - -30.0) < 1.0


def test_impossible_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="encode function"):
        AgentPath.pass_through(PlayoutEncoding.PCM16)
    with pytest.raises(ValueError, match="cannot become"):
        AgentPath(PlayoutEncoding.PCMU, PlayoutFormat(PlayoutEncoding.PCMA, 8000))
    with pytest.raises(ValueError, match="need none"):
        AgentPath(
            PlayoutEncoding.PCM16,
            PlayoutFormat(PlayoutEncoding.PCMU, 8000),
            encode=g711.ulaw_encode,
        )


def test_an_agent_streaming_without_end_is_held_to_the_bound_and_keeps_playing() -> None:
    """1 MB of u-law (125 s) every 100 ms: the buffer holds two minutes, the rest is dropped
    and counted, the overflow is told once per response, and the call's audio goes on."""
    path = AgentPath.pass_through(PlayoutEncoding.PCMU)
    told: list[str] = []
    path.on_overflow = lambda rid, _iid: told.append(rid)
    wire = Wire(path)
    chunk = b"\x55" * 1_000_000
    assert path.push("r1", "i1", chunk)  # what fits is queued: True
    assert not path.push("r1", "i1", chunk)  # full: nothing of it queued
    for _ in range(50):
        wire.tick(5)
        path.push("r1", "i1", chunk)  # tops the buffer up to the bound again
    stats = path.playout.stats
    assert path.playout.buffered_ms <= MAX_BUFFERED_S * 1000
    assert path.playout.room == 0  # topped up as it plays: the bound, not the pushes
    assert stats.samples_overflow == 52 * 1_000_000 - 960_000 - 50 * 5 * 160
    assert told == ["r1"]
    assert all(p == b"\x55" * 160 for p in wire.payloads())  # the agent's audio, no gap
    path.push("r2", "i2", chunk)  # a later response's overflow is told again
    assert told == ["r1", "r2"]


def test_a_huge_pcm16_delta_is_cut_to_the_bound_before_it_is_resampled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = AgentPath.to_g711(PlayoutEncoding.PCMU)
    resampler = path._resampler
    assert resampler is not None
    seen: list[int] = []
    process = resampler.process

    def spy(pcm: NDArray[np.int16]) -> NDArray[np.int16]:
        seen.append(len(pcm))
        return process(pcm)

    monkeypatch.setattr(resampler, "process", spy)
    huge = b"\x10\x00" * (5 * 1024 * 1024)  # 10 MB of PCM16: 218 s at 24 kHz
    assert path.push("r", "i", huge)
    assert seen == [MAX_BUFFERED_S * 24000]  # only what fits was converted
    path.push("r", "i", huge)  # full: at most the resampler's held-back samples converted
    assert len(seen) == 2 and seen[1] <= 480  # under one frame
    assert path.playout.buffered_ms == MAX_BUFFERED_S * 1000
    dropped_ms = path.playout.format.samples_to_ms(path.playout.stats.samples_overflow)
    assert dropped_ms == pytest.approx(2 * 218_453 - MAX_BUFFERED_S * 1000, abs=2)
