"""Typed server events (server -> client). Import them from :mod:`bridge.realtime.events`.

Spec: seed 004 ``ServerEvent`` (every GA variant) and seed 001 for the beta names. Beta names that
GA renamed (``response.audio.delta`` ...) are subclasses of their GA class, so code that handles
the GA class handles both; beta-only events (``conversation.item.created``,
``transcription_session.*``) have their own classes.

Required fields: the payload without which an event means nothing (``delta``, ``item``,
``session``, ``transcript``, ...). Ids and indexes that xAI is known to omit (``output_index``,
``content_index`` on deltas, ``item_id`` on VAD events; seed 003) are optional, and ``event_id``
is optional everywhere (``input_audio_buffer.dtmf_event_received`` never has one).
"""

from __future__ import annotations

from typing import Any

from bridge.realtime.event_base import (
    ConversationInfo,
    ErrorDetails,
    LogProb,
    RateLimit,
    RealtimeEvent,
    RealtimeResponse,
)
from bridge.realtime.items import ContentPart, ConversationItem
from bridge.realtime.session import SessionConfig

__all__ = [
    "BETA_SERVER_EVENT_CLASSES",
    "GA_SERVER_EVENT_CLASSES",
    "ConversationCreatedEvent",
    "ConversationItemAddedEvent",
    "ConversationItemCreatedEvent",
    "ConversationItemDeletedEvent",
    "ConversationItemDoneEvent",
    "ConversationItemRetrievedEvent",
    "ConversationItemTruncatedEvent",
    "ErrorEvent",
    "InputAudioBufferClearedEvent",
    "InputAudioBufferCommittedEvent",
    "InputAudioBufferDtmfEventReceivedEvent",
    "InputAudioBufferSpeechStartedEvent",
    "InputAudioBufferSpeechStoppedEvent",
    "InputAudioBufferTimeoutTriggeredEvent",
    "InputAudioTranscriptionCompletedEvent",
    "InputAudioTranscriptionDeltaEvent",
    "InputAudioTranscriptionFailedEvent",
    "InputAudioTranscriptionSegmentEvent",
    "McpListToolsCompletedEvent",
    "McpListToolsFailedEvent",
    "McpListToolsInProgressEvent",
    "OutputAudioBufferClearedEvent",
    "OutputAudioBufferStartedEvent",
    "OutputAudioBufferStoppedEvent",
    "RateLimitsUpdatedEvent",
    "ResponseAudioDeltaEvent",
    "ResponseAudioDoneEvent",
    "ResponseAudioTranscriptDeltaEvent",
    "ResponseAudioTranscriptDoneEvent",
    "ResponseContentPartAddedEvent",
    "ResponseContentPartDoneEvent",
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
    "SessionUpdatedEvent",
    "TranscriptionSessionCreatedEvent",
    "TranscriptionSessionUpdatedEvent",
]


class _Part(RealtimeEvent):
    """Fields locating streamed content: response, item, output index, content index."""

    response_id: str | None = None
    item_id: str | None = None
    output_index: int | None = None
    content_index: int | None = None


# --------------------------------------------------------------------------- session


class SessionCreatedEvent(RealtimeEvent):
    TYPE = "session.created"
    session: SessionConfig


class SessionUpdatedEvent(RealtimeEvent):
    TYPE = "session.updated"
    session: SessionConfig


class TranscriptionSessionCreatedEvent(RealtimeEvent):
    """Beta only (GA: ``session.created`` with a ``transcription`` session); flat beta session."""

    TYPE = "transcription_session.created"
    session: dict[str, Any]


class TranscriptionSessionUpdatedEvent(RealtimeEvent):
    """Beta only (GA: ``session.updated`` with a ``transcription`` session); flat beta session."""

    TYPE = "transcription_session.updated"
    session: dict[str, Any]


# --------------------------------------------------------------------------- conversation


class ConversationCreatedEvent(RealtimeEvent):
    TYPE = "conversation.created"
    conversation: ConversationInfo


class ConversationItemAddedEvent(RealtimeEvent):
    TYPE = "conversation.item.added"
    item: ConversationItem
    previous_item_id: str | None = None


class ConversationItemCreatedEvent(ConversationItemAddedEvent):
    """Beta name of ``conversation.item.added``."""

    TYPE = "conversation.item.created"


class ConversationItemDoneEvent(RealtimeEvent):
    TYPE = "conversation.item.done"
    item: ConversationItem
    previous_item_id: str | None = None


class ConversationItemDeletedEvent(RealtimeEvent):
    TYPE = "conversation.item.deleted"
    item_id: str


class ConversationItemRetrievedEvent(RealtimeEvent):
    TYPE = "conversation.item.retrieved"
    item: ConversationItem


class ConversationItemTruncatedEvent(RealtimeEvent):
    TYPE = "conversation.item.truncated"
    item_id: str
    content_index: int
    audio_end_ms: int


