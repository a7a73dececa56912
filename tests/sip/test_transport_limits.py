"""TCP/TLS limits of the SIP transports over real loopback sockets (issue 12): connection caps
(total and per source, before any TLS handshake), the deadline for a complete message (and for
a first message, and a TLS handshake), the idle timeout that spares connections a call uses, the
write high-water mark, and a framer that stays linear when fed one byte at a time."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import pytest

from sip.driver import DefaultHandler, SipEndpoint, start_sip
from sip.events import NoticeKind, SecurityNotice
from sip.settings import SipLimits, SipSettings, TrunkSettings
from tests.sip.sipp_support import ANSWER_SDP
from tests.support.tls import make_cert


class Handler(DefaultHandler):
    def __init__(self) -> None:
        super().__init__(ANSWER_SDP)
        self.notices: list[SecurityNotice] = []

    def on_security(self, notice: SecurityNotice) -> None:
        self.notices.append(notice)

    def kinds(self) -> list[NoticeKind]:
        return [n.kind for n in self.notices]


def _options(n: int, host: str = "127.0.0.1") -> bytes:
    return (
        f"OPTIONS sip:bot@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP {host}:5999;branch=z9hG4bKopt{n}\r\n"
        f"From: <sip:x@{host}>;tag=t{n}\r\nTo: <sip:bot@127.0.0.1>\r\n"
        f"Call-ID: opt-{n}\r\nCSeq: {n} OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


#: The trunk of :func:`_endpoint` (the carrier: under no connection cap); the other loopback
#: addresses are strangers.
CARRIER = "127.0.0.1"


async def _endpoint(handler: Handler, tmp: Path | None = None, **limits: object) -> SipEndpoint:
    tls: dict[str, object] = {}
    if tmp is not None:
        cert, key = make_cert(tmp)
        tls = {"tls_port": 0, "tls_cert": cert, "tls_key": key}
    settings = SipSettings(
        bind_host="127.0.0.1",
        udp_port=None,
        tcp_port=0,
        limits=SipLimits.model_validate(limits),
        trunks=[TrunkSettings(name="carrier", host=CARRIER, inbound_allow=[f"{CARRIER}/32"])],
        **tls,  # type: ignore[arg-type]
    )
    return await start_sip(settings, handler)


async def _closed(reader: asyncio.StreamReader, timeout: float = 10.0) -> bool:
    """True once the server closed (EOF or reset) within ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


async def test_connection_caps_total_and_per_source() -> None:
    handler = Handler()
    ep = await _endpoint(handler, max_connections=5, max_connections_per_source=3)
    port = ep.ports["tcp"]
    try:
        conns = [
            await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0))
            for _ in range(4)
        ]
        assert await _closed(conns[3][0], 5)  # the fourth from one source is reset at once
        assert not await _closed(conns[0][0], 0.3)
        others = [
            await asyncio.open_connection("127.0.0.1", port, local_addr=(f"127.0.0.{3 + i}", 0))
            for i in range(2)
        ]
        assert not await _closed(others[1][0], 0.3)  # 3 + 2 = 5: the total cap
        for i, (r, w) in enumerate(others):  # busy: a message each, answered
            w.write(_options(7 + i, f"127.0.0.{3 + i}"))
            assert b"SIP/2.0 " in await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
        # at the total cap a new stranger takes the place of the one idle longest
        sixth = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.9", 0))
        assert await _closed(conns[0][0], 5)
        assert not await _closed(sixth[0], 0.3)
        assert ep.transports.stats["evicted_connections"] == 1
        caps = [n for n in handler.notices if n.kind is NoticeKind.CONNECTION_CAP]
        assert len(caps) == 2 and "max_connections_per_source" in caps[0].detail
        assert "idle longest" in caps[1].detail and caps[1].source.host == "127.0.0.2"
        assert ep.transports.stats["refused_connections"] == 1
        for _, w in [*conns, *others, sixth]:
            w.close()
    finally:
        await ep.close()


async def test_slow_and_silent_connections_are_closed_at_the_message_deadline() -> None:
    """800 connections each holding a half-sent header stayed open forever: now a message
    must be complete (and a new connection must send one) within the deadline."""
    handler = Handler()
    ep = await _endpoint(handler, message_deadline_s=1.0)
    port = ep.ports["tcp"]
    try:
        slow_r, slow_w = await asyncio.open_connection("127.0.0.1", port)
        slow_w.write(_options(1)[:60])  # half a header, then nothing
        silent_r, silent_w = await asyncio.open_connection("127.0.0.1", port)
        ok_r, ok_w = await asyncio.open_connection("127.0.0.1", port)
        ok_w.write(_options(2))
        assert b"200 OK" in await asyncio.wait_for(ok_r.readuntil(b"\r\n\r\n"), 5)
        assert await _closed(slow_r, 5) and await _closed(silent_r, 5)
        assert not await _closed(ok_r, 0.2)  # it sent a message: idle, not slow
        details = [n.detail for n in handler.notices if n.kind is NoticeKind.REFUSED_REQUEST]
        assert any("message unfinished" in d for d in details)
        assert any("no message within" in d for d in details)
        for w in (slow_w, silent_w, ok_w):
            w.close()
    finally:
        await ep.close()


