"""Per-turn latency: from the caller's end of speech to the agent's first frame on the wire.

Why this module exists: how fast the agent answers each turn is the number voice-agent teams
tune all day, and only the bridge sees both ends of it. For every agent response that answers
a caller's turn, :class:`TurnTimer` measures, on the call's own clock:

* **end of speech**: the upstream's ``input_audio_buffer.speech_stopped`` carries
  ``audio_end_ms``, milliseconds of the audio rtbridge appended to the session. The timer keeps
  the arrival time of every 20 ms caller frame the caller path delivered (the last
  :data:`KEEP_FRAMES`), so ``audio_end_ms`` maps back to the moment that piece of the caller's
  audio reached rtbridge (the RTP timeline as it arrived, not the time the event came back);
* **upstream time**: from there to the first ``response.output_audio.delta`` of the response
  that answers the turn (the first response created after the speech stopped);
* **rtbridge time**: from that delta to the first frame of the response sent to the caller, at
  the frame's deadline on the frame clock (the playout's ``PlaybackStarted``; the time its RTP
  timestamp stands for, so the recording's agent channel starts the answer there too). A frame
  sent late (a stalled loop catching up) never counts as sent before the delta arrived.

A renewed upstream session counts its audio from zero again: :meth:`TurnTimer.renewed` rebases
the mapping. Responses that answer no turn (a greeting, a tool result, a DTMF message) are not
turns. The result is a :class:`TurnLatency` value; the call logs it as ``turn.latency`` and the
metrics keep the histograms. Synchronous and clock-free: every method takes ``now``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["KEEP_FRAMES", "RECENT_TURNS", "TurnLatency", "TurnTimer", "latency_summary"]

#: Caller frames whose arrival time is kept (60 s of audio: far longer than any turn).
KEEP_FRAMES: Final = 3000
#: Turns a call keeps for the API (the event log keeps them all).
RECENT_TURNS: Final = 256


@dataclass(frozen=True, slots=True)
class TurnLatency:
    """One answered turn. ``speech_end_s``: call-relative seconds (from the call's origin on
    its frame clock, the recording's sample 0); the rest are durations in seconds."""

    response_id: str
    speech_end_s: float
    upstream_s: float
    bridge_s: float

    @property
    def total_s(self) -> float:
        return self.upstream_s + self.bridge_s

    def event(self) -> dict[str, Any]:
        """The ``turn.latency`` event's data (the API's ``turns`` entries)."""
        return {
            "response_id": self.response_id,
            "speech_end_s": round(self.speech_end_s, 4),
            "upstream_s": round(self.upstream_s, 4),
            "bridge_s": round(self.bridge_s, 4),
            "total_s": round(self.total_s, 4),
        }


def _quantile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank quantile of an ascending list."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_summary(turns: list[TurnLatency]) -> dict[str, float | int | None]:
    """``{"p50", "p95", "count"}`` of the turns' total latency (None values while none)."""
    totals = sorted(t.total_s for t in turns)
    if not totals:
        return {"p50": None, "p95": None, "count": 0}
    return {
        "p50": round(_quantile(totals, 0.5), 4),
        "p95": round(_quantile(totals, 0.95), 4),
        "count": len(totals),
    }


class TurnTimer:
    """See the module docstring. ``frame_ms``: the caller path's frame duration."""

    def __init__(self, frame_ms: int = 20) -> None:
        self.frame_s = frame_ms / 1000.0
        self._frames: deque[float] = deque(maxlen=KEEP_FRAMES)
        self._delivered = 0  # caller frames delivered since the call started
        self._session_base = 0  # ... when the current upstream session started
        self._speech_end: float | None = None  # a turn waiting for its response
        self._response: str | None = None  # the response answering it
        self._delta_at: float | None = None
        self._turn_end: float | None = None
        self.turns: deque[TurnLatency] = deque(maxlen=RECENT_TURNS)
        self.count = 0  # turns measured so far (``turns`` keeps the latest)

    # -- caller audio ----------------------------------------------------------------------

    def caller_frame(self, now: float) -> None:
        """A caller frame went to the agent at ``now``."""
        self._frames.append(now)
        self._delivered += 1

    def renewed(self) -> None:
        """A new upstream session: its ``audio_end_ms`` count starts at the next frame."""
        self._session_base = self._delivered

    def speech_end_at(self, audio_end_ms: int) -> float | None:
        """When the caller audio at ``audio_end_ms`` of this session reached rtbridge."""
        if audio_end_ms <= 0:
            return None
        index = self._session_base + math.ceil(audio_end_ms / (self.frame_s * 1000)) - 1
        first_kept = self._delivered - len(self._frames)
        if index < first_kept or index >= self._delivered:
            return None
        # the frame was handed on when complete: its audio ends at its arrival
        within = (index - self._session_base + 1) * self.frame_s - audio_end_ms / 1000.0
        return self._frames[index - first_kept] - within

    # -- the agent's events ------------------------------------------------------------------

    def speech_stopped(self, audio_end_ms: int | None, now: float) -> None:
        """The upstream heard the caller stop; the next response created answers the turn."""
        at = self.speech_end_at(audio_end_ms) if audio_end_ms is not None else None
        self._speech_end = at if at is not None else now
        self._response = None
        self._delta_at = None

    def response_created(self, response_id: str) -> None:
        if self._speech_end is not None and self._response is None:
            self._response = response_id
            self._turn_end, self._speech_end = self._speech_end, None

    def audio_delta(self, response_id: str, now: float) -> None:
        if response_id == self._response and self._delta_at is None:
            self._delta_at = now

    def playback_started(self, response_id: str, at: float, origin: float) -> TurnLatency | None:
        """The response's first frame went to the caller, due ``at`` on the frame clock: the
        turn, if it answers one."""
        if response_id != self._response or self._delta_at is None or self._turn_end is None:
            return None
        turn = TurnLatency(
            response_id=response_id,
            speech_end_s=self._turn_end - origin,
            upstream_s=max(0.0, self._delta_at - self._turn_end),
            bridge_s=max(0.0, at - self._delta_at),
        )
        self._response = self._delta_at = self._turn_end = None
        self.turns.append(turn)
        self.count += 1
        return turn
