"""Per-call RTP sockets: port pairs, symmetric RTP latching, no re-latch (RTP Bleed)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from bridge.calls.rtp_endpoint import PortAllocator, RtpEndpoint
from bridge.errors import PortsExhausted
from media.rtp import RtpPacket
from tests.support.servers import free_port


def test_allocator_even_ports_round_robin_and_exhaustion() -> None:
    alloc = PortAllocator(20001, 20008)  # even pairs: 20002, 20004, 20006
    got = [alloc.acquire() for _ in range(alloc.capacity)]
    assert got == [20002, 20004, 20006]
    with pytest.raises(PortsExhausted):
        alloc.acquire()
    alloc.release(20002)
    assert alloc.acquire() == 20002
    alloc.release(20004)
    alloc.release(20006)
    assert alloc.acquire() == 20004  # the oldest free port first, not the one just freed


def _pair_port() -> int:
    for _ in range(50):
        port = free_port(socket.SOCK_DGRAM)
        if port % 2 == 0:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                try:
                    s.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free even/odd UDP pair")


async def test_latches_to_first_source_and_ignores_others() -> None:
    got: list[RtpPacket] = []
    ep = RtpEndpoint("127.0.0.1", _pair_port(), on_rtp=got.append)
    async with ep:
        ep.set_remote(("127.0.0.1", 9))  # SDP said port 9; media comes from elsewhere (NAT)
        caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        caller.bind(("127.0.0.1", 0))
        attacker.bind(("127.0.0.1", 0))
        caller.setblocking(False)
        pkt = RtpPacket(
            payload_type=0, sequence_number=1, timestamp=160, ssrc=7, payload=b"\xff" * 160
        )
        caller.sendto(bytes(pkt), ("127.0.0.1", ep.port))
        attacker.sendto(b"\x80\x00garbage", ("127.0.0.1", ep.port))
        attacker.sendto(bytes(pkt), ("127.0.0.1", ep.port))
        for _ in range(100):
            if ep.stats.packets_in + ep.stats.foreign_source >= 3:
                break
            await asyncio.sleep(0.01)
        assert [p.sequence_number for p in got] == [1]
        assert ep.latched == caller.getsockname()
        assert ep.stats.foreign_source == 2  # never re-latched to the attacker
        # we now send to where the caller's media really comes from
        assert ep.send(bytes(pkt))
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(caller, 2048), 5)
        assert RtpPacket.parse(data).payload == pkt.payload
        # after a re-INVITE the endpoint may latch to a new source
        ep.relatch()
        attacker.sendto(bytes(pkt), ("127.0.0.1", ep.port))
        for _ in range(100):
            if len(got) == 2:
                break
            await asyncio.sleep(0.01)
        assert ep.latched == attacker.getsockname()
        caller.close()
        attacker.close()


async def test_malformed_packets_are_counted_not_delivered() -> None:
    got: list[RtpPacket] = []
    ep = RtpEndpoint("127.0.0.1", _pair_port(), on_rtp=got.append)
    async with ep:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for junk in (b"", b"\x00" * 3, b"\x40" + b"\x00" * 20):
                s.sendto(junk, ("127.0.0.1", ep.port))
            for _ in range(100):
                if ep.stats.malformed >= 3:
                    break
                await asyncio.sleep(0.01)
        assert ep.stats.malformed == 3 and not got and ep.latched is None
