"""``rtbridge serve --workers N``: one supervisor, N worker processes, Kamailio in front.

One Python process uses one core; a worker per core uses them all. The supervisor:

* binds the public HTTP port once and hands the listening socket to every worker (the kernel
  gives each new connection to one of them), and starts worker ``i`` on its plan
  (:mod:`bridge.cluster.plan`: its own SIP port, internal control port and RTP slice) with
  the settings it was given (``<data_dir>/cluster/settings.json``);
* with ``cluster.kamailio`` and Kamailio installed, writes its configuration and dispatcher
  list from the settings (:mod:`bridge.cluster.kamailio`) into ``<data_dir>/cluster/`` and
  runs it on ``server.sip_port`` once the workers are up;
* restarts a worker (or Kamailio) that exits by itself, a worker that exits at once again and
  again after a growing pause (up to :data:`MAX_BACKOFF_S`). A worker drained on its own
  (SIGTERM to its pid: a rolling restart) is started again too;
* on SIGTERM, drains every worker (each answers OPTIONS and new INVITEs 503 + Retry-After,
  so Kamailio sends nothing new; live calls finish) and exits once all have, stopping Kamailio
  last so in-dialog requests keep their route to the end. A second SIGTERM, or SIGINT, stops
  the workers at once. Should the supervisor itself die, its children get SIGTERM from the
  kernel (``PR_SET_PDEATHSIG``): no orphaned worker or Kamailio keeps the ports.

The banner names each worker's pid, and ``<data_dir>/cluster/state.json`` always holds the
current ones (``{"supervisor": pid, "workers": {"w0": {"pid", "sip_port", "control_url",
"restarts"}, ...}, "kamailio": pid}``, rewritten whenever a child starts), so a benchmark or
an operator reads each process's CPU time from ``/proc/<pid>/stat``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bridge import event_loop
from bridge.cluster.kamailio import dispatcher_list, kamailio_config
from bridge.cluster.plan import WorkerPlan, plan_workers
from bridge.config import Settings
from bridge.errors import ConfigError
from bridge.private_files import private_file
from bridge.tasks import cancel_and_wait

__all__ = ["Supervisor", "supervise"]

log = logging.getLogger("rtbridge.supervisor")

#: how long a worker may take to print its banner
READY_TIMEOUT_S = 60.0
#: a worker that exits sooner than this after starting waits longer before the next start
STABLE_S = 10.0
MAX_BACKOFF_S = 5.0


@dataclass
class _Child:
    """A worker (or Kamailio) and how it has been doing."""

    name: str
    proc: asyncio.subprocess.Process | None = None
    started: float = 0.0
    backoff: float = 0.2
    restarts: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)


def supervise(settings: Settings, workers: int, *, ice_hosts: list[str]) -> int:
    """Run the supervisor until it is stopped; the process's exit status."""
    try:
        plans = plan_workers(settings, workers)
    except ConfigError as exc:
        print(f"rtbridge: {exc}", file=sys.stderr)
        return 2
    sup = Supervisor(settings, plans, ice_hosts=ice_hosts)
    try:
        return event_loop.run(sup.run(), settings.server.event_loop)
    except KeyboardInterrupt:
        return 0
    except ConfigError as exc:
        print(f"rtbridge: {exc}", file=sys.stderr)
        return 2


