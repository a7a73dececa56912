"""Per-call RTP sockets: random port pairs, strict source learning (no RTP hijack, no RTP
Bleed), IP-literal addresses only."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Callable

import pytest

from bridge import event_loop
from bridge.calls import rtp_endpoint
from bridge.calls.rtp_endpoint import RTCP_PER_S, PortAllocator, RtpEndpoint
from bridge.errors import PortsExhausted
from media.rtp import RtpPacket
from media.srtp import SrtpSession
from sip.sdes import new_key
from tests.support.servers import free_port


def test_allocator_random_even_ports_and_exhaustion() -> None:
    alloc = PortAllocator(20001, 20008, rng=random.Random(1))  # even pairs: 20002, 20004, 20006
    got = [alloc.acquire() for _ in range(alloc.capacity)]
    assert sorted(got) == [20002, 20004, 20006]
    with pytest.raises(PortsExhausted):
        alloc.acquire()
    alloc.release(got[0])
    assert alloc.acquire() == got[0]  # the only one free


def test_allocator_order_is_not_guessable_and_a_released_port_rests() -> None:
    """A scanner that saw one call's port cannot predict the next one; a port just released
    is not handed out again while others are free (late packets of the old call go nowhere)."""
    orders = set()
    for seed in range(5):
        alloc = PortAllocator(30000, 30200, rng=random.Random(seed))
        orders.add(tuple(alloc.acquire() for _ in range(10)))
    assert len(orders) == 5
    assert all(list(order) != sorted(order) for order in orders)
    alloc = PortAllocator(30000, 30200, rng=random.Random(7))
    ports = [alloc.acquire() for _ in range(alloc.capacity)]
    for port in ports[:10]:
        alloc.release(port)
    again = {alloc.acquire() for _ in range(10)}
    assert again == set(ports[:10])  # only those are free: they are reused ...
    alloc = PortAllocator(30000, 30200, rng=random.Random(7))
    first = alloc.acquire()
    alloc.release(first)
    assert first not in {alloc.acquire() for _ in range(alloc.capacity // 2)}  # ... else rest


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


def _udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


def _rtp(seq: int, ssrc: int = 7) -> bytes:
    return bytes(
        RtpPacket(
            payload_type=0,
            sequence_number=seq,
            timestamp=160 * seq,
            ssrc=ssrc,
            payload=b"\xff" * 160,
        )
    )


async def _until(predicate: Callable[[], bool]) -> None:
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def test_the_sdp_address_is_learned_at_once_and_strangers_never_mid_stream() -> None:
    got: list[RtpPacket] = []
    foreign: list[tuple[str, int]] = []
    ep = RtpEndpoint("127.0.0.1", _pair_port(), on_rtp=got.append, on_foreign=foreign.append)
    caller, attacker = _udp(), _udp()
    async with ep:
        ep.set_remote(caller.getsockname())
        caller.sendto(_rtp(1), ("127.0.0.1", ep.port))
        await _until(lambda: len(got) == 1)
        for seq in range(100, 120):  # a forged stream, in sequence: refused all the same
            attacker.sendto(_rtp(seq, ssrc=99), ("127.0.0.1", ep.port))
        attacker.sendto(b"\x80\x00garbage", ("127.0.0.1", ep.port))
        caller.sendto(_rtp(2), ("127.0.0.1", ep.port))
        await _until(lambda: len(got) == 2 and ep.stats.foreign_source == 21)
        assert [p.sequence_number for p in got] == [1, 2]
        assert ep.latched == caller.getsockname()
        assert foreign == [attacker.getsockname()]  # reported once
        assert ep.send(_rtp(3))  # the agent's audio goes to the caller, never the attacker
        data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(caller, 2048), 5)
        assert RtpPacket.parse(data).sequence_number == 3
        with pytest.raises(BlockingIOError):
            attacker.recv(2048)
    caller.close()
    attacker.close()


async def test_another_source_only_after_probation_of_in_sequence_packets() -> None:
    """A caller behind NAT sends from an address its SDP did not name: it is learned after
    four consecutive in-sequence packets of one SSRC; nothing is sent to it before."""
    got: list[RtpPacket] = []
    ep = RtpEndpoint("127.0.0.1", _pair_port(), on_rtp=got.append, probation=4)
    nat, attacker = _udp(), _udp()
    async with ep:
        ep.set_remote(("127.0.0.1", 9))  # the SDP's (private) address
        for seq in (1, 2, 4, 5, 6):  # a gap restarts the probation
            nat.sendto(_rtp(seq), ("127.0.0.1", ep.port))
        await _until(lambda: ep.stats.probation == 5)
        assert got == [] and ep.latched is None and ep.remote == ("127.0.0.1", 9)
        nat.sendto(_rtp(7), ("127.0.0.1", ep.port))  # 4, 5, 6, 7: in sequence
        await _until(lambda: len(got) == 1)
        assert ep.latched == ep.remote == nat.getsockname()
        attacker.sendto(_rtp(8), ("127.0.0.1", ep.port))
        await _until(lambda: ep.stats.foreign_source == 1)
        assert len(got) == 1
    nat.close()
    attacker.close()


async def test_a_stranger_who_raced_the_caller_to_the_port_loses_it_to_the_sdp_address() -> None:
    """A stranger spraying the port range passes probation on a new call's port before the
    caller's first packet (the SDP named the caller's address). The caller's first packet
    takes the call back: the agent's audio goes to the caller, the stranger is foreign."""
    got: list[RtpPacket] = []
    foreign: list[tuple[str, int]] = []
    ep = RtpEndpoint(
        "127.0.0.1", _pair_port(), on_rtp=got.append, on_foreign=foreign.append, probation=4
    )
    caller, stranger = _udp(), _udp()
    async with ep:
        ep.set_remote(caller.getsockname())
        for seq in range(500, 505):
            stranger.sendto(_rtp(seq, ssrc=66), ("127.0.0.1", ep.port))
        await _until(lambda: ep.latched == stranger.getsockname())
        caller.sendto(_rtp(1), ("127.0.0.1", ep.port))
        await _until(lambda: ep.latched == caller.getsockname())
        assert ep.remote == caller.getsockname() and ep.remote_rtcp == (
            "127.0.0.1",
            caller.getsockname()[1] + 1,
        )
        stranger.sendto(_rtp(505, ssrc=66), ("127.0.0.1", ep.port))
        caller.sendto(_rtp(2), ("127.0.0.1", ep.port))
        await _until(lambda: ep.stats.foreign_source == 1 and got[-1].ssrc == 7)
        assert [p.sequence_number for p in got if p.ssrc == 7] == [1, 2]
        assert foreign == [stranger.getsockname()]  # the stranger is reported, not the caller
        assert ep.send(_rtp(3))
        data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(caller, 2048), 5)
        assert RtpPacket.parse(data).sequence_number == 3
    caller.close()
    stranger.close()


