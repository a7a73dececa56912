"""The one audio format type: the three encodings a Realtime session carries.

Every part of rtbridge names a session's audio with :class:`AudioFormat`: the call legs (which
format the agent session runs in, pass-through or transcoding), the agent session (what the
upstream confirmed), the local agent (what it accepts and sends). The value is the flat
beta/xAI name (``pcm16``, ``g711_ulaw``, ``g711_alaw``); GA format objects
(``{"type": "audio/pcm", "rate": 24000}``, ``{"type": "audio/pcmu"}``...) convert both ways.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

__all__ = ["G711_RATE", "PCM_RATE", "AudioFormat"]

PCM_RATE = 24000
G711_RATE = 8000


class AudioFormat(StrEnum):
    PCM16 = "pcm16"
    PCMU = "g711_ulaw"
    PCMA = "g711_alaw"

    @property
    def mime(self) -> str:
        """The GA format ``type``: ``audio/pcm``, ``audio/pcmu`` or ``audio/pcma``."""
        return _MIME[self]

    @property
    def rate(self) -> int:
        """The sample rate: 24000 for PCM16 (the only rate OpenAI takes), 8000 for G.711."""
        return PCM_RATE if self is AudioFormat.PCM16 else G711_RATE

    @property
    def bytes_per_sample(self) -> int:
        """2 for PCM16, 1 for G.711."""
        return 2 if self is AudioFormat.PCM16 else 1

    def bytes_per_ms(self) -> float:
        return self.rate * self.bytes_per_sample / 1000.0

    def duration_ms(self, n_bytes: int) -> int:
        """Whole milliseconds of audio in ``n_bytes`` of this format."""
        return int(n_bytes // self.bytes_per_sample * 1000 // self.rate)

    def to_ga(self) -> dict[str, Any]:
        """The GA format object; PCM carries its rate."""
        if self is AudioFormat.PCM16:
            return {"type": "audio/pcm", "rate": PCM_RATE}
        return {"type": self.mime}

    @classmethod
    def from_ga(cls, obj: object) -> AudioFormat:
        """A GA format object or a bare mime string, at any PCM rate; raises ``ValueError``."""
        mime = obj.get("type") if isinstance(obj, Mapping) else obj
        fmt = _BY_MIME.get(mime) if isinstance(mime, str) else None
        if fmt is None:
            raise ValueError(
                f"Invalid value: {mime!r}. Supported values are: "
                "'audio/pcm', 'audio/pcmu', and 'audio/pcma'."
            )
        return fmt

    @classmethod
    def from_wire(cls, value: object) -> AudioFormat:
        """A format as a session carries it, GA object or flat beta/xAI name, where PCM must
        be 24 kHz (absent means 24 kHz), as on OpenAI's service. Raises ``ValueError`` with
        OpenAI's wording."""
        if isinstance(value, str):
            try:
                return cls(value)
            except ValueError:
                raise ValueError(f"unsupported audio format {value!r}") from None
        if not isinstance(value, Mapping):
            raise ValueError("audio format must be an object with a 'type'")
        fmt = cls.from_ga(value)
        rate = value.get("rate")
        if fmt is AudioFormat.PCM16 and rate is not None and rate != PCM_RATE:
            raise ValueError(f"Invalid 'rate': {rate!r}. Only 24000 is supported for audio/pcm.")
        return fmt


_MIME = {
    AudioFormat.PCM16: "audio/pcm",
    AudioFormat.PCMU: "audio/pcmu",
    AudioFormat.PCMA: "audio/pcma",
}
_BY_MIME = {mime: fmt for fmt, mime in _MIME.items()}
