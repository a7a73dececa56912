"""What the cluster tests share: runs of free ports, the settings of a cluster in the
environment, and the supervisor's ``state.json`` (the pid of each worker)."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

from tests.calls.conftest import rtp_range

__all__ = ["KEY", "cluster_env", "free_run", "state", "until"]

KEY = "rtb_cluster_test_key"


def free_run(n: int) -> int:
    """The first of ``n`` consecutive ports free for UDP and TCP on 127.0.0.1 right now."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base + n > 65535:
            continue
        try:
            for port in range(base, base + n):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    with socket.socket(socket.AF_INET, kind) as s2:
                        s2.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no run of free ports")


def cluster_env(data: Path, workers: int, **extra: str) -> dict[str, str]:
    base = rtp_range()["rtp_port_min"]
    return {
        "RTBRIDGE_API_KEY": KEY,
        "RTBRIDGE_SERVER__DATA_DIR": str(data),
        "RTBRIDGE_CALLS__RTP_PORT_MIN": str(base),
        "RTBRIDGE_CALLS__RTP_PORT_MAX": str(base + 200),
        "RTBRIDGE_CLUSTER__WORKER_SIP_PORT_MIN": str(free_run(workers)),
        "RTBRIDGE_CLUSTER__WORKER_HTTP_PORT_MIN": str(free_run(workers)),
        **extra,
    }


def state(data: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((data / "cluster" / "state.json").read_text())
    return loaded


async def until(predicate: Any, what: str, *, tries: int = 600) -> None:
    """Poll ``predicate`` (sync or async) every 50 ms; fail saying ``what`` never happened."""
    for _ in range(tries):
        ok = predicate()
        if asyncio.iscoroutine(ok):
            ok = await ok
        if ok:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")
