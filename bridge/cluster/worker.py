"""One worker of a host's ``N``: as the supervisor starts it,
``python -m bridge.cluster.worker SETTINGS_JSON INDEX --workers N --public-fd FD``, or alone
(systemd's ``rtbridge-worker@INDEX.service``), ``rtbridge worker INDEX --workers N``.

It takes its own plan (SIP port, internal control port, RTP slice: :mod:`bridge.cluster.plan`)
and serves like ``rtbridge serve`` on its internal control port, and on the public HTTP socket
it inherited (file descriptor ``FD``) when it has one. With a registry it joins the cluster as
node ``<cluster.node_name or host name>-w<INDEX>``.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from bridge.cluster.plan import WorkerPlan, plan_workers
from bridge.config import Settings
from bridge.errors import ConfigError

__all__ = ["main", "run_worker", "worker_settings"]


def worker_settings(settings: Settings, plan: WorkerPlan) -> Settings:
    """The settings of the worker of ``plan``: its SIP port and RTP slice, its node name.
    Its SIP listens on ``cluster.worker_host`` and names that address in Contact and Via: the
    front (Kamailio, on ``sip.bind_host``/``advertised_host``) routes in-dialog requests to
    it there."""
    c = settings.cluster
    scheme = "https" if settings.server.tls_cert is not None else "http"
    return settings.model_copy(
        update={
            "server": settings.server.model_copy(update={"sip_port": plan.sip_port}),
            "sip": settings.sip.model_copy(
                update={"bind_host": plan.host, "advertised_host": None}
            ),
            "calls": settings.calls.model_copy(
                update={"rtp_port_min": plan.rtp_port_min, "rtp_port_max": plan.rtp_port_max}
            ),
            "cluster": c.model_copy(
                update={
                    "node_name": f"{c.node_name or socket.gethostname()}-{plan.name}",
                    "advertise_host": c.advertise_host or plan.host,
                    "control_url": f"{scheme}://{c.advertise_host or plan.host}:{plan.http_port}",
                }
            ),
        }
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bridge.cluster.worker")
    p.add_argument("settings", type=Path)
    p.add_argument("index", type=int)
    p.add_argument("--workers", type=int, required=True)
    p.add_argument("--public-fd", type=int, required=True)
    p.add_argument("--ice-host", action="append", default=[])
    args = p.parse_args(argv)
    settings = Settings.model_validate_json(args.settings.read_text())
    return run_worker(
        settings, args.index, args.workers, ice_hosts=args.ice_host, public_fd=args.public_fd
    )


def run_worker(
    settings: Settings,
    index: int,
    workers: int,
    *,
    ice_hosts: list[str],
    public_fd: int | None = None,
) -> int:
    """Serve as worker ``index`` of ``workers``; the process's exit status."""
    try:
        plans = plan_workers(settings, workers)
    except ConfigError as exc:
        print(f"rtbridge: {exc}", file=sys.stderr)
        return 2
    if not 0 <= index < len(plans):
        print(f"rtbridge: worker {index} of {workers} does not exist", file=sys.stderr)
        return 2
    from bridge.serve import serve

    plan = plans[index]
    return serve(
        worker_settings(settings, plan), ice_hosts=ice_hosts, worker=plan, public_fd=public_fd
    )


if __name__ == "__main__":
    sys.exit(main())
