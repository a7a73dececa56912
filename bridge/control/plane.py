"""The control plane's per-process state, owned by the app's lifespan.

:class:`ControlPlane` hooks the webhook offer into the call manager, feeds the metrics from
the lifecycle stream, and runs the graceful drain: on SIGTERM ``/readyz`` turns 503, SIP
OPTIONS and new INVITEs get 503 with ``Retry-After``, new browser calls and originates 503;
live calls may finish for ``calls.drain_timeout_s``, then end (``reason=drain-timeout``) with
their records written; then the process may exit.

With ``cluster.redis_url`` the plane is also this process's membership of the cluster
(:class:`bridge.cluster.registry.Registry`, ``plane.cluster``): its live calls are published
there, and commands from other nodes for them run here (:func:`bridge.control.actions.run_command`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Mapping
from typing import Any

from bridge.calls.end import EndReason
from bridge.calls.manager import CallManager
from bridge.calls.sip_leg import SipLeg
from bridge.cluster.commands import Command
from bridge.cluster.registry import Registry
from bridge.config import Settings
from bridge.control.actions import pending_view, run_command
from bridge.control.metrics import Metrics
from bridge.control.webhooks import IncomingCalls
from bridge.records import CallStore, RecordsUnavailable
from bridge.tasks import cancel_and_wait
from sip.keepalive import TrunkHealth

__all__ = ["ControlPlane"]

log = logging.getLogger(__name__)


class ControlPlane:
    def __init__(
        self,
        settings: Settings,
        manager: CallManager,
        store: CallStore,
        *,
        sip_leg: SipLeg | None = None,
    ) -> None:
        self.settings = settings
        self.manager = manager
        self.sip_leg = sip_leg
        self.store = store
        self.incoming = IncomingCalls(
            settings,
            environ=manager.environ,
            log_event=store.log_event,
            clock=manager.clock,
        )
        self.metrics = Metrics(
            manager, webhooks=self.incoming, security=manager.security, trunks=self.trunk_health
        )
        self.draining = False
        self.closing = asyncio.Event()  # event streams end when set
        #: this node's name in the cluster (and in the views of its calls)
        self.node_name = settings.cluster.node_name or socket.gethostname()
        self.cluster: Registry | None = None
        self._watch: asyncio.Task[None] | None = None
        self._drain: asyncio.Task[None] | None = None

    def trunk_health(self) -> Mapping[str, TrunkHealth]:
        """The SIP trunks' keepalive states (none without SIP or keepalives)."""
        endpoint = self.sip_leg.endpoint if self.sip_leg is not None else None
        return endpoint.trunk_health if endpoint is not None else {}

    async def __aenter__(self) -> ControlPlane:
        if self.sip_leg is not None and self.sip_leg.incoming is None:
            self.sip_leg.incoming = self.incoming
        sub = self.manager.lifecycle.subscribe(maxsize=100_000)
        if self.settings.cluster.redis_url:
            registry = Registry(
                self.settings.cluster,
                node=self.node_name,
                url=self._control_url(),
                calls=self._summaries,
                store=self.store,
                handler=self._command,
            )
            self.cluster = await registry.__aenter__()
            self.incoming.on_pending = self.cluster.publish

        async def watch() -> None:
            try:
                async for event in sub:
                    self.metrics.on_lifecycle(event)
                    if self.cluster is not None:
                        self.cluster.changed()
            finally:
                sub.close()

        self._watch = asyncio.create_task(watch(), name="control lifecycle")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.closing.set()
        if self.sip_leg is not None and self.sip_leg.incoming is self.incoming:
            self.sip_leg.incoming = None
        await self.incoming.aclose()
        try:
            await cancel_and_wait(self._watch, self._drain, expected=(Exception,))
        finally:  # the node leaves the cluster even if this stop is cancelled
            if self.cluster is not None:
                cluster, self.cluster = self.cluster, None
                await cluster.__aexit__(None, None, None)

    # -- the cluster ------------------------------------------------------------------------

    def _control_url(self) -> str:
        c, srv = self.settings.cluster, self.settings.server
        if c.control_url:
            return c.control_url
        scheme = "https" if srv.tls_cert is not None else "http"
        return f"{scheme}://{c.advertise_host or srv.host}:{srv.http_port}"

    def has_call(self, call_id: str) -> bool:
        """Whether this process has the call (live or ringing)."""
        return call_id in self.manager.calls or call_id in self.incoming.pending

    def _summaries(self) -> dict[str, dict[str, Any]]:
        """What the registry publishes of this node's calls: the dashboard's row of each live
        call, and the ringing ones waiting for a decision (``ringing``)."""
        from bridge.dashboard.views import live_view  # the dashboard imports the plane

        out = {cid: live_view(c) for cid, c in self.manager.calls.items() if not c.ended}
        for cid, p in self.incoming.pending.items():
            out[cid] = {**pending_view(p, None), "state": "offered", "ringing": True}
        return out

    async def _command(self, cmd: Command) -> dict[str, Any]:
        return await run_command(self, cmd)

    # -- drain ----------------------------------------------------------------------------

    def start_drain(self) -> asyncio.Task[None]:
        """Begin draining (idempotent); the task finishes when no call is left."""
        if self._drain is None:
            self._drain = asyncio.create_task(self.drain(), name="drain")
        return self._drain

    async def drain(self, limit_s: float | None = None) -> None:
        limit = self.settings.calls.drain_timeout_s if limit_s is None else limit_s
        self.draining = True
        self.manager.draining = True
        sip = self.sip_leg.endpoint if self.sip_leg is not None else None
        if sip is not None:
            sip.drain(retry_after=self.settings.calls.retry_after_s)
        n = len(self.manager.calls)
        log.info("draining: %d live call(s), up to %.0f s", n, limit)
        try:
            await asyncio.wait_for(self.manager.wait_idle(), limit)
        except TimeoutError:
            n = self.manager.end_all(EndReason.DRAIN_TIMEOUT)
            log.warning("drain limit reached: ending %d call(s) and set-ups", n)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.manager.wait_idle(), 10.0)
        try:
            await asyncio.to_thread(self.store.flush)
        except (RecordsUnavailable, TimeoutError) as exc:  # the store says what it could not write
            log.error("drained, but the call records are not all written: %s", exc)
        self.closing.set()
        log.info("drained")

    def status(self) -> dict[str, Any]:
        return {
            "draining": self.draining,
            "active_calls": len(self.manager.calls),
            "pending_calls": len(self.incoming.pending),
        }
