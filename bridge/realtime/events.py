"""Typed Realtime events: the registries, parsing with precise errors, and exact dumping.

Spec: seed 004 (every GA client and server event), seed 001 (beta server names). This is the
import point for every event class; they live in :mod:`~bridge.realtime.client_events` and
:mod:`~bridge.realtime.server_events` only to keep modules small.

Contract:

* :func:`parse_client_event` / :func:`parse_server_event` take a frame (``str``/``bytes``) or a
  mapping and return the registered class for its ``type`` (:class:`UnknownEvent` for any other
  type). Bad input raises :class:`~bridge.errors.RemoteProtocolError` with ``code``
  ``invalid_json`` (not a JSON object), ``missing_required_parameter`` (a required field or union
  tag is absent) or ``invalid_event`` (a field has the wrong type), and ``param`` set to the path
  of the offending field (``item.content[0].text``). Nothing else escapes.
* :func:`event_to_dict` is the inverse: for every input that parses,
  ``event_to_dict(parse_x_event(d)) == d``, unknown fields and explicit ``null`` included.

The parsers speak GA (plus the beta server names, which parse to subclasses of their GA class).
Frames in another dialect go through :mod:`bridge.realtime.dialects` first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from bridge.errors import RemoteProtocolError
from bridge.realtime import wire
from bridge.realtime.client_events import (
    CLIENT_EVENT_CLASSES,
    ConversationItemCreateEvent,
    ConversationItemDeleteEvent,
    ConversationItemRetrieveEvent,
    ConversationItemTruncateEvent,
    InputAudioBufferAppendEvent,
    InputAudioBufferClearEvent,
    InputAudioBufferCommitEvent,
    OutputAudioBufferClearEvent,
    ResponseCancelEvent,
    ResponseCreateEvent,
    SessionUpdateEvent,
)
from bridge.realtime.event_base import (
    ConversationInfo,
    ErrorDetails,
    LogProb,
    RateLimit,
    RealtimeEvent,
    RealtimeResponse,
    ResponseCreateParams,
    UnknownEvent,
)
from bridge.realtime.server_events import (
    BETA_SERVER_EVENT_CLASSES,
    GA_SERVER_EVENT_CLASSES,
    ConversationCreatedEvent,
    ConversationItemAddedEvent,
    ConversationItemCreatedEvent,
    ConversationItemDeletedEvent,
    ConversationItemDoneEvent,
    ConversationItemRetrievedEvent,
    ConversationItemTruncatedEvent,
    ErrorEvent,
    InputAudioBufferClearedEvent,
    InputAudioBufferCommittedEvent,
    InputAudioBufferDtmfEventReceivedEvent,
    InputAudioBufferSpeechStartedEvent,
    InputAudioBufferSpeechStoppedEvent,
    InputAudioBufferTimeoutTriggeredEvent,
    InputAudioTranscriptionCompletedEvent,
    InputAudioTranscriptionDeltaEvent,
    InputAudioTranscriptionFailedEvent,
    InputAudioTranscriptionSegmentEvent,
    McpListToolsCompletedEvent,
    McpListToolsFailedEvent,
    McpListToolsInProgressEvent,
    OutputAudioBufferClearedEvent,
    OutputAudioBufferStartedEvent,
    OutputAudioBufferStoppedEvent,
    RateLimitsUpdatedEvent,
    ResponseAudioDeltaEvent,
    ResponseAudioDoneEvent,
    ResponseAudioTranscriptDeltaEvent,
    ResponseAudioTranscriptDoneEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseDoneEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseMcpCallArgumentsDeltaEvent,
    ResponseMcpCallArgumentsDoneEvent,
    ResponseMcpCallCompletedEvent,
    ResponseMcpCallFailedEvent,
    ResponseMcpCallInProgressEvent,
    ResponseOutputAudioDeltaEvent,
    ResponseOutputAudioDoneEvent,
    ResponseOutputAudioTranscriptDeltaEvent,
    ResponseOutputAudioTranscriptDoneEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputTextDeltaEvent,
    ResponseOutputTextDoneEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
    SessionCreatedEvent,
    SessionUpdatedEvent,
    TranscriptionSessionCreatedEvent,
    TranscriptionSessionUpdatedEvent,
)

__all__ = [
    "BETA_SERVER_EVENT_NAMES",
    "CLIENT_EVENTS",
    "GA_SERVER_EVENT_NAMES",
    "SERVER_EVENTS",
    "ConversationCreatedEvent",
    "ConversationInfo",
    "ConversationItemAddedEvent",
    "ConversationItemCreateEvent",
    "ConversationItemCreatedEvent",
    "ConversationItemDeleteEvent",
    "ConversationItemDeletedEvent",
    "ConversationItemDoneEvent",
    "ConversationItemRetrieveEvent",
    "ConversationItemRetrievedEvent",
    "ConversationItemTruncateEvent",
    "ConversationItemTruncatedEvent",
    "ErrorDetails",
    "ErrorEvent",
    "InputAudioBufferAppendEvent",
    "InputAudioBufferClearEvent",
    "InputAudioBufferClearedEvent",
    "InputAudioBufferCommitEvent",
    "InputAudioBufferCommittedEvent",
    "InputAudioBufferDtmfEventReceivedEvent",
    "InputAudioBufferSpeechStartedEvent",
    "InputAudioBufferSpeechStoppedEvent",
    "InputAudioBufferTimeoutTriggeredEvent",
    "InputAudioTranscriptionCompletedEvent",
    "InputAudioTranscriptionDeltaEvent",
    "InputAudioTranscriptionFailedEvent",
    "InputAudioTranscriptionSegmentEvent",
    "LogProb",
    "McpListToolsCompletedEvent",
    "McpListToolsFailedEvent",
    "McpListToolsInProgressEvent",
    "OutputAudioBufferClearEvent",
    "OutputAudioBufferClearedEvent",
    "OutputAudioBufferStartedEvent",
    "OutputAudioBufferStoppedEvent",
    "RateLimit",
    "RateLimitsUpdatedEvent",
    "RealtimeEvent",
    "RealtimeResponse",
    "ResponseAudioDeltaEvent",
    "ResponseAudioDoneEvent",
    "ResponseAudioTranscriptDeltaEvent",
    "ResponseAudioTranscriptDoneEvent",
    "ResponseCancelEvent",
    "ResponseContentPartAddedEvent",
    "ResponseContentPartDoneEvent",
    "ResponseCreateEvent",
    "ResponseCreateParams",
    "ResponseCreatedEvent",
    "ResponseDoneEvent",
    "ResponseFunctionCallArgumentsDeltaEvent",
    "ResponseFunctionCallArgumentsDoneEvent",
    "ResponseMcpCallArgumentsDeltaEvent",
    "ResponseMcpCallArgumentsDoneEvent",
    "ResponseMcpCallCompletedEvent",
    "ResponseMcpCallFailedEvent",
    "ResponseMcpCallInProgressEvent",
    "ResponseOutputAudioDeltaEvent",
    "ResponseOutputAudioDoneEvent",
    "ResponseOutputAudioTranscriptDeltaEvent",
    "ResponseOutputAudioTranscriptDoneEvent",
    "ResponseOutputItemAddedEvent",
    "ResponseOutputItemDoneEvent",
    "ResponseOutputTextDeltaEvent",
    "ResponseOutputTextDoneEvent",
    "ResponseTextDeltaEvent",
    "ResponseTextDoneEvent",
    "SessionCreatedEvent",
    "SessionUpdateEvent",
    "SessionUpdatedEvent",
    "TranscriptionSessionCreatedEvent",
    "TranscriptionSessionUpdatedEvent",
    "UnknownEvent",
    "event_to_dict",
    "parse_client_event",
    "parse_server_event",
]

#: Client event ``type`` -> class (GA names; the beta client names are the same).
CLIENT_EVENTS: Mapping[str, type[RealtimeEvent]] = MappingProxyType(
    {cls.TYPE: cls for cls in CLIENT_EVENT_CLASSES}
)
#: Server event ``type`` -> class: every GA name and the beta-only names.
SERVER_EVENTS: Mapping[str, type[RealtimeEvent]] = MappingProxyType(
    {cls.TYPE: cls for cls in GA_SERVER_EVENT_CLASSES + BETA_SERVER_EVENT_CLASSES}
)
GA_SERVER_EVENT_NAMES: frozenset[str] = frozenset(cls.TYPE for cls in GA_SERVER_EVENT_CLASSES)
BETA_SERVER_EVENT_NAMES: frozenset[str] = frozenset(cls.TYPE for cls in BETA_SERVER_EVENT_CLASSES)


def parse_client_event(obj: Mapping[str, Any] | str | bytes) -> RealtimeEvent:
    """A client event (frame or mapping) as its typed class; see the module docstring."""
    return _parse(obj, CLIENT_EVENTS)


def parse_server_event(obj: Mapping[str, Any] | str | bytes) -> RealtimeEvent:
    """A server event (frame or mapping) as its typed class; see the module docstring."""
    return _parse(obj, SERVER_EVENTS)


def event_to_dict(ev: RealtimeEvent) -> dict[str, Any]:
    """The wire form of an event: exactly the fields it was parsed or built with."""
    return ev.model_dump(mode="json", by_alias=True, exclude_unset=True)


def _parse(
    obj: Mapping[str, Any] | str | bytes, registry: Mapping[str, type[RealtimeEvent]]
) -> RealtimeEvent:
    if isinstance(obj, str | bytes):
        data = wire.loads(obj)
    elif isinstance(obj, Mapping):
        data = obj if isinstance(obj, dict) else dict(obj)
        etype = data.get("type")
        if not isinstance(etype, str) or not etype:
            raise RemoteProtocolError(
                "event has no string 'type' field", code="missing_required_parameter", param="type"
            )
    else:
        raise RemoteProtocolError(
            f"event must be a JSON object, got {type(obj).__name__}", code="invalid_json"
        )
    etype = data["type"]
    cls = registry.get(etype, UnknownEvent)
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise _protocol_error(etype, exc, data) from None
    except (TypeError, ValueError) as exc:  # e.g. non-string keys in a hand-made mapping
        raise RemoteProtocolError(f"{etype}: {exc}", code="invalid_event") from None


def _protocol_error(
    etype: str, exc: ValidationError, data: Mapping[str, Any]
) -> RemoteProtocolError:
    err = exc.errors(include_url=False)[0]
    kind = err["type"]
    param = _param_path(err["loc"], data, kind == "missing")
    if kind.startswith("missing_tag."):
        field = kind.removeprefix("missing_tag.")
        param = f"{param}.{field}" if param else field
        code = "missing_required_parameter"
    elif kind == "missing":
        code = "missing_required_parameter"
    else:
        code = "invalid_event"
    return RemoteProtocolError(
        f"{etype}: {param or '<event>'}: {err['msg']}", code=code, param=param
    )


def _param_path(loc: Sequence[int | str], data: Any, missing: bool) -> str:
    """Pydantic's error location as a path into the input, without union member labels.

    A location element that is not a key (or index) of the value at that point is a union tag or
    member name and is skipped, except the last element of a ``missing`` error: the absent field.
    """
    out = ""
    cur = data
    last = len(loc) - 1
    for i, el in enumerate(loc):
        if isinstance(cur, Mapping) and isinstance(el, str) and el in cur:
            out = f"{out}.{el}" if out else el
            cur = cur[el]
        elif isinstance(cur, list) and isinstance(el, int) and 0 <= el < len(cur):
            out = f"{out}[{el}]"
            cur = cur[el]
        elif i == last and missing and isinstance(el, str):
            out = f"{out}.{el}" if out else el
    return out
