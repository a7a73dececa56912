"""The caller -> agent path both legs share, on virtual time: what the caller says reaches the
agent as 20 ms frames (G.711 bytes untouched, or decoded and resampled to 24 kHz), swaps are
repaired, losses are concealed by a fading repeat instead of zeros, and every frame is counted."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from media import g711
from media.caller_path import CallerPath
from media.codecs import G722Codec, OpusCodec
from media.codecs.base import CodecError
from media.conceal import CONCEAL_GAINS
from media.playout import PlayoutEncoding
from media.resample import Resampler
from media.rtp import RtpPacket
from tests.support.audio import best_correlation, voiced_signal


class Agent:
    """The agent session's send queue: records frames, refuses when told to."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.accept = True

    def __call__(self, frame: bytes) -> bool:
        if self.accept:
            self.frames.append(frame)
        return self.accept

    def pcm(self) -> NDArray[np.int16]:
        return np.frombuffer(b"".join(self.frames), dtype=np.int16)


def packets(payloads: list[bytes], pt: int = 0, ssrc: int = 7, ticks: int = 160) -> list[RtpPacket]:
    return [RtpPacket(pt, n, n * ticks, ssrc, p) for n, p in enumerate(payloads)]


def rms(pcm: NDArray[np.int16]) -> float:
    return float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64))))


def ulaw_payloads(pcm: NDArray[np.int16], size: int = 160) -> list[bytes]:
    return [g711.ulaw_encode(pcm[i : i + size]) for i in range(0, len(pcm) - size + 1, size)]


def test_pass_through_forwards_each_20ms_payload_untouched_on_arrival() -> None:
    agent = Agent()
    path = CallerPath.pass_through(PlayoutEncoding.PCMU, agent)
    payloads = ulaw_payloads(voiced_signal(0.5, rate=8000))
    for n, p in enumerate(packets(payloads)):
        path.push(p, n * 0.02)
        assert len(agent.frames) == n + 1  # on arrival: nothing waits for the next packet
    assert agent.frames == payloads  # the bytes that arrived, in order
    assert path.stats.frames_to_agent == len(payloads) and path.stats.frames_concealed == 0


@pytest.mark.parametrize("ptime_ms", [10, 30, 40])
def test_pass_through_recuts_other_ptimes_into_exact_20ms_frames(ptime_ms: int) -> None:
    agent = Agent()
    path = CallerPath.pass_through(PlayoutEncoding.PCMA, agent)
    stream = g711.alaw_encode(voiced_signal(0.6, rate=8000))
    size = 8 * ptime_ms
    chunks = [stream[i : i + size] for i in range(0, len(stream) - size + 1, size)]
    for n, p in enumerate(packets(chunks, pt=8, ticks=size)):
        path.push(p, n * ptime_ms / 1000)
    assert {len(f) for f in agent.frames} == {160}
    sent = b"".join(chunks)
    assert b"".join(agent.frames) == sent[: len(agent.frames) * 160]  # bit-exact, in order
    assert len(sent) - len(agent.frames) * 160 < 160  # only a partial frame waits


def test_transcoding_g711_delivers_the_callers_voice_at_24k() -> None:
    agent = Agent()
    path = CallerPath.transcoding(g711.ulaw_decode, 8000, 1, agent)
    voice = voiced_signal(1.0, rate=8000)
    for n, p in enumerate(packets(ulaw_payloads(voice))):
        path.push(p, n * 0.02)
    assert {len(f) for f in agent.frames} == {960}  # 20 ms of PCM16 at 24 kHz
    reference = Resampler(8000, 24000).process(g711.ulaw_decode(g711.ulaw_encode(voice)))
    assert best_correlation(reference[2000:20000], agent.pcm()) > 0.99


def test_transcoding_wideband_g722() -> None:
    agent = Agent()
    enc, dec = G722Codec(), G722Codec()
    path = CallerPath.transcoding(dec.decode, dec.sample_rate, dec.decode_channels, agent)
    voice = voiced_signal(1.0, rate=16000)
    payloads = [enc.encode(voice[i : i + 320]) for i in range(0, len(voice) - 319, 320)]
    for n, p in enumerate(packets(payloads, pt=9)):
        path.push(p, n * 0.02)
    reference = Resampler(16000, 24000).process(voice)
    assert best_correlation(reference[2400:20000], agent.pcm()) > 0.95


