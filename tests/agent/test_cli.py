"""``rtbridge agent`` as a user runs it: prints where it listens, serves, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import signal

from websockets.asyncio.client import connect

from tests.agent.conftest import Client
from tests.support.procs import RTBRIDGE
from tests.support.servers import free_port


async def test_rtbridge_agent_serves_and_stops_cleanly() -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        RTBRIDGE,
        "agent",
        "--port",
        str(port),
        "--formats",
        "pcm16",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            line = (await proc.stdout.readline()).decode()
        assert f"listening on ws://127.0.0.1:{port}/v1/realtime" in line
        async with connect(f"ws://127.0.0.1:{port}/v1/realtime") as ws:
            c = Client(ws)
            assert (await c.recv())["type"] == "session.created"
            ev = await c.update({"audio": {"input": {"format": {"type": "audio/pcmu"}}}})
            assert ev["type"] == "error"  # --formats pcm16 forces callers to transcode
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            code = await proc.wait()
        assert code == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_rtbridge_agent_missing_key_env_fails() -> None:
    proc = await asyncio.create_subprocess_exec(
        RTBRIDGE,
        "agent",
        "--port",
        str(free_port()),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"RTBRIDGE_AGENT__API_KEY_ENV": "RTB_SURELY_UNSET_KEY", "PATH": "/usr/bin:/bin"},
    )
    async with asyncio.timeout(30):
        _, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"RTB_SURELY_UNSET_KEY" in err
