"""REGISTER with digest against a real peer: a SIPp registrar that checks our credentials.

SIPp plays ``scenarios/register_digest.xml``: 401, then ``<verifyauth>`` on our answer, then
a refresh and an unregister, each verified again. Our side is :class:`sip.registration.Registration`
driven by :func:`sip.driver.run_registration` over a minimal UDP non-INVITE client
transaction defined here (RFC 3261 section 17.1.2: timer E retransmits, timer F gives up), and,
over TCP, through the driver's trunk settings (tests/sip/test_driver_register.py does UDP).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path
from typing import cast

import pytest

from sip.auth import DigestCredentials
from sip.driver import DefaultHandler, register_once, run_registration, start_sip
from sip.message import Request, Response, parse_message
from sip.registration import (
    Registered,
    Registration,
    RegistrationConfig,
    RegistrationError,
    RegistrationEvent,
    Unregistered,
)
from sip.settings import SipSettings, TrunkSettings
from sip.uri import SipUri
from tests.support.peers import require_peer

pytestmark = pytest.mark.peer("sipp")

SCENARIOS = Path(__file__).parent / "scenarios"
T1, T2, TIMER_F = 0.5, 4.0, 32.0


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class UdpClient(asyncio.DatagramProtocol):
    """Sends requests over UDP and returns each one's final response (matched by branch)."""

    def __init__(self, peer: tuple[str, int]) -> None:
        self.peer = peer
        self.transport: asyncio.DatagramTransport | None = None
        self.waiting: dict[str, asyncio.Future[Response]] = {}
        self.sent: list[Request] = []
        self.received: list[Response] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message = parse_message(data)
        if not isinstance(message, Response):
            return
        self.received.append(message)
        future = self.waiting.get(message.top_via.branch or "")
        if message.status >= 200 and future is not None and not future.done():
            future.set_result(message)

    async def __call__(self, request: Request) -> Response | None:
        assert self.transport is not None
        branch = request.top_via.branch or ""
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.waiting[branch] = future
        self.sent.append(request)
        data = bytes(request)
        interval, elapsed = T1, 0.0
        try:
            while elapsed < TIMER_F:
                self.transport.sendto(data, self.peer)
                try:
                    return await asyncio.wait_for(asyncio.shield(future), interval)
                except TimeoutError:
                    elapsed += interval
                    interval = min(interval * 2, T2)
            return None
        finally:
            del self.waiting[branch]

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])


async def start_sipp(
    scenario: str, port: int, cwd: Path, *, tcp: bool = False
) -> asyncio.subprocess.Process:
    sipp = require_peer("sipp")
    proc = await asyncio.create_subprocess_exec(
        sipp,
        "-sf",
        str(SCENARIOS / scenario),
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-cp",
        str(free_udp_port()),
        "-m",
        "1",
        "-nostdin",
        "-timeout",
        "30s",
        "-timeout_error",
        "-trace_err",
        *(["-t", "t1"] if tcp else []),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
    )
    kind = socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
    for _ in range(100):  # wait until SIPp holds its port
        try:
            with socket.socket(socket.AF_INET, kind) as probe:
                probe.bind(("127.0.0.1", port))
        except OSError:
            return proc
        await asyncio.sleep(0.05)
    proc.kill()
    raise AssertionError("SIPp did not bind its port")


async def finish_sipp(proc: asyncio.subprocess.Process, cwd: Path) -> tuple[int, str]:
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 40)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    errors = "".join(p.read_text(errors="replace")[-2000:] for p in cwd.glob("*_errors.log"))
    text = out.decode(errors="replace")[-3000:] + err.decode(errors="replace")[-2000:] + errors
    assert proc.returncode is not None
    return proc.returncode, text


def account(sipp_port: int, our_port: int, password: str) -> RegistrationConfig:
    return RegistrationConfig(
        registrar=SipUri(host="127.0.0.1", port=sipp_port),
        aor=SipUri(host="127.0.0.1", user="alice", port=sipp_port),
        contact=SipUri(host="127.0.0.1", user="alice", port=our_port),
        username="alice",
        password=password,
        via_host="127.0.0.1",
        via_port=our_port,
        expires=3600,
    )


