"""Session timers (RFC 4028): ``Session-Expires``/``Min-SE`` negotiation and who refreshes.

Why this module exists: carriers refresh long calls (every 900 s, 20 minutes...) and tear down
those whose refresh goes unanswered; a UA that neither refreshes nor notices a dead peer holds
calls forever or loses them at 15 minutes. This module is the arithmetic and the header values;
:mod:`sip.call` keeps the two timers of a dialog and :mod:`sip.midcall` sends the refreshes.

* :class:`SessionExpires` is the header value (section 4): ``delta-seconds[;refresher=uac|uas]``.
* :func:`uas_settle` is the UAS side (section 9) for an INVITE, re-INVITE or UPDATE we answer:
  a ``Session-Expires`` under our ``Min-SE`` gets 422 (only when the UAC supports ``timer``:
  otherwise we raise it), the interval is lowered to ours but never under the request's
  ``Min-SE``, the request's ``refresher`` is honoured, else we choose (our preference when
  the UAC supports timers, ``uas`` when it does not).
* :func:`uac_settle` reads the 2xx to our INVITE, re-INVITE or UPDATE (section 7.2): no
  ``Session-Expires`` there means no timer.
* :class:`Timer` is what was settled for a dialog, seen from our side: the interval, whether we
  refresh, and the deadlines (refresh at half the interval, section 7.2; the non-refresher
  ends the session ``min(32, interval/3)`` seconds before it expires, section 10).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sip.errors import SipParseError
from sip.headers import Headers

__all__ = [
    "Refresher",
    "SessionExpires",
    "Timer",
    "TimerPolicy",
    "TooSmall",
    "supports_timer",
    "uac_request",
    "uac_retry_interval",
    "uac_settle",
    "uas_settle",
]


class Refresher(enum.StrEnum):
    UAC = "uac"
    UAS = "uas"


@dataclass(frozen=True, slots=True)
class TimerPolicy:
    """What we ask for and accept: ``session_expires`` seconds, never under ``min_se``; when
    we choose, ``refresher`` refreshes (``uac``: the caller; ``uas``: the callee)."""

    enabled: bool = True
    session_expires: int = 1800
    min_se: int = 90
    refresher: Refresher = Refresher.UAC


@dataclass(frozen=True, slots=True)
class SessionExpires:
    """The ``Session-Expires`` header value (RFC 4028 section 4)."""

    interval: int
    refresher: Refresher | None = None

    @classmethod
    def parse(cls, value: str) -> SessionExpires:
        head, *params = (p.strip() for p in value.split(";"))
        if not (head.isdigit() and head.isascii() and 0 < len(head) <= 9):
            raise SipParseError(f"Session-Expires must be delta-seconds, got {value[:40]!r}")
        refresher = None
        for param in params:
            name, _, arg = param.partition("=")
            if name.strip().lower() == "refresher":
                try:
                    refresher = Refresher(arg.strip().lower())
                except ValueError:
                    raise SipParseError(f"bad refresher {arg[:10]!r}") from None
        return cls(int(head), refresher)

    def __str__(self) -> str:
        tail = f";refresher={self.refresher.value}" if self.refresher else ""
        return f"{self.interval}{tail}"


@dataclass(frozen=True, slots=True)
class TooSmall:
    """The request's ``Session-Expires`` is under our ``Min-SE``: answer 422 with ``min_se``."""

    min_se: int


@dataclass(frozen=True, slots=True)
class Timer:
    """A dialog's settled session timer, from our side (``we_refresh``) with the header value
    to put in our answer (``header``) and whether that answer needs ``Require: timer``."""

    interval: int
    we_refresh: bool
    header: SessionExpires
    require: bool = False

    def refresh_at(self, now: float) -> float:
        """When the refresher sends its refresh (section 7.2: half the interval)."""
        return now + self.interval / 2

    def expires_at(self, now: float) -> float:
        """When we end the session without a refresh: the refresher at the expiry itself (its
        refreshes all failed), the other side ``min(32, interval/3)`` before (section 10)."""
        if self.we_refresh:
            return now + self.interval
        return now + self.interval - min(32.0, self.interval / 3)