async def test_past_the_take_back_window_the_learned_source_keeps_the_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A caller behind NAT, learned on probation, has talked for a while: a packet from the
    SDP's (private) address, which anybody on that network may use, takes nothing."""
    monkeypatch.setattr(rtp_endpoint, "TAKE_BACK_S", 0.2)
    got: list[RtpPacket] = []
    ep = RtpEndpoint("127.0.0.1", _pair_port(), on_rtp=got.append, probation=4)
    nat, local = _udp(), _udp()
    async with ep:
        ep.set_remote(local.getsockname())  # the SDP's address, which the caller never uses
        for seq in range(1, 5):
            nat.sendto(_rtp(seq), ("127.0.0.1", ep.port))
        await _until(lambda: ep.latched == nat.getsockname())
        await asyncio.sleep(0.3)
        local.sendto(_rtp(900, ssrc=13), ("127.0.0.1", ep.port))
        nat.sendto(_rtp(5), ("127.0.0.1", ep.port))
        await _until(lambda: ep.stats.foreign_source == 1 and len(got) == 2)
        assert ep.latched == ep.remote == nat.getsockname()
        assert all(p.ssrc == 7 for p in got)
    nat.close()
    local.close()


async def test_rtcp_past_its_rate_is_dropped_unread() -> None:
    """A peer sends RTCP every few seconds; thousands a second from its host are counted and
    dropped before they are parsed on the event loop every call shares."""
    reports: list[bytes] = []
    ep = RtpEndpoint("127.0.0.1", _pair_port(), on_rtp=lambda p: None, on_rtcp=reports.append)
    peer = _udp()
    async with ep:
        ep.set_remote(peer.getsockname())
        for _ in range(200):
            peer.sendto(b"\x81\xc9\x00\x01" + b"\x00" * 4, ("127.0.0.1", ep.port + 1))
        await _until(lambda: ep.stats.rtcp_in + ep.stats.rtcp_over_rate == 200)
        # at most two seconds' worth, if the burst straddled a second
        assert 1 <= ep.stats.rtcp_in <= 2 * RTCP_PER_S and len(reports) == ep.stats.rtcp_in
        assert ep.stats.rtcp_over_rate >= 200 - 2 * RTCP_PER_S
    peer.close()


async def test_reinvite_keeps_the_source_unless_it_moves_the_media() -> None:
    got: list[RtpPacket] = []
    ep = RtpEndpoint("127.0.0.1", _pair_port(), on_rtp=got.append)
    caller, moved, attacker = _udp(), _udp(), _udp()
    async with ep:
        ep.set_remote(caller.getsockname())
        caller.sendto(_rtp(1), ("127.0.0.1", ep.port))
        await _until(lambda: len(got) == 1)
        ep.set_remote(caller.getsockname())  # a re-INVITE (hold, refresh) to the same place
        attacker.sendto(_rtp(50, ssrc=5), ("127.0.0.1", ep.port))
        await _until(lambda: ep.stats.foreign_source == 1)
        assert ep.latched == caller.getsockname()  # latching was not reopened
        ep.set_remote(moved.getsockname())  # the media really moves
        attacker.sendto(_rtp(51, ssrc=5), ("127.0.0.1", ep.port))
        moved.sendto(_rtp(2), ("127.0.0.1", ep.port))
        await _until(lambda: len(got) == 2)
        assert ep.latched == moved.getsockname()
        assert ep.stats.probation == 1  # the attacker's packet was on probation, not taken
    for s in (caller, moved, attacker):
        s.close()


