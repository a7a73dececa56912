"""Trunk keepalive by OPTIONS (RFC 3261 §11) and the trunk's up/down state.

Why this module exists: a carrier closes idle TLS connections unless the endpoint sends
OPTIONS (Twilio does), and nothing told an operator that a trunk was unreachable until a call
failed on it. The driver (:mod:`sip.driver.endpoint`) sends :func:`options_request` to each
trunk with ``options_interval_s`` and feeds what came back to :class:`TrunkHealth`; the
control plane shows the state and an outbound call on a down trunk fails at once.

What counts: any final response means the trunk is reachable and answering (RFC 3261 §11.2:
a 404, 405 or 501 still proves it is there), except 503 (it says it cannot take work) and 408;
no response at all (the transaction timed out, the connection could not be made) is a
failure. ``down_after`` consecutive failures mark the trunk down; one success marks it up.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass

from sip.dialog import new_tag
from sip.headers import Headers
from sip.message import Request, Response
from sip.uri import SipUri

__all__ = ["TrunkHealth", "TrunkState", "options_request"]


class TrunkState(enum.StrEnum):
    UNKNOWN = "unknown"  # no keepalive answered or failed yet
    UP = "up"
    DOWN = "down"


@dataclass(slots=True)
class TrunkHealth:
    """One trunk's keepalive state (see the module docstring)."""

    name: str
    down_after: int = 2
    state: TrunkState = TrunkState.UNKNOWN
    failures: int = 0
    last_status: int | None = None
    changed_at: float | None = None
    checked_at: float | None = None

    @property
    def up(self) -> bool:
        """Whether calls may use the trunk (unknown counts as up: no evidence against it)."""
        return self.state is not TrunkState.DOWN

    @property
    def detail(self) -> str:
        if self.last_status is None:
            return f"no answer to {self.failures} OPTIONS"
        return f"OPTIONS answered {self.last_status}"

    def view(self) -> dict[str, object]:
        """What the API and the dashboard show of the trunk."""
        return {
            "name": self.name,
            "state": self.state.value,
            "last_status": self.last_status,
            "failures": self.failures,
            "detail": self.detail if self.checked_at is not None else "not checked yet",
        }

    def observe(self, response: Response | None, now: float) -> bool:
        """Record one keepalive's outcome; True when the state changed."""
        self.checked_at = now
        self.last_status = response.status if response is not None else None
        ok = response is not None and response.status not in (408, 503)
        before = self.state
        if ok:
            self.failures = 0
            self.state = TrunkState.UP
        else:
            self.failures += 1
            if self.failures >= self.down_after:
                self.state = TrunkState.DOWN
        if self.state is not before:
            self.changed_at = now
            return True
        return False


def options_request(
    target: SipUri, via: str, contact: str, user_agent: str, from_host: str
) -> Request:
    """An out-of-dialog OPTIONS to ``target`` (§11.1): ``Max-Forwards`` 70, a fresh Call-ID
    and From tag, ``Accept: application/sdp``."""
    h = Headers()
    h.add("Via", via)
    h.add("Max-Forwards", "70")
    h.add("From", f"<sip:rtbridge@{from_host}>;tag={new_tag()}")
    h.add("To", f"<{target}>")
    h.add("Call-ID", f"{secrets.token_hex(10)}@{from_host}")
    h.add("CSeq", "1 OPTIONS")
    h.add("Contact", contact)
    h.add("Accept", "application/sdp")
    h.add("User-Agent", user_agent)
    return Request(method="OPTIONS", uri=target, headers=h)
