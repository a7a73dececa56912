"""Opus (RFC 6716) over PyAV/libopus, with the RTP conventions of RFC 7587.

Browsers and some trunks offer Opus. RFC 7587 §7 fixes the SDP form at ``opus/48000/2``
whatever is actually sent: the RTP clock is always 48 kHz, and whether a stream is stereo is
said by the ``stereo`` / ``sprop-stereo`` fmtp parameters (absent means mono).

Channel layout, explicitly:

* ``decode()`` always returns **48 kHz interleaved stereo** (L, R, L, R, ...), 1920 values per
  20 ms frame. A mono stream decodes with L == R. Downmix with
  ``Resampler(48000, 24000, channels_in=2)`` on the way to a 24 kHz agent.
* ``encode()`` takes **48 kHz mono** (960 values per 20 ms) by default, or interleaved stereo
  (1920 values) when built with ``stereo=True``, which is what to do when the peer's fmtp says
  ``stereo=1`` (:meth:`OpusCodec.for_fmtp`).

Each encoded frame is 20 ms, ``application=voip``; the RTP timestamp advances 960 per frame.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from media.codecs._pyav import PyAVDecoder, PyAVEncoder
from media.codecs.base import AudioCodec, check_pcm

__all__ = ["OpusCodec"]

NAME = "opus"
SAMPLE_RATE = 48000
CLOCK_RATE = 48000
CHANNELS = 2  # as in SDP (RFC 7587); see encode_channels / decode_channels for the PCM
PAYLOAD_TYPE = 111  # dynamic; the value browsers conventionally offer
MONO_BIT_RATE = 32000
STEREO_BIT_RATE = 64000


class OpusCodec(AudioCodec):
    name = NAME
    sample_rate = SAMPLE_RATE
    clock_rate = CLOCK_RATE
    channels = CHANNELS
    payload_type = PAYLOAD_TYPE
    decode_channels = 2

    def __init__(self, stereo: bool = False, bit_rate: int | None = None) -> None:
        self.encode_channels = 2 if stereo else 1
        rate = bit_rate if bit_rate is not None else (STEREO_BIT_RATE if stereo else MONO_BIT_RATE)
        self._encoder = PyAVEncoder(
            "libopus",
            SAMPLE_RATE,
            self.encode_channels,
            self.frame_samples,
            rate,
            {"application": "voip"},
        )
        self._decoder = PyAVDecoder("libopus", SAMPLE_RATE, self.decode_channels)

    @classmethod
    def for_fmtp(cls, fmtp: Mapping[str, str]) -> OpusCodec:
        """A codec that sends what the peer's fmtp asks for (``stereo=1``: stereo, else mono)."""
        return cls(stereo=fmtp.get("stereo", "0").strip() == "1")

    def encode(self, pcm: NDArray[np.int16]) -> bytes:
        check_pcm(pcm, NAME)
        return self._encoder.encode(pcm)

    def decode(self, payload: bytes) -> NDArray[np.int16]:
        return self._decoder.decode(payload)

    def reset(self) -> None:
        self._encoder.reset()
        self._decoder.reset()