async def test_a_busy_stream_is_not_taken_for_a_slow_one() -> None:
    """The deadline is per message: a peer that keeps sending messages for longer than the
    deadline, every read ending mid-message, is never cut off."""
    handler = Handler()
    ep = await _endpoint(handler, message_deadline_s=1.0)
    try:
        r, w = await asyncio.open_connection("127.0.0.1", ep.ports["tcp"])
        for n in range(60):  # 3 s of messages, each sent in two halves
            data = _options(n)
            w.write(data[:100])
            await asyncio.sleep(0.025)
            w.write(data[100:])
            await asyncio.sleep(0.025)
        answers = 0
        async with asyncio.timeout(5):
            while answers < 60:
                if b"200 OK" in await r.readuntil(b"\r\n\r\n"):
                    answers += 1
        assert not handler.notices
        w.close()
    finally:
        await ep.close()


async def test_idle_connections_close_unless_a_call_uses_them() -> None:
    handler = Handler()
    ep = await _endpoint(handler, idle_timeout_s=1.0, message_deadline_s=5.0)
    port = ep.ports["tcp"]
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(_options(1))
        await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
        in_use = list(ep.transports.streams)
        ep._peers_in_use = lambda: set(in_use)  # type: ignore[method-assign]
        ep.transports._in_use = ep._peers_in_use
        assert not await _closed(r, 2.5)  # a live call's connection stays however idle
        ep.transports._in_use = frozenset
        assert await _closed(r, 5)
        w.close()
    finally:
        await ep.close()


async def test_a_peer_that_never_reads_is_cut_off_at_the_high_water_mark() -> None:
    handler = Handler()
    ep = await _endpoint(handler, write_high_water=4096)
    port = ep.ports["tcp"]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window, never read
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        _r, w = await asyncio.open_connection(sock=sock)
        w.transport.pause_reading()
        for n in range(20_000):  # each answered 200: far more than any buffer holds
            w.write(_options(n))
            if n % 100 == 0:
                await asyncio.sleep(0.005)
            if NoticeKind.CONNECTION_CAP in handler.kinds():
                break
        assert NoticeKind.CONNECTION_CAP in handler.kinds(), ep.core.stats
        assert "unread by the peer" in handler.notices[-1].detail
        assert ep.transports.connections == set()  # gone, its buffer with it
        w.close()
    finally:
        await ep.close()


@pytest.mark.peer("openssl")
async def test_tls_caps_apply_before_the_handshake_which_has_a_deadline(tmp_path: Path) -> None:
    handler = Handler()
    ep = await _endpoint(handler, tmp_path, max_connections_per_source=2, message_deadline_s=1.0)
    port = ep.ports["tls"]
    client = ssl.create_default_context()
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    try:
        # a client that connects and never says hello holds a slot only until the deadline
        stranger = ("127.0.0.2", 0)
        idle_r, idle_w = await asyncio.open_connection("127.0.0.1", port, local_addr=stranger)
        good_r, good_w = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client, local_addr=stranger
        )
        over_r, over_w = await asyncio.open_connection("127.0.0.1", port, local_addr=stranger)
        assert await _closed(over_r, 5)  # refused at the cap, no handshake spent on it
        good_w.write(_options(1, "127.0.0.2"))
        assert b"SIP/2.0 " in await asyncio.wait_for(good_r.readuntil(b"\r\n\r\n"), 5)
        assert await _closed(idle_r, 5)  # the handshake never came
        assert handler.kinds().count(NoticeKind.CONNECTION_CAP) == 1
        assert any("TLS handshake" in n.detail for n in handler.notices)
        for w in (idle_w, good_w, over_w):
            w.close()
    finally:
        await ep.close()


async def test_strangers_holding_every_connection_lock_no_trunk_out() -> None:
    """Strangers fill the total cap with connections kept open by keep-alive line breaks.
    The carrier (a trunk's address) still connects and is answered; the strangers' keep-
    alives do not count as traffic, so their connections close at the idle timeout, while
    the carrier's keep-alives keep its own open."""
    handler = Handler()
    ep = await _endpoint(
        handler, max_connections=4, max_connections_per_source=2, idle_timeout_s=1.5
    )
    port = ep.ports["tcp"]
    try:
        strangers = []
        for i in range(4):
            host = f"127.0.0.{2 + i // 2}"
            r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(host, 0))
            w.write(_options(10 + i, host))
            await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
            strangers.append((r, w))
        carrier_r, carrier_w = await asyncio.open_connection("127.0.0.1", port)
        carrier_w.write(_options(1, CARRIER))
        assert b"200 OK" in await asyncio.wait_for(carrier_r.readuntil(b"\r\n\r\n"), 5)
        assert ep.transports.stats["refused_connections"] == 0
        for _ in range(12):  # 3.6 s of keep-alives from everyone (RFC 5626 double CRLF)
            for _, w in [*strangers, (carrier_r, carrier_w)]:
                if not w.is_closing():
                    w.write(b"\r\n\r\n")
            await asyncio.sleep(0.3)
        for r, _ in strangers:
            assert await _closed(r, 2)
        assert not await _closed(carrier_r, 0.2)
        carrier_w.write(_options(2, CARRIER))
        assert b"200 OK" in await asyncio.wait_for(carrier_r.readuntil(b"\r\n\r\n"), 5)
        for _, w in [*strangers, (carrier_r, carrier_w)]:
            w.close()
    finally:
        await ep.close()
