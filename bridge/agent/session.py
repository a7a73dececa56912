"""The GA session object the local agent keeps per connection: defaults, updates, accessors.

A connection starts with OpenAI's default GA session (``session.created``). Each
``session.update`` is validated and merged; on any problem the whole update is refused with the
error OpenAI would send (the session is left unchanged). Merge rules follow the service:

- nested objects (``audio.input``, ``audio.output``) merge key by key;
- ``turn_detection``, ``format``, ``tools``, ``tool_choice``, ``voice`` and lists are replaced
  whole; a new ``turn_detection`` gets its type's defaults for fields it omits;
  ``turn_detection: null`` switches to manual commits;
- ``id``, ``object`` and ``expires_at`` are read-only and ignored;
- unknown fields are kept (the agent must not reject what a proxy forwards unchanged).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from bridge.errors import RemoteProtocolError
from bridge.realtime.formats import AudioFormat

__all__ = [
    "SEMANTIC_VAD_DEFAULTS",
    "SERVER_VAD_DEFAULTS",
    "SessionUpdateError",
    "apply_update",
    "default_session",
    "function_tools",
    "input_format",
    "output_format",
    "output_modalities",
    "turn_detection",
]

SERVER_VAD_DEFAULTS: dict[str, Any] = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 200,
    "idle_timeout_ms": None,
    "create_response": True,
    "interrupt_response": True,
}
SEMANTIC_VAD_DEFAULTS: dict[str, Any] = {
    "type": "semantic_vad",
    "eagerness": "auto",
    "create_response": True,
    "interrupt_response": True,
}
_READ_ONLY = frozenset({"id", "object", "expires_at"})
_REPLACED = frozenset({"turn_detection", "format", "tools", "tool_choice", "voice", "tracing"})
_SESSION_TTL_S = 30 * 60


class SessionUpdateError(RemoteProtocolError):
    """A ``session.update`` the service would refuse; fields of the ``error`` event."""

    def __init__(self, message: str, *, code: str = "invalid_value", param: str | None = None):
        super().__init__(message)
        self.code = code
        self.param = param


def default_session(session_id: str, model: str, now_s: int) -> dict[str, Any]:
    """OpenAI's GA default session as sent in ``session.created``."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "You are a helpful, witty, and friendly AI.",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": now_s + _SESSION_TTL_S,
        "audio": {
            "input": {
                "format": AudioFormat.PCM16.to_ga(),
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": dict(SERVER_VAD_DEFAULTS),
            },
            "output": {
                "format": AudioFormat.PCM16.to_ga(),
                "voice": "alloy",
                "speed": 1.0,
            },
        },
        "include": None,
    }


def _merge(base: dict[str, Any], over: dict[str, Any], path: str) -> None:
    for key, value in over.items():
        if path == "session" and key in _READ_ONLY:
            continue
        here = f"{path}.{key}"
        if key == "turn_detection":
            base[key] = _turn_detection(value, here)
        elif key == "format":
            base[key] = _format(value, here)
        elif isinstance(value, dict) and isinstance(base.get(key), dict) and key not in _REPLACED:
            _merge(base[key], value, here)
        else:
            base[key] = copy.deepcopy(value)


