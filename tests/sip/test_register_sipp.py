"""REGISTER with digest against a real peer: a SIPp registrar that checks our credentials.

SIPp plays ``scenarios/register_digest.xml``: 401, then ``<verifyauth>`` on our answer, then
a refresh and an unregister, each verified again. Our side is :class:`sip.registration.Registration`
driven by :func:`sip.driver.run_registration` over a minimal UDP non-INVITE client
transaction defined here (RFC 3261 section 17.1.2: timer E retransmits, timer F gives up), and,
over TCP, through the driver's trunk settings (tests/sip/test_driver_register.py does UDP).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sip.auth import DigestCredentials
from sip.driver import DefaultHandler, register_once, run_registration, start_sip
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
from tests.sip.sipp_support import finish_sipp, free_port, open_client, start_sipp

pytestmark = pytest.mark.peer("sipp")


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


async def test_register_with_the_right_password_refreshes_and_unregisters(tmp_path: Path) -> None:
    sipp_port = free_port()
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
    sipp_port = free_port()
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
    port = free_port()
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
