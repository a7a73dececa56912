"""Ephemeral keys on virtual time: lifetime bounds, expiry at ``expires_at``, the bound session."""

from __future__ import annotations

import pytest

from bridge.webrtc.ephemeral import DEFAULT_TTL_S, EphemeralKeys, is_ephemeral


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_lifetime_and_expiry() -> None:
    clock = Clock()
    keys = EphemeralKeys(time_fn=clock)
    key = keys.mint({"type": "realtime", "instructions": "hi"})
    assert is_ephemeral(key.value) and len(key.value) > 30
    assert key.expires_at - key.created_at == DEFAULT_TTL_S
    assert keys.lookup(key.value) is key
    assert key.session == {"type": "realtime", "instructions": "hi"}
    clock.now = key.expires_at - 0.001
    assert keys.lookup(key.value) is key
    clock.now = key.expires_at
    assert keys.lookup(key.value) is None
    assert len(keys) == 0


@pytest.mark.parametrize("ttl", [9, 7201, 0, -5])
def test_lifetime_bounds(ttl: int) -> None:
    with pytest.raises(ValueError):
        EphemeralKeys().mint({}, ttl)


def test_expired_keys_are_purged_when_minting() -> None:
    clock = Clock()
    keys = EphemeralKeys(time_fn=clock)
    for _ in range(5):
        keys.mint({}, 10)
    clock.now += 10
    keys.mint({}, 10)
    assert len(keys) == 1
    assert keys.lookup("ek_unknown") is None
    assert keys.mint({}, 10).value != keys.mint({}, 10).value