async def test_with_srtp_only_authenticated_packets_are_read_or_learned() -> None:
    """SDES keys set: what the caller protects is read, what leaves is protected, and a
    forged packet (even from where the SDP points, even before any source is learned) is
    dropped and counted without teaching the endpoint a source."""
    suite = "AES_CM_128_HMAC_SHA1_80"
    ours, theirs = new_key(suite), new_key(suite)
    caller_srtp = SrtpSession(suite, theirs, ours)
    got: list[RtpPacket] = []
    ep = RtpEndpoint("127.0.0.1", _pair_port(), on_rtp=got.append)
    ep.srtp = SrtpSession(suite, ours, theirs)
    caller = _udp()
    async with ep:
        ep.set_remote(caller.getsockname())
        caller.sendto(_rtp(1), ("127.0.0.1", ep.port))  # plain RTP: not authenticated
        await _until(lambda: ep.stats.srtp_failed == 1)
        assert got == [] and ep.latched is None
        caller.sendto(caller_srtp.protect(_rtp(2)), ("127.0.0.1", ep.port))
        await _until(lambda: len(got) == 1)
        assert got[0].sequence_number == 2 and ep.latched == caller.getsockname()
        assert ep.send(_rtp(3))
        data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(caller, 2048), 5)
        assert data != _rtp(3) and caller_srtp.unprotect(data) == _rtp(3)
    caller.close()


def test_a_hostname_is_never_a_media_address() -> None:
    """Sending to a hostname would resolve it on every packet: resolved at negotiation only."""
    ep = RtpEndpoint("127.0.0.1", 40000, on_rtp=lambda _p: None)
    with pytest.raises(ValueError, match="not an IP address"):
        ep.set_remote(("media.example.com", 4000))
    ep.set_remote(("::1", 4000))
    assert ep.remote == ("::1", 4000)


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


async def test_datagrams_are_read_into_small_buffers() -> None:
    """Each datagram is read into a 4 KiB buffer (asyncio's transport allocates 256 KiB per
    read): a longer one (no audio packet is) arrives cut short."""
    got: list[RtpPacket] = []
    ep = RtpEndpoint("127.0.0.1", _pair_port(), on_rtp=got.append)
    sender = _udp()
    async with ep:
        ep.set_remote(sender.getsockname())
        sender.sendto(_rtp(1), ("127.0.0.1", ep.port))
        big = bytes(RtpPacket(0, 2, 320, 7, b"\x01" * 6000))
        sender.sendto(big, ("127.0.0.1", ep.port))
        await _until(lambda: len(got) == 2)
    sender.close()
    assert len(got[0].payload) == 160 and len(got[1].payload) == 4096 - 12


async def test_on_ipv6_the_address_the_sdp_names_is_latched_at_once() -> None:
    """The SDP's address latches on its first packet on IPv6 as on IPv4 (a socket's IPv6
    source has four parts; the endpoint compares host and port): no probation for the
    caller, and a stranger cannot win the latch first."""
    got: list[RtpPacket] = []
    ep = RtpEndpoint("::1", _pair_port(), on_rtp=got.append)
    caller = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    caller.bind(("::1", 0))
    async with ep:
        ep.set_remote(caller.getsockname()[:2])
        for seq in range(3):
            caller.sendto(_rtp(seq), ("::1", ep.port))
        await _until(lambda: len(got) == 3)
        assert ep.latched == caller.getsockname()[:2] and ep.stats.probation == 0
    caller.close()


def test_media_flows_both_ways_on_uvloop_too() -> None:
    """The sockets are watched by the loop itself (``add_reader``), on either loop."""

    async def exchange() -> tuple[list[RtpPacket], bytes]:
        got: list[RtpPacket] = []
        ep = RtpEndpoint("127.0.0.1", _pair_port(), on_rtp=got.append)
        peer = _udp()
        loop = asyncio.get_running_loop()
        async with ep:
            ep.set_remote(peer.getsockname())
            peer.sendto(_rtp(1), ("127.0.0.1", ep.port))
            await _until(lambda: len(got) == 1)
            assert ep.send(_rtp(9, ssrc=99))
            async with asyncio.timeout(5):
                back = await loop.sock_recv(peer, 2048)
        peer.close()
        assert ep._rtp is None  # closed: the loop no longer watches it
        return got, back

    got, back = event_loop.run(exchange(), "uvloop")
    assert got[0].sequence_number == 1
    assert RtpPacket.parse(back).ssrc == 99