def _turn_detection(value: Any, param: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SessionUpdateError(
            f"Invalid type for '{param}': expected an object or null.",
            code="invalid_type",
            param=param,
        )
    kind = value.get("type", "server_vad")
    if kind == "server_vad":
        td = dict(SERVER_VAD_DEFAULTS)
    elif kind == "semantic_vad":
        td = dict(SEMANTIC_VAD_DEFAULTS)
    else:
        raise SessionUpdateError(
            f"Invalid value: '{kind}'. Supported values are: 'server_vad' and 'semantic_vad'.",
            param=f"{param}.type",
        )
    td.update(value)
    threshold = td.get("threshold")
    if threshold is not None and not (
        isinstance(threshold, int | float) and 0.0 <= float(threshold) <= 1.0
    ):
        raise SessionUpdateError(
            f"Invalid '{param}.threshold': expected a number between 0 and 1.",
            param=f"{param}.threshold",
        )
    for key in ("prefix_padding_ms", "silence_duration_ms", "idle_timeout_ms"):
        v = td.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            raise SessionUpdateError(
                f"Invalid '{param}.{key}': expected a non-negative integer.",
                code="invalid_type",
                param=f"{param}.{key}",
            )
    return td


def _format(value: Any, param: str) -> dict[str, Any]:
    try:
        return AudioFormat.from_wire(value).to_ga()
    except ValueError as exc:
        raise SessionUpdateError(str(exc), param=param) from None


def apply_update(
    current: dict[str, Any],
    update: Any,
    *,
    allowed_formats: Iterable[AudioFormat],
    require_type: bool = True,
) -> dict[str, Any]:
    """The session after ``update``; raises :class:`SessionUpdateError` and leaves
    ``current`` untouched if the service would refuse it."""
    if not isinstance(update, dict):
        raise SessionUpdateError(
            "Invalid type for 'session': expected an object.", code="invalid_type", param="session"
        )
    kind = update.get("type")
    if kind is None and require_type:
        raise SessionUpdateError(
            "Missing required parameter: 'session.type'.",
            code="missing_required_parameter",
            param="session.type",
        )
    if kind is not None and kind != "realtime":
        raise SessionUpdateError(
            f"Invalid value: '{kind}'. Supported values are: 'realtime'.", param="session.type"
        )
    new = copy.deepcopy(current)
    _merge(new, update, "session")
    for path in ("audio", "audio.input", "audio.output"):
        node: Any = new
        for key in path.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            raise SessionUpdateError(
                f"Invalid type for 'session.{path}': expected an object.",
                code="invalid_type",
                param=f"session.{path}",
            )
    allowed = set(allowed_formats)
    for direction in ("input", "output"):
        fmt = AudioFormat.from_wire(new["audio"][direction]["format"])
        if fmt not in allowed:
            offered = ", ".join(repr(f.to_ga()["type"]) for f in AudioFormat if f in allowed)
            raise SessionUpdateError(
                f"Invalid value: '{fmt.to_ga()['type']}'. This server accepts only {offered} "
                f"for 'session.audio.{direction}.format'.",
                param=f"session.audio.{direction}.format",
            )
    mods = new.get("output_modalities")
    if not (isinstance(mods, list) and len(mods) == 1 and mods[0] in ("audio", "text")):
        raise SessionUpdateError(
            'Invalid \'session.output_modalities\': expected ["audio"] or ["text"].',
            param="session.output_modalities",
        )
    if not isinstance(new.get("instructions"), str):
        raise SessionUpdateError(
            "Invalid type for 'session.instructions': expected a string.",
            code="invalid_type",
            param="session.instructions",
        )
    if not isinstance(new.get("tools"), list):
        raise SessionUpdateError(
            "Invalid type for 'session.tools': expected an array.",
            code="invalid_type",
            param="session.tools",
        )
    return new


def input_format(session: dict[str, Any]) -> AudioFormat:
    return AudioFormat.from_wire(session["audio"]["input"]["format"])


def output_format(session: dict[str, Any]) -> AudioFormat:
    return AudioFormat.from_wire(session["audio"]["output"]["format"])


def turn_detection(session: dict[str, Any]) -> dict[str, Any] | None:
    td = session["audio"]["input"].get("turn_detection")
    return td if isinstance(td, dict) else None


def output_modalities(session: dict[str, Any]) -> list[str]:
    mods = session.get("output_modalities")
    return list(mods) if isinstance(mods, list) else ["audio"]


def function_tools(session: dict[str, Any]) -> list[dict[str, Any]]:
    tools = session.get("tools") or []
    return [t for t in tools if isinstance(t, dict) and t.get("type") == "function"]
