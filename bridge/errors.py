r"""rtbridge's error tree (one place; ``sip`` and ``media`` keep their own protocol errors).

    RtbridgeError
    ├── ConfigError                 settings or config file are invalid
    ├── ProtocolError               a Realtime frame is malformed
    │   ├── LocalProtocolError        we were asked to send something invalid
    │   └── RemoteProtocolError       a peer sent something invalid (carries an error code)
    ├── UpstreamError               talking to a Realtime upstream failed (carries ``retryable``)
    │   ├── UpstreamConnectError      could not connect (DNS, refused, TLS, timeout): retryable
    │   ├── UpstreamAuthError         the upstream refused our credentials: not retryable
    │   ├── UpstreamRejectedError     the handshake got another HTTP error status
    │   └── UpstreamClosedError       the socket closed after it was open
    ├── RecordsUnavailable          the call records' database does not answer now (503)
    └── CallError                   a call cannot be placed, set up or acted on now (``code``)
        ├── CallNotAllowed            policy, limits or draining refuse a new call
        │   └── DestinationRefused      the destination policy refused the target (``verdict``)
        ├── CallSetupError            setting a call up failed (``status``: the HTTP answer)
        ├── NotTransferable           the call cannot be transferred (not SIP, not confirmed)
        ├── NotHoldable               the call cannot change its hold now (not SIP, not confirmed)
        ├── PortsExhausted            every RTP port pair is in use (503 + Retry-After)
        └── ClusterError              acting on a call another node of the cluster owns failed
            ├── OwnerUnavailable        that node does not answer (stopped or died): 503
            ├── RemoteCallError         that node refused the action (``status``, ``param``)
            └── CommandMalformed        a message on a node's command channel is not one

``bridge.destinations.targets.TargetError`` (a dial or transfer target that can never be
allowed) is an :class:`RtbridgeError` and a ``ValueError``. The dialect translators' refusals
(``LocalError``) and the local agent's errors for its clients (``ClientError``,
``SessionUpdateError``, ``EdgeClose``) are :class:`RemoteProtocolError`\ s: the client sent
something they refuse.

Foreign exceptions (websockets, OSError, ...) are re-raised at the boundary as the most specific
of these, ``from exc``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CallError",
    "CallNotAllowed",
    "CallSetupError",
    "ClusterError",
    "CommandMalformed",
    "ConfigError",
    "DestinationRefused",
    "LocalProtocolError",
    "NotHoldable",
    "NotTransferable",
    "OwnerUnavailable",
    "PortsExhausted",
    "ProtocolError",
    "RecordsUnavailable",
    "RemoteCallError",
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


class RecordsUnavailable(RtbridgeError):
    """A read of the call records found their database down or unreachable (the control
    plane answers 503 ``records_unavailable``; writes wait for the database meanwhile)."""

    code = "records_unavailable"


class CallError(RtbridgeError):
    """A call cannot be placed, set up or acted on now. ``code`` is the machine-readable
    reason the control plane answers with."""

    code: str = "call_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class CallNotAllowed(CallError):
    """Policy, limits or draining refuse a new call (originate)."""

    code = "cannot_place_call"


class DestinationRefused(CallNotAllowed):
    """The profile's destination policy refused the target; ``verdict`` (a
    :class:`bridge.destinations.Verdict`) says why."""

    code = "destination_refused"

    def __init__(self, verdict: Any) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict


class CallSetupError(CallError):
    """Setting a call up failed; ``status`` is the HTTP answer for browser calls."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message, code=code)
        self.status = status


class NotTransferable(CallError):
    """The call cannot be transferred now (``not_sip``, ``call_not_established``)."""


class NotHoldable(CallError):
    """The call cannot be put on hold or resumed now: not a SIP call, not established yet,
    or another re-INVITE of it still in progress."""

    code = "hold_unavailable"


class PortsExhausted(CallError):
    """Every RTP port pair in the configured range is in use (answer 503 + Retry-After)."""

    code = "no_rtp_ports"


class ClusterError(CallError):
    """Acting on a call that another node of the cluster owns failed."""

    code = "cluster_error"


class OwnerUnavailable(ClusterError):
    """The node that owns the call does not answer its command channel: it stopped or died
    (its live calls are lost), or it did not reply in time (``code`` says which)."""

    code = "owner_unavailable"

    def __init__(self, message: str, *, code: str | None = None, status: int = 503) -> None:
        super().__init__(message, code=code)
        self.status = status


class RemoteCallError(ClusterError):
    """The owner refused the action the way it would have refused it locally: the HTTP
    ``status``, ``code`` and ``param`` it answered with."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.param = param


class CommandMalformed(ClusterError):
    """A message on a node's command channel is not a command or reply rtbridge sends."""

    code = "command_malformed"
