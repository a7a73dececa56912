"""Building server events: every event gets a fresh ``event_id``; errors have OpenAI's shape.

``error`` events follow the service: ``{"type": "error", "event_id", "error": {"type",
"code", "message", "param", "event_id"}}`` where ``error.event_id`` names the client event that
caused it (or ``null``).
"""

from __future__ import annotations

from typing import Any

from bridge.agent.ids import IdFactory

__all__ = ["error_event", "server_event"]


def server_event(ids: IdFactory, type_: str, **fields: Any) -> dict[str, Any]:
    """``{"type": type_, "event_id": <new>, **fields}`` (key order as OpenAI sends it)."""
    return {"type": type_, "event_id": ids.event(), **fields}


def error_event(
    ids: IdFactory,
    message: str,
    *,
    code: str | None,
    param: str | None = None,
    client_event_id: str | None = None,
    error_type: str = "invalid_request_error",
) -> dict[str, Any]:
    return server_event(
        ids,
        "error",
        error={
            "type": error_type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event_id,
        },
    )
