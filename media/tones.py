"""Call-progress tones: the ringback a caller hears while rtbridge connects the agent.

Why this module exists: a call answered only once its agent session is open leaves the caller
in silence for that long unless something plays; a phone network plays ringback. Which
ringback is a national matter (ITU-T E.180 and its Supplement 2, "Various tones used in
national networks"); the cadences here are the three most callers know:

=========  ================  ============================================
tone       frequencies       cadence (seconds)
=========  ================  ============================================
``us``     440 + 480 Hz      2 on, 4 off (North America, ANSI T1.401)
``eu``     425 Hz            1 on, 4 off (most of Europe, ETSI TR 101 041)
``uk``     400 + 450 Hz      0.4 on, 0.2 off, 0.4 on, 2 off
=========  ================  ============================================

:class:`ToneGenerator` is a plain object (no I/O, no clock): ``read(n)`` returns the next ``n``
int16 samples of the cadence at its sample rate. Sample ``k`` of the stream is computed from
``k`` alone (the phase of every component and the place in the cadence), so the signal is
continuous across frames of any size, including empty and odd ones, and never drifts. Each
burst opens and closes with a short raised-cosine ramp (no clicks at the edges); the silences
are exact zeros. Each component is at :data:`LEVEL_DBFS` (E.180 puts ringing tone around
-19 dBm0 per component; 0 dBm0 is about 3 dB below a full-scale G.711 sine).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = ["CADENCES", "LEVEL_DBFS", "Cadence", "RingbackTone", "ToneGenerator"]

#: Level of each frequency component, in dB relative to a full-scale sine.
LEVEL_DBFS: Final = -22.0
#: Length of the ramp that opens and closes each burst.
RAMP_S: Final = 0.005


class RingbackTone(StrEnum):
    """Which national ringback to play (see the module docstring)."""

    US = "us"
    EU = "eu"
    UK = "uk"


@dataclass(frozen=True, slots=True)
class Cadence:
    """A tone: the frequencies played together, and the durations of its bursts and silences
    in turn (``on, off, on, off, ...``; the pattern repeats)."""

    frequencies_hz: tuple[float, ...]
    pattern_s: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.frequencies_hz or any(f <= 0 for f in self.frequencies_hz):
            raise ValueError(f"a tone needs positive frequencies, got {self.frequencies_hz}")
        if not self.pattern_s or len(self.pattern_s) % 2 or any(d <= 0 for d in self.pattern_s):
            raise ValueError(
                f"a cadence is pairs of positive on/off durations, got {self.pattern_s}"
            )

    @property
    def period_s(self) -> float:
        return sum(self.pattern_s)


CADENCES: Final[dict[RingbackTone, Cadence]] = {
    RingbackTone.US: Cadence((440.0, 480.0), (2.0, 4.0)),
    RingbackTone.EU: Cadence((425.0,), (1.0, 4.0)),
    RingbackTone.UK: Cadence((400.0, 450.0), (0.4, 0.2, 0.4, 2.0)),
}


class ToneGenerator:
    """The samples of ``cadence`` at ``sample_rate``, read in frames (see the module
    docstring). ``position`` is the index of the next sample."""

    __slots__ = ("_amplitude", "_bounds", "_freqs", "_period", "_ramp", "position", "sample_rate")

    def __init__(self, cadence: Cadence, sample_rate: int) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample rate must be positive, got {sample_rate}")
        nyquist = sample_rate / 2
        if max(cadence.frequencies_hz) >= nyquist:
            raise ValueError(f"{max(cadence.frequencies_hz)} Hz is not below {nyquist} Hz")
        self.sample_rate = sample_rate
        self._freqs = np.array(cadence.frequencies_hz, dtype=np.float64)
        # segment edges in whole samples, from cumulative seconds (no rounding drift per burst)
        edges = np.round(np.cumsum((0.0, *cadence.pattern_s)) * sample_rate).astype(np.int64)
        self._bounds = edges
        self._period = int(edges[-1])
        self._ramp = max(1, round(RAMP_S * sample_rate))
        self._amplitude = 32767.0 * 10 ** (LEVEL_DBFS / 20)
        self.position = 0

    def reset(self) -> None:
        self.position = 0

    def read(self, samples: int) -> NDArray[np.int16]:
        """The next ``samples`` samples (mono int16)."""
        if samples < 0:
            raise ValueError(f"cannot read {samples} samples")
        k = np.arange(self.position, self.position + samples, dtype=np.int64)
        self.position += samples
        at = k % self._period
        segment = np.searchsorted(self._bounds, at, side="right") - 1
        on = segment % 2 == 0
        start, end = self._bounds[segment], self._bounds[segment + 1]
        # 0 at a burst's edges rising to 1 within one ramp: raised cosine
        x = np.clip(np.minimum(at - start, end - at) / self._ramp, 0.0, 1.0)
        envelope = np.where(on, 0.5 - 0.5 * np.cos(np.pi * x), 0.0)
        # the phase of each component from k alone: (f * k mod rate) keeps float64 exact
        rate = self.sample_rate
        phase = np.mod(np.outer(k.astype(np.float64), self._freqs), rate) * (2 * np.pi / rate)
        wave = np.sin(phase).sum(axis=1)
        out: NDArray[np.float64] = np.round(wave * envelope * self._amplitude)
        return out.astype(np.int16)
