"""The call manager: one owner for every call of the process, whatever its leg.

The manager keeps what both legs share, as public methods: admission (draining, ``max_calls``),
call ids, RTP ports, media addresses (an SDP hostname resolved once, asynchronously, with a
timeout: never on the media path), the shared frame ticker, the records store, the lifecycle
stream
(``call.offered`` / ``call.answered`` / ``call.ended`` for dashboards and ``GET /v1/events``)
and ownership. It is an ``async with`` scope over one :class:`asyncio.TaskGroup`: every call
(:meth:`own`) and every set-up task (:meth:`spawn`) runs in it, supervised, so one call's
failure is that call's end and never another's. Leaving the scope ends every call
(``shutdown``) and waits until each has released its resources and written its record.

The legs set calls up and hand them over with :meth:`CallManager.own`:
:mod:`bridge.calls.sip_leg` (inbound INVITEs, originate) and :mod:`bridge.webrtc.leg`
(``POST /v1/realtime/calls``). The manager knows nothing of SIP or WebRTC.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import socket
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from bridge.calls.end import EndReason
from bridge.calls.live import LiveCall
from bridge.calls.observers import EventFanout
from bridge.calls.rtp_endpoint import PortAllocator, RtpEndpoint
from bridge.calls.scope import CallScope
from bridge.calls.ticker import FrameTicker
from bridge.config import Settings
from bridge.destinations.guard import Destinations
from bridge.errors import ConfigError, PortsExhausted
from bridge.recording.writer import RecordingWriter
from bridge.records import CallStore
from bridge.security import SecurityLog
from media.clock import Clock, SystemClock

__all__ = ["CallManager", "SetupSlot"]

log = logging.getLogger(__name__)

#: How many attempts :meth:`CallManager.open_endpoint` makes past ports held elsewhere.
BIND_ATTEMPTS = 8

#: Looks a hostname up: its addresses of one family (``socket.AF_INET`` or ``AF_INET6``).
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, family: int) -> list[str]:
    """The system's resolver, in the loop's executor (never on the loop itself)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, None, family=family, type=socket.SOCK_DGRAM
    )
    return [str(info[4][0]) for info in infos]


class SetupSlot:
    """See :meth:`CallManager.setup_slot`; released once, when its ``with`` block ends."""

    __slots__ = ("_manager",)

    def __init__(self, manager: CallManager) -> None:
        self._manager: CallManager | None = manager

    def __enter__(self) -> SetupSlot:
        return self

    def __exit__(self, *exc: object) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            manager._slot_released()


