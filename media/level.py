"""Audio level of one frame in dBFS, for the dashboard's meters.

The meters show the latest 20 ms each way. They are measured on demand (the dashboard asks
twice a second) from the frame each media path keeps at hand, so the per-frame path pays
nothing for them. 0 dBFS is a full-scale square wave (RMS 32768); digital silence and anything
quieter than :data:`SILENCE_DBFS` read as :data:`SILENCE_DBFS`.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = ["SILENCE_DBFS", "dbfs"]

#: The level reported for digital silence (the floor of every reading).
SILENCE_DBFS: Final = -90.0


def dbfs(pcm: NDArray[np.int16]) -> float:
    """RMS level of ``pcm`` in dBFS, floored at :data:`SILENCE_DBFS` (empty input: the floor)."""
    if not len(pcm):
        return SILENCE_DBFS
    rms = float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64)))) / 32768.0
    return max(20.0 * float(np.log10(rms)) if rms > 0 else SILENCE_DBFS, SILENCE_DBFS)
