"""OpenAI's error shapes for HTTP answers and Realtime ``error`` events, in one place.

Every HTTP route and the WebSocket relay answer errors the way OpenAI's API does, so clients
written for it (the openai SDKs) read them unchanged: ``{"error": {"message", "type", "code",
"param"}}``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["error_body"]


def error_body(
    message: str,
    *,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """OpenAI's HTTP error shape."""
    return {"error": {"message": message, "type": type_, "code": code, "param": param}}
