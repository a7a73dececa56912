"""One worker of ``rtbridge serve --workers N``, as the supervisor starts it:
``python -m bridge.cluster.worker SETTINGS_JSON INDEX --workers N --public-fd FD``.

It reads the settings the supervisor was given, takes its own plan (SIP port, internal control
port, RTP slice: :mod:`bridge.cluster.plan`) and serves like ``rtbridge serve`` on its
internal control port and on the public HTTP socket it inherited (file descriptor ``FD``).
With a registry it joins the cluster as node ``cluster.node_name`` (default
``<host>-w<INDEX>``).
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from bridge.cluster.plan import WorkerPlan, plan_workers
from bridge.config import Settings

__all__ = ["main", "worker_settings"]


def worker_settings(settings: Settings, plan: WorkerPlan) -> Settings:
    """The settings of the worker of ``plan``: its SIP port and RTP slice, its node name."""
    c = settings.cluster
    return settings.model_copy(
        update={
            "server": settings.server.model_copy(update={"sip_port": plan.sip_port}),
            "calls": settings.calls.model_copy(
                update={"rtp_port_min": plan.rtp_port_min, "rtp_port_max": plan.rtp_port_max}
            ),
            "cluster": c.model_copy(
                update={
                    "node_name": f"{c.node_name or socket.gethostname()}-{plan.name}",
                    "advertise_host": c.advertise_host or plan.host,
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
    plan = plan_workers(settings, args.workers)[args.index]
    from bridge.serve import serve

    return serve(
        worker_settings(settings, plan),
        ice_hosts=args.ice_host,
        worker=plan,
        public_fd=args.public_fd,
    )


if __name__ == "__main__":
    sys.exit(main())
