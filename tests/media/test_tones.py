"""Ringback tones (ITU-T E.180): each cadence's bursts and silences frame by frame, its
frequencies by FFT peak, the same stream whatever the frame sizes."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from media.tones import CADENCES, LEVEL_DBFS, Cadence, RingbackTone, ToneGenerator

FRAME_MS = 20


def frames(tone: RingbackTone, rate: int, count: int) -> list[NDArray[np.int16]]:
    gen = ToneGenerator(CADENCES[tone], rate)
    return [gen.read(rate * FRAME_MS // 1000) for _ in range(count)]


def loud(frame: NDArray[np.int16]) -> bool:
    return float(np.sqrt(np.mean(frame.astype(np.float64) ** 2))) > 500.0


@pytest.mark.parametrize(
    ("tone", "pattern"),
    [
        (RingbackTone.US, [(True, 100), (False, 200)]),  # 2 s on, 4 s off
        (RingbackTone.EU, [(True, 50), (False, 200)]),  # 1 s on, 4 s off
        (RingbackTone.UK, [(True, 20), (False, 10), (True, 20), (False, 100)]),
    ],
)
def test_the_cadence_is_on_and_off_for_whole_frames(
    tone: RingbackTone, pattern: list[tuple[bool, int]]
) -> None:
    expected = [on for on, n in pattern for _ in range(n)] * 2  # two periods: it repeats
    got = frames(tone, 8000, len(expected))
    assert [loud(f) for f in got] == expected
    assert all(not f.any() for f, on in zip(got, expected, strict=True) if not on)  # silence is 0


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
@pytest.mark.parametrize(
    ("tone", "hz"),
    [(RingbackTone.US, [440, 480]), (RingbackTone.EU, [425]), (RingbackTone.UK, [400, 450])],
)
def test_the_frequencies_are_the_cadences(tone: RingbackTone, hz: list[int], rate: int) -> None:
    gen = ToneGenerator(CADENCES[tone], rate)
    burst = gen.read(rate * 4 // 10)  # 0.4 s: inside the first burst of every cadence
    spectrum = np.abs(np.fft.rfft(burst.astype(np.float64)))
    bin_hz = rate / len(burst)  # 2.5 Hz
    peaks = sorted(round(i * bin_hz) for i in np.argsort(spectrum)[-len(hz) :])
    assert peaks == hz
    # every component near LEVEL_DBFS: the burst's power is their sum (the ramps cost a little)
    power = np.mean((burst.astype(np.float64) / 32767.0) ** 2)
    expected = len(hz) * 0.5 * 10 ** (LEVEL_DBFS / 10)
    assert 0.9 * expected < power < 1.05 * expected


def test_the_stream_is_the_same_whatever_the_frame_sizes() -> None:
    whole = ToneGenerator(CADENCES[RingbackTone.UK], 8000).read(8000 * 3)
    gen = ToneGenerator(CADENCES[RingbackTone.UK], 8000)
    sizes = [0, 1, 159, 160, 7, 333, 0, 4000]
    parts = []
    while sum(len(p) for p in parts) < len(whole):
        parts.append(gen.read(sizes[len(parts) % len(sizes)]))
    joined = np.concatenate(parts)[: len(whole)]
    assert np.array_equal(joined, whole)
    # no jump inside a burst: sample to sample the wave moves less than its full swing allows
    burst = whole[400:3000]  # 50-375 ms: inside the first 400 ms burst
    limit = 2 * np.pi * 450 / 8000 * 2 * 32767 * 10 ** (LEVEL_DBFS / 20)  # slope bound
    assert np.max(np.abs(np.diff(burst.astype(np.float64)))) <= limit


def test_a_burst_opens_and_closes_without_a_click() -> None:
    edge = ToneGenerator(CADENCES[RingbackTone.EU], 8000).read(80)  # the first 10 ms
    assert edge[0] == 0 and np.max(np.abs(edge[:8])) < np.max(np.abs(edge[40:80])) / 4


def test_reset_restarts_the_cadence_and_bad_arguments_are_refused() -> None:
    gen = ToneGenerator(CADENCES[RingbackTone.US], 8000)
    first = gen.read(500)
    gen.reset()
    assert np.array_equal(gen.read(500), first)
    with pytest.raises(ValueError):
        gen.read(-1)
    with pytest.raises(ValueError):
        ToneGenerator(CADENCES[RingbackTone.US], 800)  # 480 Hz is above Nyquist
    with pytest.raises(ValueError):
        Cadence((440.0,), (1.0,))  # a burst with no silence after it
    with pytest.raises(ValueError):
        Cadence((), (1.0, 1.0))
