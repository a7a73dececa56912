"""What every upstream translator offers the upstream client, and what each upstream can do.

The upstream client (:mod:`bridge.upstream`) holds one :class:`UpstreamTranslator` per
connection. It is sans-IO: it takes GA client events, caller audio and upstream frames, and
returns a :class:`Routed` value saying what goes to the upstream and what goes back to rtbridge's
GA side (events it answers itself, e.g. ``conversation.item.truncated`` for an upstream that cannot
truncate). Time enters only as the ``now`` the caller passes (:meth:`UpstreamTranslator.tick`), so
translators run on virtual time in tests.

:class:`Capabilities` is the frozen, per-dialect description of an upstream that the call path
reads instead of ``if dialect == ...`` branches (:data:`CAPABILITIES`).

rtbridge-side events a translator may emit besides GA ones (typed names, stable fields):

* ``rtbridge.upstream.going_away`` ``{time_left_ms}``: the upstream will end this connection
  (Gemini ``goAway``); a renewal should start now.
* ``rtbridge.upstream.resumption`` ``{handle, resumable}``: the latest handle with which a new
  connection resumes this session (Gemini ``sessionResumptionUpdate``).
* ``rtbridge.upstream.session_closed`` ``{reason}``: the upstream ended the session for a reason
  other than its time limit (GPT-Live ``session.closed``); the limit itself is reported as GA
  does, an ``error`` with code ``session_expired``.
* ``rtbridge.upstream.event`` ``{dialect, event}``: an upstream message with no GA counterpart,
  kept whole so nothing the upstream said is lost.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from bridge.config import Dialect

__all__ = [
    "CAPABILITIES",
    "NOTHING",
    "Capabilities",
    "Event",
    "Handling",
    "Routed",
    "UpstreamTranslator",
    "obj",
]

Event = dict[str, Any]


class Handling(Enum):
    """Who carries out a GA client request an upstream may lack."""

    UPSTREAM = "upstream"  # sent to the upstream, which answers
    LOCAL = "local"  # answered by rtbridge's translator (the upstream never hears of it)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What one upstream dialect does by itself, and what rtbridge fills in.

    ``mutable_session`` names the GA session fields a mid-session ``session.update`` may change
    (``None``: any); others are refused with an ``error`` naming them.
    ``session_limit_s`` is how long one upstream connection lasts at most (``None``: unknown).
    ``history_items`` names the GA item types a ``conversation.item.create`` can add to the
    upstream's history (what a renewed session can be told by replay).
    """

    response_lifecycle: bool
    vad_cancels_response: bool
    model_owns_turns: bool
    cancel: Handling
    truncate: Handling
    dtmf_event: bool
    mutable_session: frozenset[str] | None
    resumption: bool
    input_rate: int
    output_rate: int
    formats: frozenset[str]
    session_limit_s: float | None
    history_items: frozenset[str]


_ALL_FORMATS = frozenset({"pcm16", "g711_ulaw", "g711_alaw"})
_OPENAI = Capabilities(
    response_lifecycle=True,
    vad_cancels_response=True,
    model_owns_turns=False,
    cancel=Handling.UPSTREAM,
    truncate=Handling.UPSTREAM,
    dtmf_event=True,
    mutable_session=None,
    resumption=False,
    input_rate=24000,
    output_rate=24000,
    formats=_ALL_FORMATS,
    session_limit_s=3600.0,
    history_items=frozenset({"message", "function_call", "function_call_output"}),
)

#: One entry per dialect; checked against the translators by the tests.
CAPABILITIES: Mapping[Dialect, Capabilities] = {
    Dialect.GA: _OPENAI,
    Dialect.AZURE: _OPENAI,
    Dialect.BETA: replace(_OPENAI, dtmf_event=False),
    Dialect.XAI: _OPENAI,
    Dialect.GEMINI: Capabilities(
        response_lifecycle=False,
        vad_cancels_response=True,
        model_owns_turns=False,
        cancel=Handling.LOCAL,
        truncate=Handling.LOCAL,
        dtmf_event=False,
        mutable_session=frozenset(),
        resumption=True,
        input_rate=16000,
        output_rate=24000,
        formats=frozenset({"pcm16"}),
        session_limit_s=600.0,
        history_items=frozenset({"message"}),
    ),
    Dialect.GPT_LIVE: Capabilities(
        response_lifecycle=False,
        vad_cancels_response=True,
        model_owns_turns=True,
        cancel=Handling.LOCAL,
        truncate=Handling.LOCAL,
        dtmf_event=False,
        mutable_session=frozenset({"tools", "tool_choice"}),
        resumption=False,
        input_rate=24000,
        output_rate=24000,
        formats=_ALL_FORMATS,
        session_limit_s=None,
        history_items=frozenset({"message"}),
    ),
}


@dataclass(frozen=True, slots=True)
class Routed:
    """Where a translation's results go.

    ``upstream``: events for the upstream (serialised by the caller); ``frames``: upstream
    frames already serialised (audio built from a template); ``client``: GA server events for
    rtbridge's side, in order.
    """

    upstream: tuple[Event, ...] = ()
    client: tuple[Event, ...] = ()
    frames: tuple[str, ...] = field(default=())

    def __add__(self, other: Routed) -> Routed:
        return Routed(
            self.upstream + other.upstream,
            self.client + other.client,
            self.frames + other.frames,
        )


NOTHING = Routed()
_EMPTY: Mapping[str, Any] = {}


def obj(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else an empty one (for reading optional fields)."""
    return value if isinstance(value, Mapping) else _EMPTY


class UpstreamTranslator(ABC):
    """One upstream connection's translation between GA and its dialect.

    ``passthrough`` is True when the upstream speaks GA on the wire (GA, Azure): the upstream
    client then forwards frames byte for byte and calls nothing here.
    """

    dialect: Dialect
    passthrough: bool = False
    #: the GA session the next connection should start with, where it differs from the one
    #: confirmed (translators that keep refused mid-session updates for the next session)
    desired_session: dict[str, Any] | None = None
    #: whether the model goes in the URL as ``?model=`` (else the first frame names it)
    model_in_url: bool = True

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES[self.dialect]

    def opening(self) -> Routed:
        """What to do as soon as the socket is open (before any client event)."""
        return NOTHING

    @abstractmethod
    def to_upstream(self, ev: Mapping[str, Any]) -> Routed:
        """One GA client event."""

    @abstractmethod
    def from_upstream(self, ev: Mapping[str, Any], now: float) -> Routed:
        """One upstream frame, parsed, received at ``now``."""

    @abstractmethod
    def append_audio(self, audio: bytes) -> Routed:
        """Caller audio in the session's GA format (the hot path: 50 calls a second)."""

    def tick(self, now: float) -> Routed:
        """Time has reached ``now`` (seconds, any monotonic origin)."""
        return NOTHING

    def deadline(self) -> float | None:
        """When :meth:`tick` next has work (``None``: never)."""
        return None
