"""The local agent's per-connection protocol core: GA client events in, GA server events out.

Sans-IO in the h11 sense: :meth:`AgentCore.receive` takes one WebSocket text frame and returns
the server events it causes; :meth:`AgentCore.pump` returns the next paced batch of the active
response. The asyncio driver (``server.py``) owns the socket, the pace and dialect translation;
this core reads no clock except the ``now_s`` it is given for ``expires_at``.

Behaviour (OpenAI GA, as seen on the wire):

- ``session.update`` -> ``session.updated`` with the full session, or ``error`` (unchanged).
- ``input_audio_buffer.append`` -> decoded to 24 kHz, fed to the energy VAD when
  ``turn_detection`` is set; a turn gives ``speech_started``, ``speech_stopped``,
  ``committed``, ``conversation.item.added/done`` and, with ``create_response``, a response.
  Speech during a response cancels it when ``interrupt_response`` is true (reason
  ``turn_detected``); otherwise the new turn's response waits for the current one.
- ``input_audio_buffer.commit`` / ``.clear`` for manual turns (``turn_detection: null``).
- ``response.create`` -> see ``planner``: a parrot of the user audio no response has answered
  yet, else a tone phrase; a function call instead when the tool rule fires
  (``AgentSettings.tool_after_turns`` with ``tool_name`` or the session's first function tool;
  once per connection).
- ``response.cancel``, ``conversation.item.create/delete/retrieve/truncate``.
- Malformed input of any kind -> an ``error`` event; the connection stays open.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any

from bridge.agent.audio import InputDecoder, Pcm, encode_output
from bridge.agent.buffer import SAMPLES_PER_MS, StreamBuffer
from bridge.agent.conversation import Conversation, StoredItem
from bridge.agent.edge import EdgeClose
from bridge.agent.events import error_event, server_event
from bridge.agent.ids import IdFactory
from bridge.agent.planner import new_output_item, plan_response
from bridge.agent.record import ResponseRecord, SessionRecord
from bridge.agent.requests import (
    ClientError,
    b64_audio,
    missing,
    parse_item,
    require_int,
    require_str,
    without_audio,
)
from bridge.agent.responses import ResponseRun
from bridge.agent.session import (
    SessionUpdateError,
    apply_update,
    default_session,
    function_tools,
    input_format,
    turn_detection,
)
from bridge.agent.vad import EnergyVad, VadConfig, VadEvent, VadEventKind
from bridge.config import AgentSettings
from bridge.errors import ProtocolError
from bridge.realtime import wire
from bridge.realtime.formats import AudioFormat

__all__ = ["CLIENT_EVENT_TYPES", "AgentCore"]

log = logging.getLogger("rtbridge.agent")

Event = dict[str, Any]
Inbound = Callable[[Event], list[Event]]

MIN_COMMIT_MS = 100

CLIENT_EVENT_TYPES = (
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.clear",
    "input_audio_buffer.commit",
    "output_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.delete",
    "conversation.item.retrieve",
    "conversation.item.truncate",
    "response.create",
    "response.cancel",
)


class AgentCore:
    """One connection's state: session, input buffer, VAD, conversation, active response."""

    def __init__(
        self,
        settings: AgentSettings,
        *,
        model: str = "gpt-realtime",
        now_s: int = 0,
        ids: IdFactory | None = None,
        require_session_type: bool = True,
        path: str = "/v1/realtime",
        query: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.ids = ids or IdFactory()
        self.allowed_formats = frozenset(AudioFormat(f) for f in settings.formats)
        self.require_session_type = require_session_type
        session_id = self.ids.session()
        self.session = default_session(session_id, model, now_s)
        self.conversation_id = self.ids.conversation()
        self.record = SessionRecord(
            session_id=session_id,
            dialect=str(settings.dialect),
            path=path,
            query=dict(query or {}),
            session=self.session,
        )
        self.conversation = Conversation()
        self._decoder = InputDecoder(input_format(self.session))
        self._buffer = StreamBuffer()
        self._commit_from = 0  # first sample not yet committed or cleared
        self._vad = EnergyVad(VadConfig())
        self._vad_on = True
        self._configure_vad()
        self._speech_item_id: str | None = None
        self._speech_start_ms = 0
        self.active: ResponseRun | None = None
        self._queued: list[dict[str, Any] | None] = []  # response params waiting their turn
        self._pending_audio: StoredItem | None = None
        self._user_turns = 0
        self._tool_fired = False
        self._tool_calls: dict[str, str] = {}  # call_id -> tool name
        self._handlers: dict[str, Callable[[Event], list[Event]]] = {
            "session.update": self._session_update,
            "input_audio_buffer.append": self._append,
            "input_audio_buffer.clear": self._clear,
            "input_audio_buffer.commit": self._commit_manual,
            "output_audio_buffer.clear": lambda ev: [],
            "conversation.item.create": self._item_create,
            "conversation.item.delete": self._item_delete,
            "conversation.item.retrieve": self._item_retrieve,
            "conversation.item.truncate": self._item_truncate,
            "response.create": self._response_create,
            "response.cancel": self._response_cancel,
        }

    # ---- driver API --------------------------------------------------------------------
    def opening(self) -> list[Event]:
        """The events a new connection receives first (GA: ``session.created``)."""
        return self._sent([server_event(self.ids, "session.created", session=self.session)])

    def conversation_created(self) -> Event:
        """``conversation.created`` (beta and xAI ready signal)."""
        return server_event(
            self.ids,
            "conversation.created",
            conversation={"id": self.conversation_id, "object": "realtime.conversation"},
        )

    def receive(self, frame: str | bytes, inbound: Inbound | None = None) -> list[Event]:
        """Handle one frame; ``inbound`` translates a dialect message into GA events (it may
        raise :class:`~bridge.agent.edge.EdgeClose`, which propagates: the driver closes)."""
        try:
            if isinstance(frame, bytes) and inbound is None:
                raise ProtocolError("binary frames are not supported", code="invalid_json")
            raw = wire.loads(frame, typed=inbound is None)
        except ProtocolError as exc:
            self.record.received_types.append("<invalid>")
            return self._sent([self._error(str(exc), code=exc.code, param=exc.param)])
        try:
            events = inbound(raw) if inbound is not None else [raw]
        except EdgeClose:
            raise
        except (ClientError, ProtocolError) as exc:  # the dialect's own rules
            self.record.received_types.append(wire.event_type(raw) or "<untyped>")
            ev_id = raw.get("event_id")
            return self._sent(
                [
                    self._error(
                        str(exc),
                        code=exc.code,
                        param=exc.param,
                        event_id=ev_id if isinstance(ev_id, str) else None,
                    )
                ]
            )
        except Exception as exc:  # a translator bug must not close the socket
            log.exception("agent: dialect translation failed for %s", wire.event_type(raw))
            return self._sent([self._error(f"untranslatable event: {exc}", code="invalid_event")])
        out: list[Event] = []
        for ev in events:
            out.extend(self.handle(ev))
        return out

    def handle(self, ev: Event) -> list[Event]:
        """Handle one GA client event."""
        kind = wire.event_type(ev)
        self.record.received_types.append(kind or "<untyped>")
        if log.isEnabledFor(logging.DEBUG):
            log.debug("agent <- %s", wire.redact(ev))
        client_event_id = ev.get("event_id") if isinstance(ev.get("event_id"), str) else None
        handler = self._handlers.get(kind)
        try:
            if handler is None:
                raise ClientError(
                    f"Invalid value: '{kind}'. Supported values are: "
                    + ", ".join(f"'{t}'" for t in CLIENT_EVENT_TYPES)
                    + ".",
                    code="invalid_value",
                    param="type",
                )
            out = handler(ev)
        except ClientError as exc:
            out = [self._error(str(exc), code=exc.code, param=exc.param, event_id=client_event_id)]
        except SessionUpdateError as exc:
            out = [self._error(str(exc), code=exc.code, param=exc.param, event_id=client_event_id)]
        except Exception:  # a bug here answers like OpenAI's server_error; the socket stays open
            log.exception("agent: handling %s failed", kind)
            out = [
                error_event(
                    self.ids,
                    "The server had an error while processing your request.",
                    code=None,
                    client_event_id=client_event_id,
                    error_type="server_error",
                )
            ]
        return self._sent(out)

    def pump(self) -> list[Event]:
        """The active response's next batch (and the next queued response's opening)."""
        run = self.active
        if run is None:
            return []
        out = run.step()
        if run.done:
            self._response_finished(run)
            out.extend(self._start_queued())
        return self._sent(out)

    @property
    def streaming(self) -> bool:
        return self.active is not None

    def close(self) -> None:
        self.record.closed = True

    # ---- helpers -----------------------------------------------------------------------
    def _sent(self, events: list[Event]) -> list[Event]:
        for ev in events:
            if ev.get("type") == "error":
                self.record.errors.append(ev["error"])
        return events

    def _error(
        self, message: str, *, code: str | None, param: str | None = None, event_id: Any = None
    ) -> Event:
        return error_event(self.ids, message, code=code, param=param, client_event_id=event_id)

    def _ev(self, type_: str, **fields: Any) -> Event:
        return server_event(self.ids, type_, **fields)

    def _configure_vad(self) -> None:
        td = turn_detection(self.session)
        was_on = self._vad_on
        self._vad_on = td is not None
        if td is not None:
            self._vad.reconfigure(VadConfig.from_turn_detection(td))
        if was_on != self._vad_on:
            self._vad.reset_turn()
            self._vad.disarm_idle()

    # ---- session -----------------------------------------------------------------------
    def _session_update(self, ev: Event) -> list[Event]:
        if "session" not in ev:
            raise missing("session")
        new = apply_update(
            self.session,
            ev["session"],
            allowed_formats=self.allowed_formats,
            require_type=self.require_session_type,
        )
        old_in = input_format(self.session)
        self.session = new
        self.record.session = new
        if input_format(new) is not old_in:
            self._decoder = InputDecoder(input_format(new))
        self._configure_vad()
        return [self._ev("session.updated", session=new)]

    # ---- input audio -------------------------------------------------------------------
    def _append(self, ev: Event) -> list[Event]:
        raw = b64_audio(require_str(ev, "audio"), "audio")
        self.record.audio_chunk_sizes.append(len(raw))
        pcm = self._decoder.decode(raw)
        self.record.add_pcm(pcm)
        self._buffer.append(pcm)
        vad_events = self._vad.process(pcm)
        out: list[Event] = []
        if self._vad_on:
            for vev in vad_events:
                out.extend(self._on_vad(vev))
            if not self._vad.in_speech:
                keep_ms = self._vad.config.prefix_padding_ms + 20
                self._buffer.discard_before(
                    max(self._commit_from, self._buffer.end - keep_ms * SAMPLES_PER_MS)
                )
                self._commit_from = max(self._commit_from, self._buffer.start)
        return out

    def _on_vad(self, vev: VadEvent) -> list[Event]:
        td = turn_detection(self.session) or {}
        out: list[Event] = []
        if vev.kind is VadEventKind.SPEECH_STARTED:
            self._speech_item_id = self.ids.item()
            # prefix padding never reaches back into audio an earlier turn already took
            self._speech_start_ms = max(vev.start_ms, -(-self._commit_from // SAMPLES_PER_MS))
            out.append(
                self._ev(
                    "input_audio_buffer.speech_started",
                    audio_start_ms=self._speech_start_ms,
                    item_id=self._speech_item_id,
                )
            )
            if self.active is not None and td.get("interrupt_response", True):
                out.extend(self._cancel_active("turn_detected"))
            return out
        if vev.kind is VadEventKind.SPEECH_STOPPED:
            item_id = self._speech_item_id or self.ids.item()
            self._speech_item_id = None
            out.append(
                self._ev(
                    "input_audio_buffer.speech_stopped", audio_end_ms=vev.end_ms, item_id=item_id
                )
            )
            start = max(vev.start_ms, self._speech_start_ms)
            pcm = self._buffer.slice(start * SAMPLES_PER_MS, vev.end_ms * SAMPLES_PER_MS)
            self._commit_from = vev.end_ms * SAMPLES_PER_MS
            out.extend(self._commit(item_id, pcm))
        else:  # idle timeout
            item_id = self.ids.item()
            out.append(
                self._ev(
                    "input_audio_buffer.timeout_triggered",
                    audio_start_ms=vev.start_ms,
                    audio_end_ms=vev.end_ms,
                    item_id=item_id,
                )
            )
            pcm = self._buffer.slice(vev.start_ms * SAMPLES_PER_MS, vev.end_ms * SAMPLES_PER_MS)
            self._commit_from = vev.end_ms * SAMPLES_PER_MS
            out.extend(self._commit(item_id, pcm))
            self._pending_audio = None  # answer an idle caller with tones, not their silence
        if td.get("create_response", True):
            out.extend(self._request_response(None))
        return out

    def _commit(self, item_id: str, pcm: Pcm) -> list[Event]:
        previous = self.conversation.last_id
        item = {
            "id": item_id,
            "type": "message",
            "object": "realtime.item",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        stored = StoredItem(item=item, fmt=AudioFormat.PCM16, pcm=pcm)
        self.conversation.add(stored)
        self._pending_audio = stored
        self._user_turns += 1
        out = [
            self._ev("input_audio_buffer.committed", previous_item_id=previous, item_id=item_id),
            self._ev("conversation.item.added", previous_item_id=previous, item=dict(item)),
            self._ev("conversation.item.done", previous_item_id=previous, item=dict(item)),
        ]
        if self.session["audio"]["input"].get("transcription"):
            ms = stored.audio_ms
            text = f"({ms} ms of audio)"
            out.append(
                self._ev(
                    "conversation.item.input_audio_transcription.completed",
                    item_id=item_id,
                    content_index=0,
                    transcript=text,
                    usage={"type": "duration", "seconds": ms / 1000},
                )
            )
        return out

    def _commit_manual(self, ev: Event) -> list[Event]:
        pcm = self._buffer.slice(self._commit_from, self._buffer.end)
        ms = len(pcm) / SAMPLES_PER_MS
        if ms < MIN_COMMIT_MS:
            raise ClientError(
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has {ms:.2f}ms of audio.",
                code="input_audio_buffer_commit_empty",
            )
        self._commit_from = self._buffer.end
        self._buffer.discard_before(self._buffer.end)
        self._vad.reset_turn()
        item_id = self._speech_item_id or self.ids.item()
        self._speech_item_id = None
        return self._commit(item_id, pcm)

    def _clear(self, ev: Event) -> list[Event]:
        self._commit_from = self._buffer.end
        self._buffer.discard_before(self._buffer.end)
        self._vad.reset_turn()
        self._speech_item_id = None
        return [self._ev("input_audio_buffer.cleared")]

    # ---- conversation items ------------------------------------------------------------
    def _item_create(self, ev: Event) -> list[Event]:
        previous = ev.get("previous_item_id")
        if previous is not None and not isinstance(previous, str):
            raise ClientError(
                "Invalid type for 'previous_item_id'.",
                code="invalid_type",
                param="previous_item_id",
            )
        stored = parse_item(ev.get("item"), self.ids, input_format(self.session))
        if stored.id in self.conversation:
            raise ClientError(
                f"Item with id '{stored.id}' already exists.", code="invalid_value", param="item.id"
            )
        try:
            before = self.conversation.add(stored, previous)
        except KeyError:
            raise ClientError(
                f"Previous item with id '{previous}' not found.",
                code="invalid_value",
                param="previous_item_id",
            ) from None
        text = "".join(
            str(part.get("text"))
            for part in stored.item.get("content") or []
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
        if text:
            self.record.texts.append((str(stored.item.get("role")), text))
        if stored.item.get("role") == "user":
            self._user_turns += 1
            self._pending_audio = stored if len(stored.pcm) else None
        shown = without_audio(stored.item)
        return [
            self._ev("conversation.item.added", previous_item_id=before, item=shown),
            self._ev("conversation.item.done", previous_item_id=before, item=shown),
        ]

    def _item_delete(self, ev: Event) -> list[Event]:
        item_id = require_str(ev, "item_id")
        if self.active is not None and self.active.item_id == item_id:
            raise ClientError(
                f"Item '{item_id}' belongs to the active response.",
                code="invalid_value",
                param="item_id",
            )
        try:
            self.conversation.delete(item_id)
        except KeyError:
            raise ClientError(
                f"Error deleting item: the item with id '{item_id}' does not exist.",
                code="invalid_value",
                param="item_id",
            ) from None
        if self._pending_audio is not None and self._pending_audio.id == item_id:
            self._pending_audio = None
        return [self._ev("conversation.item.deleted", item_id=item_id)]

    def _item_retrieve(self, ev: Event) -> list[Event]:
        item_id = require_str(ev, "item_id")
        stored = self.conversation.get(item_id)
        if stored is None:
            raise ClientError(
                f"Error retrieving item: the item with id '{item_id}' does not exist.",
                code="invalid_value",
                param="item_id",
            )
        item = dict(stored.item)
        audio = bytes(stored.audio) or (
            encode_output(stored.pcm, input_format(self.session)) if len(stored.pcm) else b""
        )
        if audio and isinstance(item.get("content"), list) and item["content"]:
            content = [dict(c) for c in item["content"]]
            content[0]["audio"] = base64.b64encode(audio).decode("ascii")
            item["content"] = content
        return [self._ev("conversation.item.retrieved", item=item)]

    def _item_truncate(self, ev: Event) -> list[Event]:
        item_id = require_str(ev, "item_id")
        content_index = require_int(ev, "content_index")
        audio_end_ms = require_int(ev, "audio_end_ms")
        stored = self.conversation.get(item_id)
        if stored is None:
            raise ClientError(
                f"Conversation item '{item_id}' not found.", code="invalid_value", param="item_id"
            )
        if stored.item.get("role") != "assistant" or not stored.audio:
            raise ClientError(
                "Only model output audio messages can be truncated.",
                code="invalid_value",
                param="item_id",
            )
        if content_index != 0:
            raise ClientError(
                f"Invalid 'content_index': {content_index}.",
                code="invalid_value",
                param="content_index",
            )
        out: list[Event] = []
        if self.active is not None and self.active.item_id == item_id:
            out.extend(self._cancel_active("client_cancelled"))
        have_ms = stored.audio_ms
        if audio_end_ms > have_ms:
            raise ClientError(
                f"Audio content of {have_ms}ms is already shorter than {audio_end_ms}ms",
                code="invalid_value",
                param="audio_end_ms",
            )
        keep = int(audio_end_ms * stored.fmt.bytes_per_ms())
        keep -= keep % stored.fmt.bytes_per_sample
        del stored.audio[keep:]
        stored.item["content"] = [{"type": "output_audio", "transcript": ""}]
        self.record.truncations.append(
            {"item_id": item_id, "audio_end_ms": audio_end_ms, "audio_ms_before": have_ms}
        )
        out.append(
            self._ev(
                "conversation.item.truncated",
                item_id=item_id,
                content_index=content_index,
                audio_end_ms=audio_end_ms,
            )
        )
        return out

    # ---- responses ---------------------------------------------------------------------
    def _response_create(self, ev: Event) -> list[Event]:
        params = ev.get("response")
        if params is not None and not isinstance(params, dict):
            raise ClientError(
                "Invalid type for 'response': expected an object.",
                code="invalid_type",
                param="response",
            )
        if self.active is not None:
            raise ClientError(
                "Conversation already has an active response in progress: "
                f"{self.active.id}. Wait until the response is finished before creating a new "
                "one.",
                code="conversation_already_has_active_response",
            )
        return self._start_response(params)

    def _response_cancel(self, ev: Event) -> list[Event]:
        wanted = ev.get("response_id")
        if self.active is None or (wanted is not None and wanted != self.active.id):
            raise ClientError(
                "Cancellation failed: no active response found",
                code="response_cancel_not_active",
            )
        return self._cancel_active("client_cancelled")

    def _request_response(self, params: dict[str, Any] | None) -> list[Event]:
        """A VAD turn wants a response: start now or after the active one."""
        if self.active is not None:
            self._queued.append(params)
            return []
        return self._start_response(params)

    def _start_queued(self) -> list[Event]:
        if self.active is None and self._queued:
            return self._start_response(self._queued.pop(0))
        return []

    def _cancel_active(self, reason: str) -> list[Event]:
        run = self.active
        if run is None:
            return []
        out = run.cancel(reason)
        self._response_finished(run)
        return out

    def _response_finished(self, run: ResponseRun) -> None:
        self.active = None
        self.record.responses.append(
            ResponseRecord(
                id=run.id,
                status=run.status,
                source=run.plan.source,
                kind=run.plan.kind.value,
                item_id=run.item_id,
                audio_ms=run.audio_ms_sent,
                transcript=run.plan.transcript,
                response=run.response_object(),
                instructions=run.plan.instructions,
            )
        )
        if self._vad_on:
            self._vad.arm_idle(self._vad.position_ms + run.audio_ms_sent)

    def _start_response(self, params: dict[str, Any] | None) -> list[Event]:
        params = params or {}
        tool_name = self._tool_due(params)
        call_id = ""
        if tool_name is not None:
            call_id = self.ids.call()
            self._tool_fired = True
            self._tool_calls[call_id] = tool_name
        plan = plan_response(
            params,
            self.session,
            conversation_id=self.conversation_id,
            user_audio=self._pending_audio,
            last_item=self._last_item(),
            tool=None if tool_name is None else (tool_name, self.settings.tool_arguments),
            tool_names=self._tool_calls,
        )
        self._pending_audio = None  # this response answers the turn
        stored = StoredItem(item=new_output_item(plan, self.ids, call_id), fmt=plan.fmt)
        if plan.in_conversation:
            plan.previous_item_id = self.conversation.add(stored)
        run = ResponseRun(self.ids, plan, stored, response_id=self.ids.response(), call_id=call_id)
        self.active = run
        return run.start()

    def _last_item(self) -> StoredItem | None:
        last = self.conversation.last_id
        return self.conversation.get(last) if last is not None else None

    def _tool_due(self, params: dict[str, Any]) -> str | None:
        n = self.settings.tool_after_turns
        if n is None or self._tool_fired or self._user_turns < n:
            return None
        choice = params.get("tool_choice", self.session.get("tool_choice", "auto"))
        if choice == "none":
            return None
        if self.settings.tool_name:
            return self.settings.tool_name
        tools = params.get("tools") if isinstance(params.get("tools"), list) else None
        candidates = [t for t in (tools or function_tools(self.session)) if t.get("name")]
        return str(candidates[0]["name"]) if candidates else None
