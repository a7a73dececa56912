"""A PostgreSQL restart under a real ``rtbridge serve`` with a SIPp call up: the call goes on, a
new call is answered during the outage, the API says ``503 records_unavailable`` for what it
would read from the records (and still shows the live call), ``/metrics`` says the records are
down and how much waits, and once the database is back both calls' records are complete: the
events logged during the outage are there, the calls ended as they ended."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.calls import sipp_scenario as sc
from tests.calls.conftest import rtp_range, sipp_caller
from tests.control.test_live_calls import metric
from tests.dashboard.test_dashboard_streams import sse
from tests.sip.sipp_support import SippResult, free_port
from tests.support.audio import ulaw_file
from tests.support.infra import new_database, postgres
from tests.support.peers import require_peer
from tests.support.procs import start_rtbridge

pytestmark = [pytest.mark.peer("sipp"), pytest.mark.peer("postgresql")]

KEY = "rtb_records_outage_key"
AUTH = {"Authorization": f"Bearer {KEY}"}


async def _first(client: httpx.AsyncClient, path: str, name: str) -> Any:
    """The data of the first ``name`` event of the SSE stream at ``path``."""
    async with client.stream("GET", path) as response:
        assert response.status_code == 200, await response.aread()
        async for event, data in sse(response):
            if event == name:
                return data
    raise AssertionError(f"{path} ended without a {name!r} event")


def _call(tmp: Path, name: str, sip_port: int, seconds: int) -> asyncio.Task[SippResult]:
    """A SIPp caller that speaks for 1 s, stays ``seconds``, then hangs up."""
    audio = ulaw_file(tmp / f"{name}.ulaw", ("voice", 1.0), ("silence", seconds + 5.0))
    scenario = sc.uac(sc.stream(audio), sc.pause(seconds * 1000), sc.send_bye(2))
    return asyncio.create_task(sipp_caller(sip_port, tmp, scenario))


async def test_a_postgres_restart_under_live_calls_loses_no_record(tmp_path: Path) -> None:
    require_peer("sipp")
    with postgres() as pg:
        url = new_database(pg.url, "records")
        base = rtp_range()["rtp_port_min"]
        env = {
            "RTBRIDGE_API_KEY": KEY,
            "RTBRIDGE_SERVER__DATA_DIR": str(tmp_path / "data"),
            "RTBRIDGE_CALLS__RECORDS_URL": url,
            "RTBRIDGE_CALLS__RTP_PORT_MIN": str(base),
            "RTBRIDGE_CALLS__RTP_PORT_MAX": str(base + 100),
        }
        sip_port = free_port()
        args = ("serve", "--http-port", str(free_port(socket.SOCK_STREAM)))
        async with (
            start_rtbridge(*args, "--sip-port", str(sip_port), env=env) as rt,
            httpx.AsyncClient(base_url=rt.url, headers=AUTH, timeout=10) as client,
        ):
            long_call = _call(tmp_path, "long", sip_port, 14)
            async with asyncio.timeout(30):
                while not (
                    live := (await client.get("/v1/calls", params={"state": "active"})).json()[
                        "data"
                    ]
                ):
                    await asyncio.sleep(0.1)
            long_id = live[0]["id"]
            await asyncio.sleep(1.0)

            pg.stop()
            down_at = time.time()
            short_call = _call(tmp_path, "short", sip_port, 3)  # a new call, mid-outage
            async with asyncio.timeout(30):
                while True:  # the short call's set-up has logged something by then
                    scrape = (await client.get("/metrics")).text
                    if (
                        metric(scrape, "rtbridge_records_up") == 0.0
                        and metric(scrape, "rtbridge_records_backlog") > 0
                    ):
                        break
                    await asyncio.sleep(0.2)
            refused = await client.get(f"/v1/calls/{long_id}/events")
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "records_unavailable"
            assert refused.headers["retry-after"] == "5"
            live_view = await client.get(f"/v1/calls/{long_id}")  # live: not from the records
            assert live_view.status_code == 200 and live_view.json()["state"] == "active"
            async with asyncio.timeout(20):  # the dashboard shows the live calls, and a call's page
                snapshot = await _first(client, "/dashboard/api/stream", "snapshot")
                assert long_id in {c["id"] for c in snapshot["calls"]}, snapshot
                logged = await _first(client, f"/dashboard/api/calls/{long_id}/stream", "log")
                assert logged == []  # its log is in the records: caught up later
            short = await short_call
            assert short.returncode == 0, short.summary()  # answered and hung up in the outage
            up_at = time.time()
            pg.start()

            long = await long_call
            assert long.returncode == 0, long.summary()
            async with asyncio.timeout(30):
                while True:
                    listed = await client.get("/v1/calls", params={"state": "ended"})
                    if listed.status_code == 200 and len(listed.json()["data"]) == 2:
                        break
                    await asyncio.sleep(0.2)
            ended = {c["id"]: c for c in listed.json()["data"]}
            assert {c["end_reason"] for c in ended.values()} == {"remote-bye"}, ended
            short_id = next(i for i in ended if i != long_id)
            for call_id in (long_id, short_id):
                events = (await client.get(f"/v1/calls/{call_id}/events")).json()["data"]
                during = [e for e in events if down_at < e["ts"] < up_at]
                assert during, (call_id, [e["kind"] for e in events])
                assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
            scrape = (await client.get("/metrics")).text
            assert metric(scrape, "rtbridge_records_up") == 1.0
            assert metric(scrape, "rtbridge_records_dropped_total") == 0.0
            assert metric(scrape, "rtbridge_records_failed_total") == 0.0
