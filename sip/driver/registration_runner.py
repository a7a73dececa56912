"""Keeping a trunk registered over asyncio: the runner around the sans-IO REGISTER machine.

Why this module exists: :class:`sip.registration.Registration` (RFC 3261 section 10.2) only says
what to send and when; something must send its requests in client transactions, feed back the
final responses and sleep until its next deadline. That is asyncio work, so it lives in the
driver. :func:`register_once` registers and returns; :func:`run_registration` keeps the binding
refreshed (section 10.2.4) until told to stop, then removes it (section 10.2.2, ``Expires: 0``).
Both need only a :class:`RequestSender`: a coroutine that runs one request in a non-INVITE
client transaction (section 17.1.2) and returns its final response.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from sip.message import Request, Response
from sip.registration import (
    Registered,
    Registration,
    RegistrationError,
    RegistrationEvent,
    RegistrationFailed,
    State,
)

__all__ = ["RequestSender", "register_once", "run_registration"]


class RequestSender(Protocol):
    """Sends one request in a non-INVITE client transaction (RFC 3261 section 17.1.2) and
    returns its final response, or ``None`` on timeout (timer F) or transport error."""

    def __call__(self, request: Request, /) -> Awaitable[Response | None]: ...


async def _pump(
    reg: Registration,
    send: RequestSender,
    clock: Callable[[], float],
    on_event: Callable[[RegistrationEvent], None] | None,
) -> None:
    while outputs := reg.drain():
        for output in outputs:
            if isinstance(output, Request):
                try:
                    response = await send(output)
                except OSError:
                    response = None
                if response is None:
                    reg.transaction_failed(clock())
                else:
                    reg.receive_response(response, clock())
            elif on_event is not None:
                on_event(output)


async def register_once(
    reg: Registration,
    send: RequestSender,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> Registered:
    """Register and return when the registrar has accepted (or raise :class:`RegistrationError`).

    The first failure raises, retryable or not; the machine is left in its state (``FAILED``
    or ``RETRY_WAIT``) so a caller can keep running it with :func:`run_registration`.
    """
    events: list[RegistrationEvent] = []
    reg.start(clock())
    await _pump(reg, send, clock, events.append)
    for event in events:
        if isinstance(event, Registered):
            return event
        if isinstance(event, RegistrationFailed):
            raise event.error
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
) -> None:
    """Keep ``reg`` registered until ``stop`` is set, then unregister and return.

    For the driver: call it in a task of the task group that owns the SIP transport, with
    ``send`` running a client transaction. A permanent failure (wrong credentials, 403)
    raises :class:`RegistrationError`; transient ones are retried with backoff.
    """
    reg.start(clock())
    while True:
        await _pump(reg, send, clock, on_event)
        if reg.state is State.FAILED and reg.error is not None:
            raise reg.error
        if stop.is_set():
            if _idle(reg):
                return
            reg.stop(clock())
            await _pump(reg, send, clock, on_event)
            if _idle(reg):
                return
        deadline = reg.next_deadline()
        timeout = None if deadline is None else max(0.0, deadline - clock())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout)
        reg.tick(clock())


def _idle(reg: Registration) -> bool:
    return reg.state is State.IDLE
