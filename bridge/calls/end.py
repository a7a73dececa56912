"""Why a call ended: one closed set of reasons, recorded in the call records and shown by the
control plane, the dashboard and ``call.ended`` events.

Every place that ends a call names one of these; nothing is chosen by matching text. The
SIP core has its own, narrower :class:`sip.events.EndReason` (what happened to the dialog);
:meth:`EndReason.from_sip` maps it onto this set.
"""

from __future__ import annotations

import enum

from sip.events import EndReason as SipEndReason

__all__ = ["UPSTREAM_FAILURES", "EndReason"]


class EndReason(enum.StrEnum):
    # -- the caller or the far end ---------------------------------------------------------
    REMOTE_BYE = "remote-bye"
    CANCELLED = "cancelled"  # the caller gave up before the answer (CANCEL)
    TRANSFERRED = "transferred"  # our REFER succeeded: the caller talks to someone else now
    # -- rtbridge, on request ----------------------------------------------------------------
    LOCAL_HANGUP = "local-hangup"
    API_HANGUP = "api-hangup"
    AGENT_END_CALL = "agent-end-call"
    DTMF_HANGUP = "dtmf-hangup"
    SHUTDOWN = "shutdown"
    DRAIN_TIMEOUT = "drain-timeout"
    # -- limits and watchdogs --------------------------------------------------------------
    MAX_DURATION = "max-duration"
    HOLD_TIMEOUT = "hold-timeout"  # on hold longer than calls.max_hold_s
    RTP_TIMEOUT = "rtp-timeout"
    MEDIA_TIMEOUT = "media-timeout"  # browser calls: no caller audio
    ICE_TIMEOUT = "ice-timeout"
    # -- the agent ---------------------------------------------------------------------------
    UPSTREAM_LOST = "upstream-lost"
    UPSTREAM_STALLED = "upstream-stalled"  # call control's outbox filled: the agent stopped reading
    # -- the legs' transports --------------------------------------------------------------
    ICE_FAILED = "ice-failed"
    PEER_CLOSED = "peer-closed"
    DATACHANNEL_CLOSED = "datachannel-closed"
    ACK_TIMEOUT = "ack-timeout"
    SESSION_EXPIRED = "session-expired"  # RFC 4028: no session refresh in time; we sent BYE
    TRANSPORT_ERROR = "transport-error"
    TIMEOUT = "timeout"
    # -- set-up that did not become a call --------------------------------------------------
    DRAINING = "draining"
    MAX_CALLS = "max-calls"
    BAD_SDP = "bad-sdp"
    BAD_OFFER = "bad-offer"
    BAD_ANSWER = "bad-answer"
    NO_RTP_PORTS = "no-rtp-ports"
    NO_COMMON_CODEC = "no-common-codec"
    REJECTED = "rejected"
    UPSTREAM_UNAVAILABLE = "upstream-unavailable"
    UPSTREAM_FORMAT = "upstream-format"
    SETUP_CANCELLED = "setup-cancelled"
    # outbound outcomes
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    FAILED = "failed"
    # -- rtbridge itself ---------------------------------------------------------------------
    INTERNAL_ERROR = "internal-error"  # a bug: one of the call's tasks raised
    INTERRUPTED = "interrupted"  # the process that owned the call died (closed at start-up)

    @classmethod
    def from_sip(cls, reason: SipEndReason) -> EndReason:
        """The SIP core's view of a dialog that ended, as a call's end reason."""
        return _FROM_SIP[reason]


#: The ends that count as upstream errors (``rtbridge_upstream_errors``, the fleet view).
UPSTREAM_FAILURES = frozenset({EndReason.UPSTREAM_LOST, EndReason.UPSTREAM_UNAVAILABLE})

_FROM_SIP: dict[SipEndReason, EndReason] = {
    SipEndReason.LOCAL_BYE: EndReason.LOCAL_HANGUP,
    SipEndReason.REMOTE_BYE: EndReason.REMOTE_BYE,
    SipEndReason.REJECTED: EndReason.REJECTED,
    SipEndReason.CANCELLED: EndReason.CANCELLED,
    SipEndReason.LOCAL_CANCEL: EndReason.LOCAL_HANGUP,
    SipEndReason.FAILED: EndReason.FAILED,
    SipEndReason.TIMEOUT: EndReason.TIMEOUT,
    SipEndReason.ACK_TIMEOUT: EndReason.ACK_TIMEOUT,
    SipEndReason.TRANSPORT_ERROR: EndReason.TRANSPORT_ERROR,
    SipEndReason.SESSION_EXPIRED: EndReason.SESSION_EXPIRED,
    SipEndReason.NO_ANSWER: EndReason.NO_ANSWER,
}
