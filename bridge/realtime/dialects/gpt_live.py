"""GA <-> OpenAI GPT-Live (``wss://api.openai.com/v1/live/sessions``), upstream side.

Wire facts (OpenAI's GPT-Live reference and the openai SDK's ``types.live``): the model goes in
the first frame, never in the URL; the first client frame is ``session.start {session}``, a
strict object that rejects unknown fields (``model``, ``instructions``, ``audio {format,
output {voice}}``, ``delegation``, ``input``, ...), answered by ``session.started``. One audio
format serves both directions (``audio/pcm`` 16 or 24 kHz, ``audio/pcmu``/``audio/pcma`` at
8 kHz) and cannot change; nor can the model, the instructions or the voice. The model owns
turn-taking: it listens while it speaks, output is continuous, and there is no response object,
cancel, truncate or turn detection. Client: ``session.input_audio.append``,
``session.instructions.append {content, delegation_id}``, ``response.item.create {item}`` and
``response.create`` (Responses delegation only), ``session.update`` (delegation settings only),
``session.close``. Server: ``session.output_audio.delta {delta}``,
``session.input_transcript.delta`` / ``session.output_transcript.delta {delta, start_ms,
end_ms}`` (no done events), ``response.event {event, delegation_id}`` wrapping Responses
streaming events, ``session.closed {reason}``, ``error``.

Function tools run in the Responses backend: GA ``tools`` become ``delegation {type:
"responses", responses {model, tools}}``; a call arrives as a wrapped
``response.output_item.done`` with a ``function_call`` item, its result goes back as
``response.item.create`` with a ``function_call_output`` item, and one ``response.create`` is
sent once every open call is answered.

Gap filling (GA side):

* Responses: a run of model audio is one synthesised GA response. It starts with the first audio
  delta and ends ``completed`` when no audio has come for :data:`OUTPUT_IDLE_S` (GPT-Live sends
  no end event; :meth:`GptLiveTranslator.tick` watches the gap), or ``cancelled``
  (``turn_detected``), with ``input_audio_buffer.speech_started``, when the caller is heard
  over it: an input transcript whose ``start_ms`` is at or after the response's start on the
  session timeline (the timeline is the caller audio sent so far).
* User turns: input transcript deltas become a user item with transcription deltas; it is
  completed when the model answers. Each new turn is announced with
  ``input_audio_buffer.speech_started``, as GA does: the model's output may have ended upstream
  while rtbridge still plays it to the caller, who is then barging in.
* Text messages (a client's or the call path's DTMF messages) become
  ``session.instructions.append`` (the item is answered at once, ``conversation.item.added``
  and ``.done``; GPT-Live's ``session.instructions.appended`` that confirms it is not
  forwarded again); ``response.create`` with no tool call open has no
  counterpart (the model decides when to speak): the model's next output is the response.
* ``response.cancel`` drops the model's output until its next pause.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping
from typing import Any

from bridge.config import Dialect
from bridge.realtime.dialects.base import NOTHING, Event, Routed, obj
from bridge.realtime.dialects.lifecycle import IdMinter, LocalError
from bridge.realtime.dialects.synthetic import SyntheticTranslator, flat_fields

__all__ = ["OUTPUT_IDLE_S", "SESSION_KEYS", "GptLiveTranslator", "live_format"]

#: Model audio that stops for this long ends the synthesised response.
OUTPUT_IDLE_S = 0.6
#: The keys ``session.start``'s session accepts (it rejects any other).
SESSION_KEYS = frozenset(
    {
        "model",
        "audio",
        "client",
        "delegation",
        "input",
        "instructions",
        "safety_identifier",
        "store",
        "triggers",
    }
)
_APPEND_HEAD = '{"type":"session.input_audio.append","audio":"'
_APPEND_TAIL = '"}'
_MAPPED = frozenset(
    {
        "model",
        "instructions",
        "tools",
        "tool_choice",
        "audio.input.format",
        "audio.output.format",
        "audio.output.voice",
        "audio.input.turn_detection",  # the model owns turn-taking
        "audio.input.transcription",  # GPT-Live always transcribes
        "output_modalities",
    }
)
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "audio.input.noise_reduction": (None,),
    "audio.output.speed": (None, 1.0, 1),
    "tracing": (None,),
    "truncation": (None, "auto"),
    "prompt": (None,),
    "include": (None,),
    "max_output_tokens": (None, "inf"),
}
_BYTES_PER_MS = {"audio/pcm": 48.0, "audio/pcmu": 8.0, "audio/pcma": 8.0}


def live_format(fmt: Any) -> Event | None:
    """A GA format object as GPT-Live's (``rate`` is required there); None if it has none."""
    if fmt is None or fmt == "pcm16":
        return {"type": "audio/pcm", "rate": 24000}
    if fmt in ("g711_ulaw", "g711_alaw"):
        return {"type": "audio/pcmu" if fmt == "g711_ulaw" else "audio/pcma", "rate": 8000}
    if not isinstance(fmt, Mapping):
        return None
    kind = fmt.get("type")
    if kind == "audio/pcm" and fmt.get("rate", 24000) in (16000, 24000):
        return {"type": "audio/pcm", "rate": fmt.get("rate", 24000)}
    if kind in ("audio/pcmu", "audio/pcma"):
        return {"type": kind, "rate": 8000}
    return None


