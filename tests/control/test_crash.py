"""``kill -9`` of a real ``rtbridge serve`` with three SIPp calls up, then a restart on the same
data directory: the three call records are ``ended`` with reason ``interrupted`` (at the time
of their last event), and the control plane lists no live call: no ghosts."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from pathlib import Path

import httpx
import pytest

from tests.calls import sipp_scenario as sc
from tests.calls.conftest import rtp_range
from tests.sip.sipp_support import free_port, run_sipp
from tests.support.audio import ulaw_file
from tests.support.peers import require_peer
from tests.support.procs import start_rtbridge

pytestmark = pytest.mark.peer("sipp")

KEY = "rtb_crash_test_key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def _env(data: Path) -> dict[str, str]:
    base = rtp_range()["rtp_port_min"]
    return {
        "RTBRIDGE_API_KEY": KEY,
        "RTBRIDGE_SERVER__DATA_DIR": str(data),
        "RTBRIDGE_CALLS__RTP_PORT_MIN": str(base),
        "RTBRIDGE_CALLS__RTP_PORT_MAX": str(base + 200),
    }


async def test_kill_9_with_three_calls_up_leaves_no_ghost_after_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    sip_port = free_port()
    audio = ulaw_file(tmp_path / "v.ulaw", ("voice", 1.0), ("silence", 60.0))
    scenario = tmp_path / "long.xml"
    scenario.write_text(sc.uac(sc.stream(audio), sc.pause(60000), sc.send_bye(2)))
    args = ("serve", "--http-port", str(free_port(socket.SOCK_STREAM)), "--sip-port", str(sip_port))
    async with start_rtbridge(*args, env=_env(data)) as first:
        callers = asyncio.create_task(
            run_sipp(
                require_peer("sipp"),
                "-sf",
                str(scenario),
                f"127.0.0.1:{sip_port}",
                "-m",
                "3",
                "-l",
                "3",
                "-r",
                "10",
                "-p",
                str(free_port()),
                "-mp",
                str(free_port()),
                cwd=tmp_path,
                timeout=90,
            )
        )
        try:
            async with httpx.AsyncClient(base_url=first.url, headers=AUTH, timeout=10) as client:
                async with asyncio.timeout(30):
                    while True:
                        live = (await client.get("/v1/calls", params={"state": "active"})).json()
                        if len(live["data"]) == 3:
                            break
                        await asyncio.sleep(0.1)
                ids = sorted(c["id"] for c in live["data"])
                await asyncio.sleep(1.5)  # the calls log events (transcripts, playback)
            first.proc.send_signal(signal.SIGKILL)
            await first.proc.wait()
        finally:
            callers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await callers
    assert first.proc.returncode == -signal.SIGKILL

    async with (
        start_rtbridge(*args, env=_env(data)) as second,
        httpx.AsyncClient(base_url=second.url, headers=AUTH, timeout=10) as client,
    ):
        listed = (await client.get("/v1/calls")).json()["data"]
        assert [c for c in listed if c["state"] != "ended"] == []  # no ghost
        ended = {
            c["id"]: c
            for c in (await client.get("/v1/calls", params={"state": "ended"})).json()["data"]
        }
        assert sorted(ended) == ids
        for call_id in ids:
            call = ended[call_id]
            assert call["end_reason"] == "interrupted", call
            events = (await client.get(f"/v1/calls/{call_id}/events")).json()["data"]
            assert events and call["ended_at"] == max(e["ts"] for e in events)
