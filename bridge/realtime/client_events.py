"""Typed GA client events (client -> server). Import them from :mod:`bridge.realtime.events`.

Spec: seed 004 ``ClientEvent``: every variant, with the fields the openai SDK marks required
required here too. ``output_audio_buffer.clear`` exists where the server owns playout (WebRTC,
SIP); rtbridge also accepts it on its WebSocket relay, where the bridge owns playout.
"""

from __future__ import annotations

from bridge.realtime.event_base import RealtimeEvent, ResponseCreateParams
from bridge.realtime.items import ConversationItem
from bridge.realtime.session import SessionConfig

__all__ = [
    "CLIENT_EVENT_CLASSES",
    "ConversationItemCreateEvent",
    "ConversationItemDeleteEvent",
    "ConversationItemRetrieveEvent",
    "ConversationItemTruncateEvent",
    "InputAudioBufferAppendEvent",
    "InputAudioBufferClearEvent",
    "InputAudioBufferCommitEvent",
    "OutputAudioBufferClearEvent",
    "ResponseCancelEvent",
    "ResponseCreateEvent",
    "SessionUpdateEvent",
]


class SessionUpdateEvent(RealtimeEvent):
    TYPE = "session.update"
    session: SessionConfig


class ConversationItemCreateEvent(RealtimeEvent):
    TYPE = "conversation.item.create"
    item: ConversationItem
    previous_item_id: str | None = None


class ConversationItemDeleteEvent(RealtimeEvent):
    TYPE = "conversation.item.delete"
    item_id: str


class ConversationItemRetrieveEvent(RealtimeEvent):
    TYPE = "conversation.item.retrieve"
    item_id: str


class ConversationItemTruncateEvent(RealtimeEvent):
    TYPE = "conversation.item.truncate"
    item_id: str
    content_index: int
    audio_end_ms: int


class InputAudioBufferAppendEvent(RealtimeEvent):
    """Base64 audio in the session's input format; ``repr`` shows only its length."""

    TYPE = "input_audio_buffer.append"
    audio: str


class InputAudioBufferClearEvent(RealtimeEvent):
    TYPE = "input_audio_buffer.clear"


class InputAudioBufferCommitEvent(RealtimeEvent):
    TYPE = "input_audio_buffer.commit"


class OutputAudioBufferClearEvent(RealtimeEvent):
    TYPE = "output_audio_buffer.clear"


class ResponseCancelEvent(RealtimeEvent):
    TYPE = "response.cancel"
    response_id: str | None = None


class ResponseCreateEvent(RealtimeEvent):
    TYPE = "response.create"
    response: ResponseCreateParams | None = None


CLIENT_EVENT_CLASSES: tuple[type[RealtimeEvent], ...] = (
    SessionUpdateEvent,
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
)
