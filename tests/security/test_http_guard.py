"""What a stranger on the Internet can hold open on the HTTP port (:mod:`bridge.http_server`),
against a real ``rtbridge serve``: pipelined requests never read and an endless header section
do not grow memory; a silent connection, a trickled head and a trickled WebSocket upgrade are
closed at the head deadline; one address cannot hold more than its share of connections, nor
all addresses together more than the total, and the API keeps answering meanwhile."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.support.procs import Rtbridge, start_rtbridge
from tests.support.servers import free_port

KEY = "rtb_guard_test_key"
STRANGER = "127.0.0.2"  # another source to rtbridge; 127.0.0.1 is under the total cap only
PROXY = "127.0.0.3"  # in trusted_proxies: under the total cap only


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Rtbridge]:
    env = {
        "RTBRIDGE_API_KEY": KEY,
        "RTBRIDGE_SERVER__DATA_DIR": str(tmp_path / "data"),
        "RTBRIDGE_SERVER__HTTP_HEAD_TIMEOUT_S": "2.0",
        "RTBRIDGE_SERVER__HTTP_MAX_CONNECTIONS": "40",
        "RTBRIDGE_SERVER__HTTP_MAX_CONNECTIONS_PER_SOURCE": "8",
        "RTBRIDGE_SERVER__TRUSTED_PROXIES": '["127.0.0.3"]',
        "XDG_DATA_HOME": str(tmp_path / "xdg"),
    }
    args = ("serve", "--http-port", str(free_port()), "--sip-port", str(free_port()))
    async with start_rtbridge(*args, env=env) as rt:
        yield rt


def _addr(rt: Rtbridge) -> tuple[str, int]:
    host, port = rt.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _connect(rt: Rtbridge, source: str = STRANGER) -> socket.socket:
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(5)
    s.connect(_addr(rt))
    return s


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _read_all(s: socket.socket, timeout: float) -> bytes:
    """What the server sends until it closes (or ``timeout`` passes: then what came)."""
    s.settimeout(timeout)
    got = b""
    try:
        while chunk := s.recv(65536):
            got += chunk
    except TimeoutError:
        pass
    return got


async def _healthy(rt: Rtbridge) -> None:
    async with httpx.AsyncClient(base_url=rt.url, timeout=5) as client:
        assert (await client.get("/healthz")).status_code == 200
        listed = await client.get("/v1/calls", headers={"Authorization": f"Bearer {KEY}"})
        assert listed.status_code == 200


async def test_pipelined_requests_never_read_and_endless_headers_do_not_grow_memory(
    server: Rtbridge,
) -> None:
    before = _rss_mb(server.proc.pid)

    def pipeline() -> int:
        """Send GETs back to back for 3 s without reading an answer; bytes the kernel took."""
        s = _connect(server)
        s.setblocking(False)
        chunk = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 2000
        sent, deadline = 0, time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                sent += s.send(chunk)
            except BlockingIOError:
                time.sleep(0.01)
        s.close()
        return sent

    def endless_headers() -> bytes:
        s = _connect(server)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(2000):  # up to 16 MB of headers
                s.sendall(b"X-Filler: " + b"a" * 8000 + b"\r\n")
        except OSError:
            pass  # refused and closed: what we want
        answer = _read_all(s, 3)
        s.close()
        return answer

    sent = await asyncio.to_thread(pipeline)
    answer = await asyncio.to_thread(endless_headers)
    grown = _rss_mb(server.proc.pid) - before
    # before: uvicorn's default parser queued every pipelined request (GBs for one connection)
    # and took headers without bound
    assert grown < 60, f"RSS grew {grown:.0f} MB for {sent / 1e6:.0f} MB pipelined"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:200]
    await _healthy(server)


@pytest.mark.parametrize("kind", ["silent", "trickled head", "trickled upgrade"])
async def test_a_connection_that_does_not_deliver_its_head_in_time_is_closed(
    server: Rtbridge, kind: str
) -> None:
    head = {
        "silent": b"",
        "trickled head": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 100,
        "trickled upgrade": (
            b"GET /v1/realtime?call_id=x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        ),
    }[kind]

    def hold() -> tuple[float, bytes]:
        s = _connect(server)
        s.settimeout(0.25)
        start = time.monotonic()
        for byte in head:  # one byte every 250 ms at most (the deadline is 2 s)
            try:
                s.send(bytes([byte]))
            except OSError:
                break
            try:
                if s.recv(1024) == b"":
                    break
            except TimeoutError:
                continue
        else:
            _read_all(s, 10)  # the head never ends: wait for the close
        s.close()
        return time.monotonic() - start, head

    took, _ = await asyncio.to_thread(hold)
    # before: still open after 70 s; a connection held only by the kernel's limits
    assert took < 8, f"{kind}: open {took:.1f} s"


async def test_one_address_holds_only_its_share_and_the_api_answers_meanwhile(
    server: Rtbridge,
) -> None:
    idle = [await asyncio.to_thread(_connect, server) for _ in range(8)]
    try:
        extra = await asyncio.to_thread(_connect, server)
        answer = await asyncio.to_thread(_read_all, extra, 3)
        extra.close()
        status, _, body = answer.partition(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 429"), answer[:200]
        assert b"retry-after: 5" in status.lower()
        assert orjson.loads(body)["error"]["code"] == "too_many_connections"
        await _healthy(server)  # from 127.0.0.1
        proxied = [await asyncio.to_thread(_connect, server, PROXY) for _ in range(12)]
        try:  # a trusted proxy counts toward the total only
            proxied[-1].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert (await asyncio.to_thread(_read_all, proxied[-1], 5)).startswith(b"HTTP/1.1 200")
        finally:
            for s in proxied:
                s.close()
        for s in idle:  # each ends at the head deadline: the share is free again
            assert await asyncio.to_thread(_read_all, s, 5) == b""
        again = await asyncio.to_thread(_connect, server)
        again.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await asyncio.to_thread(_read_all, again, 5)).startswith(b"HTTP/1.1 200")
        again.close()
    finally:
        for s in idle:
            s.close()


async def test_all_addresses_together_hold_at_most_the_total(server: Rtbridge) -> None:
    sources = [f"127.0.0.{i}" for i in range(10, 16)]  # 6 sources x 7 connections = 42 > 40

    def flood() -> tuple[int, list[bytes]]:
        socks = [_connect(server, source) for source in sources for _ in range(7)]
        time.sleep(0.5)  # well inside the head deadline
        held, refused = 0, []
        for s in socks:
            s.setblocking(False)
            try:
                refused.append(s.recv(4096))
            except BlockingIOError:
                held += 1
        for s in socks:
            s.close()
        return held, refused

    held, refused = await asyncio.to_thread(flood)
    assert held == 40
    assert len(refused) == 2 and all(a.startswith(b"HTTP/1.1 503") for a in refused), refused
    await asyncio.sleep(0.5)
    await _healthy(server)


async def test_websocket_connections_give_their_place_back_when_they_close(
    server: Rtbridge,
) -> None:
    """An upgraded connection is the WebSocket's; its end still frees its place (before: each
    upgrade, even a refused one, held its count for ever, and 8 made the address 429 for
    good, 40 the whole port 503)."""

    def attempts() -> list[bytes]:
        answers = []
        for _ in range(12):  # more than the address's 8, more than the total's 40 / 4
            s = _connect(server)
            s.sendall(
                b"GET /v1/realtime?call_id=x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
            answers.append(_read_all(s, 5)[:12])
            s.close()
        return answers

    for answer in await asyncio.to_thread(attempts):
        assert answer.startswith(b"HTTP/1.1 4") and not answer.startswith(b"HTTP/1.1 429")
    await asyncio.sleep(0.5)
    again = await asyncio.to_thread(_connect, server)
    again.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (await asyncio.to_thread(_read_all, again, 5)).startswith(b"HTTP/1.1 200")
    again.close()
