"""Typed call-control events the SIP core emits for a call's owner (RFC 3261 §13, §15;
RFC 3515 REFER; RFC 6086 INFO DTMF).

These frozen values are the seam between the SIP leg and the call logic: the sans-IO core
returns them, the asyncio driver queues them on the call they belong to.

:class:`SecurityNotice` is not a call's event: the core and the transports report with it what
they refused or caught (a wrong digest, a blocked source, a stranger's request, an oversized
message, a connection over the cap), for the owner's security log. This package imports nothing
from ``bridge``, so :class:`NoticeKind`'s values are the security log's kind names.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sip.headers import NameAddr
from sip.transaction import Peer

__all__ = [
    "CallAnswered",
    "CallEnded",
    "CallEvent",
    "CallOffered",
    "CallRefused",
    "CallRinging",
    "DtmfReceived",
    "EndReason",
    "HoldChanged",
    "NoticeKind",
    "ReferProgress",
    "ReferReceived",
    "ReinviteRefused",
    "RemoteSdpChanged",
    "SecurityNotice",
]


class EndReason(enum.StrEnum):
    """Why a call ended (recorded with the SIP status that ended it, if any)."""

    LOCAL_BYE = "local-bye"
    REMOTE_BYE = "remote-bye"
    REJECTED = "rejected"  # we answered the INVITE with a final error
    CANCELLED = "cancelled"  # the caller CANCELled before we answered (487)
    LOCAL_CANCEL = "local-cancel"  # we CANCELled our own INVITE
    FAILED = "failed"  # our INVITE got a 3xx-6xx (busy, declined, ...)
    TIMEOUT = "timeout"  # no final response (timer B) or no answer to BYE
    ACK_TIMEOUT = "ack-timeout"  # our 2xx was never ACKed (§13.3.1.4): we sent BYE
    TRANSPORT_ERROR = "transport-error"
    SESSION_EXPIRED = "session-expired"  # RFC 4028 §10: no refresh in time; we sent BYE
    NO_ANSWER = "no-answer"  # our INVITE rang past its ring timeout: we CANCELled it


@dataclass(frozen=True, slots=True)
class CallOffered:
    """An inbound INVITE passed policy. ``sdp`` is the raw offer body (may be empty).

    ``headers`` are the INVITE's header fields in the order received, values as received and
    names in canonical form (``v`` -> ``Via``), the top Via stamped ``received``/``rport``
    (RFC 3261 §18.2.1, RFC 3581 §4). Credentials (Authorization, Proxy-Authorization) are among
    them: whoever passes the headers on must filter them.
    """

    call_id: str
    caller: NameAddr
    callee: NameAddr
    request_uri: str
    sdp: bytes
    source: Peer
    trunk: str | None
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class CallRefused:
    """An inbound INVITE the core refused before offering it because it is draining (503).
    Refusals by policy are no calls: they are :class:`SecurityNotice` values, counted and
    logged, never recorded as calls."""

    call_id: str
    caller: NameAddr
    callee: NameAddr
    request_uri: str
    source: Peer
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class CallRinging:
    """Our outbound INVITE got a provisional response (180/183, with early SDP if any)."""

    call_id: str
    status: int
    sdp: bytes


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """The call is established: for outbound calls ``sdp`` is the callee's answer; for
    inbound calls it is the event that the caller ACKed our 200 (``sdp`` is our answer).

    A delayed offer (RFC 3261 §13.2.1: an INVITE without SDP) settles in the 2xx and the ACK:
    then ``sdp`` is the offer (ours inbound, the callee's outbound) and ``ack_sdp`` the answer
    the ACK carried (the caller's inbound, may be empty; ours outbound)."""

    call_id: str
    sdp: bytes
    ack_sdp: bytes = b""
    delayed_offer: bool = False


@dataclass(frozen=True, slots=True)
class RemoteSdpChanged:
    """A mid-call offer/answer settled (RFC 3264 §8): the peer's re-INVITE or UPDATE offer
    that the core answered (``remote_offered``), or the answer to our re-INVITE. ``sdp`` is
    the peer's description, ``local_sdp`` ours."""

    call_id: str
    sdp: bytes
    local_sdp: bytes = b""
    remote_offered: bool = True


@dataclass(frozen=True, slots=True)
class HoldChanged:
    """The peer put us on hold (sendonly/inactive/0.0.0.0, RFC 3264 §8.4) or took us off."""

    call_id: str
    on_hold: bool


@dataclass(frozen=True, slots=True)
class ReinviteRefused:
    """The peer refused our re-INVITE with a final error (RFC 3261 §14.1): the session stays
    as it was before that offer. Not for 491 (retried after a while, §14.2) nor 408/481
    (the dialog is gone: the call ends)."""

    call_id: str
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    """A digit from SIP INFO (application/dtmf-relay or application/dtmf)."""

    call_id: str
    digit: str
    duration_ms: int


@dataclass(frozen=True, slots=True)
class ReferReceived:
    """The peer asks us to transfer (RFC 3515). The owner must answer it: accept
    (``answer_refer(202)``, then report with NOTIFY) or refuse (``answer_refer(403)``)."""

    call_id: str
    refer_to: str
    referred_by: str | None


@dataclass(frozen=True, slots=True)
class ReferProgress:
    """NOTIFY sipfrag for the REFER we sent: ``status`` of the transfer target's leg.
    ``status`` 0 with ``final`` means our REFER itself was refused (``reason`` says why)."""

    call_id: str
    status: int
    reason: str
    final: bool


@dataclass(frozen=True, slots=True)
class CallEnded:
    call_id: str
    reason: EndReason
    status: int | None = None


CallEvent = (
    CallOffered
    | CallRefused
    | CallRinging
    | CallAnswered
    | RemoteSdpChanged
    | HoldChanged
    | ReinviteRefused
    | DtmfReceived
    | ReferReceived
    | ReferProgress
    | CallEnded
)


class NoticeKind(enum.StrEnum):
    """What a :class:`SecurityNotice` reports (the security log's kind names)."""

    AUTH_FAILURE = "auth-failure"  # a wrong digest
    RATE_LIMITED = "rate-limited"  # a source over a rate or a call cap
    BLOCKED_SOURCE = "blocked-source"  # a source blocked for a while (rates, digest failures)
    REFUSED_REQUEST = "refused-request"  # a request refused by policy (a stranger, a slow sender)
    OVERSIZED_MESSAGE = "oversized-message"  # over a size, header or Via bound: dropped unparsed
    CONNECTION_CAP = "connection-cap"  # a TCP/TLS connection refused at a cap, or cut off


@dataclass(frozen=True, slots=True)
class SecurityNotice:
    """Something the SIP stack refused or caught, from ``source``. ``detail`` quotes no secret
    (never a password or a digest response) and stays short."""

    kind: NoticeKind
    source: Peer
    detail: str
    call_id: str | None = None
