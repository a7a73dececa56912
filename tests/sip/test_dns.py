"""RFC 3263: NAPTR/SRV ordering (tier 1), and a trunk published by a DNS server the test
starts on loopback (dnsmasq) with two targets (tier 3, SIPp): the first refuses (503), the call
goes to the second, and the next call tries the second first; the first never answers, the
trunk registers with the second and keeps its binding there (SIPp's digest registrar), and
its keepalive finds it up; an SRV query that times out is not taken for "no SRV records"."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import dns.asyncresolver
import pytest

from sip.driver import SipCall, SipEndpoint, start_sip
from sip.driver.dns import DnsError, TrunkResolver
from sip.events import CallAnswered, CallEnded
from sip.keepalive import TrunkState
from sip.message import Request, parse_message
from sip.registration import Registered
from sip.rfc3263 import Naptr, Srv, TtlCache, naptr_srv_names, srv_order
from sip.settings import SipSettings, SipTimers, TrunkSettings
from tests.sip.sipp_support import ANSWER_SDP, finish_sipp, free_port, run_sipp, start_sipp
from tests.support.peers import require_peer


def test_naptr_records_name_the_srv_of_our_transport_in_order() -> None:
    records = [
        Naptr(20, 10, "s", "SIP+D2U", "_sip._udp.b.example."),
        Naptr(10, 20, "S", "SIP+D2U", "_sip._udp.a.example."),
        Naptr(10, 10, "s", "SIP+D2T", "_sip._tcp.a.example."),
        Naptr(5, 10, "u", "SIP+D2U", "!^.*$!sip:x@y!"),  # not an SRV pointer
    ]
    assert naptr_srv_names(records, "udp", "example") == [
        "_sip._udp.a.example",
        "_sip._udp.b.example",
    ]
    assert naptr_srv_names(records, "tls", "example.com.") == ["_sips._tcp.example.com"]


def test_srv_targets_by_priority_then_weight() -> None:
    records = [
        Srv(20, 0, 5062, "backup.example."),
        Srv(10, 90, 5060, "big.example."),
        Srv(10, 10, 5060, "small.example."),
        Srv(30, 0, 0, "."),  # "not offered here"
    ]
    firsts = [srv_order(records, random.Random(seed))[0].target for seed in range(200)]
    assert set(firsts) == {"big.example.", "small.example."}
    assert firsts.count("big.example.") > firsts.count("small.example.") * 3  # 90 vs 10
    lasts = {srv_order(records, random.Random(seed))[-1].target for seed in range(20)}
    assert lasts == {"backup.example."}


def test_answers_are_kept_for_their_ttl() -> None:
    cache: TtlCache[str, int] = TtlCache()
    cache.put("a", 1, 30, now=100.0)
    cache.put("zero", 2, 0, now=100.0)  # TTL 0: never kept
    assert cache.get("a", 129.9) == 1 and cache.get("a", 130.0) is None
    assert cache.get("zero", 100.0) is None


_REFUSE = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="uas refuses">
  <recv request="INVITE"/>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 503 Service Unavailable
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <recv request="ACK"/>
</scenario>
"""


