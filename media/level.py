"""Audio level of one frame in dBFS, for the dashboard's meters.

The meters show the latest 20 ms each way. They are measured on demand (the dashboard asks
twice a second) from the frame each media path keeps at hand, so the per-frame path pays
nothing for them. 0 dBFS is a full-scale square wave (RMS 32768); digital silence and anything
quieter than :data:`SILENCE_DBFS` read as :data:`SILENCE_DBFS`.
"""

from __future__ import annotations

from typing import Final, Protocol

import numpy as np
from numpy.typing import NDArray

__all__ = ["FRESH_S", "SILENCE_DBFS", "dbfs", "leg_levels"]

#: The level reported for digital silence (the floor of every reading).
SILENCE_DBFS: Final = -90.0
#: A level reading counts while its direction carried audio in the last 100 ms.
FRESH_S: Final = 0.1


def dbfs(pcm: NDArray[np.int16]) -> float:
    """RMS level of ``pcm`` in dBFS, floored at :data:`SILENCE_DBFS` (empty input: the floor)."""
    if not len(pcm):
        return SILENCE_DBFS
    rms = float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64)))) / 32768.0
    return max(20.0 * float(np.log10(rms)) if rms > 0 else SILENCE_DBFS, SILENCE_DBFS)


class _Metered(Protocol):
    def level(self) -> float | None: ...


class _Sent(Protocol):
    @property
    def deadline(self) -> float: ...


class _Playing(_Metered, Protocol):
    @property
    def last_frame(self) -> _Sent | None: ...


def leg_levels(
    caller: _Metered, agent: _Playing, last_in: float | None, now: float
) -> tuple[float | None, float | None]:
    """A leg's two meters (caller -> agent, agent -> caller) at ``now``: each direction's
    latest frame, or None where nothing flowed in the last :data:`FRESH_S` (``last_in``: when
    the caller's latest packet arrived)."""
    level_in = level_out = None
    if last_in is not None and now - last_in <= FRESH_S:
        level_in = caller.level()
    out = agent.last_frame
    if out is not None and now - out.deadline <= FRESH_S:
        level_out = agent.level()
    return level_in, level_out
