"""Temporary stand-in for ``media.resample.Resampler`` (integer ratios 3:1 and 1:3 only).

Linear interpolation up, 3-tap mean down: good enough to test the G.711 paths until the real
resampler lands; delete this module then.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["Resampler"]


class Resampler:
    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._last = 0.0
        self._carry = np.zeros(0, dtype=np.float64)

    def process(self, pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        x = pcm.astype(np.float64)
        if self.out_rate == self.in_rate * 3:
            if not len(x):
                return np.zeros(0, dtype=np.int16)
            prev = np.concatenate([[self._last], x[:-1]])
            frac = np.array([1 / 3, 2 / 3, 1.0])
            y = prev[:, None] + (x - prev)[:, None] * frac[None, :]
            self._last = float(x[-1])
            up: npt.NDArray[np.int16] = np.round(y.reshape(-1)).astype(np.int16)
            return up
        if self.in_rate == self.out_rate * 3:
            x = np.concatenate([self._carry, x])
            n = len(x) // 3
            self._carry = x[n * 3 :]
            down: npt.NDArray[np.int16] = np.round(x[: n * 3].reshape(n, 3).mean(axis=1)).astype(
                np.int16
            )
            return down
        raise ValueError(f"stub resampler cannot do {self.in_rate} -> {self.out_rate}")
