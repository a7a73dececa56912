"""The SIP package's own error tree (RFC 3261 failures mapped to one place).

    SipError
    ├── SipParseError        a message (or part of one) is malformed; carries the 4xx status
    │                        and reason phrase to answer with when a response is possible
    ├── SipStateError        a state machine was asked to make a move its table does not allow;
    │                        names the machine, the state and the event
    ├── LocalProtocolError   we were about to send something that breaks SIP (a header value
    │                        with CR/LF: header injection); nothing is sent
    └── SipTransportError    a socket operation failed (RFC 3261 §18.4 transport errors)

``SipParseError`` is the only exception the parser and the transaction layer let escape on bad
input from the network; everything else is a bug.
"""

from __future__ import annotations

__all__ = [
    "LocalProtocolError",
    "SipError",
    "SipParseError",
    "SipStateError",
    "SipTransportError",
]


class SipError(Exception):
    """Base of every error the ``sip`` package raises on purpose."""


class SipParseError(SipError):
    """Input is not valid SIP. ``status``/``reason`` form the response to send when possible."""

    def __init__(self, message: str, *, status: int = 400, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason or _reason_from(message)


def _reason_from(message: str) -> str:
    # A reason phrase is a single line of visible text (RFC 3261 §25.1 Reason-Phrase).
    text = "".join(ch if 32 <= ord(ch) < 127 else " " for ch in message)
    return ("Bad Request (" + text[:80] + ")") if text else "Bad Request"


class SipStateError(SipError):
    """An illegal transition: ``machine`` in ``state`` cannot handle ``event``."""

    def __init__(self, machine: str, state: str, event: str) -> None:
        super().__init__(f"{machine}: event {event} is not allowed in state {state}")
        self.machine = machine
        self.state = state
        self.event = event


class LocalProtocolError(SipError):
    """A message we were handed to serialise would break the protocol (CR, LF or NUL in its
    start line or a header field): refused, never sent."""


class SipTransportError(SipError):
    """Sending or connecting failed; the transaction layer reports it to the TU (§17.1.4)."""