class CallManager:
    def __init__(
        self,
        settings: Settings,
        store: CallStore,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        security: SecurityLog | None = None,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.settings = settings
        self.resolver = resolver
        self.store = store
        self.environ = environ
        self.clock = clock or SystemClock()
        self.security = security or SecurityLog(clock=self.clock)
        #: where calls may go: every dial and transfer is checked here (toll fraud)
        self.destinations = Destinations(self.security)
        c = settings.calls
        self.ports = PortAllocator(c.rtp_port_min, c.rtp_port_max)
        #: the address RTP sockets bind: ``calls.rtp_host``, a name resolved once at start
        self.rtp_bind = c.rtp_host
        self.ticker = FrameTicker(clock=self.clock)
        #: the calls' recording files (its thread starts with the first recording)
        self.recordings = RecordingWriter(settings.recordings_path)
        self._calls: dict[str, CallScope] = {}
        self.draining = False
        #: call lifecycle for dashboards and ``GET /v1/events``: ``call.offered``,
        #: ``call.answered``, ``call.ended`` with the call's id and parties.
        self.lifecycle = EventFanout()
        self._setting_up = 0
        #: calls still being set up that a hang-up may stop (outbound ringing), by id
        self._cancellers: dict[str, Callable[[EndReason], None]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._group: asyncio.TaskGroup | None = None

    # -- lifetime ------------------------------------------------------------------------

    async def __aenter__(self) -> CallManager:
        self.rtp_bind = await _bind_address(self.settings.calls.rtp_host)
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self.ticker.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self, reason: EndReason = EndReason.SHUTDOWN) -> None:
        """End every call and set-up with ``reason`` and wait until all are released."""
        self.draining = True
        self.end_all(reason)
        group, self._group = self._group, None
        if group is not None:
            await group.__aexit__(None, None, None)
        await self.ticker.stop()
        await asyncio.to_thread(self.recordings.stop)

    def end_all(self, reason: EndReason) -> int:
        """End every live call and stop every call being set up, with ``reason``; how many."""
        cancels, calls = list(self._cancellers.values()), list(self._calls.values())
        for cancel in cancels:
            cancel(reason)
        for call in calls:
            call.end(reason)
        return len(cancels) + len(calls)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run a set-up task in the manager's scope; a crash is logged, never spread."""
        if self._group is None:
            coro.close()
            raise RuntimeError("the call manager is not running")
        self._group.create_task(self._supervised(coro, name), name=name)

    @staticmethod
    async def _supervised(coro: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await coro
        except Exception:
            log.exception("%s failed", name)

    # -- what both legs use -----------------------------------------------------------------

    @property
    def calls(self) -> Mapping[str, LiveCall]:
        """The live calls, as the control plane sees them."""
        return self._calls

    def admission(self) -> EndReason | None:
        """Why a new call cannot be taken now (None: it can)."""
        if self.draining:
            return EndReason.DRAINING
        if len(self._calls) + self._setting_up >= self.settings.calls.max_calls:
            return EndReason.MAX_CALLS
        return None

    @staticmethod
    def new_id() -> str:
        return "call_" + secrets.token_hex(10)

    def setup_slot(self) -> SetupSlot:
        """A call being set up takes a slot at once (admission counts it; the manager is not
        idle) until the slot's ``with`` block ends."""
        self._setting_up += 1
        self._idle.clear()
        return SetupSlot(self)

    def _slot_released(self) -> None:
        self._setting_up -= 1
        self._check_idle()

    def cancellable(self, call_id: str, cancel: Callable[[EndReason], None]) -> None:
        """Let :meth:`hangup` stop a call still being set up (until :meth:`own` or
        :meth:`set_up_done`)."""
        self._cancellers[call_id] = cancel

    def set_up_done(self, call_id: str) -> None:
        self._cancellers.pop(call_id, None)

    def publish(self, kind: str, call_id: str, **data: object) -> None:
        """A lifecycle event (``call.offered``, ``call.answered``, ``call.ended``)."""
        self.lifecycle.publish({"type": kind, "call_id": call_id, "at": self.clock.wall(), **data})

    async def open_endpoint(self) -> RtpEndpoint:
        """Bind an RTP/RTCP port pair. A pair held by another process is skipped (it returns
        to the pool) and the next one is tried. Raises :class:`PortsExhausted`."""
        last: OSError | None = None
        for _ in range(max(1, min(BIND_ATTEMPTS, self.ports.capacity))):
            port = self.ports.acquire()
            c = self.settings.calls
            endpoint = RtpEndpoint(
                self.rtp_bind, port, on_rtp=lambda _p: None, probation=c.rtp_probation_packets
            )
            try:
                await endpoint.open()
            except OSError as exc:
                last = exc
                self.ports.release(port)
                log.warning("RTP port %d cannot be bound (%s); trying the next pair", port, exc)
                continue
            return endpoint
        raise PortsExhausted(f"no RTP port pair could be bound: {last}")

    async def media_address(self, host: str) -> str | None:
        """The IP address to send a call's media to, for the address an SDP names: an IP
        literal as it is; a hostname looked up once (``calls.sdp_hostnames = "resolve"``,
        within ``sdp_resolve_timeout_s``). None: refused by setting, or it did not resolve."""
        try:
            ipaddress.ip_address(host)
            return host
        except ValueError:
            pass
        c = self.settings.calls
        if c.sdp_hostnames == "refuse":
            return None
        try:
            family = ipaddress.ip_address(self.rtp_bind).version
        except ValueError:
            family = 4
        try:
            async with asyncio.timeout(c.sdp_resolve_timeout_s):
                found = await self.resolver(
                    host, socket.AF_INET6 if family == 6 else socket.AF_INET
                )
        except (TimeoutError, OSError) as exc:
            log.info("SDP host %r does not resolve: %s", host[:100], exc or "timeout")
            return None
        return found[0] if found else None

    def close_endpoint(self, endpoint: RtpEndpoint) -> None:
        endpoint.close()
        self.ports.release(endpoint.port)

    @property
    def advertise(self) -> str:
        c = self.settings.calls
        return c.rtp_advertise or self.rtp_bind

    def own(self, call: CallScope, *, endpoint: RtpEndpoint | None = None) -> None:
        """Own a call that is set up: it is listed in ``calls``, ended by :meth:`hangup` and
        :meth:`close`, and run in the manager's scope; when it has released everything, its
        RTP ports (if any) return to the pool and ``call.ended`` is published."""
        if self._group is None:
            raise RuntimeError("the call manager is not running")
        self._cancellers.pop(call.id, None)
        self._calls[call.id] = call
        self._idle.clear()
        self._group.create_task(self._run(call, endpoint), name=f"call {call.id}")

    async def _run(self, call: CallScope, endpoint: RtpEndpoint | None) -> None:
        try:
            await call.run()
        except Exception:  # run() never raises; a bug here must still not spread
            log.exception("call %s: its scope failed", call.id)
        finally:
            if endpoint is not None:
                self.ports.release(endpoint.port)
            self._calls.pop(call.id, None)
            info = call.info
            self.publish("call.ended", call.id, reason=info.end_reason, sip_status=info.sip_status)
            self._check_idle()

    def hangup(self, call_id: str, reason: EndReason = EndReason.LOCAL_HANGUP) -> bool:
        """End a live call (BYE) or stop one being set up (CANCEL); False if there is none."""
        call = self._calls.get(call_id)
        if call is not None:
            call.end(reason)
            return True
        cancel = self._cancellers.get(call_id)
        if cancel is not None:
            cancel(reason)
            return True
        return False

    def _check_idle(self) -> None:
        if not self._calls and not self._setting_up:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


async def _bind_address(host: str) -> str:
    """``calls.rtp_host`` as an IP literal: a name is looked up once, here, not by the kernel
    at every call's bind (a resolver stall would stall call set-up). Raises ConfigError when
    it does not resolve."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError) as exc:
        raise ConfigError(f"calls.rtp_host {host!r} does not resolve: {exc}") from None
    sockaddr = found[0][4]
    address = str(sockaddr[0])
    if len(sockaddr) == 4 and sockaddr[3]:  # IPv6 link-local: keep its scope
        address = f"{address}%{sockaddr[3]}"
    log.info("calls.rtp_host %r is %s", host, address)
    return address
