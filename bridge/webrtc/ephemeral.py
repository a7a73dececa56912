"""Ephemeral client keys (``ek_...``) for browsers: minted by the server, bound to a session.

A browser must never hold the server key. The app's backend (or the demo page on loopback)
mints a short-lived key with ``POST /v1/realtime/client_secrets`` using the server key; the
browser presents it to ``POST /v1/realtime/calls``. Rules, as OpenAI's service applies them:

* only the server key mints (an ``ek_`` key cannot mint another);
* the lifetime is 10..7200 s (default 600), anchored at creation;
* the session configuration given at minting is bound to the key and applied to every call
  made with it (the call's own ``session`` part is merged over it);
* an unknown or expired key is refused (401).

Keys live in memory only: a restart invalidates them, which is what a short-lived key is for.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from media.clock import Clock, SystemClock

__all__ = [
    "DEFAULT_TTL_S",
    "MAX_TTL_S",
    "MIN_TTL_S",
    "EphemeralKey",
    "EphemeralKeys",
    "bound_session",
    "is_ephemeral",
]

PREFIX = "ek_"
MIN_TTL_S = 10
MAX_TTL_S = 7200
DEFAULT_TTL_S = 600


def is_ephemeral(key: str) -> bool:
    return key.startswith(PREFIX)


@dataclass(frozen=True, slots=True)
class EphemeralKey:
    value: str
    created_at: int
    expires_at: int
    session: dict[str, Any] = field(default_factory=dict)


class EphemeralKeys:
    """The live ``ek_`` keys of this process; lifetimes run on the clock's wall time."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._now = (clock or SystemClock()).wall
        self._keys: dict[str, EphemeralKey] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def mint(self, session: Mapping[str, Any], ttl_s: int = DEFAULT_TTL_S) -> EphemeralKey:
        if not MIN_TTL_S <= ttl_s <= MAX_TTL_S:
            raise ValueError(f"expires_after.seconds must be {MIN_TTL_S}..{MAX_TTL_S}")
        now = int(self._now())
        self._purge(now)
        key = EphemeralKey(PREFIX + secrets.token_urlsafe(24), now, now + ttl_s, dict(session))
        self._keys[key.value] = key
        return key

    def lookup(self, value: str) -> EphemeralKey | None:
        """The live key, or None when unknown or expired."""
        key = self._keys.get(value)
        if key is None:
            return None
        if self._now() >= key.expires_at:
            del self._keys[value]
            return None
        return key

    def _purge(self, now: float) -> None:
        for value in [v for v, k in self._keys.items() if now >= k.expires_at]:
            del self._keys[value]


def bound_session(keys: EphemeralKeys | None, key: str) -> dict[str, Any] | None:
    """The session bound to a live ``ek_`` key (the WebSocket relay accepts them too), or None."""
    if keys is None or not is_ephemeral(key):
        return None
    ek = keys.lookup(key)
    return dict(ek.session) if ek is not None else None
