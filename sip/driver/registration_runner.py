"""Keeping a trunk registered over asyncio: the runner around the sans-IO REGISTER machine.

Why this module exists: :class:`sip.registration.Registration` (RFC 3261 section 10.2) only says
what to send and when; something must send its requests in client transactions, feed back the
final responses and sleep until its next deadline. That is asyncio work, so it lives in the
driver. :func:`register_once` registers and returns; :func:`run_registration` keeps the binding
refreshed (section 10.2.4) until told to stop, then removes it (section 10.2.2, ``Expires: 0``).
Both need only a :class:`RequestSender`: a coroutine that runs one request in a non-INVITE
client transaction (section 17.1.2) and returns its final response. A trunk with several
servers also gives ``failover``: after a REGISTER went unanswered or got 503, whether another
server is left to try, in which case the machine's next REGISTER goes at once (RFC 3263 §4.3,
:mod:`sip.driver.trunk_targets`) instead of after its back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from sip.driver.trunk_targets import answered
from sip.errors import SipError
from sip.message import Request, Response
from sip.registration import (
    Registered,
    Registration,
    RegistrationError,
    RegistrationEvent,
    RegistrationFailed,
    State,
)

__all__ = ["Failover", "RequestSender", "register_once", "run_registration"]


class RequestSender(Protocol):
    """Sends one request in a non-INVITE client transaction (RFC 3261 section 17.1.2) and
    returns its final response, or ``None`` on timeout (timer F) or transport error."""

    def __call__(self, request: Request, /) -> Awaitable[Response | None]: ...


#: a trunk's "is another server left to try?" (see the module docstring)
Failover = Callable[[], bool]


async def _pump(
    reg: Registration,
    send: RequestSender,
    clock: Callable[[], float],
    on_event: Callable[[RegistrationEvent], None] | None,
    failover: Failover | None,
) -> None:
    while outputs := reg.drain():
        for output in outputs:
            if isinstance(output, Request):
                reason = "timeout"
                try:
                    response = await send(output)
                except (OSError, SipError) as exc:  # SipError: the trunk's name does not resolve
                    response, reason = None, str(exc)
                if response is None:
                    reg.transaction_failed(clock(), reason)
                else:
                    reg.receive_response(response, clock())
                if not answered(response) and failover is not None and failover():
                    reg.retry_now(clock())
            elif on_event is not None:
                on_event(output)


async def register_once(
    reg: Registration,
    send: RequestSender,
    *,
    clock: Callable[[], float] = time.monotonic,
    failover: Failover | None = None,
) -> Registered:
    """Register and return when the registrar has accepted (or raise :class:`RegistrationError`).

    The first failure raises, retryable or not, unless ``failover`` has another server take
    the REGISTER; the machine is left in its state (``FAILED`` or ``RETRY_WAIT``) so a caller
    can keep running it with :func:`run_registration`.
    """
    events: list[RegistrationEvent] = []
    reg.start(clock())
    while True:
        await _pump(reg, send, clock, events.append, failover)
        due = reg.next_deadline()
        if reg.state is not State.RETRY_WAIT or due is None or due > clock():
            break
        reg.tick(clock())  # failed over: the next server, now
    failures: list[RegistrationFailed] = []
    for event in events:
        if isinstance(event, Registered):
            return event
        if isinstance(event, RegistrationFailed):
            failures.append(event)
    if failures:
        raise failures[-1].error
    raise RegistrationError(
        f"REGISTER ended in state {reg.state.value}", status=None, retryable=True
    )


async def run_registration(
    reg: Registration,
    send: RequestSender,
    stop: asyncio.Event,
    *,
    clock: Callable[[], float] = time.monotonic,
    on_event: Callable[[RegistrationEvent], None] | None = None,
    failover: Failover | None = None,
) -> None:
    """Keep ``reg`` registered until ``stop`` is set, then unregister and return.

    For the driver: call it in a task of the task group that owns the SIP transport, with
    ``send`` running a client transaction. A permanent failure (wrong credentials, 403)
    raises :class:`RegistrationError`; transient ones are retried with backoff.
    """
    reg.start(clock())
    while True:
        await _pump(reg, send, clock, on_event, failover)
        if reg.state is State.FAILED and reg.error is not None:
            raise reg.error
        if stop.is_set():
            if _idle(reg):
                return
            reg.stop(clock())
            await _pump(reg, send, clock, on_event, failover)
            if _idle(reg):
                return
        deadline = reg.next_deadline()
        timeout = None if deadline is None else max(0.0, deadline - clock())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout)
        reg.tick(clock())


def _idle(reg: Registration) -> bool:
    return reg.state is State.IDLE
