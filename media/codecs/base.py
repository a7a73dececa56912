"""The common interface of rtbridge's audio codecs: one small class per codec.

A codec turns one frame of int16 PCM into one RTP payload and back. Its constants say what the
SDP says (``rtpmap:<pt> <name>/<clock_rate>[/<channels>]``, RFC 4566 and RFC 3551) and what PCM
it speaks, because the two differ: G.722 carries 16 kHz audio on an 8 kHz RTP clock (RFC 3551
§4.5.2) and Opus is always ``opus/48000/2`` in SDP (RFC 7587 §7) whatever it really carries.
PCM layout is explicit: ``encode_channels`` and ``decode_channels`` give the interleaving of the
arrays going in and coming out; sample counts are per channel (frames).

Codecs are synchronous and keep their state in the instance (``reset()`` forgets it); use one
instance per direction of one stream.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

__all__ = ["AudioCodec", "CodecError", "UnsupportedCodecError"]


class CodecError(ValueError):
    """A payload or PCM frame that the codec cannot take (wrong dtype, size, corrupt data)."""


class UnsupportedCodecError(CodecError, LookupError):
    """No codec for this SDP encoding name, clock rate and channel count."""


class AudioCodec(ABC):
    """One audio codec; subclasses set the class constants and implement three methods."""

    #: SDP encoding name as in rtpmap (RFC 3551 spelling, e.g. ``PCMU``, ``G722``, ``opus``).
    name: ClassVar[str]
    #: PCM rate of ``encode()`` input and ``decode()`` output, in Hz.
    sample_rate: ClassVar[int]
    #: RTP timestamp clock, in Hz (the rate in rtpmap).
    clock_rate: ClassVar[int]
    #: Channel count in rtpmap (not necessarily the PCM layout; see encode/decode_channels).
    channels: ClassVar[int]
    #: Static payload type (RFC 3551 table 4), or the conventional default for dynamic ones.
    payload_type: ClassVar[int]
    #: Frame duration ``encode()`` takes, in milliseconds.
    frame_ms: ClassVar[int] = 20

    #: Interleaved channels of the PCM ``encode()`` takes.
    encode_channels: int = 1
    #: Interleaved channels of the PCM ``decode()`` returns.
    decode_channels: int = 1

    @property
    def frame_samples(self) -> int:
        """Samples per channel in one ``frame_ms`` frame at ``sample_rate``."""
        return self.sample_rate * self.frame_ms // 1000

    def rtp_ticks(self, samples: int) -> int:
        """RTP timestamp increment for ``samples`` PCM samples per channel (160 per 20 ms G.722)."""
        return samples * self.clock_rate // self.sample_rate

    @abstractmethod
    def encode(self, pcm: NDArray[np.int16]) -> bytes:
        """Encode one frame (``frame_samples * encode_channels`` int16 values) to a payload."""

    @abstractmethod
    def decode(self, payload: bytes) -> NDArray[np.int16]:
        """Decode one payload to interleaved int16 PCM with ``decode_channels`` channels."""

    @abstractmethod
    def reset(self) -> None:
        """Forget codec state (start of a new stream, after a seek or SSRC change)."""


def check_pcm(pcm: NDArray[np.int16], name: str) -> None:
    """Raise :class:`CodecError` unless ``pcm`` is a 1-D int16 array."""
    if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1:
        what = (
            f"{pcm.dtype} array of shape {pcm.shape}"
            if isinstance(pcm, np.ndarray)
            else type(pcm).__name__
        )
        raise CodecError(f"{name} encodes 1-D int16 arrays, got {what}")
