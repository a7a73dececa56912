"""Ephemeral keys on virtual time: lifetime bounds, expiry at ``expires_at``, the bound session."""

from __future__ import annotations

import pytest

from bridge.webrtc.ephemeral import DEFAULT_TTL_S, EphemeralKeys, is_ephemeral
from media.clock import VirtualClock


def test_lifetime_and_expiry() -> None:
    clock = VirtualClock(epoch=1_800_000_000.0)
    keys = EphemeralKeys(clock)
    key = keys.mint({"type": "realtime", "instructions": "hi"})
    assert is_ephemeral(key.value) and len(key.value) > 30
    assert key.expires_at - key.created_at == DEFAULT_TTL_S
    assert keys.lookup(key.value) is key
    assert key.session == {"type": "realtime", "instructions": "hi"}
    clock.advance_to(key.expires_at - 0.001 - clock.wall() + clock.now())
    assert keys.lookup(key.value) is key
    clock.advance_to(key.expires_at - clock.wall() + clock.now())
    assert keys.lookup(key.value) is None
    assert len(keys) == 0


@pytest.mark.parametrize("ttl", [9, 7201, 0, -5])
def test_lifetime_bounds(ttl: int) -> None:
    with pytest.raises(ValueError):
        EphemeralKeys().mint({}, ttl)


def test_expired_keys_are_purged_when_minting() -> None:
    clock = VirtualClock(epoch=1_800_000_000.0)
    keys = EphemeralKeys(clock)
    for _ in range(5):
        keys.mint({}, 10)
    clock.advance(10)
    keys.mint({}, 10)
    assert len(keys) == 1
    assert keys.lookup("ek_unknown") is None
    assert keys.mint({}, 10).value != keys.mint({}, 10).value
