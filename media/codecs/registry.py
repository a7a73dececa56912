"""SDP rtpmap entry -> codec: one plain dict, no registry mutated at import time."""

from __future__ import annotations

from collections.abc import Callable

from media.codecs.base import AudioCodec, UnsupportedCodecError
from media.codecs.g722 import G722Codec
from media.codecs.opus import OpusCodec
from media.codecs.pcma import PcmaCodec
from media.codecs.pcmu import PcmuCodec

__all__ = ["SUPPORTED", "codec_for"]

_CODECS: dict[tuple[str, int, int], Callable[[], AudioCodec]] = {
    ("pcmu", 8000, 1): PcmuCodec,
    ("pcma", 8000, 1): PcmaCodec,
    ("g722", 8000, 1): G722Codec,
    ("opus", 48000, 2): OpusCodec,
}

#: Every supported (lower-case encoding name, clock rate, channels) as in rtpmap.
SUPPORTED: frozenset[tuple[str, int, int]] = frozenset(_CODECS)


def codec_for(encoding_name: str, clock_rate: int, channels: int = 1) -> AudioCodec:
    """A new codec for an rtpmap entry; encoding names compare case-insensitively (RFC 4855).

    Opus comes with mono send (fmtp ``stereo`` absent); build ``OpusCodec.for_fmtp(...)`` when
    the peer asks for stereo. Raises :class:`UnsupportedCodecError` for anything else.
    """
    factory = _CODECS.get((encoding_name.lower(), clock_rate, channels))
    if factory is None:
        raise UnsupportedCodecError(
            f"no codec for {encoding_name}/{clock_rate}/{channels}; supported: "
            + ", ".join(f"{n}/{r}/{c}" for n, r, c in _CODECS)
        )
    return factory()