async def open_client(sipp_port: int) -> tuple[asyncio.DatagramTransport, UdpClient]:
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(
        lambda: UdpClient(("127.0.0.1", sipp_port)), local_addr=("127.0.0.1", 0)
    )
    return transport, client


async def test_register_with_the_right_password_refreshes_and_unregisters(tmp_path: Path) -> None:
    sipp_port = free_udp_port()
    proc = await start_sipp("register_digest.xml", sipp_port, tmp_path)
    transport, client = await open_client(sipp_port)
    try:
        reg = Registration(account(sipp_port, client.port, "reg-secret-1"))
        events: list[RegistrationEvent] = []
        stop = asyncio.Event()

        def on_event(event: RegistrationEvent) -> None:
            events.append(event)
            if sum(isinstance(e, Registered) for e in events) == 2:
                stop.set()  # registered, then refreshed before expiry: now unregister

        await asyncio.wait_for(run_registration(reg, client, stop, on_event=on_event), 30)
    finally:
        transport.close()
    rc, output = await finish_sipp(proc, tmp_path)
    assert rc == 0, output
    assert [type(e) for e in events] == [Registered, Registered, Unregistered]
    assert all(e.expires == 4 for e in events if isinstance(e, Registered))
    methods = [
        (r.headers.get("Expires"), bool(r.headers.get("Authorization"))) for r in client.sent
    ]
    assert methods == [("3600", False), ("3600", True), ("3600", True), ("0", True)]
    ncs = [
        DigestCredentials.parse(r.headers.get("Authorization") or "").nc for r in client.sent[1:]
    ]
    assert ncs == ["00000001", "00000002", "00000003"]
    assert [r.status for r in client.received if r.status >= 200] == [401, 200, 200, 200]


async def test_register_with_a_wrong_password_surfaces_a_clear_error(tmp_path: Path) -> None:
    sipp_port = free_udp_port()
    proc = await start_sipp("register_digest.xml", sipp_port, tmp_path)
    transport, client = await open_client(sipp_port)
    try:
        reg = Registration(account(sipp_port, client.port, "not-the-password"))
        with pytest.raises(RegistrationError) as info:
            await asyncio.wait_for(register_once(reg, client), 30)
    finally:
        transport.close()
    rc, output = await finish_sipp(proc, tmp_path)
    assert rc == 0, output
    error = info.value
    assert error.status == 401 and not error.retryable
    assert str(error) == (
        f"REGISTER for sip:alice@127.0.0.1:{sipp_port} rejected: wrong credentials for user "
        "'alice' (401 Unauthorized after a digest answer)"
    )
    assert "not-the-password" not in str(error) and "not-the-password" not in repr(reg)
    assert len(client.sent) == 2  # answered the challenge once, then gave up


async def test_the_driver_keeps_a_tcp_trunk_registered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same registrar over TCP, through the driver's trunk settings (RFC 3261 section 18)."""
    monkeypatch.setenv("RTBRIDGE_TEST_TCP_REG_PW", "reg-secret-1")
    port = free_udp_port()
    proc = await start_sipp("register_digest.xml", port, tmp_path, tcp=True)
    trunk = TrunkSettings(
        name="registrar",
        host="127.0.0.1",
        port=port,
        transport="tcp",
        username="alice",
        password_env="RTBRIDGE_TEST_TCP_REG_PW",
        register_enabled=True,
        register_expires=3600,
    )
    settings = SipSettings(bind_host="127.0.0.1", udp_port=None, tcp_port=0, trunks=[trunk])
    endpoint = await start_sip(settings, DefaultHandler())
    try:
        async with asyncio.timeout(20):
            while sum(isinstance(e, Registered) for _, e in endpoint.registration_events) < 2:
                await asyncio.sleep(0.05)
    finally:
        await endpoint.close()  # unregisters
    rc, output = await finish_sipp(proc, tmp_path)
    assert rc == 0, output
    kinds = [type(e) for _, e in endpoint.registration_events]
    assert kinds == [Registered, Registered, Unregistered]
