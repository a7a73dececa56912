"""The GA response and item lifecycle, made by rtbridge for upstreams that have none.

Gemini Live and GPT-Live stream model output (audio, transcript text, tool calls) with no
responses or items around it. A GA client (the call path, the openai SDK) needs them: ids to
truncate and delete, ``response.created``/``response.done`` to know when the agent speaks, and a
``response.done`` whose ``status`` says whether the answer was cut. :class:`Lifecycle` produces
exactly what OpenAI's GA service sends for the same output, in the same order::

    response.created
    response.output_item.added          conversation.item.added
    response.content_part.added
    (response.output_audio.delta | response.output_audio_transcript.delta)*
    response.output_audio.done          response.output_audio_transcript.done
    response.content_part.done
    response.output_item.done           conversation.item.done
    response.done                       (status completed | cancelled, with output items)

Function calls are further output items of the same response (``response.output_item.added``,
``conversation.item.added``, ``response.function_call_arguments.delta``/``.done``,
``response.output_item.done``, ``conversation.item.done``). User turns the upstream transcribes
become user items (``input_audio_buffer.committed``, ``conversation.item.added``, transcription
deltas, ``conversation.item.done``, ``...input_audio_transcription.completed``).

It also keeps the items it made (a bounded store), so a translator can answer
``conversation.item.truncate``/``delete``/``retrieve`` itself. A truncated assistant item keeps
the transcript of what was heard: every transcript delta is stamped with the audio position it
arrived at, and truncating at ``audio_end_ms`` keeps the deltas stamped at or before it. Sans-IO,
no clock; ids are ``<kind>_rtb<prefix><n>``.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from bridge.errors import RemoteProtocolError
from bridge.realtime.dialects.base import Event

__all__ = ["IdMinter", "Lifecycle", "LocalError"]

#: Items kept for local truncate/delete/retrieve (older ones are forgotten).
MAX_ITEMS = 256


class LocalError(RemoteProtocolError):
    """A GA client request the translator refuses (becomes an ``error`` event)."""

    def __init__(self, message: str, *, code: str, param: str | None = None) -> None:
        super().__init__(message, code=code, param=param)


class IdMinter:
    """GA-shaped ids unique per translator (``resp_rtb7f3a0c1e0001``); ``prefix`` for tests."""

    __slots__ = ("_n", "_prefix")

    def __init__(self, prefix: str | None = None) -> None:
        self._prefix = prefix if prefix is not None else secrets.token_hex(4)
        self._n = 0

    def __call__(self, kind: str) -> str:
        self._n += 1
        return f"{kind}_rtb{self._prefix}{self._n:04d}"


def error_event(ids: IdMinter, exc: LocalError, client_event_id: Any = None) -> Event:
    """OpenAI's ``error`` shape for a request answered locally."""
    return {
        "type": "error",
        "event_id": ids("event"),
        "error": {
            "type": "invalid_request_error",
            "code": exc.code,
            "message": str(exc),
            "param": exc.param,
            "event_id": client_event_id if isinstance(client_event_id, str) else None,
        },
    }


@dataclass(slots=True)
class _Message:
    item_id: str
    output_index: int
    text_part: bool  # an output_text part (text modality) instead of output_audio
    audio_ms: float = 0.0
    transcript: str = ""
    marks: list[tuple[float, str]] = field(default_factory=list)  # (audio ms at arrival, delta)


@dataclass(slots=True)
class _Response:
    id: str
    output: list[Event] = field(default_factory=list)
    message: _Message | None = None


@dataclass(slots=True)
class _UserTurn:
    item_id: str
    transcript: str = ""


