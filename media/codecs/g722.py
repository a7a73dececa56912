"""G.722 (ITU-T G.722, 64 kbit/s sub-band ADPCM) over PyAV/FFmpeg, RTP payload type 9.

Wideband trunks offer it. The audio is 16 kHz mono, but RFC 3551 §4.5.2 fixes the RTP clock at
8000 Hz (an error in RFC 1890 kept for compatibility): a 20 ms frame is 320 samples in 160 bytes
and advances the RTP timestamp by 160, not 320. :meth:`AudioCodec.rtp_ticks` does that sum.
SDP: ``a=rtpmap:9 G722/8000``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from media.codecs._pyav import PyAVDecoder, PyAVEncoder
from media.codecs.base import AudioCodec, check_pcm

__all__ = ["G722Codec"]

NAME = "G722"
SAMPLE_RATE = 16000
CLOCK_RATE = 8000
CHANNELS = 1
PAYLOAD_TYPE = 9
BIT_RATE = 64000


class G722Codec(AudioCodec):
    """Encode takes exactly one 20 ms frame (320 samples); decode takes any payload length."""

    name = NAME
    sample_rate = SAMPLE_RATE
    clock_rate = CLOCK_RATE
    channels = CHANNELS
    payload_type = PAYLOAD_TYPE

    def __init__(self) -> None:
        self._encoder = PyAVEncoder("g722", SAMPLE_RATE, 1, self.frame_samples, BIT_RATE)
        self._decoder = PyAVDecoder("g722", SAMPLE_RATE, 1)

    def encode(self, pcm: NDArray[np.int16]) -> bytes:
        check_pcm(pcm, NAME)
        return self._encoder.encode(pcm)

    def decode(self, payload: bytes) -> NDArray[np.int16]:
        return self._decoder.decode(payload)

    def reset(self) -> None:
        self._encoder.reset()
        self._decoder.reset()
