"""Re-cut audio of any packet size into exact fixed-size frames (20 ms for the call path).

Peers choose their own ptime: SIPp's captures use 30 ms packets, some trunks 10 or 40 ms, and
an agent's audio deltas come in arbitrary lengths. Everything downstream (resampler cost
accounting, playout ticks, RTP timestamps) works in 20 ms frames, so a :class:`Reframer` sits
at each seam: it carries the remainder between calls and never drops, pads or reorders samples.

Sizes are in samples per channel; with ``channels=2`` arrays are interleaved (L, R, ...) and a
frame holds ``frame_samples * 2`` values. A dangling half of a stereo pair is carried like any
other remainder.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["Reframer"]

_EMPTY: NDArray[np.int16] = np.zeros(0, dtype=np.int16)
_EMPTY.flags.writeable = False


class Reframer:
    """``push()`` any number of int16 samples, get back every complete frame, in order.

    Returned frames are independent copies of the audio (views into one fresh array per
    call), so the caller may reuse its input buffer.
    """

    def __init__(self, frame_samples: int, channels: int = 1) -> None:
        if frame_samples <= 0:
            raise ValueError(f"frame_samples must be positive, got {frame_samples}")
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, got {channels}")
        self.frame_samples = frame_samples
        self.channels = channels
        self._size = frame_samples * channels
        self._pending: NDArray[np.int16] = _EMPTY

    @property
    def pending(self) -> int:
        """int16 values carried over, waiting for the rest of their frame."""
        return len(self._pending)

    def push(self, pcm: NDArray[np.int16]) -> list[NDArray[np.int16]]:
        """Append ``pcm`` (1-D int16, any length) and return the frames now complete."""
        if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1:
            what = getattr(pcm, "dtype", type(pcm).__name__)
            raise TypeError(f"Reframer takes 1-D int16 arrays, got {what}")
        size = self._size
        if len(self._pending):
            data = np.concatenate((self._pending, pcm))
        elif len(pcm) < size:
            self._pending = pcm.copy()
            return []
        else:
            data = pcm.copy()
        whole = len(data) // size * size
        frames = [data[i : i + size] for i in range(0, whole, size)]
        self._pending = data[whole:].copy() if whole < len(data) else _EMPTY
        return frames

    def flush(self) -> NDArray[np.int16]:
        """Return the partial frame held back (possibly empty) and start afresh."""
        rest = self._pending.copy()
        self._pending = _EMPTY
        return rest

    def reset(self) -> None:
        """Drop the partial frame."""
        self._pending = _EMPTY
