"""Tier 3: baresip, a real softphone, calls rtbridge and is called by it (UDP, and TLS with a
certificate made by openssl for the test)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sip.driver import Answer, Decision, SipCall, SipEndpoint, start_sip
from sip.events import CallAnswered, CallEnded, EndReason
from sip.settings import SipSettings
from tests.sip.baresip_support import free_port_pair, make_confdir, start_baresip, stop_baresip
from tests.sip.sipp_support import ANSWER_SDP, endpoint, free_port
from tests.support.peers import require_peer
from tests.support.tls import make_cert

pytestmark = pytest.mark.peer("baresip")


class _Answerer:
    """Answers every call, records its events, hangs up after ``hold_s`` seconds."""

    def __init__(self, hold_s: float = 1.0) -> None:
        self.hold_s = hold_s
        self.events: list[object] = []
        self.offers: list[SipCall] = []
        self.done = asyncio.Event()

    async def on_offer(self, call: SipCall) -> Decision:
        self.offers.append(call)
        asyncio.get_running_loop().create_task(self._follow(call))
        return Answer(ANSWER_SDP)

    async def _follow(self, call: SipCall) -> None:
        async for ev in call.events():
            self.events.append(ev)
            if isinstance(ev, CallAnswered):
                await asyncio.sleep(self.hold_s)
                call.hangup()
        self.done.set()


async def _inbound(ep: SipEndpoint, answerer: _Answerer, target: str, confdir: Path) -> str:
    baresip = require_peer("baresip")
    proc = await start_baresip(baresip, confdir, f"/dial {target}", seconds=12)
    try:
        async with asyncio.timeout(20):
            await answerer.done.wait()
    finally:
        out = await stop_baresip(proc, confdir)
    return out


async def test_baresip_calls_rtbridge(tmp_path: Path) -> None:
    answerer = _Answerer()
    ep = await endpoint(answerer)
    try:
        confdir = make_confdir(tmp_path / "bs", free_port())
        out = await _inbound(ep, answerer, f"sip:bot@127.0.0.1:{ep.ports['udp']}", confdir)
    finally:
        await ep.close()
    assert "Call established" in out, out[-2000:]
    assert [type(e) for e in answerer.events] == [CallAnswered, CallEnded], out[-2000:]
    offer = answerer.offers[0].offer
    assert offer is not None and b"PCMU" in offer.sdp and offer.source.host == "127.0.0.1"
    assert "terminated" in out  # baresip saw our BYE


async def test_rtbridge_calls_baresip(tmp_path: Path) -> None:
    baresip = require_peer("baresip")
    port = free_port()
    confdir = make_confdir(tmp_path / "bs", port)
    proc = await start_baresip(baresip, confdir, seconds=12)
    ep = await endpoint()
    events: list[object] = []
    try:
        await asyncio.sleep(1.0)  # baresip binds its port
        call = await ep.invite(f"sip:bot@127.0.0.1:{port}", ANSWER_SDP)
        async with asyncio.timeout(20):
            async for ev in call.events():
                events.append(ev)
                if isinstance(ev, CallAnswered):
                    await asyncio.sleep(1.0)
                    call.hangup()
    finally:
        await ep.close()
        out = await stop_baresip(proc, confdir)
    assert isinstance(events[-1], CallEnded) and events[-1].reason is EndReason.LOCAL_BYE
    answered = [e for e in events if isinstance(e, CallAnswered)]
    assert answered and b"PCMU" in answered[0].sdp, out[-2000:]


async def test_baresip_calls_rtbridge_over_tls(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    answerer = _Answerer()
    settings = SipSettings(
        bind_host="127.0.0.1",
        udp_port=None,
        tcp_port=None,
        tls_port=0,
        tls_cert=cert,
        tls_key=key,
    )
    ep = await start_sip(settings, answerer)
    try:
        confdir = make_confdir(tmp_path / "bs", free_port(), tls=(cert, key))
        target = f"sip:bot@127.0.0.1:{ep.ports['tls']};transport=tls"
        out = await _inbound(ep, answerer, target, confdir)
    finally:
        await ep.close()
    assert "Call established" in out, out[-3000:]
    assert [type(e) for e in answerer.events] == [CallAnswered, CallEnded], out[-3000:]
    offer = answerer.offers[0].offer
    assert offer is not None and offer.source.transport == "tls"


async def test_rtbridge_calls_baresip_over_tls(tmp_path: Path) -> None:
    """Outbound TLS, verifying baresip's certificate against the test's CA (the cert itself)."""
    baresip = require_peer("baresip")
    cert, key = make_cert(tmp_path)
    port = free_port_pair()  # baresip listens for TLS on its SIP port + 1
    confdir = make_confdir(tmp_path / "bs", port, tls=(cert, key))
    proc = await start_baresip(baresip, confdir, seconds=12)
    settings = SipSettings(
        bind_host="127.0.0.1",
        udp_port=None,
        tcp_port=None,
        tls_port=0,
        tls_cert=cert,
        tls_key=key,
        tls_ca_file=cert,
    )
    ep = await start_sip(settings)
    events: list[object] = []
    try:
        await asyncio.sleep(1.0)
        call = await ep.invite(f"sip:bot@127.0.0.1:{port + 1};transport=tls", ANSWER_SDP)
        async with asyncio.timeout(20):
            async for ev in call.events():
                events.append(ev)
                if isinstance(ev, CallAnswered):
                    await asyncio.sleep(1.0)
                    call.hangup()
    finally:
        await ep.close()
        out = await stop_baresip(proc, confdir)
    assert [type(e) for e in events][-2:] == [CallAnswered, CallEnded], out[-3000:]
    assert isinstance(events[-1], CallEnded) and events[-1].reason is EndReason.LOCAL_BYE
