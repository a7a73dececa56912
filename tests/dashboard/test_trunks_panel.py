"""The dashboard's overview stream carries the trunks' keepalive state (issue 14): a trunk
whose OPTIONS go unanswered shows ``down`` in the snapshot or a stats tick, which the page's
Trunks panel draws."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.control.conftest import Control, control, stack, stack_options  # noqa: F401
from tests.dashboard.test_dashboard_streams import sse
from tests.sip.sipp_support import free_port


@pytest.fixture
def stack_options() -> dict[str, Any]:  # noqa: F811
    dead = {"name": "gone", "host": "127.0.0.1", "port": free_port(kind=1), "transport": "tcp"}
    return {"sip": {"trunks": [{**dead, "options_interval_s": 1}]}}


async def test_a_dead_trunk_shows_down_on_the_overview_stream(control: Control) -> None:  # noqa: F811
    trunks: list[dict[str, Any]] | None = None
    async with (
        control.client.stream("GET", "/dashboard/api/stream") as r,
        asyncio.timeout(20),
    ):
        assert r.status_code == 200
        async for kind, data in sse(r):
            trunks = data.get("trunks") if kind in ("snapshot", "stats") else trunks
            if trunks and trunks[0]["state"] == "down":
                break
    assert trunks is not None
    failures = trunks[0]["failures"]
    assert failures >= 1
    assert trunks == [
        {
            "name": "gone",
            "state": "down",
            "last_status": None,
            "failures": failures,
            "detail": f"no answer to {failures} OPTIONS",
        }
    ]
