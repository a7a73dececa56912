"""SIP signalling for rtbridge: a sans-IO RFC 3261 core and a thin asyncio driver.

Layers, bottom up (each module's docstring names the RFC sections it implements):

- :mod:`sip.uri`, :mod:`sip.headers`, :mod:`sip.message`: typed wire values (parse/serialise).
- :mod:`sip.transaction`: RFC 3261 §17 + RFC 6026 transaction machines and their layer.
- :mod:`sip.dialog`, :mod:`sip.call`, :mod:`sip.midcall`: dialogs, the INVITE usage and
  mid-call requests (re-INVITE, INFO, REFER/NOTIFY).
- :mod:`sip.ua`: :class:`SipCore`, the sans-IO user agent (bytes + address + ``now`` in;
  sends, call events and a next deadline out).
- :mod:`sip.transport`, :mod:`sip.driver`: asyncio sockets and :func:`start_sip`.
- :mod:`sip.sdp`, :mod:`sip.auth`, :mod:`sip.registration`: SDP offer/answer, digest
  authentication, REGISTER.

This package imports nothing from ``bridge``; ``bridge.config`` embeds :class:`SipSettings`.
"""

from sip.driver import (
    Answer,
    CallHandler,
    DefaultHandler,
    Reject,
    SipCall,
    SipEndpoint,
    start_sip,
)
from sip.errors import SipError, SipParseError, SipStateError, SipTransportError
from sip.events import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallOffered,
    CallRinging,
    DtmfReceived,
    EndReason,
    HoldChanged,
    ReferProgress,
    ReferReceived,
    RemoteSdpChanged,
)
from sip.message import Request, Response, StreamFramer, parse_message
from sip.settings import SipSettings, SipTimers, TrunkSettings
from sip.transaction import Peer
from sip.ua import CoreConfig, SipCore
from sip.uri import SipUri

__all__ = [
    "Answer",
    "CallAnswered",
    "CallEnded",
    "CallEvent",
    "CallHandler",
    "CallOffered",
    "CallRinging",
    "CoreConfig",
    "DefaultHandler",
    "DtmfReceived",
    "EndReason",
    "HoldChanged",
    "Peer",
    "ReferProgress",
    "ReferReceived",
    "Reject",
    "RemoteSdpChanged",
    "Request",
    "Response",
    "SipCall",
    "SipCore",
    "SipEndpoint",
    "SipError",
    "SipParseError",
    "SipSettings",
    "SipStateError",
    "SipTimers",
    "SipTransportError",
    "SipUri",
    "StreamFramer",
    "TrunkSettings",
    "parse_message",
    "start_sip",
]
