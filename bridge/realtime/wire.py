"""Realtime frames as bytes on a WebSocket: fast JSON, templated audio appends, log redaction.

The audio path carries two event types at 50 per second per call: ``input_audio_buffer.append``
out and ``response.output_audio.delta`` in. Building the append from a string template instead
of ``json.dumps`` and parsing with orjson keeps both to a few microseconds. Large base64 audio
never reaches a log: :func:`redact` replaces it with its length.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import orjson

from bridge.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "AUDIO_FIELDS",
    "append_frame",
    "dumps",
    "event_type",
    "loads",
    "redact",
]

#: Fields that carry base64 audio in some event (client append, server deltas, item content).
AUDIO_FIELDS = frozenset({"audio", "delta"})
#: Event types whose ``delta`` is audio (other deltas are text and stay in logs).
_AUDIO_DELTA_TYPES = frozenset({"response.output_audio.delta", "response.audio.delta"})


def loads(frame: str | bytes, *, typed: bool = True) -> dict[str, Any]:
    """Parse one frame into a JSON object; anything else is a :class:`RemoteProtocolError`.

    ``typed``: the object must have a string ``type`` (every Realtime event does; Gemini's
    messages do not)."""
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise RemoteProtocolError(f"frame is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(obj, dict):
        raise RemoteProtocolError(
            f"frame must be a JSON object, got {type(obj).__name__}", code="invalid_json"
        )
    t = obj.get("type")
    if typed and (not isinstance(t, str) or not t):
        raise RemoteProtocolError(
            "event has no string 'type' field", code="missing_required_parameter", param="type"
        )
    return obj


def dumps(obj: Mapping[str, Any]) -> str:
    """Serialise an event to a text frame (compact, UTF-8, key order preserved)."""
    try:
        return orjson.dumps(obj).decode()
    except TypeError as exc:
        raise LocalProtocolError(f"event is not JSON-serialisable: {exc}") from exc


def event_type(obj: Mapping[str, Any]) -> str:
    t = obj.get("type")
    return t if isinstance(t, str) else ""


def append_frame(audio: bytes, event_id: str | None = None) -> str:
    """``input_audio_buffer.append`` for raw audio bytes, built without ``json.dumps``.

    base64's alphabet needs no JSON escaping, so the template is exact.
    """
    b64 = base64.b64encode(audio).decode("ascii")
    if event_id is None:
        return '{"type":"input_audio_buffer.append","audio":"' + b64 + '"}'
    if not event_id.isascii() or '"' in event_id or "\\" in event_id:
        raise LocalProtocolError("event_id must be plain ASCII without quotes or backslashes")
    return (
        '{"type":"input_audio_buffer.append","event_id":"' + event_id + '","audio":"' + b64 + '"}'
    )


def _redact_value(key: str, value: Any, audio_delta: bool) -> Any:
    if isinstance(value, str) and (key == "audio" or (key == "delta" and audio_delta)):
        return f"<{len(value)} chars base64>"
    if isinstance(value, Mapping):
        return {k: _redact_value(k, v, audio_delta) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(key, v, audio_delta) for v in value]
    return value


def redact(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an event safe to log: base64 audio replaced by its length."""
    audio_delta = event_type(obj) in _AUDIO_DELTA_TYPES
    return {k: _redact_value(k, v, audio_delta) for k, v in obj.items()}