async def _dnsmasq(
    tmp_path: Path, first: int, second: int, *, records: list[str] | None = None
) -> tuple[asyncio.subprocess.Process, int]:
    """dnsmasq on a free loopback port: trunk.test -> NAPTR -> two SRV targets (or what
    ``records`` configure instead)."""
    dnsmasq = require_peer("dnsmasq")
    port = free_port(socket.SOCK_DGRAM)
    conf = tmp_path / "dnsmasq.conf"
    if records is None:
        records = [
            'naptr-record=trunk.test,10,10,"S","SIP+D2U","",_sip._udp.trunk.test',
            f"srv-host=_sip._udp.trunk.test,first.trunk.test,{first},10,10",
            f"srv-host=_sip._udp.trunk.test,second.trunk.test,{second},20,10",
            "host-record=first.trunk.test,127.0.0.1",
            "host-record=second.trunk.test,127.0.0.1",
        ]
    conf.write_text(
        "\n".join(
            [
                "no-resolv",
                "no-hosts",
                "no-daemon",
                f"port={port}",
                "listen-address=127.0.0.1",
                "bind-interfaces",
                "local-ttl=60",
                f"pid-file={tmp_path / 'dnsmasq.pid'}",
                *records,
            ]
        )
        + "\n"
    )
    proc = await asyncio.create_subprocess_exec(
        dnsmasq,
        f"--conf-file={conf}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(0.3)  # dnsmasq binds
    return proc, port


@pytest.mark.peer("dnsmasq")
@pytest.mark.peer("sipp")
async def test_a_trunk_with_two_srv_targets_the_first_refuses_the_second_answers(
    tmp_path: Path,
) -> None:
    sipp = require_peer("sipp")
    first, second = free_port(), free_port()
    dns, dns_port = await _dnsmasq(tmp_path, first, second)
    refuse = tmp_path / "refuse.xml"
    refuse.write_text(_REFUSE)
    refuser = asyncio.create_task(
        run_sipp(sipp, "-sf", str(refuse), "-p", str(first), "-m", "1", cwd=tmp_path, timeout=30)
    )
    answerer = asyncio.create_task(
        run_sipp(sipp, "-sn", "uas", "-p", str(second), "-m", "1", cwd=tmp_path, timeout=30)
    )
    settings = SipSettings(
        bind_host="127.0.0.1",
        udp_port=0,
        tcp_port=None,
        dns_servers=[f"127.0.0.1:{dns_port}"],
        trunks=[TrunkSettings(name="carrier", host="trunk.test", srv=True)],
    )
    ep = await start_sip(settings)
    events: list[object] = []
    try:
        await asyncio.sleep(0.5)  # SIPp binds
        assert [p.port for p in await ep.resolver.targets("trunk.test", "udp")] == [first, second]
        call: SipCall = await ep.invite("sip:+15550100@trunk.test", ANSWER_SDP, trunk="carrier")
        async with asyncio.timeout(20):
            async for event in call.events():
                events.append(event)
                if isinstance(event, CallAnswered):
                    call.hangup()
        # the next INVITE through the trunk tries the target that answered first
        assert [p.port for p in await ep.trunk_targets["carrier"].targets()] == [second, first]
    finally:
        await ep.close()
        dns.terminate()
        await dns.wait()
    kinds = [type(e) for e in events]
    assert CallAnswered in kinds and kinds[-1] is CallEnded  # the 503 ended nothing
    for sipp_run in (await refuser, await answerer):
        assert sipp_run.returncode == 0, sipp_run.summary()


class _Silent(asyncio.DatagramProtocol):
    """A trunk server that is down: it takes datagrams and never answers."""

    def __init__(self) -> None:
        self.branches: list[str] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message = parse_message(data)
        if isinstance(message, Request):
            self.branches.append(message.top_via.branch or "")


@dataclass
class _SecondUp:
    """A trunk of two SRV targets: the first down (silent), SIPp on the second."""

    ep: SipEndpoint
    silent: _Silent
    sipp: asyncio.subprocess.Process
    first: int
    second: int


@contextlib.asynccontextmanager
async def _first_down(tmp_path: Path, scenario: str, **trunk: object) -> AsyncIterator[_SecondUp]:
    """dnsmasq names the two targets; the endpoint's trunk ``carrier`` (``trunk``'s settings)
    resolves them; T1 is 50 ms, so a transaction to the silent target gives up after 3.2 s."""
    loop = asyncio.get_running_loop()
    down, silent = await loop.create_datagram_endpoint(_Silent, local_addr=("127.0.0.1", 0))
    first = int(down.get_extra_info("sockname")[1])
    second = free_port()
    dns, dns_port = await _dnsmasq(tmp_path, first, second)
    sipp = await start_sipp(scenario, second, tmp_path)
    settings = SipSettings(
        bind_host="127.0.0.1",
        udp_port=0,
        tcp_port=None,
        dns_servers=[f"127.0.0.1:{dns_port}"],
        timers=SipTimers(t1=0.05),
        trunks=[
            TrunkSettings.model_validate(
                {"name": "carrier", "host": "trunk.test", "srv": True, **trunk}
            )
        ],
    )
    ep = await start_sip(settings)
    try:
        yield _SecondUp(ep, silent, sipp, first, second)
    finally:
        await ep.close()  # unregisters, if registered
        down.close()
        dns.terminate()
        await dns.wait()


@pytest.mark.peer("dnsmasq")
@pytest.mark.peer("sipp")
async def test_a_trunk_registers_with_its_second_srv_target_when_the_first_is_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 3263 §4.3 for REGISTER: the first target never answers; once its transaction
    times out a new REGISTER goes to the second (SIPp's digest registrar) at once, and the
    challenge's answer, the refresh and the unregister go there directly."""
    monkeypatch.setenv("RTBRIDGE_TEST_SRV_REG_PW", "reg-secret-1")
    account = {"username": "alice", "password_env": "RTBRIDGE_TEST_SRV_REG_PW"}
    async with _first_down(
        tmp_path, "register_digest.xml", register_enabled=True, register_expires=3600, **account
    ) as t:
        async with asyncio.timeout(25):
            while sum(isinstance(e, Registered) for _, e in t.ep.registration_events) < 2:
                await asyncio.sleep(0.05)
        # an INVITE through the trunk now tries the server that answers first
        ordered = await t.ep.trunk_targets["carrier"].targets()
        assert [p.port for p in ordered] == [t.second, t.first]
    rc, output = await finish_sipp(t.sipp, tmp_path)
    assert rc == 0, output
    kinds = [type(e).__name__ for _, e in t.ep.registration_events]
    # the first target's failure is reported; the next REGISTER went out at once, not after
    # the 30 s back-off (the test's timeout is 25 s)
    assert kinds == ["RegistrationFailed", "Registered", "Registered", "Unregistered"]
    # the down server saw one transaction only (the first REGISTER and its retransmissions)
    assert t.silent.branches and len(set(t.silent.branches)) == 1


@pytest.mark.peer("dnsmasq")
@pytest.mark.peer("sipp")
async def test_the_keepalive_finds_the_trunk_up_at_its_second_target(tmp_path: Path) -> None:
    """The first target never answers OPTIONS; the keepalive's OPTIONS goes on to the second
    (SIPp), so the trunk is up and calls may be placed on it."""
    async with _first_down(tmp_path, "options_200.xml", options_interval_s=1) as t:
        health = t.ep.trunk_health["carrier"]
        async with asyncio.timeout(20):
            while health.state is TrunkState.UNKNOWN:
                await asyncio.sleep(0.05)
        assert health.state is TrunkState.UP, health.detail
    rc, output = await finish_sipp(t.sipp, tmp_path)
    assert rc == 0, output
    assert t.silent.branches  # the first target was asked first


@pytest.mark.peer("dnsmasq")
async def test_an_srv_query_that_times_out_is_not_taken_for_no_srv_records(
    tmp_path: Path,
) -> None:
    """dnsmasq answers the trunk domain's A record itself but forwards its NAPTR and SRV
    queries to a server that never answers: the lookup fails (DnsError), where taking the
    silence for "no SRV records" would send the trunk's calls to the domain's A record on
    port 5060, which may be another server altogether."""
    loop = asyncio.get_running_loop()
    upstream, _ = await loop.create_datagram_endpoint(_Silent, local_addr=("127.0.0.1", 0))
    silent = int(upstream.get_extra_info("sockname")[1])
    server, dns_port = await _dnsmasq(
        tmp_path,
        0,
        0,
        records=[
            f"server=/trunk.test/127.0.0.1#{silent}",
            "host-record=trunk.test,127.0.0.1",
        ],
    )
    try:
        plain = dns.asyncresolver.Resolver(configure=False)
        plain.nameservers, plain.port = ["127.0.0.1"], dns_port
        a_record = await plain.resolve("trunk.test", "A")
        assert [r.to_text() for r in a_record] == ["127.0.0.1"]  # the A record is there
        resolver = TrunkResolver([f"127.0.0.1:{dns_port}"], timeout=0.5)
        with pytest.raises(DnsError, match=r"NAPTR query for 'trunk\.test' failed"):
            await resolver.targets("trunk.test", "udp")
    finally:
        upstream.close()
        server.terminate()
        await server.wait()
