"""Audio codecs behind one small interface, and the SDP-name lookup that picks one.

``codec_for(encoding_name, clock_rate, channels)`` maps an SDP rtpmap entry to a fresh codec
instance with one plain dict lookup in ``registry.py`` (nothing is mutated at import time):

=================  ==============  ==================================================
rtpmap             class           PCM
=================  ==============  ==================================================
``PCMU/8000``      PcmuCodec       8 kHz mono (G.711 u-law, PT 0)
``PCMA/8000``      PcmaCodec       8 kHz mono (G.711 A-law, PT 8)
``G722/8000``      G722Codec       16 kHz mono (RTP clock 8 kHz, RFC 3551; PT 9)
``opus/48000/2``   OpusCodec       decode: 48 kHz stereo; encode: 48 kHz mono (RFC 7587)
=================  ==============  ==================================================
"""

from __future__ import annotations

from media.codecs.base import AudioCodec, CodecError, UnsupportedCodecError
from media.codecs.g722 import G722Codec
from media.codecs.opus import OpusCodec
from media.codecs.pcma import PcmaCodec
from media.codecs.pcmu import PcmuCodec
from media.codecs.registry import SUPPORTED, codec_for

__all__ = [
    "SUPPORTED",
    "AudioCodec",
    "CodecError",
    "G722Codec",
    "OpusCodec",
    "PcmaCodec",
    "PcmuCodec",
    "UnsupportedCodecError",
    "codec_for",
]
