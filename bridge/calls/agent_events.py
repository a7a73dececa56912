"""The agent's events as the call path reads them: parsed once, at the edge, into frozen values.

A call reads a handful of the Realtime server events (seed 004, GA names; other dialects are
translated before this point by :mod:`bridge.realtime.dialects`): the response lifecycle, audio
and transcript, the upstream's voice activity, function calls, session confirmations and errors.
:func:`parse_agent_event` turns each frame's dict into one of the classes below, exactly once,
in :class:`~bridge.calls.agent_session.AgentSession`; everything else becomes :class:`Other`,
which the call only forwards. Every value keeps the event as received (``raw``): clients and
observers get that, unchanged, so unknown fields survive the trip.

A known event whose fields are unusable (an audio delta that is not base64, a response without
an id) becomes :class:`Malformed` with the reason, instead of raising: one bad frame from an
upstream is logged, never a crash of the call.

:class:`SessionRenewed` is rtbridge's own: the upstream session ended under the call (its time
limit, a ``goAway``, a lost socket) and the agent session opened another one
(:mod:`bridge.calls.agent_session`). The upstream's own announcements of that end
(:class:`SessionEnding`, :class:`Resumption`, an ``error`` ``session_expired``) are read by the
agent session and never reach the call.
"""

from __future__ import annotations

from base64 import b64decode
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AgentEvent",
    "AudioDelta",
    "BufferEvent",
    "FunctionCall",
    "FunctionCallDone",
    "ItemTruncated",
    "Malformed",
    "Other",
    "ResponseCreated",
    "ResponseDone",
    "Resumption",
    "SessionEnding",
    "SessionRenewed",
    "SessionUpdated",
    "SpeechStarted",
    "SpeechStopped",
    "Transcript",
    "TranscriptDelta",
    "UpstreamErrorEvent",
    "parse_agent_event",
    "session_problem",
]

Raw = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SessionUpdated:
    """``session.updated``: the session as the upstream now has it."""

    raw: Raw
    session: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ResponseCreated:
    raw: Raw
    response_id: str


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """A ``function_call`` output item of a finished response."""

    call_id: str
    name: str
    status: str  # completed | incomplete | in_progress


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """``response.done``: ``status`` is completed, cancelled, incomplete or failed."""

    raw: Raw
    response_id: str
    status: str
    function_calls: tuple[FunctionCall, ...]


@dataclass(frozen=True, slots=True)
class AudioDelta:
    """``response.output_audio.delta``, its base64 already decoded."""

    raw: Raw
    response_id: str
    item_id: str
    audio: bytes


@dataclass(frozen=True, slots=True)
class Transcript:
    """A finished transcript: the agent's (``response.output_audio_transcript.done``) or the
    caller's (``conversation.item.input_audio_transcription.completed``)."""

    raw: Raw
    speaker: str  # "agent" | "user"
    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class TranscriptDelta:
    """``response.output_audio_transcript.delta``: a piece of what the agent is saying."""

    raw: Raw
    item_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class ItemTruncated:
    """``conversation.item.truncated``; ``transcript`` is what was heard, where the upstream (a
    translator that truncates locally) or rtbridge says so, else None (OpenAI's event has
    none)."""

    raw: Raw
    item_id: str
    audio_end_ms: int
    transcript: str | None


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """``input_audio_buffer.speech_started``: the upstream's VAD heard the caller start."""

    raw: Raw
    item_id: str
    audio_start_ms: int | None


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    raw: Raw
    item_id: str
    audio_end_ms: int | None


@dataclass(frozen=True, slots=True)
class FunctionCallDone:
    """``response.function_call_arguments.done``: the agent calls a tool."""

    raw: Raw
    response_id: str
    item_id: str
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class UpstreamErrorEvent:
    """``error``: ``code`` as the upstream gave it (``session_expired``,
    ``response_cancel_not_active``, ...), None when it gave none."""

    raw: Raw
    code: str | None
    message: str


@dataclass(frozen=True, slots=True)
class BufferEvent:
    """The upstream's own ``output_audio_buffer.*``: rtbridge owns playout and emits these from
    what it really played, so the upstream's are never forwarded."""

    raw: Raw


