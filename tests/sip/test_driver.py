"""The asyncio driver over real sockets on 127.0.0.1: malformed input never kills the
transport (400 where possible, else dropped and counted); OPTIONS; draining."""

from __future__ import annotations

import asyncio
import socket

from tests.sip.sipp_support import endpoint


def _options(branch: str, port: int, *, bad_cseq: bool = False) -> bytes:
    cseq = "x OPTIONS" if bad_cseq else "1 OPTIONS"
    return (
        f"OPTIONS sip:bot@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{branch};rport\r\n"
        f"From: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:bot@127.0.0.1>\r\n"
        f"Call-ID: {branch}@probe\r\nCSeq: {cseq}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def _udp_exchange(
    sock: socket.socket, data: bytes, dest: tuple[str, int]
) -> tuple[int, str] | None:
    """Send, and return the answer's (status, reason) or None when nothing came back."""
    loop = asyncio.get_running_loop()
    sock.sendto(data, dest)
    try:
        raw = await asyncio.wait_for(loop.sock_recv(sock, 65535), 2.0)
    except TimeoutError:
        return None
    status_line = raw.split(b"\r\n", 1)[0].decode()
    _, status, reason = status_line.split(" ", 2)
    return int(status), reason


async def test_malformed_datagrams_get_400_or_are_dropped_and_counted() -> None:
    ep = await endpoint()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    port = sock.getsockname()[1]
    dest = ("127.0.0.1", ep.ports["udp"])
    try:
        assert await _udp_exchange(sock, b"\x00\xff garbage", dest) is None
        bad = await _udp_exchange(sock, _options("bad1", port, bad_cseq=True), dest)
        assert bad is not None and bad[0] == 400 and "bad CSeq" in bad[1]
        ok = await _udp_exchange(sock, _options("good1", port), dest)
        assert ok == (200, "OK"), "the transport survived"
        ep.drain(retry_after=42)
        busy = await _udp_exchange(sock, _options("good2", port), dest)
        assert busy == (503, "Service Unavailable")
        assert ep.core.retry_after == 42
    finally:
        sock.close()
        await ep.close()
    assert ep.core.stats["malformed"] == 2
    assert ep.core.stats["malformed_answered"] == 1


async def test_tcp_stream_without_content_length_is_closed_and_counted() -> None:
    ep = await endpoint()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", ep.ports["tcp"])
        writer.write(_options("t1", 1).replace(b"Content-Length: 0\r\n", b""))
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by rtbridge
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", ep.ports["tcp"])
        writer.write(_options("t2", 1).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"SIP/2.0 200 OK")
        writer.close()
    finally:
        await ep.close()
    assert ep.transports.stats["framing_errors"] == 1
