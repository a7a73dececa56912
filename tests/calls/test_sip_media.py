"""One SIP call's audio on virtual time: what the caller says reaches the agent, what the
agent says reaches the caller, paced, with exact barge-in accounting."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bridge.calls.sip_media import SipMedia, carried_codecs
from bridge.realtime.formats import AudioFormat
from media import g711
from media.codecs import codec_for
from media.dtmf import DtmfDigit
from media.playout import PlaybackEvent, PlaybackFinished, PlaybackStarted
from media.resample import Resampler
from media.rtp import RtpPacket
from tests.support.audio import best_correlation, voiced_signal
from tests.support.pcap import read_udp
from tests.support.peers import require_peer

SIPP_DIR = Path("/usr/share/sip-tester")


class Harness:
    def __init__(self, codec: str, pt: int, fmt: AudioFormat, dtmf_pt: int | None = 101) -> None:
        self.to_agent: list[bytes] = []
        self.rtp: list[RtpPacket] = []
        self.digits: list[DtmfDigit] = []
        self.playback: list[PlaybackEvent] = []
        self.media = SipMedia(
            codec_for(codec, 8000),
            payload_type=pt,
            session_format=fmt,
            send_rtp=lambda b: self.rtp.append(RtpPacket.parse(b)) or True,
            to_agent=lambda b: self.to_agent.append(b) or True,
            on_dtmf=self.digits.append,
            on_playback=self.playback.append,
            dtmf_payload_type=dtmf_pt,
        )
        self.t = 1000.0

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            self.t += 0.020
            self.media.on_tick(self.t, self.t + 0.0005)


def sipp_capture(name: str) -> list[tuple[float, RtpPacket]]:
    require_peer("sipp")
    return [(d.time, RtpPacket.parse(d.payload)) for d in read_udp(SIPP_DIR / name)]


@pytest.mark.peer("sipp")
def test_sipp_alaw_30ms_passes_through_recut_to_20ms() -> None:
    packets = sipp_capture("g711a.pcap")
    assert {len(p.payload) for _, p in packets} == {240}  # 30 ms packets
    h = Harness("PCMA", 8, AudioFormat.PCMA)
    assert h.media.pass_through
    for t, p in packets:
        h.media.on_rtp(p, t)
    sent = b"".join(p.payload for _, p in packets)
    assert {len(f) for f in h.to_agent} == {160}  # 20 ms frames of A-law
    assert b"".join(h.to_agent) == sent[: len(h.to_agent) * 160]  # bit-exact, in order
    assert len(sent) - len(h.to_agent) * 160 < 160


def test_transcoding_path_delivers_the_callers_voice_at_24k() -> None:
    voice = voiced_signal(1.0, rate=8000)
    h = Harness("PCMU", 0, AudioFormat.PCM16)
    assert not h.media.pass_through
    for i in range(0, len(voice), 160):
        payload = g711.ulaw_encode(voice[i : i + 160])
        h.media.on_rtp(RtpPacket(0, i // 160, i, 42, payload), i / 8000)
    assert {len(f) for f in h.to_agent} == {960}  # 20 ms of PCM16 at 24 kHz
    got = np.frombuffer(b"".join(h.to_agent), dtype=np.int16)
    reference = Resampler(8000, 24000).process(g711.ulaw_decode(g711.ulaw_encode(voice)))
    assert best_correlation(reference[2000:20000], got) > 0.99


def test_a_lost_packet_is_concealed_not_silenced() -> None:
    voice = voiced_signal(0.4, rate=8000)
    h = Harness("PCMA", 8, AudioFormat.PCMA)
    for n in range(20):
        if n == 10:
            continue  # lost
        payload = g711.alaw_encode(voice[n * 160 : (n + 1) * 160])
        h.media.on_rtp(RtpPacket(8, n, n * 160, 7, payload), n * 0.02)
        h.tick()
    assert len(h.to_agent) == 20  # 19 received + 1 concealed: the stream stays continuous
    assert h.media.stats.frames_concealed == 1
    concealed = g711.alaw_decode(h.to_agent[10])
    assert np.abs(concealed.astype(np.int32)).max() > 500  # a fading repeat, not zeros


@pytest.mark.peer("sipp")
def test_dtmf_from_sipp_capture_on_its_own_ssrc() -> None:
    h = Harness("PCMA", 8, AudioFormat.PCMA)
    for t, p in sipp_capture("g711a.pcap")[:20]:
        h.media.on_rtp(p, t)
    for t, p in sipp_capture("dtmf_2833_5.pcap"):
        h.media.on_rtp(p, t)
    assert [d.digit for d in h.digits] == ["5"]


@pytest.mark.parametrize(
    ("codec", "pt", "fmt"), [("PCMU", 0, AudioFormat.PCMU), ("PCMU", 0, AudioFormat.PCM16)]
)
def test_agent_audio_is_paced_one_packet_per_tick(codec: str, pt: int, fmt: AudioFormat) -> None:
    h = Harness(codec, pt, fmt)
    voice24 = voiced_signal(1.0, rate=24000)
    if fmt is AudioFormat.PCM16:
        audio = voice24.tobytes()
    else:
        audio = g711.ulaw_encode(Resampler(24000, 8000).process(voice24))
    h.tick()  # anchor
    for i in range(0, len(audio), len(audio) // 10):  # 10 deltas of 100 ms
        h.media.push_agent_audio("resp_1", "item_1", audio[i : i + len(audio) // 10])
    h.media.mark_done("resp_1")
    h.tick(60)
    assert len(h.rtp) == 61  # exactly one packet per tick, silence included
    seqs = [p.sequence_number for p in h.rtp]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    ts = [p.timestamp for p in h.rtp]
    assert all((b - a) & 0xFFFFFFFF == 160 for a, b in itertools.pairwise(ts))
    assert h.rtp[0].marker and not any(p.marker for p in h.rtp[1:])
    heard = g711.ulaw_decode(b"".join(p.payload for p in h.rtp))
    ref = Resampler(24000, 8000).process(voice24)
    assert best_correlation(ref[800:7000], heard) > 0.97
    kinds = [type(e) for e in h.playback]
    assert kinds == [PlaybackStarted, PlaybackFinished]
    assert isinstance(h.playback[1], PlaybackFinished)
    assert abs(h.playback[1].sent_ms - 1000.0) <= 20.0


def test_barge_in_clear_reports_exactly_what_was_sent() -> None:
    h = Harness("PCMA", 8, AudioFormat.PCMA)
    h.tick()
    h.media.push_agent_audio("r1", "i1", bytes([0xD5 ^ 0x10]) * 8000)  # 1 s of a non-silent tone
    h.tick(13)
    result = h.media.clear()
    sent_before = len(h.rtp)
    h.tick(5)
    played = {p.item_id: p for p in result.played}
    assert played["i1"].audio_end_ms == 13 * 20
    assert all(p.payload == bytes([0xD5]) * 160 for p in h.rtp[sent_before:])  # silence after


def test_on_hold_caller_audio_stops_and_playout_pauses() -> None:
    h = Harness("PCMA", 8, AudioFormat.PCMA)
    h.tick()
    h.media.hold(True, h.t)
    for n in range(5):
        h.media.on_rtp(RtpPacket(8, n, n * 160, 7, b"\x55" * 160), h.t)
        h.tick()
    assert h.to_agent == [] and h.media.stats.held_frames == 5
    sent = len(h.rtp)
    h.tick(5)
    assert len(h.rtp) == sent  # no frames while on hold
    h.media.hold(False, h.t)
    h.media.on_rtp(RtpPacket(8, 5, 800, 7, b"\x55" * 160), h.t)
    h.tick(2)
    assert len(h.to_agent) == 1 and len(h.rtp) == sent + 2


def test_rtcp_reports_every_five_seconds_or_so() -> None:
    from media.rtcp import ReceiverReport, SenderReport, SourceDescription, parse_compound

    sent: list[bytes] = []
    h = Harness("PCMU", 0, AudioFormat.PCMU)
    h.media._send_rtcp = lambda b: sent.append(b) or True
    for n in range(1000):  # 20 s of caller audio and agent silence
        h.media.on_rtp(RtpPacket(0, n, n * 160, 99, b"\xff" * 160), h.t)
        h.tick()
    assert 2 <= len(sent) <= 8  # 5 s +- 50% randomisation (RFC 3550 §6.2)
    packets = parse_compound(sent[-1])
    assert isinstance(packets[0], SenderReport)  # we sent audio since the last report
    assert packets[0].reports[0].ssrc == 99  # a report block about the caller's stream
    assert any(isinstance(p, SourceDescription) for p in packets)
    # the caller's reports are read; a malformed one is counted, never raised
    rr = ReceiverReport(99, ())
    h.media.on_rtcp(bytes(rr), h.t)
    assert h.media.stats.rtcp_malformed == 0
    h.media.on_rtcp(b"\x80garbage", h.t)
    assert h.media.stats.rtcp_malformed == 1


def test_dtmf_out_is_paced_on_the_audio_clock_and_holds_audio_back() -> None:
    from media.dtmf import TelephoneEvent

    h = Harness("PCMU", 0, AudioFormat.PCMU)
    h.tick(5)  # the stream is running
    assert h.media.send_dtmf("5")
    start = len(h.rtp)
    per_tick = []
    for _ in range(12):
        before = len(h.rtp)
        h.tick()
        per_tick.append(sum(p.payload_type == 101 for p in h.rtp[before:]))
    sent = h.rtp[start:]
    events = [p for p in sent if p.payload_type == 101]
    assert events and events[0].marker  # the first packet of the event carries the marker
    assert len({p.timestamp for p in events}) == 1  # one event, one timestamp
    parsed = [TelephoneEvent.parse(p.payload) for p in events]
    assert parsed[0].event == 5 and sum(e.end for e in parsed) == 3  # end sent three times
    # paced on the frame clock: 100 ms of updates then three ends, one packet per tick
    assert max(per_tick) == 1 and sum(per_tick) == 5 + 3
    # the event's timestamp is on the audio clock: right after the last audio packet's
    last_audio_before = h.rtp[start - 1]
    assert 0 <= (events[0].timestamp - last_audio_before.timestamp) & 0xFFFFFFFF <= 320
    # no audio packets while the tone is sent; audio resumes afterwards
    first_end = next(
        i
        for i, p in enumerate(sent)
        if p.payload_type == 101 and TelephoneEvent.parse(p.payload).end
    )
    assert all(p.payload_type == 101 for p in sent[: first_end + 1])
    h.tick(10)
    assert h.rtp[-1].payload_type == 0


def test_nothing_is_sent_before_the_peer_proves_itself() -> None:
    """An INVITE that is never ACKed must not make rtbridge stream to the address its SDP
    names: playout starts with the ACK (or the caller's first RTP), from the first frame."""
    h = Harness("PCMU", 0, AudioFormat.PCMU)
    h.media.proven = False
    h.media.push_agent_audio("r1", "i1", b"\x10" * 8000)  # a second of the agent's greeting
    h.tick(100)
    assert h.rtp == [] and not h.playback
    h.media.prove()  # the ACK
    h.tick(3)
    assert len(h.rtp) == 3 and h.rtp[0].marker
    assert h.rtp[0].payload == b"\x10" * 160  # the greeting from its start, nothing lost
    caller = Harness("PCMU", 0, AudioFormat.PCMU)
    caller.media.proven = False
    pkt = RtpPacket(payload_type=0, sequence_number=1, timestamp=0, ssrc=1, payload=b"\xff" * 160)
    caller.media.on_rtp(pkt, caller.t)  # the caller's first RTP proves it too
    caller.tick(2)
    assert len(caller.rtp) == 2


# -- codec changes mid-call (issue 14 point 8) ----------------------------------------------


def _payloads(voice: np.ndarray, encode: Callable[[np.ndarray], bytes]) -> list[bytes]:
    return [encode(voice[i : i + 160]) for i in range(0, len(voice) - 159, 160)]


def test_an_alaw_caller_reaches_a_ulaw_agent_translated_code_by_code() -> None:
    voice = voiced_signal(0.5, rate=8000)
    h = Harness("PCMA", 8, AudioFormat.PCMU)  # the agent session stayed u-law
    assert h.media.pass_through  # no decoding: a table lookup per byte
    for n, payload in enumerate(_payloads(voice, g711.alaw_encode)):
        h.media.on_rtp(RtpPacket(8, n, n * 160, 9, payload), n * 0.02)
    heard = g711.ulaw_decode(b"".join(h.to_agent))
    sent = g711.alaw_decode(g711.alaw_encode(voice[: len(heard)]))
    assert best_correlation(sent.astype(np.float64), heard) > 0.999


def test_a_reinvite_from_pcmu_to_pcma_keeps_the_agents_buffered_audio_and_the_stream() -> None:
    voice = voiced_signal(1.0, rate=8000)
    h = Harness("PCMU", 0, AudioFormat.PCMU)
    h.media.push_agent_audio("r1", "i1", g711.ulaw_encode(voice))  # one second, buffered
    h.tick(10)
    before = list(h.rtp)
    h.media.change_codec(codec_for("PCMA", 8000), payload_type=8, dtmf_payload_type=101)
    h.tick(45)
    after = h.rtp[len(before) :]
    assert {p.payload_type for p in before} == {0}
    assert {p.payload_type for p in after} == {8}
    # the same stream goes on: SSRC, consecutive sequence numbers, 160 per 20 ms
    assert {p.ssrc for p in h.rtp} == {before[0].ssrc}
    seqs = [p.sequence_number for p in h.rtp]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    stamps = [p.timestamp for p in h.rtp]
    assert {b - a for a, b in itertools.pairwise(stamps)} == {160}
    # and the rest of the agent's second plays on, now as A-law: nothing was dropped
    heard = np.concatenate(
        [g711.ulaw_decode(p.payload) for p in before] + [g711.alaw_decode(p.payload) for p in after]
    )
    assert best_correlation(voice[:8000].astype(np.float64), heard[:8000]) > 0.99
    # caller audio of the new payload type is the call's audio; the old one is foreign now
    h.media.on_rtp(RtpPacket(8, 1, 160, 5, g711.alaw_encode(voice[:160])), h.t)
    h.media.on_rtp(RtpPacket(0, 2, 320, 5, g711.ulaw_encode(voice[:160])), h.t)
    assert len(h.to_agent) == 1 and h.media.stats.foreign_payload == 1


def test_a_reinvite_to_another_clock_rate_rebuilds_the_agent_path_and_continues_timestamps() -> (
    None
):
    h = Harness("PCMU", 0, AudioFormat.PCM16)
    h.media.push_agent_audio("r1", "i1", np.zeros(4800, dtype=np.int16).tobytes())
    h.tick(5)
    opus = codec_for("opus", 48000, 2)
    assert not h.media.keeps_playout(opus)
    last = h.rtp[-1].timestamp
    h.media.change_codec(opus, payload_type=111, dtmf_payload_type=None)
    assert h.media.playout.format.sample_rate == 48000
    voice = voiced_signal(0.2, rate=24000)
    h.media.push_agent_audio("r2", "i2", voice.tobytes())
    h.tick(12)
    after = [p for p in h.rtp if p.payload_type == 111]
    assert after and {p.ssrc for p in after} == {h.rtp[0].ssrc}
    # continuous at the change (within one frame), then 960 per 20 ms at 48 kHz
    assert 0 < (after[0].timestamp - last) % 2**32 <= 2 * 960
    assert {b.timestamp - a.timestamp for a, b in itertools.pairwise(after)} == {960}
    decoded = np.concatenate([opus.decode(p.payload)[::2] for p in after])
    assert np.abs(decoded.astype(np.int32)).max() > 1000  # the agent's new audio, audible


def test_a_g711_session_carries_either_law_and_nothing_else() -> None:
    assert carried_codecs(AudioFormat.PCMU, ["opus", "PCMA", "G722", "PCMU"]) == ("PCMA", "PCMU")
    assert carried_codecs(AudioFormat.PCM16, ["opus", "PCMA"]) == ("opus", "PCMA")
    h = Harness("PCMU", 0, AudioFormat.PCMU)
    with pytest.raises(ValueError, match="cannot carry"):
        h.media.change_codec(codec_for("G722", 8000), payload_type=9, dtmf_payload_type=None)


def test_a_codec_change_that_rebuilds_the_agent_path_keeps_it_held_and_muted() -> None:
    h = Harness("PCMU", 0, AudioFormat.PCM16)
    h.tick(3)
    h.media.hold(True, h.t)
    h.media.set_muted(True)
    g722 = codec_for("G722", 8000)
    assert not h.media.keeps_playout(g722)  # a new agent path
    h.media.change_codec(g722, payload_type=9, dtmf_payload_type=101)
    sent = len(h.rtp)
    h.media.push_agent_audio("r1", "i1", np.full(4800, 1000, dtype=np.int16).tobytes())
    h.tick(10)
    assert len(h.rtp) == sent  # nothing reaches the held caller
    assert h.media.agent.playout.paused and h.media.agent.muted
