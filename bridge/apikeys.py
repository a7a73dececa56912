"""The server API key: where it comes from, how it is checked, and how requests carry it.

``RTBRIDGE_API_KEY`` is the server key for the relay and the control plane. When it is unset,
``serve`` uses the key stored in ``<data_dir>/api-key`` or creates one there, readable only by
its owner, and prints the file's path: the service is never silently open and the key never
appears in logs. Clients send the key as ``Authorization: Bearer <key>``, or, from a browser
WebSocket, as the subprotocol ``openai-insecure-api-key.<key>`` (OpenAI's convention).
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

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
    """The key from ``RTBRIDGE_API_KEY``, else from (or newly written to) ``data_dir/api-key``."""
    env = os.environ if environ is None else environ
    if env.get(KEY_ENV):
        return ServerKey(env[KEY_ENV])
    path = data_dir / KEY_FILE
    if path.exists():
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return ServerKey(value, path)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = "rtb_" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value + "\n")
    os.chmod(path, 0o600)
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