def _extra(ev: Mapping[str, Any]) -> Event:
    """A delta event's own fields beyond the delta (``start_ms``, ``end_ms``, ...), which
    survive onto the GA event."""
    return {k: v for k, v in ev.items() if k not in _DELTA_KEYS}


_DELTA_KEYS = frozenset({"type", "event_id", "delta", "client_event_id"})


def _function_tools(tools: Any) -> list[Event]:
    out: list[Event] = []
    for tool in tools if isinstance(tools, list) else []:
        if isinstance(tool, Mapping) and tool.get("type", "function") == "function":
            out.append(
                {
                    k: tool[k]
                    for k in ("type", "name", "description", "parameters", "strict")
                    if k in tool
                }
                | {"type": "function"}
            )
    return out


class GptLiveTranslator(SyntheticTranslator):
    """One GPT-Live connection (see the module docs)."""

    dialect = Dialect.GPT_LIVE

    def __init__(
        self, model: str, *, delegation_model: str = "gpt-5.5", ids: IdMinter | None = None
    ) -> None:
        super().__init__(model, ids=ids)
        self.delegation_model = delegation_model
        self._bytes_per_ms = 48.0
        self._input_ms = 0.0
        self._response_start_ms = 0.0
        self._last_output: float | None = None
        self._delegating = False
        self._open_calls: set[str] = set()
        self._answered = False  # results sent since the last upstream response.create
        self._create_waiting = False
        self.expires_at: int | None = None
        self._handlers.update(
            {
                "input_audio_buffer.commit": self._commit,
                "conversation.item.create": self._item_create,
                "response.create": self._response_create,
            }
        )

    # ---- session.start -----------------------------------------------------------------

    def _delegation(self, session: Mapping[str, Any]) -> Event | None:
        tools = _function_tools(session.get("tools"))
        if not tools:
            return None
        responses: Event = {"model": self.delegation_model, "tools": tools}
        choice = session.get("tool_choice")
        if choice is not None:
            responses["tool_choice"] = choice
        return {"type": "responses", "responses": responses}

    def first_frame(self, session: dict[str, Any]) -> tuple[Event, list[str]]:
        audio = obj(session.get("audio"))
        inp = obj(audio.get("input"))
        outp = obj(audio.get("output"))
        fmt_in, fmt_out = live_format(inp.get("format")), live_format(outp.get("format"))
        if fmt_in is None or fmt_out is None or fmt_in != fmt_out:
            side = "input" if fmt_in is None else "output"
            raise LocalError(
                "GPT-Live uses one audio format both ways: audio/pcm (16 or 24 kHz), "
                f"audio/pcmu or audio/pcma; got {inp.get('format')!r} in and "
                f"{outp.get('format')!r} out.",
                code="invalid_value",
                param=f"session.audio.{side}.format",
            )
        self._bytes_per_ms = _BYTES_PER_MS[fmt_out["type"]] * (
            fmt_out["rate"] / 24000 if fmt_out["type"] == "audio/pcm" else 1
        )
        self.life.format = outp.get("format") or {"type": "audio/pcm", "rate": 24000}
        live_audio: Event = {"format": fmt_out}
        voice = outp.get("voice")
        if isinstance(voice, str) and voice:
            live_audio["output"] = {"voice": voice}
            self.life.voice = voice
        start: Event = {"model": self.model, "audio": live_audio}
        if isinstance(session.get("instructions"), str) and session["instructions"]:
            start["instructions"] = session["instructions"]
        delegation = self._delegation(session)
        if delegation is not None:
            start["delegation"] = delegation
            self._delegating = True
        not_applied = [
            k
            for k, v in flat_fields(session).items()
            if k not in _MAPPED and v not in _NEUTRAL.get(k, (None,))
        ]
        if "turn_detection" in inp and inp["turn_detection"] is None:
            not_applied.append("audio.input.turn_detection")
        if session.get("output_modalities") not in (None, ["audio"]):
            not_applied.append("output_modalities")
        return {"type": "session.start", "session": start}, not_applied

    def apply_mid_session(self, changes: dict[str, Any]) -> Routed:
        delegation = self._delegation(self.session)
        if not self._delegating or delegation is None:
            raise LocalError(
                "GPT-Live cannot add or remove tools during a session (its delegation type is "
                "fixed at session.start); the update was not applied.",
                code="session_update_not_applied",
                param="session.tools",
            )
        return self._send({"type": "session.update", "session": {"delegation": delegation}})

    def audio_frames(self, audio: bytes) -> list[str]:
        self._input_ms += len(audio) / self._bytes_per_ms
        return [_APPEND_HEAD + base64.b64encode(audio).decode("ascii") + _APPEND_TAIL]

    # ---- GA client events --------------------------------------------------------------

    def _commit(self, ev: Mapping[str, Any]) -> Routed:
        return self.committed()  # the model owns turn-taking: nothing to tell it

    def _item_create(self, ev: Mapping[str, Any]) -> Routed:
        item = self.required_item(ev)
        kind = item.get("type", "message")
        if kind == "function_call_output":
            call_id = str(item.get("call_id", ""))
            sent = self._send(
                {
                    "type": "response.item.create",
                    "item": {
                        "type": "function_call_output",
                        "call_id": call_id,
                        "output": item.get("output", ""),
                    },
                }
            )
            self._open_calls.discard(call_id)
            self._answered = True
            if self._create_waiting and not self._open_calls:
                sent += self._continue()
        elif kind == "message":
            texts = [
                str(p.get("text"))
                for p in item.get("content") or []
                if isinstance(p, Mapping) and isinstance(p.get("text"), str)
            ]
            if not texts:
                raise LocalError(
                    "Only text messages can be added to a GPT-Live session.",
                    code="unsupported_content",
                    param="item.content",
                )
            sent = self._send(
                {
                    "type": "session.instructions.append",
                    "content": "\n".join(texts),
                    "delegation_id": None,
                }
            )
        else:
            raise LocalError(
                f"Items of type '{kind}' cannot be added to a GPT-Live session.",
                code="unsupported_content",
                param="item.type",
            )
        return sent + Routed(client=tuple(self.life.client_item(dict(item))))

    def _continue(self) -> Routed:
        self._create_waiting = False
        self._answered = False
        return self._send({"type": "response.create"})

    def _response_create(self, ev: Mapping[str, Any]) -> Routed:
        if self._open_calls:
            self._create_waiting = True  # sent once every open call is answered
            return NOTHING
        if self._answered:
            return self._continue()
        return NOTHING  # the model owns turn-taking: its next output is the response

    # ---- GPT-Live server events --------------------------------------------------------

    def from_upstream(self, ev: Mapping[str, Any], now: float) -> Routed:
        kind = ev.get("type")
        if kind == "session.output_audio.delta":
            return Routed(client=tuple(self._output_audio(ev, now)))
        if kind == "session.output_transcript.delta":
            self._last_output = now if self.life.responding else self._last_output
            if self.discarding:
                return NOTHING
            return Routed(
                client=tuple(self.life.transcript(str(ev.get("delta") or ""), **_extra(ev)))
            )
        if kind == "session.input_transcript.delta":
            return Routed(client=tuple(self._input_transcript(ev)))
        if kind == "session.started":
            session = ev.get("session")
            if isinstance(session, Mapping) and isinstance(session.get("expires_at"), int):
                self.expires_at = session["expires_at"]
            return self.confirmed()
        if kind == "session.updated":
            return Routed(
                client=(
                    {
                        "type": "session.updated",
                        "event_id": self.ids("event"),
                        "session": copy.deepcopy(self.session),
                    },
                )
            )
        if kind == "response.event":
            return self._response_event(ev)
        if kind == "session.instructions.appended":
            return NOTHING  # the text item it confirms was answered when it was created
        if kind == "session.closed":
            return Routed(client=(self._closed(ev),))
        if kind == "error":
            err = obj(ev.get("error"))
            return Routed(
                client=(
                    {
                        "type": "error",
                        "event_id": ev.get("event_id") or self.ids("event"),
                        "error": dict(err),
                    },
                )
            )
        return self.upstream_event(ev)

    def _output_audio(self, ev: Mapping[str, Any], now: float) -> list[Event]:
        self._last_output = now
        delta = ev.get("delta")
        if self.discarding or not isinstance(delta, str):
            return []
        out: list[Event] = []
        if not self.life.responding:
            self._response_start_ms = self._input_ms
        n_bytes = len(delta) * 3 // 4 - delta[-2:].count("=")
        out += self.life.audio(delta, n_bytes / self._bytes_per_ms, **_extra(ev))
        return out

    def _input_transcript(self, ev: Mapping[str, Any]) -> list[Event]:
        out: list[Event] = []
        start = ev.get("start_ms")
        if (
            self.life.responding
            and isinstance(start, int | float)
            and start >= self._response_start_ms
        ):
            out += self.life.speech_started(int(start))
            out += self.life.finish("cancelled", "turn_detected")
            self.discarding = True
        elif self.life.user is None and ev.get("delta"):
            # a new caller turn after the model's output ended: GA announces every turn, and
            # rtbridge may still be playing that output to the caller (a barge-in)
            at = int(start) if isinstance(start, int | float) else round(self._input_ms)
            out += self.life.speech_started(at)
        out += self.life.user_transcript(str(ev.get("delta") or ""), **_extra(ev))
        return out

    def _response_event(self, ev: Mapping[str, Any]) -> Routed:
        inner = obj(ev.get("event"))
        item = obj(inner.get("item"))
        if inner.get("type") == "response.output_item.done" and item.get("type") == (
            "function_call"
        ):
            call_id = str(item.get("call_id") or self.ids("call"))
            self._open_calls.add(call_id)
            audio_open = self.life.active_item_id is not None
            out = self.life.function_call(
                call_id, str(item.get("name") or ""), str(item.get("arguments") or "{}")
            )
            if not audio_open:
                out += self.life.finish("completed")
            return Routed(client=tuple(out))
        return self.upstream_event(ev)

    def _closed(self, ev: Mapping[str, Any]) -> Event:
        reason = ev.get("reason")
        if reason == "expired":
            return {
                "type": "error",
                "event_id": self.ids("event"),
                "error": {
                    "type": "invalid_request_error",
                    "code": "session_expired",
                    "message": "The GPT-Live session reached its maximum duration.",
                    "param": None,
                    "event_id": None,
                },
            }
        return {
            "type": "rtbridge.upstream.session_closed",
            "event_id": self.ids("event"),
            "reason": reason,
        }

    # ---- time --------------------------------------------------------------------------

    def deadline(self) -> float | None:
        if self._last_output is None or not (self.life.responding or self.discarding):
            return None
        return self._last_output + OUTPUT_IDLE_S

    def tick(self, now: float) -> Routed:
        due = self.deadline()
        if due is None or now < due:
            return NOTHING
        self.discarding = False
        self._last_output = None
        return Routed(client=tuple(self.life.finish("completed")))
