"""The security event log: one typed stream of everything rtbridge refused or caught.

An operator whose service sits on the open Internet needs to see the attacks it turned away,
not only the calls it carried: wrong keys, sources blocked or rate-limited, transfer and dial
targets refused by the destination policy (toll fraud), cross-site requests, oversized bodies
and messages, connection caps, foreign RTP. Each is a :class:`SecurityEvent` recorded through
one :class:`SecurityLog` per process, which

* writes it as one JSON log line on the logger ``rtbridge.security`` (kind, source address,
  detail, call id; never a secret: the detail is redacted like every log line, and callers
  pass addresses and reasons, not credentials);
* counts it by kind (``rtbridge_security_events_total{kind}`` in ``/metrics``);
* keeps the most recent ones in a bounded ring for ``GET /v1/security/events`` and the
  dashboard's panel.

A flood must not turn the log into a second flood, nor its cost into one: beyond ``log_burst``
lines per second of one kind, lines are suppressed (still counted and kept in the ring) and one
summary line says how many were left out; beyond ``keep_burst`` events per second of one kind
(a spoofed-source flood makes every packet an event), events are only counted: nothing is
built, cleaned or kept for them, so each costs a few microseconds (:meth:`SecurityLog.record`
returns None). The clock is injected.

Code that must not import ``bridge`` (the ``sip`` package) reports through a callback that ends
in :meth:`SecurityLog.record`; its signature is deliberately plain for that.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bridge.logs import redact_secrets
from media.clock import Clock, SystemClock

__all__ = ["LOGGER_NAME", "SecurityEvent", "SecurityKind", "SecurityLog"]

LOGGER_NAME = "rtbridge.security"
log = logging.getLogger(LOGGER_NAME)


class SecurityKind(StrEnum):
    """What was refused or caught (issues 12 and 13 name them)."""

    AUTH_FAILURE = "auth-failure"  # a wrong key, digest, or an expired/revoked session
    RATE_LIMITED = "rate-limited"  # a source or a profile went over its rate or cap
    BLOCKED_SOURCE = "blocked-source"  # a source outside every policy, or temporarily blocked
    REFUSED_REQUEST = "refused-request"  # a request refused by policy (inbound REFER, ...)
    FOREIGN_RTP = "foreign-rtp"  # RTP from an address that is not the call's peer
    OVERSIZED_MESSAGE = "oversized-message"  # a SIP message or an HTTP body over its limit
    CONNECTION_CAP = "connection-cap"  # a TCP/TLS connection refused at the cap
    DESTINATION_REFUSED = "destination-refused"  # a dial or transfer target refused
    ORIGIN_REFUSED = "origin-refused"  # a browser request from another origin


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """One refusal. ``seq`` grows by one per event in a process (for paging and live views);
    ``at`` is wall-clock time (epoch seconds); ``source`` is where it came from
    (``203.0.113.9:5060``, ``http:198.51.100.7``, ``agent``...)."""

    seq: int
    at: float
    kind: SecurityKind
    source: str | None
    detail: str
    call_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "kind": self.kind.value,
            "source": self.source,
            "detail": self.detail,
            "call_id": self.call_id,
        }


class SecurityLog:
    """Records security events: a log line each (rate-capped per kind), a count per kind, and a
    bounded ring of recent events. One per process (the app's state holds it)."""

    def __init__(
        self,
        *,
        capacity: int = 1000,
        log_burst: int = 20,
        keep_burst: int = 200,
        clock: Clock | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        if capacity < 1 or log_burst < 1 or keep_burst < log_burst:
            raise ValueError("capacity and log_burst must be at least 1, keep_burst >= log_burst")
        self._ring: deque[SecurityEvent] = deque(maxlen=capacity)
        self._counts: dict[SecurityKind, int] = dict.fromkeys(SecurityKind, 0)
        self._seq = 0
        self._wall = (clock or SystemClock()).wall
        self._log = logger or log
        self._burst = log_burst
        self._keep = keep_burst
        self._window: dict[SecurityKind, _Window] = {}

    def record(
        self,
        kind: SecurityKind | str,
        *,
        source: str | None = None,
        detail: str = "",
        call_id: str | None = None,
    ) -> SecurityEvent | None:
        """Record one event; returns it, or None when it was only counted (``keep_burst``).
        ``kind`` may be the enum's value (``"auth-failure"``) for callers that do not import
        this module."""
        kind = SecurityKind(kind)
        self._seq += 1
        self._counts[kind] += 1
        at = self._wall()
        window = self._window_for(kind, at)
        if window.kept >= self._keep:
            window.suppressed += 1
            return None
        window.kept += 1
        event = SecurityEvent(
            seq=self._seq,
            at=at,
            kind=kind,
            source=_clean(source, 120) if source is not None else None,
            detail=_clean(detail, 300),
            call_id=call_id,
        )
        self._ring.append(event)
        if window.written >= self._burst:
            window.suppressed += 1
            return event
        window.written += 1
        data = event.to_json()
        self._log.warning(
            json.dumps(data, ensure_ascii=False),
            extra={"security_event": data, "call_id": event.call_id},
        )
        return event

    def _window_for(self, kind: SecurityKind, at: float) -> _Window:
        """This second's window of ``kind``; a new second logs what the last one left out."""
        second = int(at)
        window = self._window.get(kind)
        if window is None or window.second != second:
            if window is not None and window.suppressed:
                summary = {"kind": kind.value, "suppressed": window.suppressed}
                self._log.warning(json.dumps(summary), extra={"security_event": summary})
            window = self._window[kind] = _Window(second)
        return window

    @property
    def counts(self) -> dict[str, int]:
        """Events recorded so far, by kind (every kind present, zeros included)."""
        return {k.value: n for k, n in self._counts.items()}

    @property
    def last_seq(self) -> int:
        return self._seq

    def recent(
        self,
        *,
        kinds: Iterable[SecurityKind] | None = None,
        limit: int = 100,
        after_seq: int = 0,
    ) -> list[SecurityEvent]:
        """The most recent events still in the ring, newest first, optionally of some kinds
        only and newer than ``after_seq``."""
        wanted = frozenset(kinds) if kinds is not None else None
        out: list[SecurityEvent] = []
        for event in reversed(self._ring):
            if event.seq <= after_seq or len(out) >= limit:
                break
            if wanted is None or event.kind in wanted:
                out.append(event)
        return out


@dataclass(slots=True)
class _Window:
    """Events of one kind in one second: kept, logged, and left out of the log."""

    second: int
    kept: int = 0
    written: int = 0
    suppressed: int = 0


def _clean(text: str, limit: int) -> str:
    """One line of printable text, secrets redacted, bounded (details quote attacker input)."""
    flat = text[: limit * 2]
    if not flat.isprintable():
        flat = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in flat)
    flat = redact_secrets(flat)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
