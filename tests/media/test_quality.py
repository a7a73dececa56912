"""The measurement functions themselves, on signals whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from media.quality import (
    alias_rejection_db,
    latency_ms,
    measure_resampler,
    sinad_db,
    spur_frequencies,
    tone,
    tone_amplitude,
)


def _sine(freq: int, rate: int, amp: float) -> NDArray[np.float64]:
    return amp * np.sin(2 * np.pi * freq * np.arange(rate) / rate)


def test_sinad_of_a_sine_in_white_noise() -> None:
    rate, amp, sigma = 8000, 20000.0, 100.0
    noise = np.random.default_rng(0).standard_normal(rate) * sigma
    window = np.rint(_sine(1001, rate, amp) + noise).astype(np.int16)
    expected = 10 * np.log10((amp**2 / 2) / (sigma**2 + 1 / 12))
    assert sinad_db(window, 1001) == pytest.approx(expected, abs=0.3)
    # Half the band holds half the white noise.
    assert sinad_db(window, 1001, band_hz=2000) == pytest.approx(expected + 3.01, abs=0.3)


def test_sinad_counts_distortion() -> None:
    rate = 24000
    x = _sine(1000, rate, 10000.0) + _sine(3000, rate, 10.0)  # third harmonic at -60 dB
    assert sinad_db(np.rint(x).astype(np.int16), 1000) == pytest.approx(60.0, abs=0.1)


def test_tone_amplitude_is_exact_for_whole_hertz() -> None:
    window = np.rint(_sine(440, 16000, 1234.0) + _sine(441, 16000, 10.0)).astype(np.int16)
    assert tone_amplitude(window, 440) == pytest.approx(1234.0, abs=0.05)
    assert tone_amplitude(window, 441) == pytest.approx(10.0, abs=0.05)


def test_spur_frequencies() -> None:
    assert spur_frequencies(1000, 8000, 24000) == [7000, 9000]
    assert spur_frequencies(5000, 24000, 8000) == [3000]
    assert spur_frequencies(1000, 24000, 8000) == []
    assert 9000 in spur_frequencies(1000, 16000, 24000)  # 16k - 1k folds to 9k at 24k


def test_alias_rejection_reads_the_spur_level() -> None:
    rate = 8000
    window = np.rint(_sine(3000, rate, 29.204)).astype(np.int16)  # alias of 5 kHz at -60 dB
    got = alias_rejection_db(window, 5000, 24000, amplitude=29204.0)
    assert got == pytest.approx(60.0, abs=0.2)


class _DelayLine:
    """Same rate in and out; holds back ``hold`` samples, or emits ``lead`` zeros first."""

    def __init__(self, hold: int = 0, lead: int = 0) -> None:
        self.hold = hold
        self.buf = np.zeros(lead, dtype=np.int16)

    def process(self, pcm: NDArray[np.int16]) -> NDArray[np.int16]:
        self.buf = np.concatenate((self.buf, pcm))
        n = max(0, len(self.buf) - self.hold)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


@pytest.mark.parametrize(("hold", "lead"), [(0, 0), (16, 0), (0, 16), (8, 8), (24, 8)])
def test_latency_of_a_delay_line(hold: int, lead: int) -> None:
    # Output j is input j - lead, released when input j - lead + hold arrives: samples held
    # back and zeros emitted first both delay playout; held-back zeros cost nothing.
    got = latency_ms(lambda: _DelayLine(hold, lead), 8000, 8000)
    assert got == pytest.approx(max(hold, lead) / 8.0, abs=1e-3)


class _NaiveDecimator:
    """Every third sample, no filter: what ``audioop.ratecv`` amounts to for 24k -> 8k."""

    def __init__(self) -> None:
        self.phase = 0

    def process(self, pcm: NDArray[np.int16]) -> NDArray[np.int16]:
        out = pcm[(-self.phase) % 3 :: 3]
        self.phase = (self.phase + len(pcm)) % 3
        return out.copy()


def test_measurements_catch_an_unfiltered_decimator() -> None:
    q = measure_resampler(_NaiveDecimator, 24000, 8000)
    assert q.alias_db < 1.0  # aliases at full level
    assert q.sinad_db > 80.0  # in-band tones pass untouched
    assert q.latency_ms == pytest.approx(0.0, abs=1e-3)


def test_tone_is_int16_at_minus_1_dbfs() -> None:
    x = tone(1000, 8000, 8000)
    assert x.dtype == np.int16
    assert tone_amplitude(x, 1000) == pytest.approx(32767 * 10 ** (-1 / 20), abs=0.5)