def supports_timer(headers: Headers) -> bool:
    """Whether ``Supported`` or ``Require`` lists the ``timer`` option tag."""
    return any(
        tag.lower() == "timer" for name in ("Supported", "Require") for tag in headers.get_all(name)
    )


def _header(headers: Headers, name: str) -> str | None:
    values = headers.get_all(name)
    return values[0] if values else None


def _min_se(headers: Headers) -> int:
    value = _header(headers, "Min-SE")
    if value is None:
        return 0
    head = value.split(";", 1)[0].strip()
    if not (head.isdigit() and head.isascii() and len(head) <= 9):
        raise SipParseError(f"Min-SE must be delta-seconds, got {value[:40]!r}")
    return int(head)


def uas_settle(request: Headers, policy: TimerPolicy) -> Timer | TooSmall | None:
    """The timer for a request we answer (section 9); None: no session timer."""
    raw = _header(request, "Session-Expires")
    supported = supports_timer(request)
    if not policy.enabled:
        return None
    asked = SessionExpires.parse(raw) if raw is not None else None
    their_min = _min_se(request)
    if asked is None:
        if not supported:
            return None  # section 9: nothing asked, and the UAC could not take part
        interval = max(policy.session_expires, their_min, policy.min_se)
        refresher = policy.refresher
    else:
        if asked.interval < policy.min_se:
            if supported:
                return TooSmall(max(policy.min_se, their_min))
            interval = policy.min_se
        else:
            interval = min(asked.interval, max(policy.session_expires, their_min, policy.min_se))
        refresher = asked.refresher or (policy.refresher if supported else Refresher.UAS)
    if not supported:
        refresher = Refresher.UAS  # a UAC without timer support cannot refresh for it
    header = SessionExpires(interval, refresher)
    return Timer(interval, refresher is Refresher.UAS, header, require=supported)


def uac_request(
    policy: TimerPolicy, interval: int | None = None, refresher: Refresher | None = None
) -> Headers:
    """The headers of our INVITE, re-INVITE or UPDATE: ``Session-Expires`` (``interval``, by
    default the policy's; ``refresher``, by default the policy's choice), ``Min-SE`` (section
    7.1). ``Supported: timer`` is one of the core's common headers. With the policy disabled,
    a new request asks for nothing; a refresh of a timer the peer imposed (``interval``
    given) still says it (section 7.4)."""
    h = Headers()
    if policy.enabled or interval is not None:
        value = SessionExpires(interval or policy.session_expires, refresher or policy.refresher)
        h.add("Session-Expires", str(value))
        h.add("Min-SE", str(policy.min_se))
    return h


def uac_settle(response: Headers) -> Timer | None:
    """The timer a 2xx to our request settled (section 7.2): its ``Session-Expires``, its
    ``refresher`` (``uac``: we refresh; absent: we do, section 7.2); None without one. Followed
    even when our policy is disabled: our requests say ``Supported: timer``, so the callee may
    impose a timer (section 9), and ignoring it would have the call ended for want of a
    refresh."""
    raw = _header(response, "Session-Expires")
    if raw is None:
        return None
    settled = SessionExpires.parse(raw)
    refresher = settled.refresher or Refresher.UAC
    header = SessionExpires(settled.interval, refresher)
    return Timer(settled.interval, refresher is Refresher.UAC, header)


def uac_retry_interval(response: Headers, asked: int) -> int | None:
    """The interval to ask again with after a 422 (section 7.3): the response's ``Min-SE``
    when it is above what we asked; None when it gives us nothing to change."""
    try:
        wanted = _min_se(response)
    except SipParseError:
        return None
    return wanted if wanted > asked else None
