"""The synthetic "tone phrase" the agent speaks when it has nothing to parrot.

A text-only turn, a bare ``response.create`` or the answer after a tool call gets audible audio
that is clearly not the caller's: a few short sine tones with raised-cosine edges (no clicks), so
a listener hears *something* and a test can detect it by energy and pitch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["DEFAULT_TONES_HZ", "tone_phrase"]

#: C5, E5, G5: a major triad played as a short arpeggio.
DEFAULT_TONES_HZ: tuple[float, ...] = (523.25, 659.25, 783.99)


def tone_phrase(
    rate: int = 24000,
    tones_hz: Sequence[float] = DEFAULT_TONES_HZ,
    tone_ms: int = 200,
    gap_ms: int = 40,
    level: float = 0.3,
    ramp_ms: int = 10,
) -> npt.NDArray[np.int16]:
    """Mono int16 samples at ``rate``: each tone ``tone_ms`` long, separated by ``gap_ms``."""
    n_tone = rate * tone_ms // 1000
    n_gap = rate * gap_ms // 1000
    n_ramp = max(1, min(n_tone // 2, rate * ramp_ms // 1000))
    t = np.arange(n_tone, dtype=np.float64) / rate
    env = np.ones(n_tone)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n_ramp))
    env[:n_ramp] = ramp
    env[-n_ramp:] = ramp[::-1]
    parts: list[npt.NDArray[np.float64]] = []
    for i, f in enumerate(tones_hz):
        if i:
            parts.append(np.zeros(n_gap))
        parts.append(level * env * np.sin(2 * np.pi * f * t))
    if not parts:
        return np.zeros(0, dtype=np.int16)
    out = np.concatenate(parts)
    return np.clip(np.round(out * 32767.0), -32768, 32767).astype(np.int16)
