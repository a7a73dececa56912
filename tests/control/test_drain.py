"""Graceful drain of a real ``rtbridge serve --sip-port`` process: SIGTERM during live SIPp
calls. /readyz turns 503; SIP OPTIONS and new INVITEs get 503 with Retry-After; new browser
calls 503; a live call finishes by itself, one that would not is ended at the drain limit
with a BYE; both records are written; the process exits 0 once idle."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.calls import sipp_scenario as sc
from tests.calls.conftest import rtp_range
from tests.sip.sipp_support import free_port, run_sipp
from tests.support.audio import ulaw_file
from tests.support.peers import require_peer
from tests.support.procs import RTBRIDGE

pytestmark = pytest.mark.peer("sipp")

KEY = "rtb_drain_test_key"

OPTIONS = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="options">
  <send retrans="500">
    <![CDATA[
      OPTIONS sip:bot@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:bot@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="503"/>
</scenario>
"""


def refused_invite() -> str:
    """An INVITE that must be refused with 503 (no ringing first)."""
    return sc.uac().replace(
        """  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>""",
        """  <recv response="503"/>""",
    )


async def sipp(tmp_path: Path, port: int, xml: str, name: str) -> tuple[int, str]:
    scenario = tmp_path / f"{name}.xml"
    scenario.write_text(xml)
    res = await run_sipp(
        require_peer("sipp"),
        "-sf",
        str(scenario),
        f"127.0.0.1:{port}",
        "-m",
        "1",
        "-p",
        str(free_port()),
        "-mp",
        str(free_port()),
        "-trace_msg",
        cwd=tmp_path,
        timeout=90,
        sipp_timeout=80,
    )
    log = "".join(p.read_text(errors="replace") for p in tmp_path.glob(f"{name}_*_messages.log"))
    return res.returncode, res.summary() + log


async def test_sigterm_drains_live_calls_then_exits(tmp_path: Path) -> None:
    http_port, sip_port = free_port(socket.SOCK_STREAM), free_port()
    base = rtp_range()["rtp_port_min"]
    env = {
        **os.environ,
        "RTBRIDGE_API_KEY": KEY,
        "RTBRIDGE_SERVER__DATA_DIR": str(tmp_path / "data"),
        "RTBRIDGE_CALLS__DRAIN_TIMEOUT_S": "6",
        "RTBRIDGE_CALLS__RETRY_AFTER_S": "42",
        "RTBRIDGE_CALLS__RTP_PORT_MIN": str(base),
        "RTBRIDGE_CALLS__RTP_PORT_MAX": str(base + 200),
    }
    proc = await asyncio.create_subprocess_exec(
        RTBRIDGE,
        "serve",
        "--http-port",
        str(http_port),
        "--sip-port",
        str(sip_port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    assert proc.stdout is not None
    output: list[bytes] = []

    async def read() -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            output.append(line)

    reader = asyncio.create_task(read())
    url = f"http://127.0.0.1:{http_port}"
    auth = {"Authorization": f"Bearer {KEY}"}
    try:
        async with httpx.AsyncClient(base_url=url, headers=auth, timeout=10) as client:
            async with asyncio.timeout(30):
                while not any(line.startswith(b"rtbridge listening on") for line in output):
                    assert proc.returncode is None, b"".join(output).decode()
                    await asyncio.sleep(0.1)
            assert (await client.get("/readyz")).status_code == 200
            audio = ulaw_file(tmp_path / "v.ulaw", ("voice", 1.0), ("silence", 20.0))
            # one call that hangs up by itself 5 s in, one that waits for our BYE
            finishing = asyncio.create_task(
                sipp(
                    tmp_path,
                    sip_port,
                    sc.uac(sc.stream(audio), sc.pause(5000), sc.send_bye(2)),
                    "fin",
                )
            )
            lingering = asyncio.create_task(
                sipp(tmp_path, sip_port, sc.uac(sc.stream(audio), sc.wait_bye(60000)), "ling")
            )
            async with asyncio.timeout(20):
                while (
                    len((await client.get("/v1/calls", params={"state": "active"})).json()["data"])
                    < 2
                ):
                    await asyncio.sleep(0.1)

            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(10):
                while (await client.get("/readyz")).status_code != 503:
                    await asyncio.sleep(0.05)
            ready = await client.get("/readyz")
            assert ready.json()["draining"] is True
            assert (await client.head("/readyz")).status_code == 503
            assert "rtbridge_draining 1.0" in (await client.get("/metrics")).text
            # new SIP traffic is refused with Retry-After
            rc, out = await sipp(tmp_path, sip_port, OPTIONS, "opt")
            assert rc == 0, out
            assert "Retry-After: 42" in out
            rc, out = await sipp(tmp_path, sip_port, refused_invite(), "new")
            assert rc == 0, out
            assert "SIP/2.0 503" in out and "Retry-After: 42" in out
            # new browser calls and originates too
            r = await client.post(
                "/v1/realtime/calls",
                content=b"v=0\r\n",
                headers={"content-type": "application/sdp"},
            )
            assert r.status_code == 503 and r.headers["retry-after"] == "42"
            # the live calls go on meanwhile
            active = (await client.get("/v1/calls", params={"state": "active"})).json()["data"]
            assert len(active) >= 1

            rc, out = await finishing
            assert rc == 0, out  # completed normally, its own BYE answered
            rc, out = await lingering
            assert rc == 0, out  # received our BYE at the drain limit
        async with asyncio.timeout(30):
            code = await proc.wait()
        assert code == 0, b"".join(output).decode()[-3000:]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await reader
    db = sqlite3.connect(tmp_path / "data" / "calls.db")
    rows = db.execute("SELECT state, end_reason FROM calls ORDER BY offered_at").fetchall()
    db.close()
    reasons = sorted(r[1] for r in rows if r[1] in ("remote-bye", "drain-timeout"))
    assert reasons == ["drain-timeout", "remote-bye"], rows
    assert all(state == "ended" for state, _ in rows), rows