def test_transcoding_opus_stereo_is_downmixed_to_24k_mono() -> None:
    agent = Agent()
    enc, dec = OpusCodec(stereo=True, bit_rate=64000), OpusCodec()
    path = CallerPath.transcoding(dec.decode, 48000, 2, agent)
    voice = voiced_signal(1.0, rate=48000)
    stereo = np.repeat(voice, 2)
    payloads = [enc.encode(stereo[i : i + 1920]) for i in range(0, len(stereo) - 1919, 1920)]
    for n, p in enumerate(packets(payloads, pt=111, ticks=960)):
        path.push(p, n * 0.02)
    assert {len(f) for f in agent.frames} == {960}
    reference = Resampler(48000, 24000).process(voice)
    assert best_correlation(reference[2400:20000], agent.pcm()) > 0.8


def test_a_swap_is_repaired_in_order() -> None:
    agent = Agent()
    path = CallerPath.pass_through(PlayoutEncoding.PCMU, agent)
    pkts = packets(ulaw_payloads(voiced_signal(0.2, rate=8000)))
    for n, i in enumerate([0, 1, 3, 2, 4, 5, 6, 7, 8, 9]):
        path.push(pkts[i], n * 0.02)
    assert agent.frames == [p.payload for p in pkts]
    assert path.reorder.stats.reordered == 1 and path.stats.frames_concealed == 0


@pytest.mark.parametrize("encoding", [PlayoutEncoding.PCMU, PlayoutEncoding.PCM16])
def test_a_lost_frame_is_a_faded_repeat_not_silence(encoding: PlayoutEncoding) -> None:
    agent = Agent()
    if encoding is PlayoutEncoding.PCM16:
        path = CallerPath.transcoding(g711.ulaw_decode, 8000, 1, agent)
    else:
        path = CallerPath.pass_through(encoding, agent)
    pkts = packets(ulaw_payloads(voiced_signal(0.4, rate=8000)))
    for n, p in enumerate(pkts):
        if n != 10:  # lost
            path.push(p, n * 0.02)
        path.expire(n * 0.02 + 0.019)  # the frame tick
    assert path.stats.frames_concealed == 1 and path.reorder.stats.lost == 1
    # the stream stays continuous: 19 packets and one concealed frame (transcoding, the
    # resampler holds 2 ms back, so the frame before the loss is the 9th, not the 10th)
    lost_at = 10 if encoding is PlayoutEncoding.PCMU else 9
    assert len(agent.frames) == len(pkts) - (10 - lost_at)
    pcm = [encoding.to_pcm16(f) for f in agent.frames]
    gain = CONCEAL_GAINS[0]
    if encoding is PlayoutEncoding.PCM16:
        faded = (pcm[lost_at - 1].astype(np.float32) * gain).astype(np.int16)
        assert np.array_equal(pcm[lost_at], faded)
    else:  # G.711 re-quantises the faded repeat
        assert rms(pcm[lost_at]) == pytest.approx(rms(pcm[lost_at - 1]) * gain, rel=0.05)
    assert min(rms(f) for f in pcm[1:-1]) > 300  # no frame of zeros anywhere


def test_a_burst_fades_over_three_frames_then_the_stream_resumes() -> None:
    agent = Agent()
    path = CallerPath.transcoding(g711.ulaw_decode, 8000, 1, agent)
    pkts = packets(ulaw_payloads(voiced_signal(0.6, rate=8000)))
    for n, p in enumerate(pkts):
        if not 10 <= n < 16:  # six lost in a row
            path.push(p, n * 0.02)
    assert path.reorder.stats.lost == 6 and path.stats.frames_concealed == 3
    frames = [np.frombuffer(f, dtype=np.int16) for f in agent.frames]
    # ten packets made nine whole frames (the resampler holds 2 ms back); then the repeats
    base = frames[8]
    for gain, frame in zip(CONCEAL_GAINS, frames[9:12], strict=True):
        assert rms(frame) == pytest.approx(rms(base) * gain, rel=0.02)
    assert rms(frames[12]) > 300  # real audio again, at full level
    assert len(frames) == len(pkts) - 6 + 3 - 1


