"""The base class of every typed Realtime event and the values events share.

Spec: seed 004 (``ClientEvent``/``ServerEvent`` and their supporting types), seed 001 for the
response object. Import events from :mod:`bridge.realtime.events`; this module only exists so that
the client and server event modules can share a base without importing each other.

An event class sets ``TYPE`` (its GA name); constructing it without ``type`` fills that name in,
so ``SessionUpdateEvent(session=...)`` works and still dumps ``"type"``. Parsing never relies on
``TYPE``: the registries in :mod:`bridge.realtime.events` pick the class, and the ``type`` that
was received is kept verbatim (a beta name stays a beta name).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import model_validator

from bridge.realtime.items import ConversationItem, Num, WireModel
from bridge.realtime.session import AudioFormatConfig, Tool, ToolChoice, VoiceRef

__all__ = [
    "ConversationInfo",
    "ErrorDetails",
    "LogProb",
    "RateLimit",
    "RealtimeEvent",
    "RealtimeResponse",
    "ResponseAudioConfig",
    "ResponseAudioOutput",
    "ResponseCreateParams",
    "UnknownEvent",
]


class RealtimeEvent(WireModel):
    """One Realtime event. Unknown fields are kept; ``repr`` hides base64 audio."""

    TYPE: ClassVar[str] = ""

    # The default only serves keyword construction (filled from ``TYPE`` before validation, so
    # it is always "set" and always dumped); parsing requires a non-empty string ``type``.
    type: str = ""
    event_id: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_type(cls, data: Any) -> Any:
        if isinstance(data, dict) and "type" not in data and cls.TYPE:
            return {"type": cls.TYPE, **data}
        return data


class UnknownEvent(RealtimeEvent):
    """An event whose ``type`` no registry knows. Everything in it is kept for forwarding."""


# --------------------------------------------------------------------------- shared values


class ErrorDetails(WireModel):
    """``error`` of an ``error`` event (and of failed transcriptions)."""

    message: str | None = None
    type: str | None = None
    code: str | None = None
    param: str | None = None
    event_id: str | None = None


class ConversationInfo(WireModel):
    id: str | None = None
    object: str | None = None


class RateLimit(WireModel):
    name: str | None = None
    limit: int | None = None
    remaining: int | None = None
    reset_seconds: Num | None = None


class LogProb(WireModel):
    token: str | None = None
    bytes: list[int] | None = None
    logprob: Num | None = None


class ResponseAudioOutput(WireModel):
    format: AudioFormatConfig | None = None
    voice: str | VoiceRef | None = None


class ResponseAudioConfig(WireModel):
    output: ResponseAudioOutput | None = None


class ResponseCreateParams(WireModel):
    """``response`` of a ``response.create``: per-response overrides of the session."""

    output_modalities: list[str] | None = None
    instructions: str | None = None
    audio: ResponseAudioConfig | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    max_output_tokens: int | str | None = None
    conversation: str | None = None  # "auto" | "none" | a conversation id
    metadata: dict[str, Any] | None = None
    input: list[ConversationItem] | None = None  # items or {type: item_reference, id}
    prompt: dict[str, Any] | None = None


class RealtimeResponse(WireModel):
    """The ``response`` of ``response.created`` / ``response.done``."""

    id: str | None = None
    object: str | None = None
    status: str | None = None
    status_details: dict[str, Any] | None = None
    output: list[ConversationItem] | None = None
    conversation_id: str | None = None
    output_modalities: list[str] | None = None
    max_output_tokens: int | str | None = None
    audio: ResponseAudioConfig | None = None
    usage: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
