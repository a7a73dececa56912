"""SIP signalling for rtbridge: a sans-IO RFC 3261 core and a thin asyncio driver.

Layers, bottom up (each module's docstring names the RFC sections it implements):

- :mod:`sip.uri`, :mod:`sip.headers`, :mod:`sip.message`: typed wire values (parse/serialise).
- :mod:`sip.transaction`: RFC 3261 §17 + RFC 6026 transaction machines and their layer.
- :mod:`sip.dialog`, :mod:`sip.call`, :mod:`sip.midcall`: dialogs, the INVITE usage and
  mid-call requests (re-INVITE, INFO, REFER/NOTIFY).
- :mod:`sip.ua`: :class:`SipCore`, the sans-IO user agent (bytes + address + ``now`` in;
  sends, call events and a next deadline out).
- :mod:`sip.sdp`, :mod:`sip.offer_answer`: SDP values (RFC 8866) and the offer/answer rules
  we use (RFC 3264).
- :mod:`sip.auth`, :mod:`sip.registration`: digest authentication, REGISTER.
- :mod:`sip.policy`, :mod:`sip.sanity`, :mod:`sip.ratelimit`: who may call, the bounds a
  message must pass before it is parsed (and stateless answers), per-source rates and blocks:
  what keeps a port on the open Internet cheap to attack (issue 12).
- :mod:`sip.driver`: the asyncio driver (sockets, the timer, calls for their owners,
  registration runs). It is the only subpackage that imports asyncio, and this package does
  not import it: ``from sip.driver import SipEndpoint, start_sip``.

This package imports nothing from ``bridge``; ``bridge.config`` embeds :class:`SipSettings`.
"""

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
    ReinviteRefused,
    RemoteSdpChanged,
)
from sip.message import Request, Response, StreamFramer, parse_message
from sip.settings import SipSettings, SipTimers, TrunkSettings
from sip.transaction import Peer
from sip.ua import CoreConfig, SipCore
from sip.uri import SipUri

__all__ = [
    "CallAnswered",
    "CallEnded",
    "CallEvent",
    "CallOffered",
    "CallRinging",
    "CoreConfig",
    "DtmfReceived",
    "EndReason",
    "HoldChanged",
    "Peer",
    "ReferProgress",
    "ReferReceived",
    "ReinviteRefused",
    "RemoteSdpChanged",
    "Request",
    "Response",
    "SipCore",
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
]
