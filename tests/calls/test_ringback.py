"""Ringback as a sink of the frame ticker: one packet per tick in the negotiated codec, its own
stream stamped from the tick deadlines, silent once the caller is gone, gone from the ticker at
stop (driven on virtual time: the ticker's ``tick``, no sleeping)."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from bridge.calls.ringback import Ringback
from bridge.calls.ticker import FrameTicker
from media.codecs import codec_for
from media.rtp import RtpPacket, seq_diff, ts_diff
from media.tones import RingbackTone

PERIOD = 0.020


def run(
    codec_name: str, clock_rate: int, channels: int, ticks: int, *, gone_after: int | None = None
) -> tuple[Ringback, FrameTicker, list[RtpPacket]]:
    sent: list[RtpPacket] = []

    def send(data: bytes) -> bool:
        sent.append(RtpPacket.parse(data))
        return True

    ticker = FrameTicker(PERIOD)
    codec = codec_for(codec_name, clock_rate, channels)
    count = [0]
    ringback = Ringback(
        RingbackTone.US,
        codec,
        codec.payload_type,
        send,
        gone=lambda: gone_after is not None and count[0] >= gone_after,
        rng=random.Random(3),
    )
    t0 = 100.0
    ringback.play(ticker, t0)
    for n in range(1, ticks + 1):
        count[0] = n - 1
        ticker.tick(t0 + n * PERIOD, t0 + n * PERIOD + 0.003)  # woken a little late
    return ringback, ticker, sent


@pytest.mark.parametrize(
    ("name", "rate", "channels", "ticks_per_frame"),
    [
        ("PCMU", 8000, 1, 160),
        ("PCMA", 8000, 1, 160),
        ("G722", 8000, 1, 160),  # 16 kHz audio on an 8 kHz RTP clock
        ("opus", 48000, 2, 960),
    ],
)
def test_one_packet_per_tick_in_the_negotiated_codec_carrying_the_tone(
    name: str, rate: int, channels: int, ticks_per_frame: int
) -> None:
    ringback, _, sent = run(name, rate, channels, 50)  # 1 s: inside the first 2 s burst
    assert len(sent) == ringback.packets == 50
    assert {p.payload_type for p in sent} == {codec_for(name, rate, channels).payload_type}
    assert len({p.ssrc for p in sent}) == 1
    assert [p.marker for p in sent] == [True] + [False] * 49
    pairs = list(itertools.pairwise(sent))
    assert all(seq_diff(b.sequence_number, a.sequence_number) == 1 for a, b in pairs)
    # stamped from the deadlines: exactly one frame of media clock apart, however late the wake
    assert all(ts_diff(b.timestamp, a.timestamp) == ticks_per_frame for a, b in pairs)
    decoder = codec_for(name, rate, channels)
    pcm = np.concatenate([decoder.decode(p.payload) for p in sent])
    pcm = pcm[:: decoder.decode_channels].astype(np.float64)  # the first channel
    pcm = pcm[len(pcm) // 5 :]  # past the decoder's start-up
    spectrum = np.abs(np.fft.rfft(pcm))
    bin_hz = decoder.sample_rate / len(pcm)
    peaks = sorted(round(i * bin_hz / 10) * 10 for i in np.argsort(spectrum)[-2:])
    assert peaks == [440, 480]  # the US ringback: 440 + 480 Hz


def test_nothing_once_the_caller_is_gone_and_stop_leaves_the_ticker() -> None:
    ringback, ticker, sent = run("PCMU", 8000, 1, 30, gone_after=10)
    assert len(sent) == 10  # CANCEL: silent from the next tick on
    assert len(ticker) == 1
    played = ringback.stop(100.0 + 30 * PERIOD)
    assert played == {
        "mode": "ringback",
        "tone": "us",
        "codec": "PCMU",
        "seconds": 0.6,
        "packets": 10,
    }
    assert len(ticker) == 0 and ringback.stop(101.0) is None  # once
    ticker.tick(200.0, 200.0)
    assert len(sent) == 10


def test_a_send_with_nowhere_to_go_is_not_counted() -> None:
    ticker = FrameTicker(PERIOD)
    codec = codec_for("PCMU", 8000)
    ringback = Ringback(RingbackTone.EU, codec, 0, lambda _d: False, gone=lambda: False)
    ringback.play(ticker, 0.0)
    ticker.tick(PERIOD, PERIOD)
    assert ringback.packets == 0 and ringback.send_state.packets_sent == 1
