"""The one place where the local agent's wire dialect is applied.

The agent is built GA-internally (:class:`~bridge.agent.core.AgentCore`). At the socket edge a
:class:`DialectEdge` per connection knows its dialect's paths, how a key is presented, the
opening sequence, how client messages become GA client events (``inbound``), how GA server events
become the dialect's messages (``outbound``), and how the dialect ends a session on a timer.

========  ==============================  ===================================================
dialect   path                            opening
========  ==============================  ===================================================
GA        ``/v1/realtime``                ``session.created``
Azure     ``/v1/realtime`` (and           ``session.created`` (GA events; key in ``api-key``)
          ``/openai/v1/realtime``)
beta      ``/v1/realtime``                ``session.created``, then ``conversation.created``
xAI       ``/v1/realtime``                ``conversation.created`` (its ready signal), then
                                          ``session.created``; periodic ``ping`` events
Gemini    ``/ws/...BidiGenerateContent``  nothing until ``setup`` (:mod:`.gemini_edge`)
GPT-Live  ``/v1/live/sessions``           nothing until ``session.start`` (:mod:`.live_edge`)
========  ==============================  ===================================================

What goes out is a list of :data:`Out` items: a GA event (``outbound`` translates it), a
:class:`Native` message (already in the dialect: sent as is) or a :class:`Close` (the socket is
closed with that code). A client message that breaks the dialect's rules in a way the service
answers by closing the socket raises :class:`EdgeClose`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.config import Dialect
from bridge.errors import RemoteProtocolError
from bridge.realtime.dialects import Translator

__all__ = [
    "Close",
    "DialectEdge",
    "EdgeClose",
    "Native",
    "Out",
    "RenamingEdge",
    "bearer_keys",
    "ping_event",
]

Event = dict[str, Any]
_INSECURE_KEY_PREFIX = "openai-insecure-api-key."


@dataclass(frozen=True, slots=True)
class Close:
    """Close the socket with ``code`` and ``reason`` (after what was queued before it)."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Native:
    """A message already in the connection's dialect."""

    event: Event


Out = Event | Native | Close


class EdgeClose(RemoteProtocolError):
    """The client broke a rule its dialect enforces by closing the connection."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason, code="connection_closed")
        self.close = Close(code, reason[:120])


def bearer_keys(headers: Mapping[str, str], subprotocols: list[str]) -> list[str]:
    """Keys presented as ``Authorization: Bearer`` or the browser subprotocol."""
    auth = headers.get("Authorization", "")
    keys = [auth[7:].strip()] if auth[:7].lower() == "bearer " else []
    keys += [
        p[len(_INSECURE_KEY_PREFIX) :] for p in subprotocols if p.startswith(_INSECURE_KEY_PREFIX)
    ]
    return keys


class DialectEdge:
    """Base: GA on the wire, unchanged (subclasses override what their dialect changes)."""

    dialect: Dialect = Dialect.GA
    paths: frozenset[str] = frozenset({"/v1/realtime"})
    pings = False

    def opening(self, session_created: list[Event], conversation_created: Event) -> list[Out]:
        """What a new connection receives first (GA events, translated by ``outbound``)."""
        return list(session_created)

    def inbound(self, ev: Event) -> list[Event]:
        """A client message in the dialect -> GA client events (possibly none)."""
        if not isinstance(ev.get("type"), str) or not ev["type"]:
            raise RemoteProtocolError(
                "event has no string 'type' field", code="missing_required_parameter", param="type"
            )
        return [ev]

    def outbound(self, ev: Event) -> list[Out]:
        """A GA server event -> what goes on the wire."""
        return [ev]

    def replies(self) -> list[Out]:
        """Messages the last ``inbound`` answered directly (acknowledgements, closes)."""
        return []

    def going_away(self, time_left_s: float) -> list[Out]:
        """The session ends in ``time_left_s`` (only Gemini says so beforehand)."""
        return []

    def expired(self, ids_event: str) -> list[Out]:
        """The session hit its time limit: GA's ``error`` ``session_expired``, then close."""
        return [
            Native(
                {
                    "type": "error",
                    "event_id": ids_event,
                    "error": {
                        "type": "invalid_request_error",
                        "code": "session_expired",
                        "message": "Your session hit the maximum duration.",
                        "param": None,
                        "event_id": None,
                    },
                }
            ),
            Close(1000, "session expired"),
        ]


class RenamingEdge(DialectEdge):
    """GA, Azure, beta and xAI: GA events under other names (:mod:`~bridge.realtime.dialects.
    renames`)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.pings = dialect is Dialect.XAI
        if dialect is Dialect.AZURE:
            self.paths = frozenset({"/v1/realtime", "/openai/v1/realtime"})
        self._tr = None if dialect in (Dialect.GA, Dialect.AZURE) else Translator(dialect)

    def opening(self, session_created: list[Event], conversation_created: Event) -> list[Out]:
        if self.dialect is Dialect.BETA:
            return [*session_created, conversation_created]
        if self.dialect is Dialect.XAI:
            return [conversation_created, *session_created]
        return list(session_created)

    def inbound(self, ev: Event) -> list[Event]:
        super().inbound(ev)
        return [ev] if self._tr is None else self._tr.client_from_dialect(ev)

    def outbound(self, ev: Event) -> list[Out]:
        return [ev] if self._tr is None else list(self._tr.server_to_dialect(ev))

    def expired(self, ids_event: str) -> list[Out]:
        out = super().expired(ids_event)
        if self._tr is None:
            return out
        first = out[0]
        assert isinstance(first, Native)
        return [*(Native(e) for e in self._tr.server_to_dialect(first.event)), *out[1:]]


def ping_event(event_id: str, timestamp_ms: int) -> Event:
    """xAI's keep-alive event (sent as is; it has no GA counterpart)."""
    return {"type": "ping", "event_id": event_id, "timestamp": timestamp_ms}