def test_nothing_is_invented_before_the_first_frame() -> None:
    agent = Agent()
    path = CallerPath.transcoding(g711.ulaw_decode, 8000, 1, agent)
    pkts = packets(ulaw_payloads(voiced_signal(0.1, rate=8000)))
    path.push(pkts[0], 0.0)  # 20 ms in, 18 ms out so far: no whole frame yet
    path.push(pkts[2], 0.04)
    path.push(pkts[3], 0.06)  # gives up on 1, with nothing to repeat
    assert path.reorder.stats.lost == 1 and path.stats.frames_concealed == 0
    assert len(agent.frames) == 2  # 3 packets' audio, less the resampler's 2 ms


def test_decode_errors_and_upstream_refusals_are_counted_and_the_stream_goes_on() -> None:
    agent = Agent()

    def decode(payload: bytes) -> NDArray[np.int16]:
        if payload == b"bad":
            raise CodecError("corrupt")
        return g711.ulaw_decode(payload)

    path = CallerPath.transcoding(decode, 8000, 1, agent)
    pkts = packets([b"\xff" * 160, b"bad", b"", b"\xff" * 160, b"\xff" * 160])
    for n, p in enumerate(pkts):
        path.push(p, n * 0.02)
    assert path.stats.decode_errors == 1
    delivered = path.stats.frames_to_agent
    assert delivered == len(agent.frames) >= 2
    agent.accept = False
    path.push(RtpPacket(0, 5, 800, 7, b"\xff" * 160), 0.1)
    assert path.stats.frames_dropped_upstream == 1
    assert path.stats.frames_to_agent == delivered


def test_pcm_decoded_elsewhere_takes_the_same_way() -> None:
    agent = Agent()
    path = CallerPath.transcoding(g711.ulaw_decode, 8000, 1, agent)
    voice = voiced_signal(0.5, rate=8000)
    for i in range(0, len(voice), 80):  # 10 ms at a time
        path.push_pcm(voice[i : i + 80])
    reference = Resampler(8000, 24000).process(voice)
    assert np.array_equal(agent.pcm(), reference[: len(agent.pcm())])
    with pytest.raises(ValueError, match="pass-through"):
        CallerPath.pass_through(PlayoutEncoding.PCMU, agent).push_pcm(voice)


def test_level_of_the_latest_frame() -> None:
    path = CallerPath.pass_through(PlayoutEncoding.PCMU, Agent())
    assert path.level() is None
    amp = 32768 * np.sqrt(2) * 10 ** (-20 / 20)
    tone = np.round(amp * np.sin(2 * np.pi * 440 * np.arange(160) / 8000)).astype(np.int16)
    path.push(RtpPacket(0, 0, 0, 7, g711.ulaw_encode(tone)), 0.0)
    level = path.level()
    assert level is not None and abs(level - -20.0) < 0.5


def test_wrong_shapes_are_refused() -> None:
    with pytest.raises(ValueError):
        CallerPath.pass_through(PlayoutEncoding.PCM16, Agent())
    with pytest.raises(ValueError):
        CallerPath(Agent(), PlayoutEncoding.PCMU, decode=g711.ulaw_decode)


def test_a_caller_sending_faster_than_real_time_is_held_to_its_rate() -> None:
    """120 ms packets every 4 ms (27 s of audio a second, each second billed by the upstream):
    past a 2 s burst, the caller gets 1.25 x real time and the rest is dropped and counted."""
    agent = Agent()
    path = CallerPath.pass_through(PlayoutEncoding.PCMU, agent)
    payload = g711.ulaw_encode(voiced_signal(0.12, rate=8000))  # 120 ms
    for n, p in enumerate(packets([payload] * 1000, ticks=960)):
        path.push(p, n * 0.004)  # 4 s of wall time
    delivered_s = len(agent.frames) * 0.02
    assert delivered_s <= 2.0 + 4.0 * 1.25 + 0.12  # before: 120 s of audio in 4 s
    assert delivered_s >= 4.0 * 1.25  # the rate itself still gets through
    assert path.stats.packets_over_rate > 900
