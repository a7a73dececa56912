"""PCMA: G.711 A-law (ITU-T G.711), RTP payload type 8 (RFC 3551 §4.5.14), 8 kHz mono.

One byte per sample: a 20 ms frame is 160 bytes and advances the RTP timestamp by 160. Any
frame length is accepted (a 30 ms SIPp packet is 240 bytes); the tables are in ``media.g711``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from media.codecs.base import AudioCodec, check_pcm
from media.g711 import alaw_decode, alaw_encode

__all__ = ["PcmaCodec"]

NAME = "PCMA"
SAMPLE_RATE = 8000
CLOCK_RATE = 8000
CHANNELS = 1
PAYLOAD_TYPE = 8


class PcmaCodec(AudioCodec):
    name = NAME
    sample_rate = SAMPLE_RATE
    clock_rate = CLOCK_RATE
    channels = CHANNELS
    payload_type = PAYLOAD_TYPE

    def encode(self, pcm: NDArray[np.int16]) -> bytes:
        check_pcm(pcm, NAME)
        return alaw_encode(pcm)

    def decode(self, payload: bytes) -> NDArray[np.int16]:
        return alaw_decode(payload)

    def reset(self) -> None:
        """G.711 is stateless."""
