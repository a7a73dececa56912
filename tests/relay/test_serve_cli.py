"""``rtbridge`` as a user runs it: help, key handling, TLS."""

from __future__ import annotations

import asyncio
import os
import ssl
import stat
import subprocess
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.support.procs import RTBRIDGE, run_rtbridge
from tests.support.servers import free_port
from tests.support.tls import make_cert


def test_help_lists_subcommands() -> None:
    out = subprocess.run([RTBRIDGE, "--help"], capture_output=True, text=True, check=True).stdout
    for cmd in ("serve", "agent", "bench"):
        assert cmd in out


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[server]\nhttp_port = -1\n")
    res = subprocess.run(
        [RTBRIDGE, "serve", "--config", str(cfg)], capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 2
    assert "server.http_port" in res.stderr


async def test_generated_key_is_stored_not_printed(tmp_path: Path) -> None:
    env = {"RTBRIDGE_API_KEY": "", "XDG_DATA_HOME": str(tmp_path)}
    proc = await asyncio.create_subprocess_exec(
        RTBRIDGE,
        "serve",
        "--http-port",
        str(free_port()),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **env},
    )
    assert proc.stdout is not None
    lines = []
    async with asyncio.timeout(30):
        while b"server key" not in (line := await proc.stdout.readline()):
            assert line, "serve exited early"
            lines.append(line.decode())
        lines.append(line.decode())
    # let it run a little so anything else it prints is captured
    await asyncio.sleep(0.5)
    proc.terminate()
    rest, _ = await proc.communicate()
    key_file = tmp_path / "rtbridge" / "api-key"
    key = key_file.read_text().strip()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    output = "".join(lines) + rest.decode()
    assert str(key_file) in output
    assert key not in output


@pytest.mark.peer("openssl")
async def test_tls_serves_wss(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    env = {"RTBRIDGE_API_KEY": "k", "XDG_DATA_HOME": str(tmp_path)}
    async with run_rtbridge(
        "serve",
        "--http-port",
        str(free_port()),
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        env=env,
    ) as url:
        assert url.startswith("https://")
        ctx = ssl.create_default_context(cafile=str(cert))
        wss = url.replace("https://", "wss://") + "/v1/realtime"
        async with connect(wss, ssl=ctx, additional_headers={"Authorization": "Bearer k"}) as ws:
            first = await asyncio.wait_for(ws.recv(), 10)
            assert '"session.created"' in str(first)


def test_tls_needs_both_files(tmp_path: Path) -> None:
    res = subprocess.run(
        [RTBRIDGE, "serve", "--tls-cert", str(tmp_path / "c.pem")],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "XDG_DATA_HOME": str(tmp_path), "RTBRIDGE_API_KEY": "k"},
    )
    assert res.returncode == 2
    assert "--tls-key" in res.stderr


pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
