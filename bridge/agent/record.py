"""What a test (or a later issue's check) can observe about each agent connection.

``LocalAgent.sessions`` holds one :class:`SessionRecord` per connection, updated live: the
current session configuration (so "instructions are visible to the local agent"), every
received event type, every appended audio chunk's size and the decoded 24 kHz PCM ("the agent
receives the audio"), the text messages clients added, truncations, errors sent and finished
responses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bridge.agent.audio import Pcm

__all__ = ["ResponseRecord", "SessionRecord"]

#: Decoded input kept per session for observers (10 minutes at 24 kHz); more is counted only.
MAX_KEPT_SAMPLES = 24000 * 600


@dataclass(slots=True)
class ResponseRecord:
    """One finished (completed or cancelled) response."""

    id: str
    status: str
    source: str  # parrot | tones | tool_call | tool_answer | idle
    kind: str  # audio | text | function_call
    item_id: str
    audio_ms: int
    transcript: str
    response: dict[str, Any]
    instructions: str = ""  # what the response was asked to follow (session or override)


@dataclass(slots=True, eq=False)
class SessionRecord:
    """Live record of one connection to the local agent."""

    session_id: str
    dialect: str
    path: str
    query: dict[str, str]
    session: dict[str, Any] = field(default_factory=dict)
    received_types: list[str] = field(default_factory=list)
    sent_types: list[str] = field(default_factory=list)  # as sent on the wire (dialect)
    audio_chunk_sizes: list[int] = field(default_factory=list)
    decoded_samples: int = 0
    truncations: list[dict[str, Any]] = field(default_factory=list)
    #: text messages a client added (``conversation.item.create``): (role, text)
    texts: list[tuple[str, str]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    responses: list[ResponseRecord] = field(default_factory=list)
    closed: bool = False
    resumed_from: str | None = None  # Gemini: the resumption handle this session continued
    close_code: int | None = None  # the code the agent closed the socket with, if it did
    _pcm: list[Pcm] = field(default_factory=list, repr=False)
    _kept: int = 0

    @property
    def instructions(self) -> str | None:
        v = self.session.get("instructions")
        return v if isinstance(v, str) else None

    @property
    def decoded_pcm(self) -> Pcm:
        """All input audio received so far, decoded to 24 kHz mono int16 (up to 10 min)."""
        if not self._pcm:
            return np.zeros(0, dtype=np.int16)
        if len(self._pcm) > 1:
            self._pcm[:] = [np.concatenate(self._pcm)]
        return self._pcm[0]

    def add_pcm(self, pcm: Pcm) -> None:
        self.decoded_samples += len(pcm)
        room = MAX_KEPT_SAMPLES - self._kept
        if room > 0 and len(pcm):
            part = pcm[:room]
            self._pcm.append(part)
            self._kept += len(part)
