"""Audio formats the local agent speaks, and conversion to and from its internal PCM.

Internally every utterance is mono int16 PCM at 24 kHz (the Realtime API's native rate). On the
wire a session's input and output each use one of the three Realtime formats:

=============  ===========================  ==========  ======================
setting name   GA format object             rate (Hz)   bytes per sample
=============  ===========================  ==========  ======================
``pcm16``      ``{"type": "audio/pcm",      24000       2 (little-endian)
               "rate": 24000}``
``g711_ulaw``  ``{"type": "audio/pcmu"}``   8000        1 (ITU-T G.711 µ-law)
``g711_alaw``  ``{"type": "audio/pcma"}``   8000        1 (ITU-T G.711 A-law)
=============  ===========================  ==========  ======================

G.711 companding and rate conversion are ``media``'s job (``media.g711``, ``media.resample``);
this module only wires them up per direction, with the state a stream needs (a resampler per
input stream, a held-back odd byte for PCM).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from bridge.realtime.formats import AudioFormat
from media import g711
from media.resample import Resampler

__all__ = ["INTERNAL_RATE", "InputDecoder", "Pcm", "encode_output"]

INTERNAL_RATE = 24000

Pcm = npt.NDArray[np.int16]


class InputDecoder:
    """Turns one input stream's wire bytes into 24 kHz PCM, across arbitrary chunk sizes."""

    __slots__ = ("_carry", "_resampler", "format")

    def __init__(self, fmt: AudioFormat) -> None:
        self.format = fmt
        self._carry = b""
        self._resampler = Resampler(fmt.rate, INTERNAL_RATE) if fmt.rate != INTERNAL_RATE else None

    def decode(self, data: bytes) -> Pcm:
        if self.format is AudioFormat.PCM16:
            data = self._carry + data
            cut = len(data) - (len(data) % 2)
            self._carry = data[cut:]
            return np.frombuffer(data[:cut], dtype="<i2").astype(np.int16)
        if self.format is AudioFormat.PCMU:
            pcm: Pcm = np.asarray(g711.ulaw_decode(data), dtype=np.int16)
        else:
            pcm = np.asarray(g711.alaw_decode(data), dtype=np.int16)
        if self._resampler is None:
            return pcm
        return np.asarray(self._resampler.process(pcm), dtype=np.int16)


def encode_output(pcm: Pcm, fmt: AudioFormat) -> bytes:
    """A whole utterance (24 kHz PCM) in ``fmt``'s wire bytes, same duration."""
    if fmt is AudioFormat.PCM16:
        return pcm.astype("<i2").tobytes()
    resampler = Resampler(INTERNAL_RATE, fmt.rate)
    narrow = np.concatenate([resampler.process(pcm), resampler.flush()])  # exact length
    if fmt is AudioFormat.PCMU:
        return bytes(g711.ulaw_encode(narrow))
    return bytes(g711.alaw_encode(narrow))
