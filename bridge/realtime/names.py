"""The Realtime event names (seed 004: every GA client and server event; seed 001: the beta
server names), for the dialect translators: what a name means in each dialect is decided from
these sets. Events themselves travel as dicts; the ones a call reads are typed in
:mod:`bridge.calls.agent_events`, at the edge.
"""

from __future__ import annotations

__all__ = ["BETA_SERVER_EVENT_NAMES", "CLIENT_EVENT_NAMES", "GA_SERVER_EVENT_NAMES"]

#: Every GA client event type.
CLIENT_EVENT_NAMES: frozenset[str] = frozenset(
    {
        "conversation.item.create",
        "conversation.item.delete",
        "conversation.item.retrieve",
        "conversation.item.truncate",
        "input_audio_buffer.append",
        "input_audio_buffer.clear",
        "input_audio_buffer.commit",
        "output_audio_buffer.clear",
        "response.cancel",
        "response.create",
        "session.update",
    }
)

#: Every GA server event type.
GA_SERVER_EVENT_NAMES: frozenset[str] = frozenset(
    {
        "conversation.created",
        "conversation.item.added",
        "conversation.item.deleted",
        "conversation.item.done",
        "conversation.item.input_audio_transcription.completed",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.failed",
        "conversation.item.input_audio_transcription.segment",
        "conversation.item.retrieved",
        "conversation.item.truncated",
        "error",
        "input_audio_buffer.cleared",
        "input_audio_buffer.committed",
        "input_audio_buffer.dtmf_event_received",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.timeout_triggered",
        "mcp_list_tools.completed",
        "mcp_list_tools.failed",
        "mcp_list_tools.in_progress",
        "output_audio_buffer.cleared",
        "output_audio_buffer.started",
        "output_audio_buffer.stopped",
        "rate_limits.updated",
        "response.content_part.added",
        "response.content_part.done",
        "response.created",
        "response.done",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.mcp_call.completed",
        "response.mcp_call.failed",
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.delta",
        "response.output_audio_transcript.done",
        "response.output_item.added",
        "response.output_item.done",
        "response.output_text.delta",
        "response.output_text.done",
        "session.created",
        "session.updated",
    }
)

#: Server event types only the beta dialect uses.
BETA_SERVER_EVENT_NAMES: frozenset[str] = frozenset(
    {
        "conversation.item.created",
        "response.audio.delta",
        "response.audio.done",
        "response.audio_transcript.delta",
        "response.audio_transcript.done",
        "response.text.delta",
        "response.text.done",
        "transcription_session.created",
        "transcription_session.updated",
    }
)
