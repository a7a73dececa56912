"""The server API key: where it comes from, how it is checked, and how requests carry it.

``RTBRIDGE_API_KEY`` is the server key for the relay and the control plane. When it is unset,
``serve`` uses the key stored in ``<data_dir>/api-key`` or creates one there, readable only by
its owner, and prints the file's path: the service is never silently open and the key never
appears in logs. The data directory is made owner-only (0700) whatever the key source. A new
key file is created exclusively (never through a planted file or symlink, never racing another
process), and an existing one that its group or others may read is refused with the fix to
apply, not used. Clients send the key as ``Authorization: Bearer <key>``, or, from a browser
WebSocket, as the subprotocol ``openai-insecure-api-key.<key>`` (OpenAI's convention).
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bridge.errors import ConfigError
from bridge.private_files import create_exclusive, loose_mode, private_dir

__all__ = [
    "KEY_ENV",
    "KEY_FILE",
    "SUBPROTOCOL_KEY_PREFIX",
    "ServerKey",
    "key_from_request",
    "resolve_server_key",
]

KEY_ENV = "RTBRIDGE_API_KEY"
KEY_FILE = "api-key"
SUBPROTOCOL_KEY_PREFIX = "openai-insecure-api-key."


@dataclass(frozen=True, slots=True)
class ServerKey:
    """The server key and where it came from (``path`` is None when it came from the env)."""

    value: str
    path: Path | None = None

    def __repr__(self) -> str:
        return f"ServerKey(path={self.path!r})"

    def matches(self, candidate: str | None) -> bool:
        if not candidate:
            return False
        return hmac.compare_digest(candidate.encode(), self.value.encode())


def resolve_server_key(data_dir: Path, environ: Mapping[str, str] | None = None) -> ServerKey:
    """The key from ``RTBRIDGE_API_KEY``, else from (or newly written to) ``data_dir/api-key``.

    Raises :class:`ConfigError` for a key file others may read, an empty one or a symlink."""
    env = os.environ if environ is None else environ
    private_dir(data_dir)
    if env.get(KEY_ENV):
        return ServerKey(env[KEY_ENV])
    path = data_dir / KEY_FILE
    for _ in range(3):
        if path.is_symlink():
            raise ConfigError(f"{path} is a symlink: the key file must be a plain file")
        if path.exists():
            return _read_key_file(path)
        value = "rtb_" + secrets.token_urlsafe(32)
        try:
            create_exclusive(path, value + "\n")
        except FileExistsError:
            continue  # another process wrote one just now: use theirs
        return ServerKey(value, path)
    raise ConfigError(f"cannot create or read {path}")


def _read_key_file(path: Path) -> ServerKey:
    mode = loose_mode(path)
    if mode is not None:
        raise ConfigError(
            f"{path} may be read by its group or others (mode {mode:03o}): the server key must "
            f"be owner-only; run `chmod 600 {path}` (or delete it to get a new key)"
        )
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise ConfigError(f"{path} is empty: delete it to get a new key, or write one into it")
    return ServerKey(value, path)


def key_from_request(headers: Mapping[str, str], subprotocols: Iterable[str] = ()) -> str | None:
    """The key a request carries: a Bearer token, else the browser subprotocol form."""
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    for proto in subprotocols:
        if proto.startswith(SUBPROTOCOL_KEY_PREFIX) and len(proto) > len(SUBPROTOCOL_KEY_PREFIX):
            return proto[len(SUBPROTOCOL_KEY_PREFIX) :]
    return None
