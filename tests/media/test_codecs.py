"""Codecs behind AudioCodec: constants, frame sizes, round trips, channel layout, registry."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from media.codecs import (
    AudioCodec,
    CodecError,
    G722Codec,
    OpusCodec,
    PcmaCodec,
    PcmuCodec,
    UnsupportedCodecError,
    codec_for,
)
from media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode


def _tones(freqs: list[float], rate: int, n: int, amp: float = 6000.0) -> NDArray[np.int16]:
    t = np.arange(n) / rate
    return np.rint(sum(amp * np.sin(2 * np.pi * f * t) for f in freqs)).astype(np.int16)


def _peak_hz_and_amp(x: NDArray[np.int16], rate: int) -> tuple[float, float]:
    """Strongest component of exactly one second of audio (bin k = k Hz)."""
    assert len(x) == rate
    spec = np.abs(np.fft.rfft(x.astype(np.float64))) * 2 / rate
    k = int(np.argmax(spec[1:]) + 1)
    return float(k), float(spec[k])


def _round_trip(codec: AudioCodec, x: NDArray[np.int16]) -> NDArray[np.int16]:
    n = codec.frame_samples * codec.encode_channels
    return np.concatenate([codec.decode(codec.encode(x[i : i + n])) for i in range(0, len(x), n)])


def test_constants() -> None:
    assert (PcmuCodec.name, PcmuCodec.payload_type, PcmuCodec.clock_rate) == ("PCMU", 0, 8000)
    assert (PcmaCodec.name, PcmaCodec.payload_type, PcmaCodec.sample_rate) == ("PCMA", 8, 8000)
    assert (G722Codec.name, G722Codec.payload_type) == ("G722", 9)
    assert (G722Codec.sample_rate, G722Codec.clock_rate) == (16000, 8000)
    assert (OpusCodec.name, OpusCodec.clock_rate, OpusCodec.channels) == ("opus", 48000, 2)


@pytest.mark.parametrize(
    ("codec", "enc", "dec"),
    [(PcmuCodec(), ulaw_encode, ulaw_decode), (PcmaCodec(), alaw_encode, alaw_decode)],
)
def test_g711_codecs_wrap_the_tables(codec: AudioCodec, enc: Any, dec: Any) -> None:
    x = _tones([440.0], 8000, 240)  # a 30 ms SIPp packet: any length is fine
    payload = codec.encode(x)
    assert payload == enc(x) and len(payload) == 240
    assert np.array_equal(codec.decode(payload), dec(payload))
    assert codec.frame_samples == 160 and codec.rtp_ticks(160) == 160
    codec.reset()


def test_g722_rtp_clock_is_half_the_sample_rate() -> None:
    g = G722Codec()
    assert g.frame_samples == 320
    assert g.rtp_ticks(g.frame_samples) == 160  # RFC 3551: 160 per 20 ms
    payload = g.encode(np.zeros(320, dtype=np.int16))
    assert len(payload) == 160
    assert len(g.decode(payload)) == 320
    assert g.decode(payload[:80]).shape == (160,)  # any payload length decodes


def test_g722_round_trip_quality() -> None:
    g = G722Codec()
    rate = 16000
    # A chirp gives one unambiguous cross-correlation peak for the codec delay.
    t = np.arange(rate) / rate
    chirp = np.rint(8000 * np.sin(2 * np.pi * (200 * t + 3000 * t**2))).astype(np.int16)
    y = _round_trip(g, chirp).astype(np.float64)
    ref = chirp.astype(np.float64)
    corr = [float(np.dot(y[d : d + 12000], ref[:12000])) for d in range(64)]
    delay = int(np.argmax(corr))
    err = y[delay : delay + 12000] - ref[:12000]
    snr = 10 * np.log10(np.mean(ref[:12000] ** 2) / np.mean(err**2))
    assert snr > 30.0, (delay, snr)


def test_opus_decodes_48k_interleaved_stereo_from_mono() -> None:
    o = OpusCodec()
    assert (o.encode_channels, o.decode_channels, o.frame_samples) == (1, 2, 960)
    assert o.rtp_ticks(960) == 960
    x = _tones([440.0], 48000, 48000 * 2)
    y = _round_trip(o, x)
    assert len(y) == 2 * len(x)
    left, right = y[0::2], y[1::2]
    assert np.array_equal(left, right)
    freq, amp = _peak_hz_and_amp(left[48000:], 48000)
    assert freq == 440.0
    assert 20 * np.log10(amp / 6000.0) == pytest.approx(0.0, abs=1.0)


def test_opus_stereo_encode_keeps_channels_apart() -> None:
    o = OpusCodec.for_fmtp({"stereo": "1", "useinbandfec": "1"})
    assert o.encode_channels == 2
    n = 48000 * 2
    stereo = np.empty(2 * n, dtype=np.int16)
    stereo[0::2] = _tones([440.0], 48000, n)
    stereo[1::2] = _tones([1000.0], 48000, n)
    y = _round_trip(o, stereo)
    assert _peak_hz_and_amp(y[0::2][48000:], 48000)[0] == 440.0
    assert _peak_hz_and_amp(y[1::2][48000:], 48000)[0] == 1000.0
    assert OpusCodec.for_fmtp({}).encode_channels == 1


@pytest.mark.parametrize("codec", [G722Codec(), OpusCodec()], ids=["g722", "opus"])
def test_pyav_codecs_reject_wrong_frames(codec: AudioCodec) -> None:
    with pytest.raises(CodecError, match="frames of"):
        codec.encode(np.zeros(codec.frame_samples + 1, dtype=np.int16))
    floats: Any = np.zeros(codec.frame_samples)
    with pytest.raises(CodecError, match="int16"):
        codec.encode(floats)
    with pytest.raises(CodecError, match="empty"):
        codec.decode(b"")


def test_corrupt_opus_payload_is_a_codec_error() -> None:
    with pytest.raises(CodecError):
        OpusCodec().decode(b"\xff\xff\xff")


def test_reset_restarts_the_stream() -> None:
    g = G722Codec()
    x = _tones([700.0], 16000, 320 * 5)
    first = [g.encode(x[i : i + 320]) for i in range(0, len(x), 320)]
    g.reset()
    again = [g.encode(x[i : i + 320]) for i in range(0, len(x), 320)]
    assert first == again


def test_registry_is_a_plain_lookup() -> None:
    assert isinstance(codec_for("PCMU", 8000), PcmuCodec)
    assert isinstance(codec_for("pcma", 8000, 1), PcmaCodec)
    assert isinstance(codec_for("G722", 8000), G722Codec)
    opus = codec_for("OPUS", 48000, 2)
    assert isinstance(opus, OpusCodec) and opus.encode_channels == 1
    assert codec_for("PCMU", 8000) is not codec_for("PCMU", 8000)
    for bad in [("G722", 16000, 1), ("opus", 48000, 1), ("telephone-event", 8000, 1)]:
        with pytest.raises(UnsupportedCodecError, match="no codec"):
            codec_for(*bad)
    assert issubclass(UnsupportedCodecError, LookupError)
