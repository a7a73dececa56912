"""A client's WebSocket text frames, built for the upstream writer's per-append fast path.

Every caller audio append is one text frame from rtbridge (a WebSocket client) to the agent,
50 a second per call. websockets builds each through a ``Frame`` object, an ``io.BytesIO``
and a ``secrets.token_bytes(4)`` call: a ``getrandom`` system call per frame for its masking
key. Here a frame is its header, a masking key and the masked payload joined once
(RFC 6455 §5.2), and masking keys come from :class:`MaskKeys`: ``os.urandom`` read a few
kilobytes at a time, so every key is still from the kernel's strong source (§5.3: each frame
a fresh, unpredictable key) at one system call per thousand frames.

Only unfragmented text frames without extensions (the upstream connects with
``compression=None``); anything else goes through websockets.
"""

from __future__ import annotations

import os
import struct

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets built without its C extension
    from websockets.utils import apply_mask

__all__ = ["MaskKeys", "text_frame"]

_FIN_TEXT = 0x81  # FIN, opcode 1 (text)
_MASKED = 0x80
_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")


class MaskKeys:
    """Fresh 4-byte masking keys from ``os.urandom``, read ``chunk`` bytes at a time."""

    __slots__ = ("_buf", "_chunk", "_pos")

    def __init__(self, chunk: int = 4096) -> None:
        self._chunk = chunk - chunk % 4
        self._buf = b""
        self._pos = 0

    def next(self) -> bytes:
        pos = self._pos
        if pos >= len(self._buf):
            self._buf, pos = os.urandom(self._chunk), 0
        self._pos = pos + 4
        return self._buf[pos : pos + 4]


def text_frame(payload: bytes, mask: bytes) -> bytes:
    """One final, masked text frame carrying ``payload`` (UTF-8) with masking key ``mask``."""
    n = len(payload)
    if n < 126:
        head = _SHORT.pack(_FIN_TEXT, _MASKED | n)
    elif n < 65536:
        head = _MEDIUM.pack(_FIN_TEXT, _MASKED | 126, n)
    else:
        head = _LONG.pack(_FIN_TEXT, _MASKED | 127, n)
    return head + mask + apply_mask(payload, mask)
