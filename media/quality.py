"""Audio quality measurements for resamplers: SINAD, alias/image rejection, latency.

Shared by the tests (which assert the bars in ``shared/PERFORMANCE.md``: SINAD >= 80 dB in band,
alias/image rejection >= 60 dB, added latency <= 2 ms) and by ``rtbridge bench media`` (which
prints the figures). Everything is measured in audio, never in wall time.

Method (coherent sampling, as in IEEE Std 1241): test tones are whole numbers of hertz, and every
analysis window is exactly one second of output, so every tone, image and alias falls exactly on
one bin of an unwindowed DFT and nothing leaks between bins.

* **SINAD**: power in the tone's bin over the power of every other bin in the band of interest
  (noise plus distortion, including DC). The band is ``0 .. min(in, out) / 2``, the band both
  rates can carry; images that an interpolator leaves above it are measured by the next figure.
* **Alias/image rejection**: input tone power over the strongest spurious line it produces,
  looked up at every frequency ``+-f + k * in_rate`` folded into the output band. Decimating,
  the tones lie in the stopband (``>= 1.15`` times the lower Nyquist frequency) and the spur is
  the alias; interpolating, the tones lie in the passband (``<= 0.85``) and the spurs are the
  images.
* **Latency**: the input is streamed one sample at a time, in real time, so each output
  sample's release time is known. A consumer playing the output at its rate must start late
  enough that no sample is needed before its release (held-back samples count here), and the
  output timeline lags the input by the phase delay of a low tone (leading zeros or any other
  filter delay count here; for a linear-phase filter it equals the group delay). Latency is
  the sum of the two.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "TEST_AMPLITUDE",
    "ResamplerQuality",
    "StreamProcessor",
    "alias_rejection_db",
    "latency_ms",
    "measure_resampler",
    "passband_tones",
    "sinad_db",
    "spur_frequencies",
    "stopband_tones",
    "tone",
    "tone_amplitude",
]

#: -1 dBFS, the customary level for SINAD measurements of a 16-bit path.
TEST_AMPLITUDE = 32767.0 * 10 ** (-1 / 20)
_SETTLE_S = 0.1  # output discarded before the one-second analysis window


class StreamProcessor(Protocol):
    """Anything that streams int16 audio: a resampler, a codec round trip, a test double."""

    def process(self, pcm: NDArray[np.int16]) -> NDArray[np.int16]: ...


@dataclass(frozen=True, slots=True)
class ResamplerQuality:
    sinad_db: float  # worst over the passband tones
    alias_db: float  # worst alias (decimating) or image (interpolating) rejection
    latency_ms: float  # worst release delay

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 2) for k, v in asdict(self).items()}


def tone(freq_hz: float, rate: int, n: int, amplitude: float = TEST_AMPLITUDE) -> NDArray[np.int16]:
    """``n`` samples of a sine at ``rate``, rounded to int16."""
    t = np.arange(n, dtype=np.float64) / rate
    return np.rint(amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


def _spectrum(window: NDArray[np.int16] | NDArray[np.float64]) -> NDArray[np.float64]:
    """Power per bin of a one-second window; bin k is k Hz, a sine of amplitude A gives A^2/2."""
    n = len(window)
    spec = np.fft.rfft(np.asarray(window, dtype=np.float64)) / n
    power: NDArray[np.float64] = np.abs(spec) ** 2
    power[1:] *= 2.0
    if n % 2 == 0:
        power[-1] /= 2.0
    return power


def _one_second(out: NDArray[np.int16], rate: int) -> NDArray[np.int16]:
    start = int(_SETTLE_S * rate)
    if len(out) < start + rate:
        raise ValueError(f"need {start + rate} output samples at {rate} Hz, got {len(out)}")
    return out[start : start + rate]


def sinad_db(window: NDArray[np.int16], freq_hz: int, band_hz: float | None = None) -> float:
    """SINAD of a one-second window (``len(window)`` is the rate) holding an integer-Hz tone.

    Noise and distortion are summed over bins ``0 .. band_hz`` (default: the whole window's
    band), every bin except the tone's own.
    """
    power = _spectrum(window)
    hi = len(power) - 1 if band_hz is None else min(int(band_hz), len(power) - 1)
    signal = power[freq_hz]
    noise = power[: hi + 1].sum() - (signal if freq_hz <= hi else 0.0)
    return float(10 * np.log10(signal / max(noise, 1e-30)))


def tone_amplitude(window: NDArray[np.int16], freq_hz: int) -> float:
    """Amplitude of the integer-Hz component of a one-second window."""
    return float(np.sqrt(2 * _spectrum(window)[freq_hz]))


def spur_frequencies(freq_hz: int, in_rate: int, out_rate: int) -> list[int]:
    """Every frequency at which a tone can reappear after resampling, except itself.

    These are ``+-f + k * in_rate`` (the images of sampling at ``in_rate``), folded into
    ``0 .. out_rate / 2`` (aliasing at ``out_rate``).
    """
    half = out_rate // 2
    span = 2 * (max(in_rate, out_rate) // in_rate + 1)
    found: set[int] = set()
    for k in range(-span, span + 1):
        for g in (freq_hz + k * in_rate, -freq_hz + k * in_rate):
            folded = abs((g + half) % out_rate - half)
            found.add(folded)
    found.discard(freq_hz)
    return sorted(found)


def passband_tones(in_rate: int, out_rate: int, count: int = 7) -> list[int]:
    """Integer-Hz tones spread over ``0.05 .. 0.85`` of the lower Nyquist frequency."""
    nyquist = min(in_rate, out_rate) / 2
    return [round(float(f)) | 1 for f in np.linspace(0.05 * nyquist, 0.85 * nyquist, count)]


def stopband_tones(in_rate: int, out_rate: int, count: int = 8) -> list[int]:
    """Integer-Hz tones from 1.15 of the lower Nyquist frequency up to the input's Nyquist."""
    nyquist = min(in_rate, out_rate) / 2
    if in_rate <= out_rate:
        return []
    return [round(float(f)) | 1 for f in np.linspace(1.15 * nyquist, 0.98 * in_rate / 2, count)]


