"""The control plane over a live in-process call stack (``tests.calls.conftest.stack``):
``create_app`` on the stack's call manager, served by uvicorn on a free port of 127.0.0.1 with
its lifespan (which owns the control plane)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from bridge.apikeys import ServerKey
from bridge.app import create_app
from bridge.control import ControlPlane
from tests.calls.conftest import Stack, stack, stack_options  # noqa: F401 (fixtures)
from tests.calls.sipp_scenario import uac
from tests.sip.sipp_support import free_port, run_sipp
from tests.support.peers import require_peer

KEY = "rtb_test_control_key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@dataclass
class Control:
    app: FastAPI
    url: str
    client: httpx.AsyncClient
    stack: Stack

    @property
    def plane(self) -> ControlPlane:
        plane = self.app.state.control
        assert isinstance(plane, ControlPlane)
        return plane


@contextlib.asynccontextmanager
async def serve_app(app: Any) -> AsyncIterator[str]:
    """Run an ASGI app under uvicorn on a free loopback port; yields its base URL."""
    port = free_port(kind=1)  # SOCK_STREAM
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@pytest.fixture
async def control(stack: Stack) -> AsyncIterator[Control]:  # noqa: F811
    app = create_app(stack.settings, ServerKey(KEY))
    app.state.manager = stack.manager
    app.state.sip_leg = stack.sip_leg
    app.state.store = stack.store
    async with (
        serve_app(app) as url,
        httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30) as client,
    ):
        yield Control(app, url, client, stack)


async def sipp_call(
    stack: Stack,  # noqa: F811
    tmp_path: Path,
    scenario_xml: str,
    *,
    timeout: float = 60,
    name: str = "c",
) -> tuple[int, str]:
    """One SIPp call with a scenario; returns (exit status, output)."""
    sipp = require_peer("sipp")
    scenario = tmp_path / f"{name}.xml"
    scenario.write_text(scenario_xml)
    res = await run_sipp(
        sipp,
        "-sf",
        str(scenario),
        f"127.0.0.1:{stack.sip_port}",
        "-m",
        "1",
        "-p",
        str(free_port()),
        "-mp",
        str(free_port()),
        "-trace_msg",
        cwd=tmp_path,
        timeout=timeout,
    )
    messages = "".join(
        p.read_text(errors="replace") for p in tmp_path.glob(f"{name}_*_messages.log")
    )
    return res.returncode, res.summary() + messages


__all__ = ["AUTH", "KEY", "Control", "serve_app", "sipp_call", "uac"]
