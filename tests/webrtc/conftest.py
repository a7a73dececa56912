"""An in-process rtbridge for browser-call tests: local agent, call manager, call records and
the HTTP app on free ports of 127.0.0.1, offering ICE candidates on 127.0.0.1 only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.agent import LocalAgent
from bridge.apikeys import ServerKey
from bridge.app import create_app
from bridge.calls.manager import CallManager
from bridge.config import AgentSettings, Dialect, Settings
from bridge.records import CallStore
from bridge.webrtc.peer import ClientPeer
from tests.support.servers import run_app

KEY = "rtb_webrtc_test_key"


@dataclass
class Bridge:
    url: str
    agent: LocalAgent
    manager: CallManager
    store: CallStore
    settings: Settings
    app_state: Any


@pytest.fixture
def webrtc_options() -> dict[str, Any]:
    """Override in a test module to change the ``[webrtc]`` settings."""
    return {}


@pytest.fixture
def agent_dialect() -> str:
    """Override (or parametrize) in a test module to run the agent in another dialect."""
    return "ga"


@pytest.fixture
def agent_settings() -> dict[str, Any]:
    """Override in a test module to configure the local agent (``session_max_s``, ...)."""
    return {}


@pytest.fixture
def agent_kwargs() -> dict[str, Any]:
    """Override in a test module to pace the local agent otherwise (``chunk_interval_s``)."""
    return {}


@pytest.fixture
async def bridge(
    tmp_path: Path,
    webrtc_options: dict[str, Any],
    agent_dialect: str,
    agent_settings: dict[str, Any],
    agent_kwargs: dict[str, Any],
    request: pytest.FixtureRequest,
) -> AsyncIterator[Bridge]:
    # a test module's PROFILE adds settings to the default profile (``record``, ...); a
    # module attribute rather than a fixture, so modules importing these fixtures need nothing
    profile_options: dict[str, Any] = getattr(request.module, "PROFILE", {})
    agent = LocalAgent(
        AgentSettings(port=0, dialect=Dialect(agent_dialect), **agent_settings), **agent_kwargs
    )
    await agent.start()
    upstream = {"url": agent.url, "dialect": agent_dialect}
    settings = Settings.model_validate(
        {
            "server": {"data_dir": str(tmp_path)},
            "profiles": {"default": {"upstream": upstream, **profile_options}},
            "webrtc": {"ice_hosts": ["127.0.0.1"], **webrtc_options},
        }
    )
    store = CallStore(tmp_path / "calls.db")
    manager = CallManager(settings, store)
    await manager.__aenter__()
    app = create_app(settings, ServerKey(KEY))
    app.state.manager = manager
    app.state.store = store
    try:
        async with run_app(app) as url:
            yield Bridge(url, agent, manager, store, settings, app.state)
    finally:
        await manager.close()
        store.close()
        await agent.stop()


async def post_offer(
    bridge: Bridge, offer: str, key: str = KEY, source: str | None = None
) -> httpx.Response:
    """``POST /v1/realtime/calls`` with ``offer`` as application/sdp, from ``source`` (an
    address of 127.0.0.0/8; None: the default)."""
    transport = None if source is None else httpx.AsyncHTTPTransport(local_address=source)
    async with httpx.AsyncClient(timeout=30, transport=transport) as http:
        return await http.post(
            f"{bridge.url}/v1/realtime/calls",
            content=offer,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/sdp"},
        )


async def place_call(bridge: Bridge, peer: ClientPeer) -> str:
    """Place a browser call from ``peer`` (``POST /v1/realtime/calls`` with the server key) and
    answer it; returns the call id from ``Location``."""
    r = await post_offer(bridge, await peer.offer())
    assert r.status_code == 201, r.text
    await peer.accept(r.text)
    return r.headers["location"].rsplit("/", 1)[-1]