def _run(
    proc: StreamProcessor, freq_hz: int, in_rate: int, out_rate: int, channels_in: int
) -> NDArray[np.int16]:
    n = int((_SETTLE_S + 1.2) * in_rate)
    x = tone(freq_hz, in_rate, n)
    if channels_in == 2:
        x = np.repeat(x, 2)
    out = proc.process(x)
    return _one_second(out, out_rate)


def alias_rejection_db(
    window: NDArray[np.int16], freq_hz: int, in_rate: int, amplitude: float = TEST_AMPLITUDE
) -> float:
    """Input tone level over the strongest spur (alias or image) in a one-second window."""
    out_rate = len(window)
    spurs = spur_frequencies(freq_hz, in_rate, out_rate)
    worst = max(tone_amplitude(window, f) for f in spurs)
    return float(20 * np.log10(amplitude / max(worst, 1e-12)))


def latency_ms(
    make: Callable[[], StreamProcessor],
    in_rate: int,
    out_rate: int,
    channels_in: int = 1,
    freq_hz: int = 50,
    seconds: float = 0.25,
) -> float:
    """Delay from an input sample's arrival to the real-time playout of its output sample.

    Streams a ``freq_hz`` tone one input sample (frame) at a time; the phase of the output
    tone gives the input time each output sample represents (unambiguous for delays under
    half a period, 10 ms at 50 Hz).
    """
    proc = make()
    n = int(seconds * in_rate)
    x = tone(freq_hz, in_rate, n)
    released: list[int] = []  # input index whose arrival released each output sample
    outputs: list[NDArray[np.int16]] = []
    for i in range(n):
        chunk = x[i : i + 1] if channels_in == 1 else np.repeat(x[i : i + 1], 2)
        y = proc.process(chunk)
        if len(y):
            outputs.append(y)
            released.extend([i] * len(y))
    out = np.concatenate(outputs).astype(np.float64)
    j = np.arange(len(out))
    # A consumer playing the output in real time at out_rate can start no earlier than the
    # worst release time minus the sample's place in the output timeline.
    start = float((np.asarray(released, dtype=np.float64) / in_rate - j / out_rate).max())
    steady = j >= int(0.05 * out_rate)
    w = 2 * np.pi * freq_hz * j[steady] / out_rate
    basis = np.column_stack((np.sin(w), np.cos(w)))
    (a, b), *_ = np.linalg.lstsq(basis, out[steady], rcond=None)
    # out[j] = R sin(w_j + phi): output sample j represents input time j/out + phi/(2 pi f),
    # so the output timeline lags the input by -phi/(2 pi f) (leading zeros show up here).
    lag = -float(np.arctan2(b, a)) / (2 * np.pi * freq_hz)
    # The phase fit is good to nanoseconds; report to 0.1 us so an exact 2 ms design reads 2.0.
    return round((start + lag) * 1000.0, 4)


def measure_resampler(
    make: Callable[[], StreamProcessor],
    in_rate: int,
    out_rate: int,
    channels_in: int = 1,
    sinad_tones: Sequence[int] | None = None,
) -> ResamplerQuality:
    """SINAD (worst passband tone), alias/image rejection (worst tone) and latency."""
    band = min(in_rate, out_rate) / 2
    pass_tones = list(sinad_tones) if sinad_tones is not None else passband_tones(in_rate, out_rate)
    sinads: list[float] = []
    rejections: list[float] = []
    for f in pass_tones:
        window = _run(make(), f, in_rate, out_rate, channels_in)
        sinads.append(sinad_db(window, f, band))
        if in_rate < out_rate:
            rejections.append(alias_rejection_db(window, f, in_rate))
    for f in stopband_tones(in_rate, out_rate):
        window = _run(make(), f, in_rate, out_rate, channels_in)
        rejections.append(alias_rejection_db(window, f, in_rate))
    return ResamplerQuality(
        sinad_db=min(sinads),
        alias_db=min(rejections) if rejections else float("inf"),
        latency_ms=latency_ms(make, in_rate, out_rate, channels_in),
    )