class InputAudioTranscriptionCompletedEvent(RealtimeEvent):
    TYPE = "conversation.item.input_audio_transcription.completed"
    item_id: str
    transcript: str
    content_index: int | None = None
    usage: dict[str, Any] | None = None
    logprobs: list[LogProb] | None = None


class InputAudioTranscriptionDeltaEvent(RealtimeEvent):
    TYPE = "conversation.item.input_audio_transcription.delta"
    item_id: str
    content_index: int | None = None
    delta: str | None = None
    logprobs: list[LogProb] | None = None


class InputAudioTranscriptionFailedEvent(RealtimeEvent):
    TYPE = "conversation.item.input_audio_transcription.failed"
    item_id: str
    error: ErrorDetails
    content_index: int | None = None


class InputAudioTranscriptionSegmentEvent(RealtimeEvent):
    """A diarized segment: ``text`` said by ``speaker`` from ``start`` to ``end`` seconds."""

    TYPE = "conversation.item.input_audio_transcription.segment"
    item_id: str
    text: str
    id: str | None = None
    content_index: int | None = None
    speaker: str | None = None
    start: int | float | None = None
    end: int | float | None = None


# --------------------------------------------------------------------------- input audio buffer


class InputAudioBufferClearedEvent(RealtimeEvent):
    TYPE = "input_audio_buffer.cleared"


class InputAudioBufferCommittedEvent(RealtimeEvent):
    TYPE = "input_audio_buffer.committed"
    item_id: str
    previous_item_id: str | None = None


class InputAudioBufferSpeechStartedEvent(RealtimeEvent):
    TYPE = "input_audio_buffer.speech_started"
    audio_start_ms: int
    item_id: str | None = None


class InputAudioBufferSpeechStoppedEvent(RealtimeEvent):
    TYPE = "input_audio_buffer.speech_stopped"
    audio_end_ms: int
    item_id: str | None = None


class InputAudioBufferTimeoutTriggeredEvent(RealtimeEvent):
    TYPE = "input_audio_buffer.timeout_triggered"
    audio_start_ms: int
    audio_end_ms: int
    item_id: str | None = None


class InputAudioBufferDtmfEventReceivedEvent(RealtimeEvent):
    """SIP only: a keypad digit (``0-9 * # A-D``) in ``event``; the one event with no event_id.

    ``received_at`` is a Unix time in seconds. (xAI's ``digit`` spelling is renamed to ``event``
    by the dialect translator before parsing.)
    """

    TYPE = "input_audio_buffer.dtmf_event_received"
    event: str
    received_at: int | float | None = None


# --------------------------------------------------------------------------- output audio buffer


class OutputAudioBufferStartedEvent(RealtimeEvent):
    TYPE = "output_audio_buffer.started"
    response_id: str | None = None


class OutputAudioBufferStoppedEvent(RealtimeEvent):
    TYPE = "output_audio_buffer.stopped"
    response_id: str | None = None


class OutputAudioBufferClearedEvent(RealtimeEvent):
    TYPE = "output_audio_buffer.cleared"
    response_id: str | None = None


# --------------------------------------------------------------------------- responses


class ResponseCreatedEvent(RealtimeEvent):
    TYPE = "response.created"
    response: RealtimeResponse


class ResponseDoneEvent(RealtimeEvent):
    TYPE = "response.done"
    response: RealtimeResponse


class ResponseOutputItemAddedEvent(RealtimeEvent):
    TYPE = "response.output_item.added"
    item: ConversationItem
    response_id: str | None = None
    output_index: int | None = None


class ResponseOutputItemDoneEvent(RealtimeEvent):
    TYPE = "response.output_item.done"
    item: ConversationItem
    response_id: str | None = None
    output_index: int | None = None


class ResponseContentPartAddedEvent(_Part):
    TYPE = "response.content_part.added"
    part: ContentPart


class ResponseContentPartDoneEvent(_Part):
    TYPE = "response.content_part.done"
    part: ContentPart


class ResponseOutputTextDeltaEvent(_Part):
    TYPE = "response.output_text.delta"
    delta: str


class ResponseOutputTextDoneEvent(_Part):
    TYPE = "response.output_text.done"
    text: str | None = None


class ResponseOutputAudioDeltaEvent(_Part):
    """Base64 audio in the session's output format; ``repr`` shows only its length."""

    TYPE = "response.output_audio.delta"
    delta: str


class ResponseOutputAudioDoneEvent(_Part):
    TYPE = "response.output_audio.done"


class ResponseOutputAudioTranscriptDeltaEvent(_Part):
    TYPE = "response.output_audio_transcript.delta"
    delta: str


class ResponseOutputAudioTranscriptDoneEvent(_Part):
    TYPE = "response.output_audio_transcript.done"
    transcript: str | None = None


