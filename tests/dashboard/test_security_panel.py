"""The dashboard's security panel is fed by its overview stream: the snapshot carries the recent
security events, and each one recorded afterwards arrives as a ``security`` event within a tick
(a wrong key tried on the control plane, here)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from bridge.apikeys import ServerKey
from bridge.app import create_app
from bridge.calls.manager import CallManager
from bridge.config import Settings
from bridge.records import CallStore
from tests.dashboard.test_dashboard_streams import sse
from tests.support.servers import run_app

KEY = "rtb_security_panel_key"


async def test_the_overview_stream_carries_security_events(tmp_path: Path) -> None:
    settings = Settings.model_validate({"server": {"data_dir": str(tmp_path)}})
    store = CallStore(tmp_path / "calls.db")
    manager = CallManager(settings, store)
    app = create_app(settings, ServerKey(KEY))
    app.state.manager, app.state.store = manager, store
    manager.security.record("blocked-source", source="203.0.113.9:5060", detail="no trunk")
    try:
        async with (
            run_app(app) as url,
            httpx.AsyncClient(base_url=url, timeout=20) as client,
            client.stream(
                "GET", "/dashboard/api/stream", headers={"Authorization": f"Bearer {KEY}"}
            ) as stream,
        ):
            events = sse(stream)
            kind, snapshot = await anext(events)
            assert kind == "snapshot"
            assert [(e["kind"], e["source"]) for e in snapshot["security"]] == [
                ("blocked-source", "203.0.113.9:5060")
            ]
            wrong = await client.get("/v1/calls", headers={"Authorization": "Bearer guess"})
            assert wrong.status_code == 401
            pushed: list[dict[str, object]] = []
            async with asyncio.timeout(10):
                async for kind, payload in events:
                    if kind == "security":
                        pushed = payload
                        break
            assert [(e["kind"], e["detail"], e["seq"]) for e in pushed] == [
                ("auth-failure", "wrong key on /v1/calls", 2)
            ]
    finally:
        await manager.close()
        store.close()
