"""rtbridge's error tree (one place; ``sip`` and ``media`` keep their own protocol errors).

    RtbridgeError
    ├── ConfigError                 settings or config file are invalid
    ├── ProtocolError               a Realtime frame is malformed
    │   ├── LocalProtocolError        we were asked to send something invalid
    │   └── RemoteProtocolError       a peer sent something invalid (carries an error code)
    └── UpstreamError               talking to a Realtime upstream failed (carries ``retryable``)
        ├── UpstreamConnectError      could not connect (DNS, refused, TLS, timeout): retryable
        ├── UpstreamAuthError         the upstream refused our credentials: not retryable
        ├── UpstreamRejectedError     the handshake got another HTTP error status
        └── UpstreamClosedError       the socket closed after it was open

Foreign exceptions (websockets, OSError, ...) are re-raised at the boundary as the most specific
of these, ``from exc``.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "RtbridgeError",
    "UpstreamAuthError",
    "UpstreamClosedError",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamRejectedError",
]


class RtbridgeError(Exception):
    """Base of every error rtbridge raises on purpose."""


class ConfigError(RtbridgeError):
    """Settings or the config file are invalid; the message names the field."""


class ProtocolError(RtbridgeError):
    """A Realtime frame could not be understood.

    ``code`` is the Realtime ``error.code`` to report back (e.g. ``invalid_json``,
    ``invalid_event``, ``unknown_parameter``); ``param`` names the offending field if known.
    """

    def __init__(self, message: str, *, code: str = "invalid_event", param: str | None = None):
        super().__init__(message)
        self.code = code
        self.param = param


class LocalProtocolError(ProtocolError):
    """We were about to send something that breaks the protocol (a bug on our side)."""


class RemoteProtocolError(ProtocolError):
    """A peer (client or upstream) sent something that breaks the protocol."""


class UpstreamError(RtbridgeError):
    """Talking to a Realtime upstream failed. ``retryable`` says whether trying again may help."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None, status: int | None = None):
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable
        self.status = status


class UpstreamConnectError(UpstreamError):
    """The connection could not be made (refused, DNS, TLS, timeout)."""

    retryable = True


class UpstreamAuthError(UpstreamError):
    """The upstream refused our credentials (HTTP 401/403). Retrying will not help."""

    retryable = False


class UpstreamRejectedError(UpstreamError):
    """The handshake was answered with another HTTP error; 429 and 5xx are retryable."""


class UpstreamClosedError(UpstreamError):
    """An open upstream socket closed. ``code``/``reason`` are the WebSocket close frame's."""

    retryable = True

    def __init__(self, message: str, *, code: int | None = None, reason: str = ""):
        super().__init__(message)
        self.code = code
        self.reason = reason