class ResponseTextDeltaEvent(ResponseOutputTextDeltaEvent):
    TYPE = "response.text.delta"


class ResponseTextDoneEvent(ResponseOutputTextDoneEvent):
    TYPE = "response.text.done"


class ResponseAudioDeltaEvent(ResponseOutputAudioDeltaEvent):
    TYPE = "response.audio.delta"


class ResponseAudioDoneEvent(ResponseOutputAudioDoneEvent):
    TYPE = "response.audio.done"


class ResponseAudioTranscriptDeltaEvent(ResponseOutputAudioTranscriptDeltaEvent):
    TYPE = "response.audio_transcript.delta"


class ResponseAudioTranscriptDoneEvent(ResponseOutputAudioTranscriptDoneEvent):
    TYPE = "response.audio_transcript.done"


class ResponseFunctionCallArgumentsDeltaEvent(_Part):
    TYPE = "response.function_call_arguments.delta"
    delta: str
    call_id: str | None = None


class ResponseFunctionCallArgumentsDoneEvent(_Part):
    TYPE = "response.function_call_arguments.done"
    arguments: str
    call_id: str | None = None
    name: str | None = None


class ResponseMcpCallArgumentsDeltaEvent(_Part):
    TYPE = "response.mcp_call_arguments.delta"
    delta: str
    obfuscation: str | None = None


class ResponseMcpCallArgumentsDoneEvent(_Part):
    TYPE = "response.mcp_call_arguments.done"
    arguments: str


class ResponseMcpCallInProgressEvent(_Part):
    TYPE = "response.mcp_call.in_progress"


class ResponseMcpCallCompletedEvent(_Part):
    TYPE = "response.mcp_call.completed"


class ResponseMcpCallFailedEvent(_Part):
    TYPE = "response.mcp_call.failed"


class McpListToolsInProgressEvent(RealtimeEvent):
    TYPE = "mcp_list_tools.in_progress"
    item_id: str | None = None


class McpListToolsCompletedEvent(RealtimeEvent):
    TYPE = "mcp_list_tools.completed"
    item_id: str | None = None


class McpListToolsFailedEvent(RealtimeEvent):
    TYPE = "mcp_list_tools.failed"
    item_id: str | None = None


# --------------------------------------------------------------------------- misc


class RateLimitsUpdatedEvent(RealtimeEvent):
    TYPE = "rate_limits.updated"
    rate_limits: list[RateLimit]


class ErrorEvent(RealtimeEvent):
    TYPE = "error"
    error: ErrorDetails


#: GA server events, in seed 004 order.
GA_SERVER_EVENT_CLASSES: tuple[type[RealtimeEvent], ...] = (
    SessionCreatedEvent,
    SessionUpdatedEvent,
    ConversationCreatedEvent,
    ConversationItemAddedEvent,
    ConversationItemDoneEvent,
    ConversationItemDeletedEvent,
    ConversationItemRetrievedEvent,
    ConversationItemTruncatedEvent,
    InputAudioTranscriptionCompletedEvent,
    InputAudioTranscriptionDeltaEvent,
    InputAudioTranscriptionFailedEvent,
    InputAudioTranscriptionSegmentEvent,
    InputAudioBufferClearedEvent,
    InputAudioBufferCommittedEvent,
    InputAudioBufferSpeechStartedEvent,
    InputAudioBufferSpeechStoppedEvent,
    InputAudioBufferTimeoutTriggeredEvent,
    InputAudioBufferDtmfEventReceivedEvent,
    OutputAudioBufferStartedEvent,
    OutputAudioBufferStoppedEvent,
    OutputAudioBufferClearedEvent,
    ResponseCreatedEvent,
    ResponseDoneEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseOutputTextDeltaEvent,
    ResponseOutputTextDoneEvent,
    ResponseOutputAudioDeltaEvent,
    ResponseOutputAudioDoneEvent,
    ResponseOutputAudioTranscriptDeltaEvent,
    ResponseOutputAudioTranscriptDoneEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseMcpCallArgumentsDeltaEvent,
    ResponseMcpCallArgumentsDoneEvent,
    ResponseMcpCallInProgressEvent,
    ResponseMcpCallCompletedEvent,
    ResponseMcpCallFailedEvent,
    McpListToolsInProgressEvent,
    McpListToolsCompletedEvent,
    McpListToolsFailedEvent,
    RateLimitsUpdatedEvent,
    ErrorEvent,
)

#: Server events that only the beta dialect names (seed 001).
BETA_SERVER_EVENT_CLASSES: tuple[type[RealtimeEvent], ...] = (
    ConversationItemCreatedEvent,
    TranscriptionSessionCreatedEvent,
    TranscriptionSessionUpdatedEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
    ResponseAudioDeltaEvent,
    ResponseAudioDoneEvent,
    ResponseAudioTranscriptDeltaEvent,
    ResponseAudioTranscriptDoneEvent,
)
