"""Per-source rates and temporary blocks for the SIP core (Kamailio's ``pike``, in our style).

Why this module exists: a SIP port on the Internet is scanned within minutes, and one scanner
can send thousands of INVITEs, REGISTERs, OPTIONS or digest guesses a second. Each source
address gets a token bucket per kind of message (:class:`RateKind`); a source that empties
one is *blocked* for ``block_s``: the core then drops everything it sends, before parsing and
without an answer (an answer would make rtbridge a reflector). Wrong digests are a bucket too,
so a password guesser is locked out after ``auth_failures`` tries per ``auth_window_s``.

The table is bounded (``max_tracked_sources``, least recently seen forgotten first), so a
spoofed-source flood costs memory once and no more. Sans-IO: every call takes ``now``.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass, field

from sip.settings import SipLimits

__all__ = ["RateKind", "SourceGuard", "TokenBucket"]


class RateKind(enum.Enum):
    MESSAGE = "message"  # anything a source sends, garbage included
    INVITE = "INVITE"
    REGISTER = "REGISTER"
    OPTIONS = "OPTIONS"
    AUTH_FAILURE = "auth-failure"

    @classmethod
    def for_method(cls, method: bytes | str) -> RateKind | None:
        """The bucket a request method has besides :attr:`MESSAGE` (None: only that one)."""
        name = method.decode("ascii", "replace") if isinstance(method, bytes) else method
        return _METHODS.get(name.upper())


_METHODS = {k.value: k for k in (RateKind.INVITE, RateKind.REGISTER, RateKind.OPTIONS)}


class TokenBucket:
    """``per_s`` tokens a second, at most ``burst`` saved up; it starts full."""

    __slots__ = ("_at", "burst", "per_s", "tokens")

    def __init__(self, per_s: float, burst: float, now: float) -> None:
        self.per_s = per_s
        self.burst = burst
        self.tokens = float(burst)
        self._at = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        self.tokens = min(self.burst, self.tokens + (now - self._at) * self.per_s)
        self._at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(slots=True)
class _Source:
    buckets: dict[RateKind, TokenBucket] = field(default_factory=dict)
    blocked_until: float = 0.0


class SourceGuard:
    """Token buckets per (source address, :class:`RateKind`) and the blocks they lead to."""

    def __init__(self, limits: SipLimits) -> None:
        self.limits = limits
        self._rates: dict[RateKind, tuple[float, float]] = {
            RateKind.MESSAGE: (limits.messages_per_s, limits.messages_burst),
            RateKind.INVITE: (limits.invite_per_s, limits.invite_burst),
            RateKind.REGISTER: (limits.register_per_s, limits.register_burst),
            RateKind.OPTIONS: (limits.options_per_s, limits.options_burst),
            RateKind.AUTH_FAILURE: (
                limits.auth_failures / limits.auth_window_s,
                limits.auth_failures,
            ),
        }
        self._sources: OrderedDict[str, _Source] = OrderedDict()
        self.blocks = 0  # blocks started so far

    def blocked(self, host: str, now: float) -> bool:
        source = self._sources.get(host)
        return source is not None and source.blocked_until > now

    def take(self, host: str, kind: RateKind, now: float) -> bool:
        """One message (or failure) of ``kind`` from ``host``: True when it is within the rate;
        False when it is not, and the source is then blocked for ``block_s``."""
        source = self._sources.get(host)
        if source is None:
            source = self._sources[host] = _Source()
            if len(self._sources) > self.limits.max_tracked_sources:
                self._sources.popitem(last=False)
        else:
            self._sources.move_to_end(host)
        bucket = source.buckets.get(kind)
        if bucket is None:
            bucket = source.buckets[kind] = TokenBucket(*self._rates[kind], now)
        if bucket.take(now):
            return True
        source.blocked_until = now + self.limits.block_s
        self.blocks += 1
        return False

    def describe(self, kind: RateKind) -> str:
        """The limit ``kind`` went over, for a security notice."""
        per_s, burst = self._rates[kind]
        if kind is RateKind.AUTH_FAILURE:
            limit = f"{self.limits.auth_failures} per {self.limits.auth_window_s:g} s"
        else:
            limit = f"{per_s:g}/s, burst {burst:g}"
        return f"over the {kind.value} limit ({limit}): blocked for {self.limits.block_s:g} s"

    @property
    def tracked(self) -> int:
        return len(self._sources)
