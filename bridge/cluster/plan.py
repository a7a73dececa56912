"""Which ports each worker of a host gets: a pure function of the settings.

Worker ``i`` of ``n`` listens for SIP on ``cluster.worker_sip_port_min + i`` (UDP and TCP),
serves its internal control port ``cluster.worker_http_port_min + i`` on
``cluster.worker_host``, and takes the ``i``-th of ``n`` equal, even-aligned slices of
``calls.rtp_port_min..rtp_port_max`` (so no two workers ever try the same RTP port). The
supervisor, Kamailio's dispatcher list and ``rtbridge kamailio-config`` all read this one plan.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from bridge.config import Settings
from bridge.errors import ConfigError

__all__ = ["WorkerPlan", "plan_workers", "worker_count"]

#: the fewest RTP port pairs a worker may be given
MIN_PAIRS = 2


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    index: int
    name: str  # w0, w1, ...
    host: str  # where its SIP and internal control port listen
    sip_port: int
    http_port: int  # the internal control port
    rtp_port_min: int
    rtp_port_max: int

    @property
    def sip_uri(self) -> str:
        return f"sip:{self.host}:{self.sip_port}"

    @property
    def control_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"


def worker_count(settings: Settings, requested: int | None = None) -> int:
    """How many workers: ``requested`` (``--workers``), else ``cluster.workers``; 0 means one
    per core."""
    n = requested if requested is not None else settings.cluster.workers
    if not n:
        return os.cpu_count() or 1
    return n


def plan_workers(settings: Settings, n: int) -> tuple[WorkerPlan, ...]:
    if n < 1:
        raise ConfigError("a cluster needs at least one worker")
    c, calls = settings.cluster, settings.calls
    lo = calls.rtp_port_min + (calls.rtp_port_min % 2)  # RTP on even ports (RFC 3550 §11)
    pairs = (calls.rtp_port_max - lo + 1) // 2
    per = pairs // n
    if per < MIN_PAIRS:
        raise ConfigError(
            f"calls.rtp_port_min..rtp_port_max holds {pairs} RTP port pairs: too few for "
            f"{n} workers (at least {MIN_PAIRS} each)"
        )
    top = max(c.worker_sip_port_min, c.worker_http_port_min) + n - 1
    if top > 65535:
        raise ConfigError(f"{n} workers need ports up to {top}")
    plans = []
    for i in range(n):
        first = lo + 2 * per * i
        plans.append(
            WorkerPlan(
                index=i,
                name=f"w{i}",
                host=c.worker_host,
                sip_port=c.worker_sip_port_min + i,
                http_port=c.worker_http_port_min + i,
                rtp_port_min=first,
                rtp_port_max=first + 2 * per - 1,
            )
        )
    clash = {p.sip_port for p in plans} & {p.http_port for p in plans}
    if settings.server.sip_port is not None and c.kamailio:
        clash |= {p.sip_port for p in plans} & {settings.server.sip_port}
    if clash:
        raise ConfigError(f"worker ports collide: {sorted(clash)}")
    return tuple(plans)
