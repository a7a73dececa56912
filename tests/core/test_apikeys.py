"""The server key: from the environment, or generated once into an owner-only file."""

from __future__ import annotations

import stat
from pathlib import Path

from bridge.apikeys import key_from_request, resolve_server_key


def test_env_key_wins(tmp_path: Path) -> None:
    key = resolve_server_key(tmp_path, {"RTBRIDGE_API_KEY": "k1"})
    assert key.value == "k1" and key.path is None
    assert not (tmp_path / "api-key").exists()


def test_generated_key_is_owner_only_and_stable(tmp_path: Path) -> None:
    first = resolve_server_key(tmp_path / "data", {})
    assert first.path is not None
    mode = stat.S_IMODE(first.path.stat().st_mode)
    assert mode == 0o600
    assert first.value.startswith("rtb_") and len(first.value) > 30
    assert first.value not in repr(first)
    again = resolve_server_key(tmp_path / "data", {})
    assert again.value == first.value


def test_key_from_bearer_or_browser_subprotocol() -> None:
    assert key_from_request({"authorization": "Bearer abc"}) == "abc"
    assert key_from_request({}, ["realtime", "openai-insecure-api-key.xyz"]) == "xyz"
    assert key_from_request({"authorization": "Basic abc"}) is None
    assert key_from_request({}, ["openai-insecure-api-key."]) is None


def test_matches_is_exact(tmp_path: Path) -> None:
    key = resolve_server_key(tmp_path, {"RTBRIDGE_API_KEY": "secret"})
    assert key.matches("secret")
    assert not key.matches("secret2") and not key.matches("") and not key.matches(None)
