"""``rtbridge serve --workers 2`` as a user runs it: two worker processes, each on its own
internal control port and all on the public one; a worker killed with ``kill -9`` is started
again (the other is left alone); SIGTERM drains both and the supervisor exits 0."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import httpx

from tests.cluster.support import KEY, cluster_env, state, until
from tests.support.procs import start_rtbridge
from tests.support.servers import free_port


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_workers_are_restarted_and_drained(tmp_path: Path) -> None:
    data = tmp_path / "data"
    public = free_port(socket.SOCK_STREAM)
    args = ("serve", "--workers", "2", "--http-port", str(public))
    auth = {"Authorization": f"Bearer {KEY}"}
    async with (
        start_rtbridge(*args, env=cluster_env(data, 2), ready_timeout=120) as sup,
        httpx.AsyncClient(headers=auth, timeout=10) as http,
    ):
        assert sup.url == f"http://127.0.0.1:{public}"
        first = state(data)
        assert first["supervisor"] == sup.proc.pid
        workers = first["workers"]
        assert set(workers) == {"w0", "w1"} and workers["w0"]["pid"] != workers["w1"]["pid"]
        for w in workers.values():
            assert (await http.get(w["control_url"] + "/readyz")).status_code == 200
        assert (await http.get(sup.url + "/v1/calls")).status_code == 200

        victim = workers["w1"]["pid"]
        os.kill(victim, signal.SIGKILL)
        await until(lambda: state(data)["workers"]["w1"]["pid"] != victim, "w1 started again")
        again = state(data)["workers"]
        assert again["w1"]["restarts"] == 1 and again["w0"] == workers["w0"]
        r = await http.get(again["w1"]["control_url"] + "/readyz")
        assert r.status_code == 200

        sup.proc.send_signal(signal.SIGTERM)
        assert await sup.proc.wait() == 0
        for w in again.values():
            assert not alive(w["pid"])


async def test_workers_do_not_outlive_a_killed_supervisor(tmp_path: Path) -> None:
    data = tmp_path / "data"
    args = ("serve", "--workers", "2", "--http-port", str(free_port(socket.SOCK_STREAM)))
    async with start_rtbridge(*args, env=cluster_env(data, 2), ready_timeout=120) as sup:
        pids = [w["pid"] for w in state(data)["workers"].values()]
        sup.proc.kill()
        await sup.proc.wait()
        for pid in pids:
            await until(lambda pid=pid: not alive(pid), f"worker {pid} exited")
