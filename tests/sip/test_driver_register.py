"""The driver keeps a trunk registered through sip.registration (RFC 3261 §10.2) against the
SIPp registrar scenario (digest with ``verifyauth``): register, refresh, unregister on close;
a wrong password surfaces as RegistrationError."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sip.registration import Registered, RegistrationError
from sip.settings import TrunkSettings
from tests.sip.sipp_support import endpoint, finish_sipp, free_port, start_sipp

pytestmark = pytest.mark.peer("sipp")
PW_ENV = "RTBRIDGE_TEST_DRIVER_REG_PW"


def _trunk(port: int, *, enabled: bool) -> TrunkSettings:
    return TrunkSettings(
        name="registrar",
        host="127.0.0.1",
        port=port,
        username="alice",
        password_env=PW_ENV,
        register_enabled=enabled,
        register_expires=3600,
    )


async def test_driver_registers_refreshes_and_unregisters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PW_ENV, "reg-secret-1")
    port = free_port()
    proc = await start_sipp("register_digest.xml", port, tmp_path)
    ep = await endpoint(trunks=[_trunk(port, enabled=True)], tcp=False)
    try:
        async with asyncio.timeout(20):
            while sum(isinstance(e, Registered) for _, e in ep.registration_events) < 2:
                await asyncio.sleep(0.05)
    finally:
        await ep.close()  # unregisters (Expires: 0)
    rc, output = await finish_sipp(proc, tmp_path)
    assert rc == 0, output
    kinds = [type(e).__name__ for _, e in ep.registration_events]
    assert kinds == ["Registered", "Registered", "Unregistered"]


async def test_driver_register_wrong_password_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PW_ENV, "wrong")
    port = free_port()
    proc = await start_sipp("register_digest.xml", port, tmp_path)
    ep = await endpoint(trunks=[_trunk(port, enabled=False)], tcp=False)
    try:
        with pytest.raises(RegistrationError) as info:
            await asyncio.wait_for(ep.register("registrar"), 20)
        assert info.value.status == 401 and not info.value.retryable
        assert "401" in str(info.value)
    finally:
        await ep.close()
    rc, output = await finish_sipp(proc, tmp_path)
    assert rc == 0, output