@dataclass(frozen=True, slots=True)
class SessionEnding:
    """The upstream announced the end of its session: ``going_away`` (Gemini ``goAway``, with
    ``time_left_ms``) or ``closed`` (GPT-Live ``session.closed`` for another reason than its
    time limit, with ``reason``)."""

    raw: Raw
    kind: str  # going_away | closed
    time_left_ms: int | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class Resumption:
    """``rtbridge.upstream.resumption``: the latest handle that resumes this upstream session
    on a new connection (Gemini). A credential: kept by the agent session, never forwarded."""

    raw: Raw
    handle: str | None
    resumable: bool


@dataclass(frozen=True, slots=True)
class SessionRenewed:
    """rtbridge's own: the upstream session ended and the call goes on in a new one.

    ``how``: ``resumed`` (the upstream's own resumption) or ``replayed`` (the conversation as
    the caller heard it, as items); ``cause``: ``going_away``, ``session_limit`` (its known
    length, before it was reached), ``session_expired``, ``session_closed`` or
    ``connection_lost``; ``gap_ms``: how long no upstream session took
    events (0 when the new one was ready before the old one went); ``audio_dropped_ms``: the
    caller audio dropped meanwhile; ``audio_resent_ms``: the caller's unanswered turn, told
    again to the new session."""

    how: str
    cause: str
    gap_ms: int
    attempts: int
    items_replayed: int
    audio_dropped_ms: int
    audio_resent_ms: int = 0

    @property
    def raw(self) -> Raw:
        return {
            "type": "rtbridge.session_renewed",
            "how": self.how,
            "cause": self.cause,
            "gap_ms": self.gap_ms,
            "attempts": self.attempts,
            "items_replayed": self.items_replayed,
            "audio_dropped_ms": self.audio_dropped_ms,
            "audio_resent_ms": self.audio_resent_ms,
        }


@dataclass(frozen=True, slots=True)
class Malformed:
    """A known event type with fields the call cannot use; logged, otherwise ignored."""

    raw: Raw
    reason: str


@dataclass(frozen=True, slots=True)
class Other:
    """Any other event: forwarded to clients and observers unchanged."""

    raw: Raw


AgentEvent = (
    SessionUpdated
    | ResponseCreated
    | ResponseDone
    | AudioDelta
    | Transcript
    | SpeechStarted
    | SpeechStopped
    | FunctionCallDone
    | UpstreamErrorEvent
    | BufferEvent
    | TranscriptDelta
    | ItemTruncated
    | SessionEnding
    | Resumption
    | SessionRenewed
    | Malformed
    | Other
)


class _Bad(Exception):
    """A field is missing or has the wrong type (becomes :class:`Malformed`)."""


def _str(raw: Raw, key: str, *, default: str | None = None) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise _Bad(f"{key!r} is not a string")
    return value


def _opt_int(raw: Raw, key: str) -> int | None:
    value = raw.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _obj(raw: Raw, key: str) -> Mapping[str, Any]:
    value = raw.get(key)
    if not isinstance(value, Mapping):
        raise _Bad(f"{key!r} is not an object")
    return value


def session_problem(session: Mapping[str, Any]) -> str | None:
    """What makes a GA ``session`` object unusable to the call, or None: where present,
    ``audio``, ``audio.input``, ``audio.output`` and ``audio.input.turn_detection`` are
    objects (or null) and ``tools`` a list of objects."""
    audio = session.get("audio")
    if audio is not None:
        if not isinstance(audio, Mapping):
            return "'session.audio' is not an object"
        for direction in ("input", "output"):
            part = audio.get(direction)
            if part is not None and not isinstance(part, Mapping):
                return f"'session.audio.{direction}' is not an object"
        td = (audio.get("input") or {}).get("turn_detection")
        if td is not None and not isinstance(td, Mapping):
            return "'session.audio.input.turn_detection' is not an object"
    tools = session.get("tools")
    if tools is not None and not (
        isinstance(tools, list) and all(isinstance(t, Mapping) for t in tools)
    ):
        return "'session.tools' is not a list of objects"
    return None


def _session_updated(raw: Raw) -> AgentEvent:
    session = _obj(raw, "session")
    problem = session_problem(session)
    if problem is not None:
        raise _Bad(problem)
    return SessionUpdated(raw, session)


def _response_created(raw: Raw) -> AgentEvent:
    return ResponseCreated(raw, _str(_obj(raw, "response"), "id"))


