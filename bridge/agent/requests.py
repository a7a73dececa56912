"""Validation of client event fields and of items a client creates, with OpenAI's error shapes.

Handlers in ``core`` raise :class:`ClientError`; the core turns it into an ``error`` event that
names the offending parameter and echoes the client's ``event_id``. Codes follow the service:
``missing_required_parameter``, ``invalid_type``, ``invalid_value``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np

from bridge.agent.audio import InputDecoder
from bridge.agent.conversation import StoredItem
from bridge.agent.ids import IdFactory
from bridge.errors import RemoteProtocolError
from bridge.realtime.formats import AudioFormat

__all__ = [
    "ClientError",
    "b64_audio",
    "missing",
    "parse_item",
    "require_int",
    "require_str",
    "without_audio",
]


class ClientError(RemoteProtocolError):
    """An error event to send back for the client event being handled."""

    def __init__(self, message: str, *, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.param = param


def missing(param: str) -> ClientError:
    return ClientError(
        f"Missing required parameter: '{param}'.", code="missing_required_parameter", param=param
    )


def require_str(ev: dict[str, Any], key: str) -> str:
    v = ev.get(key)
    if v is None:
        raise missing(key)
    if not isinstance(v, str):
        raise ClientError(
            f"Invalid type for '{key}': expected a string.", code="invalid_type", param=key
        )
    return v


def require_int(ev: dict[str, Any], key: str) -> int:
    v = ev.get(key)
    if v is None:
        raise missing(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ClientError(
            f"Invalid '{key}': expected a non-negative integer.", code="invalid_type", param=key
        )
    return v


def b64_audio(value: str, param: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ClientError(
            f"Invalid '{param}': expected base64-encoded audio bytes.",
            code="invalid_value",
            param=param,
        ) from None


def parse_item(item: Any, ids: IdFactory, input_format: AudioFormat) -> StoredItem:
    """A client's ``conversation.item.create`` item, validated and completed (id, object,
    status). User ``input_audio`` parts are decoded (``input_format``) into ``StoredItem.pcm``."""
    if item is None:
        raise missing("item")
    if not isinstance(item, dict):
        raise ClientError(
            "Invalid type for 'item': expected an object.", code="invalid_type", param="item"
        )
    kind = item.get("type")
    if kind is None:
        raise missing("item.type")
    new = dict(item)
    new.setdefault("id", ids.item())
    if not isinstance(new["id"], str) or not new["id"]:
        raise ClientError("Invalid 'item.id'.", code="invalid_type", param="item.id")
    new["object"] = "realtime.item"
    new["status"] = "completed"
    if kind == "message":
        role = item.get("role")
        if role not in ("user", "assistant", "system"):
            raise ClientError(
                f"Invalid value: '{role}'. Supported values are: 'user', 'assistant', and "
                "'system'.",
                code="invalid_value" if role is not None else "missing_required_parameter",
                param="item.role",
            )
        content = item.get("content")
        if not isinstance(content, list) or not all(isinstance(c, dict) for c in content):
            raise ClientError(
                "Invalid 'item.content': expected an array of content parts.",
                code="invalid_type",
                param="item.content",
            )
        stored = StoredItem(item=new)
        if role == "user":
            decoder = InputDecoder(input_format)
            for part in content:
                if part.get("type") == "input_audio" and isinstance(part.get("audio"), str):
                    raw = b64_audio(part["audio"], "item.content.audio")
                    stored.pcm = np.concatenate([stored.pcm, decoder.decode(raw)])
        return stored
    required = {
        "function_call_output": ("call_id", "output"),
        "function_call": ("call_id", "name", "arguments"),
    }.get(str(kind))
    if required is None:
        raise ClientError(
            f"Invalid value: '{kind}'. Supported values are: 'message', 'function_call', and "
            "'function_call_output'.",
            code="invalid_value",
            param="item.type",
        )
    for key in required:
        if not isinstance(item.get(key), str):
            raise missing(f"item.{key}")
    return StoredItem(item=new)


def without_audio(item: dict[str, Any]) -> dict[str, Any]:
    """The item as echoed in ``conversation.item.added``: input audio bytes left out."""
    content = item.get("content")
    if not isinstance(content, list):
        return dict(item)
    shown = dict(item)
    shown["content"] = [
        {k: v for k, v in c.items() if k != "audio"} if isinstance(c, dict) else c for c in content
    ]
    return shown
