"""Which asyncio event loop a process runs on: ``[server] event_loop``.

uvloop (libuv, installed with ``uvicorn[standard]``) does the loop's own work (readiness,
callbacks, UDP receive and send) in C: per datagram it costs a fraction of the default loop's
Python (issue 17 measured the bare UDP relay of ``rtbridge bench sip`` at a third). ``auto``
takes it when it imports, else the default loop; ``uvloop`` insists (the process refuses to
start without it); ``asyncio``, the default, keeps the standard library's loop.

Why not uvloop by default: it does not pay. uvloop's own UDP transport read up to 32 datagrams
per socket before anything else ran, so at 100 transcoding calls on an overloaded machine it
starved the frame ticker (272-550 of 1,000 ticks, RTP out 0.38-0.65 of what was due); RTP now
bypasses transports (:mod:`bridge.calls.rtp_endpoint` reads one datagram per readiness on
either loop) and uvloop keeps every tick, but then its CPU per call is the standard loop's
(``rtbridge bench sip --calls 100``: pass-through 0.504 vs 0.491% of a core per call,
transcoding 0.719 vs 0.743). ``auto`` or ``uvloop`` remain a choice.
``rtbridge serve``, its supervisor and workers, and the SIP benchmark's rtbridge process all
start their loop here.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

from bridge.errors import ConfigError

__all__ = ["EventLoopChoice", "loop_factory", "loop_name", "run"]

EventLoopChoice = Literal["auto", "uvloop", "asyncio"]
T = TypeVar("T")


def loop_factory(choice: EventLoopChoice) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes the loop ``choice`` asks for; ConfigError if ``uvloop`` is not installed."""
    if choice == "asyncio":
        return asyncio.new_event_loop
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError as exc:
        if choice == "uvloop":
            raise ConfigError(
                'server.event_loop = "uvloop" but uvloop is not installed '
                '(pip install uvloop, or event_loop = "auto")'
            ) from exc
        return asyncio.new_event_loop
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: what a running loop is (banners, benchmark reports)."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def run(main: Coroutine[Any, Any, T], choice: EventLoopChoice) -> T:
    """``asyncio.run(main)`` on the loop ``choice`` asks for."""
    try:
        factory = loop_factory(choice)
    except ConfigError:
        main.close()  # never started: no "never awaited" warning
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
