"""Secrets at rest and on the wire: owner-only files after ``rtbridge serve`` starts (key from the
environment), a key file others may read is refused, and an upstream's URL, key and error body
never reach an HTTP client or a SIP peer, only a correlation id that is in the log."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from bridge.apikeys import KEY_FILE, ServerKey, resolve_server_key
from bridge.app import create_app
from bridge.config import Settings, UpstreamSettings
from bridge.errors import ConfigError
from tests.calls import sipp_scenario as sc
from tests.calls.conftest import Stack, stack, stack_options  # noqa: F401 (fixtures)
from tests.support.procs import RTBRIDGE, run_rtbridge
from tests.support.servers import free_port, run_app

KEY = "rtb_secrets_test_key"
UPSTREAM_PORT = free_port()
UPSTREAM = f"ws://127.0.0.1:{UPSTREAM_PORT}/v1/realtime?token=query-secret"
SECRET_BODY = (
    b'{"error": {"message": "Incorrect API key provided: sk-live-TOPSECRET42 (org-acme)"}}'
)


@pytest.fixture
async def refusing_upstream() -> AsyncIterator[str]:
    """An 'upstream' that refuses every WebSocket handshake with 401 and a body full of secrets."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(SECRET_BODY)}\r\nConnection: close\r\n\r\n".encode()
            + SECRET_BODY
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", UPSTREAM_PORT)
    async with server:
        yield UPSTREAM


def _leaks(text: str, upstream: str) -> list[str]:
    host_port = upstream.split("//", 1)[1].split("/", 1)[0]
    return [s for s in ("TOPSECRET42", "org-acme", host_port, "query-secret") if s in text]


async def test_the_relay_tells_a_client_only_a_reference(
    tmp_path: Path, refusing_upstream: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.model_validate({"server": {"data_dir": str(tmp_path)}})
    up = UpstreamSettings(url=refusing_upstream)
    app = create_app(settings, ServerKey(KEY), upstream=up)
    async with run_app(app) as base:
        with pytest.raises(InvalidStatus) as err, caplog.at_level(logging.WARNING):
            async with connect(
                base.replace("http", "ws") + "/v1/realtime",
                additional_headers={"Authorization": f"Bearer {KEY}"},
            ):
                pass
    assert err.value.response.status_code == 502
    body = err.value.response.body.decode()
    assert _leaks(body, refusing_upstream) == [], body
    ref = body.split("(", 1)[1].split(")", 1)[0]
    assert ref.startswith("ref_")
    logged = "\n".join(r.getMessage() for r in caplog.records if ref in r.getMessage())
    assert "HTTP 401" in logged  # the details are in the log, under the same reference


async def test_a_browser_call_is_told_only_a_reference(
    tmp_path: Path, refusing_upstream: str
) -> None:
    settings = Settings.model_validate(
        {
            "server": {"data_dir": str(tmp_path)},
            "profiles": {"default": {"upstream": {"url": refusing_upstream}}},
        }
    )
    app = create_app(settings, ServerKey(KEY), runtime=True)
    offer = "v=0\r\na=ice-ufrag:abcd\r\na=fingerprint:sha-256 00:11\r\n"
    async with run_app(app) as base, httpx.AsyncClient(base_url=base) as c:
        r = await c.post(
            "/v1/realtime/calls",
            content=offer,
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/sdp"},
        )
    assert r.status_code == 502, r.text
    assert _leaks(r.text, refusing_upstream) == [] and "ref_" in r.text


@pytest.mark.peer("sipp")
@pytest.mark.parametrize("stack_options", [{"profile": {"upstream": {"url": UPSTREAM}}}])
async def test_a_sip_caller_is_told_only_a_reference(
    stack: Stack,  # noqa: F811
    tmp_path: Path,
    refusing_upstream: str,
) -> None:
    res = await stack.sipp_caller(tmp_path, sc.uac_rejected(503), extra=("-trace_msg",))
    assert res.returncode == 0, res.summary()
    trace = "".join(p.read_text(errors="replace") for p in tmp_path.glob("*_messages.log"))
    (status_line,) = [ln for ln in trace.splitlines() if ln.startswith("SIP/2.0 503")]
    assert status_line.startswith("SIP/2.0 503 Agent Unavailable (ref_"), status_line
    assert _leaks(trace, refusing_upstream) == [], trace
    stack.store.flush()
    (record,) = stack.store.list_calls()
    errors = [e.data for e in stack.store.events(record.call_id) if e.kind == "error"]
    assert errors and _leaks(str(errors), refusing_upstream) == []


# -- files at rest -----------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_files_are_owner_only_with_the_key_in_the_environment(tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    data = xdg / "rtbridge"
    data.mkdir(parents=True, mode=0o755)
    os.chmod(data, 0o755)  # as an older version (or a umask of 022) left it
    db = data / "calls.db"
    db.touch(mode=0o644)
    os.chmod(db, 0o644)
    env = {"RTBRIDGE_API_KEY": KEY, "XDG_DATA_HOME": str(xdg)}
    args = ("serve", "--http-port", str(free_port(socket.SOCK_STREAM)))
    async with run_rtbridge(*args, env=env) as url:
        async with httpx.AsyncClient(base_url=url) as c:  # a login writes the sessions file
            r = await c.post("/dashboard/login", data={"key": KEY}, headers={"Origin": url})
            assert r.status_code == 303
        files = sorted(p.name for p in data.iterdir())
        # files owner-only (0600); directories (the records' owner locks) owner-only (0700)
        modes = {p.name: (_mode(p), 0o700 if p.is_dir() else 0o600) for p in data.rglob("*")}
        dir_mode = _mode(data)
    assert {"calls.db", "calls.db-wal", "calls.db-shm", "dashboard-sessions"} <= set(files)
    assert KEY_FILE not in files  # the key came from the environment
    assert dir_mode == 0o700
    assert {name: mode for name, (mode, want) in modes.items() if mode != want} == {}


async def test_a_new_data_dir_and_key_file_are_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        key = resolve_server_key(tmp_path / "fresh" / "rtbridge", environ={})
    finally:
        os.umask(old)
    assert key.path is not None and _mode(key.path) == 0o600 and _mode(key.path.parent) == 0o700
    assert resolve_server_key(key.path.parent, environ={}).value == key.value  # read back


def test_a_readable_key_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    data = tmp_path / "xdg" / "rtbridge"
    data.mkdir(parents=True)
    key_file = data / KEY_FILE
    key_file.write_text("rtb_world_readable\n")
    os.chmod(key_file, 0o644)
    with pytest.raises(ConfigError, match=r"mode 644.*chmod 600"):
        resolve_server_key(data, environ={})
    env = {"PATH": os.environ["PATH"], "XDG_DATA_HOME": str(tmp_path / "xdg")}
    res = subprocess.run(
        [RTBRIDGE, "serve", "--http-port", str(free_port(socket.SOCK_STREAM))],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert res.returncode == 2
    assert f"rtbridge: {key_file} may be read by its group or others" in res.stderr
    assert "rtb_world_readable" not in res.stderr + res.stdout


def test_a_planted_symlink_is_not_followed(tmp_path: Path) -> None:
    data = tmp_path / "rtbridge"
    data.mkdir()
    elsewhere = tmp_path / "attacker-readable"
    (data / KEY_FILE).symlink_to(elsewhere)
    with pytest.raises(ConfigError, match="symlink"):
        resolve_server_key(data, environ={})
    assert not elsewhere.exists()  # no key was written through it
