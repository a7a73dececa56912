"""``[server] event_loop``: ``rtbridge serve`` runs on the loop the setting names (the standard
library's by default, uvloop for ``auto`` when installed), and asking for uvloop where it is
missing is a clear error."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from bridge import event_loop
from bridge.errors import ConfigError
from tests.support.procs import RTBRIDGE
from tests.support.servers import free_port


async def _serve_loop(tmp_path: Path, setting: str | None) -> str:
    """Start ``rtbridge serve``; the event loop its banner names."""
    env = {**os.environ, "RTBRIDGE_API_KEY": "k" * 32, "XDG_DATA_HOME": str(tmp_path)}
    env.pop("RTBRIDGE_SERVER__EVENT_LOOP", None)
    if setting is not None:
        env["RTBRIDGE_SERVER__EVENT_LOOP"] = setting
    proc = await asyncio.create_subprocess_exec(
        RTBRIDGE,
        "serve",
        "--http-port",
        str(free_port()),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(30):
            while line := (await proc.stdout.readline()).decode():
                if line.strip().startswith("event loop:"):
                    return line.split(":", 1)[1].strip()
        raise AssertionError("serve exited without naming its event loop")
    finally:
        proc.terminate()
        await proc.communicate()


@pytest.mark.parametrize(
    ("setting", "expected"),
    [(None, "asyncio"), ("auto", "uvloop"), ("uvloop", "uvloop"), ("asyncio", "asyncio")],
)
async def test_serve_runs_on_the_loop_the_setting_names(
    tmp_path: Path, setting: str | None, expected: str
) -> None:
    pytest.importorskip("uvloop")  # installed with uvicorn[standard]
    assert await _serve_loop(tmp_path, setting) == expected


async def _which() -> str:
    return event_loop.loop_name(asyncio.get_running_loop())


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    assert event_loop.run(_which(), "auto") == "asyncio"
    coro = _which()
    with pytest.raises(ConfigError, match="uvloop is not installed"):
        event_loop.run(coro, "uvloop")
    assert coro.cr_frame is None  # closed, never left pending


def test_a_bad_setting_is_refused() -> None:
    from pydantic import ValidationError

    from bridge.config import ServerSettings

    with pytest.raises(ValidationError):
        ServerSettings.model_validate({"event_loop": "trio"})
