"""The one place where the local agent's wire dialect is applied.

The agent is built GA-internally. At the socket edge, :class:`DialectEdge` translates client
frames from the configured dialect into GA (``inbound``) and GA server events into the dialect
(``outbound``) with :class:`bridge.realtime.dialects.Translator`, and knows each dialect's
opening sequence:

========  ==========================================================
GA        ``session.created``
beta      ``session.created``, then ``conversation.created``
xAI       ``conversation.created`` (its ready signal), then ``session.created``;
          the driver also sends periodic ``ping`` events
========  ==========================================================
"""

from __future__ import annotations

from typing import Any

from bridge.config import Dialect
from bridge.realtime.dialects import Translator

__all__ = ["DialectEdge", "ping_event"]

Event = dict[str, Any]


class DialectEdge:
    """Translate one connection's traffic between ``dialect`` and GA."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._tr = None if dialect is Dialect.GA else Translator(dialect)

    def inbound(self, ev: Event) -> list[Event]:
        """A client event in the dialect -> GA client events (possibly none)."""
        return [ev] if self._tr is None else self._tr.client_from_dialect(ev)

    def outbound(self, ev: Event) -> list[Event]:
        """A GA server event -> events in the dialect (possibly none)."""
        return [ev] if self._tr is None else self._tr.server_to_dialect(ev)

    def opening(self, session_created: list[Event], conversation_created: Event) -> list[Event]:
        """The GA events that open a connection, in this dialect's order (not yet translated)."""
        if self.dialect is Dialect.BETA:
            return [*session_created, conversation_created]
        if self.dialect is Dialect.XAI:
            return [conversation_created, *session_created]
        return list(session_created)


def ping_event(event_id: str, timestamp_ms: int) -> Event:
    """xAI's keep-alive event (sent as is; it has no GA counterpart)."""
    return {"type": "ping", "event_id": event_id, "timestamp": timestamp_ms}
