"""``rtbridge serve``: the service process.

Starts, in one event loop: the local reference agent when no upstream is configured, the
HTTP/WebSocket app (relay, and later the control plane) under uvicorn, with TLS when given a
certificate, and SIP when a SIP port is set. It prints where it listens and where the server
key is, never the key itself. SIGTERM drains (:mod:`bridge.control.plane`) then exits; SIGINT
stops at once. A stop that has not finished :data:`STOP_LIMIT_S` after it began (something in
the shutdown waits for what never comes) logs what it still runs and exits with status 70: a
process told to stop always does (:class:`StopWatchdog`).

A worker of ``rtbridge serve --workers N`` (:mod:`bridge.cluster.worker`) runs the same
process on its own internal control port and on the public HTTP socket the supervisor
(:mod:`bridge.cluster.supervisor`) handed it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn

from bridge import event_loop
from bridge.apikeys import resolve_server_key
from bridge.app import create_app
from bridge.config import Settings
from bridge.errors import ConfigError
from bridge.http_server import LOCAL, ConnectionLimits, guarded_protocol
from bridge.logs import setup_logging

if TYPE_CHECKING:
    from bridge.cluster.plan import WorkerPlan

__all__ = ["serve"]

log = logging.getLogger("rtbridge")

#: how long the stop (after the drain) may take before the process exits regardless: above
#: the sum of its own steps' bounds (uvicorn 5 s, SIP 7, upstream closes 12, recordings 10,
#: the records store 10, leaving the cluster 20)
STOP_LIMIT_S = 90.0
#: what a drain may take beyond ``calls.drain_timeout_s`` (ending the calls left, the flush)
DRAIN_SLACK_S = 30.0


def serve(
    settings: Settings,
    *,
    ice_hosts: list[str] | None = None,
    worker: WorkerPlan | None = None,
    public_fd: int | None = None,
) -> int:
    """Run the service until it is stopped. ``worker``/``public_fd``: as a worker of a
    supervisor (its plan, and the public HTTP socket it inherited)."""
    setup_logging(settings.server.log_level, settings.server.log_json)
    watchdog = StopWatchdog()
    try:
        return event_loop.run(
            _serve(settings, ice_hosts or [], worker, public_fd, watchdog),
            settings.server.event_loop,
        )
    except KeyboardInterrupt:
        return 0
    except ConfigError as exc:  # the key file or the data directory cannot be trusted
        print(f"rtbridge: {exc}", file=sys.stderr)
        return 2
    finally:  # after the loop's own teardown (leftover tasks, the default executor)
        watchdog.stop()


async def _serve(
    settings: Settings,
    ice_hosts: list[str],
    worker: WorkerPlan | None,
    public_fd: int | None,
    watchdog: StopWatchdog,
) -> int:
    srv = settings.server
    server_key = resolve_server_key(srv.data_dir)
    sockets: list[socket.socket] | None = None
    host, port = srv.host, srv.http_port
    if worker is not None:
        host, port = worker.host, worker.http_port
        internal = socket.create_server((host, port))
        sockets = [internal]
        if public_fd is not None:
            sockets.append(socket.socket(fileno=public_fd))

    app = create_app(settings, server_key, runtime=True, sip_port=srv.sip_port)
    app.state.ice_hosts = ice_hosts
    # the app's lifespan (run by uvicorn) starts and stops the runtime
    config_kwargs: dict[str, Any] = {}
    if srv.tls_cert is not None and srv.tls_key is not None:
        config_kwargs.update(ssl_certfile=str(srv.tls_cert), ssl_keyfile=str(srv.tls_key))
    limits = ConnectionLimits(
        head_timeout_s=srv.http_head_timeout_s,
        max_connections=srv.http_max_connections,
        max_per_source=srv.http_max_connections_per_source,
        exempt=LOCAL | set(srv.trusted_proxies),
    )
    app.state.http_limits = limits
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(limits),
        # X-Forwarded-For is believed from these only (uvicorn's default: 127.0.0.1)
        forwarded_allow_ips=sorted(LOCAL | set(srv.trusted_proxies)),
        log_level=srv.log_level,
        log_config=None,  # keep our handlers (and their secret filter)
        ws_max_size=16 * 1024 * 1024,
        ws_per_message_deflate=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        **config_kwargs,
    )
    watchdog.start(asyncio.get_running_loop())
    server = _DrainingServer(config, app, watchdog, drain_s=settings.calls.drain_timeout_s)
    banner = asyncio.create_task(
        _announce(
            server,
            settings,
            server_key.path,
            tls=bool(config_kwargs),
            app=app,
            worker=worker.name if worker is not None else None,
        )
    )
    try:
        await server.serve(sockets)
    finally:
        banner.cancel()
    return 0


class _DrainingServer(uvicorn.Server):
    """SIGTERM drains first (see :mod:`bridge.control.plane`), then the server stops; a second
    SIGTERM, or SIGINT, stops at once. Stopping arms the :class:`StopWatchdog`."""

    def __init__(
        self, config: uvicorn.Config, app: Any, watchdog: StopWatchdog, *, drain_s: float
    ) -> None:
        super().__init__(config)
        self.app = app
        self.watchdog = watchdog
        self.drain_s = drain_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining = False

    async def serve(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        plane = getattr(self.app.state, "control", None)
        if sig != signal.SIGTERM or self._draining or plane is None or self._loop is None:
            self.watchdog.arm(STOP_LIMIT_S)
            super().handle_exit(sig, frame)
            return
        self._draining = True
        # the drain is bounded (its limit, then 10 s for the calls it ends, then the flush)
        self.watchdog.arm(self.drain_s + DRAIN_SLACK_S + STOP_LIMIT_S)
        self._loop.call_soon_threadsafe(self._start_drain, plane)

    def _start_drain(self, plane: Any) -> None:
        log.info("SIGTERM: draining")
        task = plane.start_drain()
        task.add_done_callback(lambda _t: self._stop())

    def _stop(self) -> None:
        self.watchdog.arm(STOP_LIMIT_S)
        self.should_exit = True


class StopWatchdog:
    """Ends a process whose stop does not finish: :meth:`arm` sets a deadline (the earliest
    one armed wins), a daemon thread started with the loop checks it every second and, once
    it has passed, logs the tasks still running and where each waits, then exits with status
    70. ``arm`` only stores a number: it is safe in a signal handler (no lock, no thread)."""

    def __init__(self) -> None:
        self.deadline: float | None = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._thread = threading.Thread(
            target=self._watch, args=(loop,), name="stop-watchdog", daemon=True
        )
        self._thread.start()

    def arm(self, limit_s: float) -> None:
        deadline = time.monotonic() + limit_s
        if self.deadline is None or deadline < self.deadline:
            self.deadline = deadline

    def stop(self) -> None:
        self._stopped.set()

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        while not self._stopped.wait(1.0):
            deadline = self.deadline
            if deadline is not None and time.monotonic() >= deadline:
                _stuck(loop)


def _stuck(loop: asyncio.AbstractEventLoop) -> None:
    """The watchdog's end: name what the stop still waits for, then exit. A backstop exits
    5 s later whatever happens to the logging (a handler blocked on a full pipe)."""
    backstop = threading.Timer(5.0, os._exit, (70,))
    backstop.daemon = True
    backstop.start()
    running: list[str] = []
    for _ in range(3):  # the set may change under us (another thread)
        try:
            running = [f"{t.get_name()} at {_waits_at(t)}" for t in asyncio.all_tasks(loop)]
            break
        except RuntimeError:
            running = []
    log.error(
        "the stop did not finish in time; still running: %s; exiting",
        "; ".join(sorted(running)) or "no task (the loop itself is blocked)",
    )
    logging.shutdown()
    os._exit(70)


def _waits_at(task: asyncio.Task[Any]) -> str:
    """Where a suspended task waits: the innermost three coroutine frames of its await chain
    (``function file:line``, outermost first)."""
    frames: list[str] = []
    coro: Any = task.get_coro()
    for _ in range(50):
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            code = frame.f_code
            frames.append(f"{code.co_name} {code.co_filename}:{frame.f_lineno}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
        if coro is None:
            break
    return " > ".join(frames[-3:]) or "?"


async def _announce(
    server: uvicorn.Server,
    settings: Settings,
    key_path: object,
    *,
    tls: bool,
    app: Any,
    worker: str | None,
) -> None:
    while not server.started:
        await asyncio.sleep(0.05)
    rt = app.state.runtime
    upstream_label = rt.upstream_label
    extra = [f"  SIP: {rt.sip_label}", f"  call records: {rt.store.label}"]
    ice = list(getattr(app.state, "ice_hosts", None) or rt.settings.webrtc.ice_hosts)
    extra.append(
        "  browser calls: POST /v1/realtime/calls, ICE hosts "
        + (", ".join(ice) if ice else "all non-loopback interfaces (set --ice-host)")
    )
    host, port = settings.server.host, settings.server.http_port
    for s in server.servers:
        for sock in s.sockets:
            host, port = sock.getsockname()[:2]
            break
    http, ws = ("https", "wss") if tls else ("http", "ws")
    lines = [
        (f"rtbridge worker {worker} " if worker else "rtbridge ")
        + f"listening on {http}://{host}:{port}",
        f"  event loop: {event_loop.loop_name(asyncio.get_running_loop())}",
        f"  Realtime relay: {ws}://{host}:{port}/v1/realtime",
        *([f"  demo page: {http}://{host}:{port}/"] if settings.webrtc.demo else []),
        f"  ops dashboard: {http}://{host}:{port}/dashboard",
        f"  upstream: {upstream_label}",
        "  server key: "
        + (f"stored in {key_path} (owner-only)" if key_path else "from $RTBRIDGE_API_KEY"),
        *extra,
    ]
    print("\n".join(lines), flush=True)