def _response_done(raw: Raw) -> AgentEvent:
    response = _obj(raw, "response")
    calls: list[FunctionCall] = []
    output = response.get("output")
    for item in output if isinstance(output, list) else ():
        if isinstance(item, Mapping) and item.get("type") == "function_call":
            calls.append(
                FunctionCall(
                    call_id=str(item.get("call_id", "")),
                    name=str(item.get("name", "")),
                    status=str(item.get("status", "completed")),
                )
            )
    status = response.get("status")
    return ResponseDone(
        raw,
        _str(response, "id"),
        status if isinstance(status, str) else "completed",
        tuple(calls),
    )


def _audio_delta(raw: Raw) -> AgentEvent:
    try:
        audio = b64decode(_str(raw, "delta"), validate=True)
    except ValueError as exc:  # binascii.Error, or a str with non-ASCII characters
        raise _Bad(f"'delta' is not base64: {exc}") from None
    return AudioDelta(
        raw, _str(raw, "response_id", default=""), _str(raw, "item_id", default=""), audio
    )


def _transcript(speaker: str) -> Callable[[Raw], AgentEvent]:
    def parse(raw: Raw) -> AgentEvent:
        return Transcript(
            raw, speaker, _str(raw, "item_id", default=""), _str(raw, "transcript", default="")
        )

    return parse


def _transcript_delta(raw: Raw) -> AgentEvent:
    return TranscriptDelta(raw, _str(raw, "item_id", default=""), _str(raw, "delta", default=""))


def _item_truncated(raw: Raw) -> AgentEvent:
    end = _opt_int(raw, "audio_end_ms")
    if end is None:
        raise _Bad("'audio_end_ms' is not an integer")
    heard = raw.get("transcript")
    return ItemTruncated(raw, _str(raw, "item_id"), end, heard if isinstance(heard, str) else None)


def _going_away(raw: Raw) -> AgentEvent:
    return SessionEnding(raw, "going_away", _opt_int(raw, "time_left_ms"), None)


def _session_closed(raw: Raw) -> AgentEvent:
    reason = raw.get("reason")
    return SessionEnding(raw, "closed", None, reason if isinstance(reason, str) else None)


def _resumption(raw: Raw) -> AgentEvent:
    handle = raw.get("handle")
    return Resumption(
        raw, handle if isinstance(handle, str) and handle else None, raw.get("resumable") is True
    )


def _speech_started(raw: Raw) -> AgentEvent:
    return SpeechStarted(raw, _str(raw, "item_id", default=""), _opt_int(raw, "audio_start_ms"))


def _speech_stopped(raw: Raw) -> AgentEvent:
    return SpeechStopped(raw, _str(raw, "item_id", default=""), _opt_int(raw, "audio_end_ms"))


def _function_call_done(raw: Raw) -> AgentEvent:
    return FunctionCallDone(
        raw,
        response_id=_str(raw, "response_id", default=""),
        item_id=_str(raw, "item_id", default=""),
        call_id=_str(raw, "call_id"),
        name=_str(raw, "name", default=""),
        arguments=_str(raw, "arguments", default="{}"),
    )


def _error(raw: Raw) -> AgentEvent:
    err = raw.get("error")
    err = err if isinstance(err, Mapping) else {}
    code = err.get("code")
    return UpstreamErrorEvent(
        raw, code if isinstance(code, str) else None, str(err.get("message", ""))
    )


_PARSERS: dict[str, Callable[[Raw], AgentEvent]] = {
    "session.updated": _session_updated,
    "response.created": _response_created,
    "response.done": _response_done,
    "response.output_audio.delta": _audio_delta,
    "response.output_audio_transcript.delta": _transcript_delta,
    "response.output_audio_transcript.done": _transcript("agent"),
    "conversation.item.input_audio_transcription.completed": _transcript("user"),
    "input_audio_buffer.speech_started": _speech_started,
    "input_audio_buffer.speech_stopped": _speech_stopped,
    "response.function_call_arguments.done": _function_call_done,
    "error": _error,
    "output_audio_buffer.started": BufferEvent,
    "output_audio_buffer.stopped": BufferEvent,
    "output_audio_buffer.cleared": BufferEvent,
    "conversation.item.truncated": _item_truncated,
    "rtbridge.upstream.going_away": _going_away,
    "rtbridge.upstream.session_closed": _session_closed,
    "rtbridge.upstream.resumption": _resumption,
}


def parse_agent_event(raw: Raw) -> AgentEvent:
    """One server event (a GA dict with a string ``type``) as the call path reads it."""
    kind = raw.get("type")
    parse = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parse is None:
        return Other(raw)
    try:
        return parse(raw)
    except _Bad as exc:
        return Malformed(raw, str(exc))