class Lifecycle:
    """Synthesises the GA lifecycle of one session's responses and items (module docs)."""

    def __init__(self, ids: IdMinter, *, voice: Any = None, fmt: Any = None) -> None:
        self.ids = ids
        self.voice = voice
        self.format: Any = fmt or {"type": "audio/pcm", "rate": 24000}
        self.modalities = ["audio"]
        self.usage: Any = None
        self.active: _Response | None = None
        self.user: _UserTurn | None = None
        self._items: OrderedDict[str, Event] = OrderedDict()
        self._marks: dict[str, list[tuple[float, str]]] = {}
        self._last_id: str | None = None

    # ---- helpers -----------------------------------------------------------------------

    def _ev(self, type_: str, **fields: Any) -> Event:
        return {"type": type_, "event_id": self.ids("event"), **fields}

    def _keep(self, item: Event) -> None:
        item_id = str(item["id"])
        self._items[item_id] = item
        self._items.move_to_end(item_id)
        while len(self._items) > MAX_ITEMS:
            old, _ = self._items.popitem(last=False)
            self._marks.pop(old, None)

    def _added(self, item: Event) -> list[Event]:
        previous, self._last_id = self._last_id, str(item["id"])
        self._keep(item)
        return [self._ev("conversation.item.added", previous_item_id=previous, item=dict(item))]

    def _response_object(self, resp: _Response, status: str, details: Any) -> Event:
        return {
            "object": "realtime.response",
            "id": resp.id,
            "status": status,
            "status_details": details,
            "output": [dict(i) for i in resp.output] if status != "in_progress" else [],
            "conversation_id": None,
            "output_modalities": list(self.modalities),
            "audio": {"output": {"format": self.format, "voice": self.voice}},
            "usage": self.usage if status != "in_progress" else None,
            "metadata": None,
        }

    # ---- responses ---------------------------------------------------------------------

    @property
    def responding(self) -> bool:
        return self.active is not None

    def begin(self) -> list[Event]:
        """``response.created`` unless a response is already open."""
        if self.active is not None:
            return []
        out = self.close_user_turn()
        self.active = _Response(self.ids("resp"))
        self.usage = None
        return [
            *out,
            self._ev(
                "response.created", response=self._response_object(self.active, "in_progress", None)
            ),
        ]

    def _message(self, *, text_part: bool = False) -> tuple[_Response, _Message, list[Event]]:
        out = self.begin()
        resp = self.active
        assert resp is not None
        if resp.message is not None:
            return resp, resp.message, out
        msg = _Message(self.ids("item"), len(resp.output), text_part)
        resp.message = msg
        item: Event = {
            "id": msg.item_id,
            "type": "message",
            "object": "realtime.item",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        resp.output.append(item)
        self._marks[msg.item_id] = msg.marks
        out.append(
            self._ev(
                "response.output_item.added",
                response_id=resp.id,
                output_index=msg.output_index,
                item=dict(item),
            )
        )
        out += self._added(item)
        part = {"type": "text", "text": ""} if text_part else {"type": "audio", "transcript": ""}
        out.append(self._ev("response.content_part.added", **self._cf(resp, msg), part=part))
        return resp, msg, out

    @staticmethod
    def _cf(resp: _Response, msg: _Message) -> Event:
        return {
            "response_id": resp.id,
            "item_id": msg.item_id,
            "output_index": msg.output_index,
            "content_index": 0,
        }

    def audio(self, b64: str, duration_ms: float, **extra: Any) -> list[Event]:
        """One chunk of model audio (base64 in the session's GA output format); ``extra``:
        the upstream's own fields, kept on the GA event."""
        resp, msg, out = self._message()
        msg.audio_ms += duration_ms
        out.append(
            self._ev("response.output_audio.delta", **self._cf(resp, msg), delta=b64, **extra)
        )
        return out

    def transcript(self, delta: str, **extra: Any) -> list[Event]:
        """Transcript text of the model's audio (stamped with the audio position so far)."""
        if not delta:
            return []
        resp, msg, out = self._message()
        msg.transcript += delta
        msg.marks.append((msg.audio_ms, delta))
        name = (
            "response.output_text.delta"
            if msg.text_part
            else ("response.output_audio_transcript.delta")
        )
        out.append(self._ev(name, **self._cf(resp, msg), delta=delta, **extra))
        return out

    def text(self, delta: str) -> list[Event]:
        """Model text (text-only sessions)."""
        if not delta:
            return []
        resp, msg, out = self._message(text_part=True)
        msg.transcript += delta
        out.append(self._ev("response.output_text.delta", **self._cf(resp, msg), delta=delta))
        return out

    def function_call(self, call_id: str, name: str, arguments: str) -> list[Event]:
        """A complete tool call, as a ``function_call`` output item of the active response."""
        out = self.begin()
        resp = self.active
        assert resp is not None
        out += self._finish_message(resp, "completed")
        item_id = self.ids("item")
        index = len(resp.output)
        item: Event = {
            "id": item_id,
            "type": "function_call",
            "object": "realtime.item",
            "status": "in_progress",
            "call_id": call_id,
            "name": name,
            "arguments": "",
        }
        out.append(
            self._ev(
                "response.output_item.added", response_id=resp.id, output_index=index, item=item
            )
        )
        out += self._added(item)
        fields = {
            "response_id": resp.id,
            "item_id": item_id,
            "output_index": index,
            "call_id": call_id,
        }
        out.append(self._ev("response.function_call_arguments.delta", **fields, delta=arguments))
        out.append(
            self._ev(
                "response.function_call_arguments.done", **fields, name=name, arguments=arguments
            )
        )
        done = {**item, "status": "completed", "arguments": arguments}
        resp.output.append(done)
        self._keep(done)
        out.append(
            self._ev(
                "response.output_item.done",
                response_id=resp.id,
                output_index=index,
                item=dict(done),
            )
        )
        out.append(self._ev("conversation.item.done", previous_item_id=None, item=dict(done)))
        return out

    def _finish_message(self, resp: _Response, item_status: str) -> list[Event]:
        msg, resp.message = resp.message, None
        if msg is None:
            return []
        cf = self._cf(resp, msg)
        out: list[Event] = []
        if msg.text_part:
            out.append(self._ev("response.output_text.done", **cf, text=msg.transcript))
            content = [{"type": "output_text", "text": msg.transcript}]
            part: Event = {"type": "text", "text": msg.transcript}
        else:
            out.append(self._ev("response.output_audio.done", **cf))
            out.append(
                self._ev("response.output_audio_transcript.done", **cf, transcript=msg.transcript)
            )
            content = [{"type": "output_audio", "transcript": msg.transcript}]
            part = {"type": "audio", "transcript": msg.transcript}
        out.append(self._ev("response.content_part.done", **cf, part=part))
        item = {**resp.output[msg.output_index], "status": item_status, "content": content}
        resp.output[msg.output_index] = item
        self._keep(item)
        out.append(
            self._ev(
                "response.output_item.done",
                response_id=resp.id,
                output_index=msg.output_index,
                item=dict(item),
            )
        )
        out.append(self._ev("conversation.item.done", previous_item_id=None, item=dict(item)))
        return out

    def finish(self, status: str = "completed", reason: str | None = None) -> list[Event]:
        """Close the active response (``cancelled`` with ``reason`` turn_detected or
        client_cancelled); nothing when none is open."""
        resp, self.active = self.active, None
        if resp is None:
            return []
        item_status = "completed" if status == "completed" else "incomplete"
        out = self._finish_message(resp, item_status)
        details = {"type": status, "reason": reason}
        out.append(self._ev("response.done", response=self._response_object(resp, status, details)))
        return out

    @property
    def active_item_id(self) -> str | None:
        resp = self.active
        return resp.message.item_id if resp is not None and resp.message is not None else None

    # ---- user turns --------------------------------------------------------------------

    def speech_started(self, audio_start_ms: int) -> list[Event]:
        """The caller started speaking (a GA ``speech_started`` naming the item to come)."""
        out = self.close_user_turn()
        self.user = _UserTurn(self.ids("item"))
        out.append(
            self._ev(
                "input_audio_buffer.speech_started",
                audio_start_ms=audio_start_ms,
                item_id=self.user.item_id,
            )
        )
        return out

    def user_transcript(self, delta: str, **extra: Any) -> list[Event]:
        """Transcript text of the caller's audio; opens a user item when none is."""
        if not delta:
            return []
        out: list[Event] = []
        if self.user is None:
            self.user = _UserTurn(self.ids("item"))
        turn = self.user
        if not turn.transcript and turn.item_id not in self._items:
            previous = self._last_id
            out.append(
                self._ev(
                    "input_audio_buffer.committed", previous_item_id=previous, item_id=turn.item_id
                )
            )
            out += self._added(self._user_item(turn, "in_progress"))
        turn.transcript += delta
        out.append(
            self._ev(
                "conversation.item.input_audio_transcription.delta",
                item_id=turn.item_id,
                content_index=0,
                delta=delta,
                **extra,
            )
        )
        return out

    @staticmethod
    def _user_item(turn: _UserTurn, status: str) -> Event:
        return {
            "id": turn.item_id,
            "type": "message",
            "object": "realtime.item",
            "status": status,
            "role": "user",
            "content": [{"type": "input_audio", "transcript": turn.transcript or None}],
        }

    def close_user_turn(self) -> list[Event]:
        """Finish the open user item (its transcript is complete)."""
        turn, self.user = self.user, None
        if turn is None or turn.item_id not in self._items:
            return []
        item = self._user_item(turn, "completed")
        self._keep(item)
        return [
            self._ev("conversation.item.done", previous_item_id=None, item=dict(item)),
            self._ev(
                "conversation.item.input_audio_transcription.completed",
                item_id=turn.item_id,
                content_index=0,
                transcript=turn.transcript,
            ),
        ]

    # ---- items a client manages ----------------------------------------------------------

    def client_item(self, item: Event) -> list[Event]:
        """``conversation.item.added``/``.done`` for an item a client created."""
        item = dict(item)
        item.setdefault("id", self.ids("item"))
        item.setdefault("object", "realtime.item")
        item["status"] = "completed"
        out = self._added(item)
        out.append(self._ev("conversation.item.done", previous_item_id=None, item=dict(item)))
        return out

    def truncate(self, item_id: str, content_index: int, audio_end_ms: int) -> list[Event]:
        """``conversation.item.truncated``, with the transcript of what was heard."""
        item = self._items.get(item_id)
        if item is None:
            raise LocalError(
                f"Conversation item '{item_id}' not found.", code="invalid_value", param="item_id"
            )
        if item.get("role") != "assistant" or item.get("type") != "message":
            raise LocalError(
                "Only model output audio messages can be truncated.",
                code="invalid_value",
                param="item_id",
            )
        if content_index != 0:
            raise LocalError(
                f"Invalid 'content_index': {content_index}.",
                code="invalid_value",
                param="content_index",
            )
        marks = self._marks.get(item_id, [])
        heard = "".join(delta for at, delta in marks if at <= audio_end_ms)
        self._marks[item_id] = [(at, d) for at, d in marks if at <= audio_end_ms]
        content = [{"type": "output_audio", "transcript": heard}]
        self._keep({**item, "content": content})
        resp = self.active
        if resp is not None and resp.message is not None and resp.message.item_id == item_id:
            resp.message.transcript = heard
        return [
            self._ev(
                "conversation.item.truncated",
                item_id=item_id,
                content_index=content_index,
                audio_end_ms=audio_end_ms,
                transcript=heard,
            )
        ]

    def delete(self, item_id: str) -> list[Event]:
        if self._items.pop(item_id, None) is None:
            raise LocalError(
                f"Error deleting item: the item with id '{item_id}' does not exist.",
                code="invalid_value",
                param="item_id",
            )
        self._marks.pop(item_id, None)
        if self._last_id == item_id:
            self._last_id = next(reversed(self._items), None)
        return [self._ev("conversation.item.deleted", item_id=item_id)]

    def retrieve(self, item_id: str) -> list[Event]:
        item = self._items.get(item_id)
        if item is None:
            raise LocalError(
                f"Error retrieving item: the item with id '{item_id}' does not exist.",
                code="invalid_value",
                param="item_id",
            )
        return [self._ev("conversation.item.retrieved", item=dict(item))]

    def item(self, item_id: str) -> Event | None:
        return self._items.get(item_id)
