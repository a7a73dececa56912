"""Dashboard login sessions: a random token per login, with an expiry, revoked on logout.

The login cookie used to be an HMAC of a constant under the server key: the same value for every
login, forever, still valid after logout. Now each login gets a fresh 256-bit token; only its
SHA-256 is kept, with its expiry, in ``<data_dir>/dashboard-sessions`` (owner-only, rewritten
atomically on login and logout), so a restart keeps browsers logged in while a stolen or
logged-out cookie stops working. The file is bound to the server key: a different key (a
rotation) discards every session. At most ``max_sessions`` live at once (the oldest goes).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from bridge.apikeys import ServerKey
from bridge.private_files import private_dir, write_private

__all__ = ["SESSIONS_FILE", "LoginSessions"]

SESSIONS_FILE = "dashboard-sessions"
log = logging.getLogger(__name__)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class LoginSessions:
    def __init__(
        self,
        key: ServerKey,
        path: Path | None,
        *,
        ttl_s: float,
        max_sessions: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.ttl_s = ttl_s
        self.max_sessions = max_sessions
        self._clock = clock
        self._binding = hmac.new(key.value.encode(), b"rtbridge sessions v2", "sha256").hexdigest()
        self._expires: dict[str, float] | None = None  # digest -> epoch seconds; loaded lazily

    def create(self) -> str:
        """A new session; returns the token for the cookie."""
        sessions = self._sessions()
        token = secrets.token_urlsafe(32)
        sessions[_digest(token)] = self._clock() + self.ttl_s
        while len(sessions) > self.max_sessions:
            del sessions[min(sessions, key=sessions.__getitem__)]
        self._save()
        return token

    def valid(self, token: str | None) -> bool:
        if not token or len(token) > 128:
            return False
        expires = self._sessions().get(_digest(token))
        return expires is not None and expires > self._clock()

    def revoke(self, token: str | None) -> bool:
        """End a session (logout); False if it was not live."""
        if not token:
            return False
        gone = self._sessions().pop(_digest(token), None) is not None
        if gone:
            self._save()
        return gone

    def _sessions(self) -> dict[str, float]:
        if self._expires is None:
            self._expires = self._load()
        now = self._clock()
        for digest in [d for d, t in self._expires.items() if t <= now]:
            del self._expires[digest]
        return self._expires

    def _load(self) -> dict[str, float]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", self.path, exc)
            return {}
        if not isinstance(data, dict) or data.get("key") != self._binding:
            return {}  # another server key: every old session is void
        sessions = data.get("sessions")
        if not isinstance(sessions, dict):
            return {}
        return {str(d): float(t) for d, t in sessions.items() if isinstance(t, int | float)}

    def _save(self) -> None:
        if self.path is None or self._expires is None:
            return
        text = json.dumps({"key": self._binding, "sessions": self._expires})
        try:
            private_dir(self.path.parent)
            write_private(self.path, text)
        except OSError as exc:  # sessions still work in memory
            log.warning("cannot store dashboard sessions in %s: %s", self.path, exc)
