"""Concealment of a lost caller frame: the last good frame again, at a falling gain.

The caller -> agent path forwards audio on arrival (:mod:`media.reorder`), so a lost packet
leaves a 20 ms hole in what the agent hears. Zeros there are a click and read as a pause to the
agent's voice activity detection; the last frame repeated at 0.7, 0.45 and 0.25 of its level
keeps the stream continuous and fades out over a burst (the reorder window reports at most
three lost frames in a row; a longer gap is simply skipped). The faded frame is in the encoding
of the frames around it, so a G.711 pass-through stream stays G.711 (decoded, scaled and
re-encoded only for the concealed frame).
"""

from __future__ import annotations

from typing import Final

import numpy as np

from media.playout import PlayoutEncoding

__all__ = ["CONCEAL_GAINS", "faded"]

#: Gain of the 1st, 2nd and 3rd lost frame in a row.
CONCEAL_GAINS: Final = (0.7, 0.45, 0.25)


def faded(frame: bytes, encoding: PlayoutEncoding, gain: float) -> bytes:
    """``frame`` (one frame in ``encoding``) with every sample scaled by ``gain``."""
    pcm = encoding.to_pcm16(frame)
    return encoding.from_pcm16((pcm.astype(np.float32) * gain).astype(np.int16))
