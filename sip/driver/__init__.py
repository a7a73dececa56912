"""The asyncio driver of the SIP stack: the only part of :mod:`sip` that does I/O.

Why this package exists: everything else in :mod:`sip` is sans-IO (bytes, an address and
``now`` in; sends, events and a next deadline out) and imports no asyncio. The driver owns
what that core cannot: the sockets (:mod:`sip.driver.transport`, RFC 3261 section 18), the
one timer armed for the core's next deadline and the calls handed to their owners
(:mod:`sip.driver.endpoint`), and the task that keeps trunks registered
(:mod:`sip.driver.registration_runner`, section 10.2). Import from here::

    from sip.driver import SipEndpoint, start_sip
"""

from sip.driver.endpoint import (
    Answer,
    CallHandler,
    Decision,
    DefaultHandler,
    Reject,
    SipCall,
    SipEndpoint,
    start_sip,
)
from sip.driver.registration_runner import RequestSender, register_once, run_registration
from sip.driver.transport import Transports

__all__ = [
    "Answer",
    "CallHandler",
    "Decision",
    "DefaultHandler",
    "Reject",
    "RequestSender",
    "SipCall",
    "SipEndpoint",
    "Transports",
    "register_once",
    "run_registration",
    "start_sip",
]