class Supervisor:
    def __init__(
        self, settings: Settings, plans: tuple[WorkerPlan, ...], *, ice_hosts: list[str]
    ) -> None:
        self.settings = settings
        self.plans = plans
        self.ice_hosts = ice_hosts
        self.dir = settings.server.data_dir / "cluster"
        self.workers = {p.name: _Child(p.name) for p in plans}
        self.kamailio = _Child("kamailio")
        self.stopping = False
        self._stopped = asyncio.Event()
        self._public: socket.socket | None = None
        self._kamailio_binary: str | None = None

    # -- files ----------------------------------------------------------------------------

    def _write_files(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        settings_file = self.dir / "settings.json"
        settings_file.write_text(self.settings.model_dump_json())
        private_file(settings_file)
        return settings_file

    def _kamailio_files(self) -> Path:
        listing = self.dir / "dispatcher.list"
        listing.write_text(dispatcher_list(self.plans))
        cfg = self.dir / "kamailio.cfg"
        cfg.write_text(
            kamailio_config(self.settings, list_file=listing, ctl_socket=self.ctl_socket)
        )
        return cfg

    def _write_state(self) -> None:
        """``state.json``: the pids of the children as they are now."""
        workers = {}
        for plan in self.plans:
            child = self.workers[plan.name]
            workers[plan.name] = {
                "pid": child.proc.pid if child.proc is not None else None,
                "sip_port": plan.sip_port,
                "control_url": plan.control_url,
                "restarts": child.restarts,
            }
        k = self.kamailio.proc
        state = {"supervisor": os.getpid(), "workers": workers, "kamailio": k and k.pid}
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.dir / "state.json")

    @property
    def ctl_socket(self) -> Path:
        return self.dir / "kamailio.ctl"

    # -- the run ----------------------------------------------------------------------------

    async def run(self) -> int:
        srv = self.settings.server
        settings_file = self._write_files()
        self._public = socket.create_server((srv.host, srv.http_port), reuse_port=False)
        self._public.set_inheritable(True)
        if self.settings.cluster.kamailio:
            self._kamailio_binary = shutil.which(self.settings.cluster.kamailio_binary)
            if self._kamailio_binary is None:
                log.warning(
                    "[cluster] kamailio = true but %r is not installed: no SIP front (each "
                    "worker answers on its own SIP port)",
                    self.settings.cluster.kamailio_binary,
                )
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._on_signal, signal.SIGTERM)
        loop.add_signal_handler(signal.SIGINT, self._on_signal, signal.SIGINT)
        tasks = [
            asyncio.create_task(self._keep(plan, settings_file), name=f"worker {plan.name}")
            for plan in self.plans
        ]
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                await asyncio.gather(*(c.ready.wait() for c in self.workers.values()))
        except TimeoutError:
            print("rtbridge: the workers did not start in time", file=sys.stderr)
            self._on_signal(signal.SIGINT)
        if self._kamailio_binary is not None and not self.stopping:
            tasks.append(asyncio.create_task(self._keep_kamailio(), name="kamailio"))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(15):
                    await self.kamailio.ready.wait()
        if not self.stopping:
            self._announce()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._public.close()
        return 0

    def _on_signal(self, sig: int) -> None:
        if self.stopping and sig == signal.SIGTERM:
            sig = signal.SIGINT  # a second SIGTERM: stop at once
        first = not self.stopping
        self.stopping = True
        self._stopped.set()
        if first and sig == signal.SIGTERM:
            log.info("SIGTERM: draining %d worker(s)", len(self.workers))
        for child in self.workers.values():
            if child.proc is not None and child.proc.returncode is None:
                child.proc.send_signal(sig)

    # -- workers ------------------------------------------------------------------------------

    def _worker_cmd(self, plan: WorkerPlan, settings_file: Path) -> list[str]:
        assert self._public is not None
        cmd = [sys.executable, "-m", "bridge.cluster.worker", str(settings_file), str(plan.index)]
        cmd += ["--workers", str(len(self.plans)), "--public-fd", str(self._public.fileno())]
        for host in self.ice_hosts:
            cmd += ["--ice-host", host]
        return cmd

    async def _keep(self, plan: WorkerPlan, settings_file: Path) -> None:
        """Run one worker until the supervisor stops, restarting it when it exits."""
        child = self.workers[plan.name]
        assert self._public is not None
        while not self.stopping:
            child.started = time.monotonic()
            child.proc = await asyncio.create_subprocess_exec(
                *self._worker_cmd(plan, settings_file),
                stdout=asyncio.subprocess.PIPE,
                pass_fds=(self._public.fileno(),),
                preexec_fn=term_with_parent,
            )
            reader = asyncio.create_task(self._read_banner(child))
            code = await child.proc.wait()
            await cancel_and_wait(reader)
            if self.stopping:
                log.info("worker %s (pid %d) exited with %s", plan.name, child.proc.pid, code)
                return
            log.warning(
                "worker %s (pid %d) exited with %s: starting it again",
                plan.name,
                child.proc.pid,
                code,
            )
            child.restarts += 1
            if time.monotonic() - child.started < STABLE_S:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(child.backoff):
                        await self._stopped.wait()
                child.backoff = min(child.backoff * 2, MAX_BACKOFF_S)
            else:
                child.backoff = 0.2

    async def _read_banner(self, child: _Child) -> None:
        assert child.proc is not None and child.proc.stdout is not None
        while line := await child.proc.stdout.readline():
            if b"listening on" in line:
                child.ready.set()
                self._write_state()
                if child.restarts:
                    log.info("worker %s is back (pid %d)", child.name, child.proc.pid)
        # the worker's stdout closed: it is exiting

    # -- Kamailio -----------------------------------------------------------------------------

    def _kamailio_cmd(self, cfg: Path) -> list[str]:
        assert self._kamailio_binary is not None
        return [self._kamailio_binary, "-f", str(cfg), "-DD", "-E", "-Y", str(self.dir)]

    async def _keep_kamailio(self) -> None:
        child = self.kamailio
        cfg = self._kamailio_files()
        port = self.settings.server.sip_port or 5060
        host = self.settings.sip.bind_host
        while not self.stopping:
            child.started = time.monotonic()
            child.proc = await asyncio.create_subprocess_exec(
                *self._kamailio_cmd(cfg),
                stdout=asyncio.subprocess.DEVNULL,
                preexec_fn=term_with_parent,
            )
            waiter = asyncio.create_task(
                _wait_tcp("127.0.0.1" if host == "0.0.0.0" else host, port)
            )
            wait_exit = asyncio.create_task(child.proc.wait())
            stop = asyncio.create_task(self._stopped.wait())
            done, _ = await asyncio.wait(
                {waiter, wait_exit, stop}, return_when=asyncio.FIRST_COMPLETED
            )
            if waiter in done and waiter.result():
                child.ready.set()
                self._write_state()
            waiter.cancel()
            if wait_exit not in done:
                await asyncio.wait({wait_exit, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if self.stopping:
                break
            log.warning("kamailio exited with %s: starting it again", child.proc.returncode)
            await asyncio.sleep(child.backoff)
            child.backoff = min(child.backoff * 2, MAX_BACKOFF_S)
        # the workers drain first: Kamailio keeps routing their calls' BYEs until they exit
        await asyncio.gather(*(_exited(c) for c in self.workers.values()))
        if child.proc is not None and child.proc.returncode is None:
            child.proc.terminate()
            try:
                await asyncio.wait_for(child.proc.wait(), 10)
            except TimeoutError:
                child.proc.kill()
                await child.proc.wait()

    # -- banner -------------------------------------------------------------------------------

    def _announce(self) -> None:
        s = self.settings
        assert self._public is not None
        host, port = self._public.getsockname()[:2]
        http = "https" if s.server.tls_cert is not None else "http"
        lines = [f"rtbridge listening on {http}://{host}:{port} ({len(self.plans)} workers)"]
        for plan in self.plans:
            child = self.workers[plan.name]
            pid = child.proc.pid if child.proc is not None else "?"
            lines.append(
                f"  worker {plan.name}: pid {pid}, SIP {plan.host}:{plan.sip_port}, control "
                f"{plan.control_url}, RTP {plan.rtp_port_min}-{plan.rtp_port_max}"
            )
        if self.kamailio.proc is not None:
            lines.append(
                f"  SIP front: Kamailio (pid {self.kamailio.proc.pid}) on {s.sip.bind_host}:"
                f"{s.server.sip_port or 5060} UDP and TCP, config {self.dir / 'kamailio.cfg'}"
            )
        else:
            lines.append("  SIP front: none (each worker answers on its own SIP port)")
        if s.cluster.redis_url:
            lines.append("  registry: Redis (every node's control plane reaches every call)")
        else:
            lines.append("  registry: none (each worker's control plane sees its own calls)")
        print("\n".join(lines), flush=True)


_PR_SET_PDEATHSIG = 1


def term_with_parent() -> None:
    """In a child, before it runs: SIGTERM when its parent dies (Linux; the supervisor's
    workers and Kamailio, and the tests' rtbridge processes)."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


async def _exited(child: _Child) -> None:
    if child.proc is not None:
        await child.proc.wait()


async def _wait_tcp(host: str, port: int, timeout: float = 15.0) -> bool:
    """Whether something accepts TCP connections on ``host:port`` within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _r, w = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        w.close()
        with contextlib.suppress(OSError):
            await w.wait_closed()
        return True
    return False
