"""SDP media addresses: an IP as it is, a hostname resolved once, asynchronously, within a
timeout (never per packet), or refused by setting."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from bridge.calls.manager import CallManager
from bridge.config import Settings
from bridge.records import CallStore


async def test_hostnames_are_resolved_once_with_a_timeout_or_refused(tmp_path: Path) -> None:
    looked_up: list[tuple[str, int]] = []

    async def resolver(host: str, family: int) -> list[str]:
        looked_up.append((host, family))
        if host == "slow.example":
            await asyncio.sleep(30)
        return ["192.0.2.44"] if host == "media.example" else []

    store = CallStore(tmp_path / "calls.db")
    settings = Settings.model_validate({"calls": {"sdp_resolve_timeout_s": 0.2}})
    manager = CallManager(settings, store, resolver=resolver)
    assert await manager.media_address("198.51.100.7") == "198.51.100.7"
    assert await manager.media_address("2001:db8::1") == "2001:db8::1"
    assert looked_up == []  # an address is never looked up
    assert await manager.media_address("media.example") == "192.0.2.44"
    assert looked_up == [("media.example", socket.AF_INET)]
    assert await manager.media_address("nowhere.example") is None
    assert await manager.media_address("slow.example") is None  # the timeout, not 30 s
    refusing = CallManager(
        Settings.model_validate({"calls": {"sdp_hostnames": "refuse"}}), store, resolver=resolver
    )
    assert await refusing.media_address("media.example") is None
    assert len(looked_up) == 3
    store.close()


async def test_an_rtp_host_name_is_resolved_once_at_start(tmp_path: Path) -> None:
    """``calls.rtp_host = "localhost"``: looked up when the manager starts; every call's
    sockets then bind the address, and the SDP names it (not the name)."""
    store = CallStore(tmp_path / "calls.db")
    settings = Settings.model_validate(
        {"calls": {"rtp_host": "localhost", "rtp_port_min": 41000, "rtp_port_max": 41998}}
    )
    async with CallManager(settings, store) as manager:
        bound = manager.rtp_bind
        assert bound in ("127.0.0.1", "::1"), bound
        assert manager.advertise == bound
        endpoints = [await manager.open_endpoint() for _ in range(2)]
        try:
            for ep in endpoints:
                assert ep.host == bound
                assert ep._rtp is not None and ep._rtp.getsockname()[0] == bound
        finally:
            for ep in endpoints:
                manager.close_endpoint(ep)
    store.close()
