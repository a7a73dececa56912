"""Recording across two nodes (two ``rtbridge serve`` with their own data directories, one
Redis and one PostgreSQL of the test's own), a SIPp caller on node B, everything asked of
node A: the call's view shows its recording, A pauses and resumes it (run by B, the owner),
A serves B's file (whole and by range) while the call goes on and after it ended, and once B
has stopped A answers 404 ``recording_elsewhere`` naming B."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.calls import sipp_scenario as sc
from tests.calls.conftest import rtp_range
from tests.cluster.support import KEY, until
from tests.sip.sipp_support import free_port, run_sipp
from tests.support.audio import ulaw_file
from tests.support.infra import new_database, postgres_server, redis_server
from tests.support.peers import require_peer
from tests.support.procs import start_rtbridge

pytestmark = [
    pytest.mark.peer("redis-server"),
    pytest.mark.peer("postgresql"),
    pytest.mark.peer("sipp"),
]

AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def infra() -> Iterator[tuple[str, str]]:
    with redis_server() as redis, postgres_server() as pg:
        yield redis, new_database(pg, "cluster_recording")


def node_env(name: str, data: Path, http_port: int, redis: str, pg: str) -> dict[str, str]:
    ports = rtp_range()
    return {
        "RTBRIDGE_API_KEY": KEY,
        "RTBRIDGE_SERVER__DATA_DIR": str(data),
        "RTBRIDGE_CALLS__RTP_PORT_MIN": str(ports["rtp_port_min"]),
        "RTBRIDGE_CALLS__RTP_PORT_MAX": str(ports["rtp_port_max"]),
        "RTBRIDGE_CALLS__RECORDS_URL": pg,
        "RTBRIDGE_CLUSTER__REDIS_URL": redis,
        "RTBRIDGE_CLUSTER__NODE_NAME": name,
        "RTBRIDGE_CLUSTER__CONTROL_URL": f"http://127.0.0.1:{http_port}",
        "RTBRIDGE_CLUSTER__HEARTBEAT_S": "0.3",
        "RTBRIDGE_CLUSTER__TTL_S": "1.0",
        "RTBRIDGE_PROFILES__DEFAULT__RECORD": "stereo",
    }


async def view(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    r = await http.get(url)
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


async def test_a_call_recorded_on_node_b_is_paused_and_served_through_node_a(
    tmp_path: Path, infra: tuple[str, str]
) -> None:
    redis, pg = infra
    port_a, port_b = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)
    sip_b = free_port()
    data_a, data_b = tmp_path / "a", tmp_path / "b"
    audio = ulaw_file(tmp_path / "v.ulaw", ("voice", 1.0), ("silence", 60.0))
    scenario = tmp_path / "call.xml"
    scenario.write_text(sc.uac(sc.stream(audio), sc.pause(6000), sc.send_bye(2)))
    args_a = ("serve", "--http-port", str(port_a), "--sip-port", str(free_port()))
    args_b = ("serve", "--http-port", str(port_b), "--sip-port", str(sip_b))
    async with (
        start_rtbridge(*args_a, env=node_env("na", data_a, port_a, redis, pg)) as a,
        httpx.AsyncClient(base_url=a.url, headers=AUTH, timeout=15) as http,
    ):
        async with start_rtbridge(*args_b, env=node_env("nb", data_b, port_b, redis, pg)):
            caller = asyncio.create_task(
                run_sipp(
                    require_peer("sipp"),
                    "-sf",
                    str(scenario),
                    f"127.0.0.1:{sip_b}",
                    "-m",
                    "1",
                    "-p",
                    str(free_port()),
                    "-mp",
                    str(free_port()),
                    cwd=tmp_path,
                    timeout=90,
                )
            )
            try:
                found: list[str] = []

                async def listed() -> bool:
                    r = await http.get("/v1/calls", params={"state": "active"})
                    found[:] = [c["id"] for c in r.json()["data"] if c.get("node") == "nb"]
                    return bool(found)

                await until(listed, "A lists B's call")
                (call_id,) = found
                url = f"/v1/calls/{call_id}"
                live = await view(http, url)  # B's own view, through A
                assert live["node"] == "nb" and live["recording"]["mode"] == "stereo", live
                assert live["recording"]["paused"] is False

                # pause and resume asked of A run on B, the owner
                r = await http.post(f"{url}/recording/pause")
                assert r.status_code == 200, r.text
                assert r.json()["recording"]["paused"] is True
                assert (await view(http, url))["recording"]["paused"] is True
                r = await http.post(f"{url}/recording/resume")
                assert r.status_code == 200 and r.json()["recording"]["paused"] is False, r.text

                # B's file, through A, while it grows (B's writer creates it with the first
                # block it writes): the file is in B's data directory only
                async def first_bytes() -> bool:
                    r = await http.get(f"{url}/recording", headers={"Range": "bytes=0-43"})
                    parts[:] = [r]
                    return r.status_code != 404

                parts: list[httpx.Response] = []
                await until(first_bytes, "B's recording served through A", tries=200)
                (part,) = parts
                assert not (data_a / "recordings" / f"{call_id}.wav").exists()
                assert part.status_code == 206, part.text
                assert part.content[:4] == b"RIFF" and len(part.content) == 44
                assert part.headers["content-range"].startswith("bytes 0-43/")
                assert part.headers["content-type"] == "audio/wav"
                result = await caller
                assert result.returncode == 0, result.summary()
            finally:
                if not caller.done():
                    caller.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await caller

            await until(lambda: _ended(http, url), "the call's record is ended", tries=200)
            whole = await http.get(f"{url}/recording")  # ended: A fetches it from B still
            assert whole.status_code == 200, whole.text
            on_b = (data_b / "recordings" / f"{call_id}.wav").read_bytes()
            assert whole.content == on_b and len(on_b) > 44 + 8000 * 4  # seconds of stereo
            tail = await http.get(f"{url}/recording", headers={"Range": f"bytes={len(on_b) - 10}-"})
            assert tail.status_code == 206 and tail.content == on_b[-10:]

        # B has stopped: A says where the recording is instead of "no recording"
        r = await http.get(f"{url}/recording")
        assert r.status_code == 404, r.text
        err = r.json()["error"]
        assert err["code"] == "recording_elsewhere" and "'nb'" in err["message"], err
        assert (await http.get("/v1/calls/call_nope/recording")).status_code == 404


async def _ended(http: httpx.AsyncClient, url: str) -> bool:
    return (await view(http, url))["state"] == "ended"
