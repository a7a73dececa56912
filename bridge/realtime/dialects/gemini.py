"""GA <-> Gemini Live (``BidiGenerateContent`` over WebSocket), upstream side.

Wire facts (Google's Live API WebSocket reference and guides, checked against the google-genai
SDK's ``live`` module): the socket is
``wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent``
with the key as ``?key=`` (the guide) or an ``x-goog-api-key`` header (the SDK). Every message is
one JSON object with exactly one of ``setup``, ``clientContent``, ``realtimeInput``,
``toolResponse`` (client) and any of ``setupComplete``, ``serverContent``, ``toolCall``,
``toolCallCancellation``, ``goAway``, ``sessionResumptionUpdate``, ``usageMetadata`` (server).
``setup`` comes first and only once (a second one closes the socket with 1007); nothing in it
can change afterwards except through a new connection (session resumption). Input audio is
16-bit PCM at 16 kHz (``audio/pcm;rate=16000``), output audio inline PCM at 24 kHz.

GA -> Gemini:

=====================================  ==================================================
GA client event                        Gemini
=====================================  ==================================================
first ``session.update``               ``setup`` (model ``models/...``, responseModalities,
                                       speechConfig voice, systemInstruction, tools as
                                       functionDeclarations with ``parametersJsonSchema``,
                                       realtimeInputConfig from turn_detection, input
                                       transcription, output transcription always,
                                       ``sessionResumption`` always, with the handle when
                                       resuming); G.711 formats refused (PCM16 only)
``input_audio_buffer.append``          ``realtimeInput.audio``, resampled 24 -> 16 kHz
                                       (one streaming resampler per session); with
                                       ``turn_detection: null`` an ``activityStart`` first
``input_audio_buffer.commit``          ``activityEnd`` (manual turns), answered locally
``conversation.item.create`` message   ``clientContent`` turn (``turnComplete: false``)
``... function_call_output``           ``toolResponse.functionResponses[{id,name,response}]``
``response.create``                    ``clientContent {turnComplete: true}``; nothing after
                                       a tool response or ``activityEnd`` (Gemini answers
                                       those by itself)
``response.cancel``, truncate, ...     answered locally (see ``synthetic``)
=====================================  ==================================================

Gemini -> GA: ``setupComplete`` answers the first ``session.update`` (``session.updated``);
``serverContent`` model audio, ``outputTranscription`` and text become one synthesised response
(fields of theirs GA lacks stay on the GA events; unknown ``serverContent`` fields are kept whole)
(:mod:`~bridge.realtime.dialects.lifecycle`) that ends ``completed`` on ``generationComplete``
(or ``turnComplete`` without it); ``interrupted`` becomes what a GA client sees when speech cuts
a response: ``input_audio_buffer.speech_started`` and the active response ending
``cancelled`` (``turn_detected``), the rest of the interrupted turn dropped;
``inputTranscription`` becomes a user item with transcription deltas; ``toolCall`` becomes
``function_call`` items (args object -> arguments JSON) in a response that ends ``completed``;
``toolCallCancellation`` -> ``rtbridge.upstream.tool_calls_cancelled {call_ids}``; ``goAway``
-> ``rtbridge.upstream.going_away {time_left_ms}``; ``sessionResumptionUpdate`` ->
``rtbridge.upstream.resumption {handle, resumable}`` (the latest resumable handle is kept in
:attr:`GeminiTranslator.resume_handle`); ``usageMetadata`` fills the next ``response.done``'s
usage. Anything else is kept whole as ``rtbridge.upstream.event``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from bridge.config import Dialect
from bridge.realtime.dialects.base import NOTHING, Event, Routed, obj
from bridge.realtime.dialects.lifecycle import IdMinter, LocalError
from bridge.realtime.dialects.synthetic import SyntheticTranslator, flat_fields
from media.resample import Resampler

__all__ = [
    "GEMINI_INPUT_RATE",
    "GEMINI_OUTPUT_RATE",
    "GeminiTranslator",
    "duration_ms",
    "gemini_model",
    "pcm_rate",
]

GEMINI_INPUT_RATE = 16000
GEMINI_OUTPUT_RATE = 24000
_GA_RATE = 24000
_INPUT_MIME = f"audio/pcm;rate={GEMINI_INPUT_RATE}"
_AUDIO_HEAD = '{"realtimeInput":{"audio":{"mimeType":"' + _INPUT_MIME + '","data":"'
_AUDIO_TAIL = '"}}}'
_RATE = re.compile(r"rate=(\d+)")
_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)s\s*$")

#: GA session fields the setup carries (flat names, see ``synthetic.flat_fields``).
_MAPPED = frozenset(
    {
        "model",
        "instructions",
        "tools",
        "output_modalities",
        "max_output_tokens",
        "audio.input.format",
        "audio.output.format",
        "audio.output.voice",
        "audio.input.turn_detection",
        "audio.input.transcription",
    }
)
#: GA values that ask for nothing Gemini would have to do differently.
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "tool_choice": ("auto",),
    "audio.input.noise_reduction": (None,),
    "audio.output.speed": (None, 1.0, 1),
    "tracing": (None,),
    "truncation": (None, "auto"),
    "prompt": (None,),
    "include": (None,),
}


def gemini_model(model: str) -> str:
    """Gemini's resource name for a model (``models/`` added when missing)."""
    return model if "/" in model else f"models/{model}"


def pcm_rate(mime: str, default: int = GEMINI_OUTPUT_RATE) -> int:
    """The ``rate=`` of an ``audio/pcm;rate=N`` mime type."""
    m = _RATE.search(mime)
    return int(m.group(1)) if m else default


def duration_ms(text: Any) -> int | None:
    """A protobuf JSON duration (``"9.5s"``) in milliseconds."""
    m = _DURATION.match(text) if isinstance(text, str) else None
    return round(float(m.group(1)) * 1000) if m else None


def _is_pcm(fmt: Any) -> bool:
    if fmt is None:
        return True
    if isinstance(fmt, str):
        return fmt == "pcm16"
    return (
        isinstance(fmt, Mapping)
        and fmt.get("type") == "audio/pcm"
        and fmt.get("rate", _GA_RATE) == _GA_RATE
    )


def _function_declarations(tools: Any) -> list[Event]:
    out: list[Event] = []
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, Mapping) or tool.get("type", "function") != "function":
            continue
        decl: Event = {"name": tool.get("name")}
        if tool.get("description"):
            decl["description"] = tool["description"]
        if isinstance(tool.get("parameters"), Mapping):
            decl["parametersJsonSchema"] = tool["parameters"]
        out.append(decl)
    return out


class GeminiTranslator(SyntheticTranslator):
    """One Gemini Live connection (see the module docs). ``resume_handle``: a handle from an
    earlier connection's ``sessionResumptionUpdate``; the setup then resumes that session."""

    dialect = Dialect.GEMINI

    def __init__(
        self, model: str, *, resume_handle: str | None = None, ids: IdMinter | None = None
    ) -> None:
        super().__init__(model, ids=ids)
        self.resume_handle = resume_handle
        self.resumed_from = resume_handle
        self._down = Resampler(_GA_RATE, GEMINI_INPUT_RATE)
        self._up: dict[int, Resampler] = {}
        self._input_ms = 0.0
        self._manual = False  # turn_detection null: activityStart/activityEnd from us
        self._activity_open = False
        self._answers_itself = False  # after activityEnd / toolResponse: no response.create
        self._tool_names: dict[str, str] = {}
        self._handlers.update(
            {
                "input_audio_buffer.commit": self._commit,
                "conversation.item.create": self._item_create,
                "response.create": self._response_create,
            }
        )

    # ---- setup -------------------------------------------------------------------------

    def first_frame(self, session: dict[str, Any]) -> tuple[Event, list[str]]:
        audio = obj(session.get("audio"))
        inp = obj(audio.get("input"))
        outp = obj(audio.get("output"))
        for side, part in (("input", inp), ("output", outp)):
            fmt = part.get("format")
            if not _is_pcm(fmt):
                shown = fmt.get("type") if isinstance(fmt, Mapping) else fmt
                raise LocalError(
                    f"Invalid value: '{shown}'. Gemini Live accepts only 'audio/pcm' (24 kHz "
                    f"here, resampled by rtbridge) for 'session.audio.{side}.format'.",
                    code="invalid_value",
                    param=f"session.audio.{side}.format",
                )
        modalities = session.get("output_modalities") or ["audio"]
        text_only = modalities == ["text"]
        self.life.modalities = ["text"] if text_only else ["audio"]
        gen: Event = {"responseModalities": ["TEXT" if text_only else "AUDIO"]}
        voice = outp.get("voice")
        if isinstance(voice, str) and voice:
            gen["speechConfig"] = {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": voice}}}
            self.life.voice = voice
        if isinstance(session.get("max_output_tokens"), int):
            gen["maxOutputTokens"] = session["max_output_tokens"]
        setup: Event = {"model": gemini_model(self.model), "generationConfig": gen}
        if isinstance(session.get("instructions"), str) and session["instructions"]:
            setup["systemInstruction"] = {"parts": [{"text": session["instructions"]}]}
        decls = _function_declarations(session.get("tools"))
        if decls:
            setup["tools"] = [{"functionDeclarations": decls}]
        not_applied = [
            k
            for k, v in flat_fields(session).items()
            if k not in _MAPPED and v not in _NEUTRAL.get(k, (None,))
        ]
        ric, td_not_applied = self._realtime_input_config(inp)
        not_applied += td_not_applied
        if ric:
            setup["realtimeInputConfig"] = ric
        if inp.get("transcription"):
            setup["inputAudioTranscription"] = {}
        setup["outputAudioTranscription"] = {}
        setup["sessionResumption"] = {"handle": self.resume_handle} if self.resume_handle else {}
        return {"setup": setup}, not_applied

    def _realtime_input_config(self, inp: Mapping[str, Any]) -> tuple[Event, list[str]]:
        if "turn_detection" in inp and inp["turn_detection"] is None:
            self._manual = True
            return {"automaticActivityDetection": {"disabled": True}}, []
        td = inp.get("turn_detection")
        if not isinstance(td, Mapping):
            return {}, []
        aad: Event = {}
        if isinstance(td.get("silence_duration_ms"), int):
            aad["silenceDurationMs"] = td["silence_duration_ms"]
        if isinstance(td.get("prefix_padding_ms"), int):
            aad["prefixPaddingMs"] = td["prefix_padding_ms"]
        ric: Event = {"automaticActivityDetection": aad} if aad else {}
        if td.get("interrupt_response") is False:
            ric["activityHandling"] = "NO_INTERRUPTION"
        skipped = [
            f"audio.input.turn_detection.{k}"
            for k in ("create_response", "idle_timeout_ms", "eagerness", "threshold")
            if td.get(k) not in (None, True, "auto", 0.5)
        ]
        return ric, skipped

    # ---- caller audio ------------------------------------------------------------------

    def audio_frames(self, audio: bytes) -> list[str]:
        pcm = np.frombuffer(audio[: len(audio) - len(audio) % 2], dtype="<i2")
        self._input_ms += len(pcm) / (_GA_RATE / 1000)
        down = self._down.process(pcm.astype(np.int16, copy=False))
        frames: list[str] = []
        if self._manual and not self._activity_open:
            self._activity_open = True
            frames.append('{"realtimeInput":{"activityStart":{}}}')
        if len(down):
            b64 = base64.b64encode(down.astype("<i2").tobytes()).decode("ascii")
            frames.append(_AUDIO_HEAD + b64 + _AUDIO_TAIL)
        return frames

    # ---- GA client events --------------------------------------------------------------

    def _commit(self, ev: Mapping[str, Any]) -> Routed:
        out = NOTHING
        if self._manual and self._activity_open:
            self._activity_open = False
            self._answers_itself = True
            out = self._send({"realtimeInput": {"activityEnd": {}}})
        return out + self.committed()

    def _item_create(self, ev: Mapping[str, Any]) -> Routed:
        item = self.required_item(ev)
        kind = item.get("type", "message")
        if kind == "function_call_output":
            call_id = str(item.get("call_id", ""))
            output = item.get("output", "")
            try:
                value: Any = json.loads(output) if isinstance(output, str) else output
            except ValueError:
                value = output
            response = {
                "id": call_id,
                "name": self._tool_names.get(call_id, ""),
                "response": {"output": value},
            }
            self._answers_itself = True
            sent = self._send({"toolResponse": {"functionResponses": [response]}})
        elif kind == "message":
            role = "model" if item.get("role") == "assistant" else "user"
            parts = []
            for part in item.get("content") or []:
                if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                    parts.append({"text": part["text"]})
                else:
                    raise LocalError(
                        "Only text content can be added to a Gemini Live conversation.",
                        code="unsupported_content",
                        param="item.content",
                    )
            sent = self._send(
                {
                    "clientContent": {
                        "turns": [{"role": role, "parts": parts}],
                        "turnComplete": False,
                    }
                }
            )
        else:
            raise LocalError(
                f"Items of type '{kind}' cannot be added to a Gemini Live conversation.",
                code="unsupported_content",
                param="item.type",
            )
        return sent + Routed(client=tuple(self.life.client_item(dict(item))))

    def _response_create(self, ev: Mapping[str, Any]) -> Routed:
        if self.life.active is not None:
            raise LocalError(
                "Conversation already has an active response in progress: "
                f"{self.life.active.id}. Wait until the response is finished before creating "
                "a new one.",
                code="conversation_already_has_active_response",
            )
        if self._answers_itself:
            self._answers_itself = False
            return NOTHING
        return self._send({"clientContent": {"turnComplete": True}})

    # ---- Gemini server messages --------------------------------------------------------

    def from_upstream(self, ev: Mapping[str, Any], now: float) -> Routed:
        out = NOTHING
        rest: Event = {}
        usage = ev.get("usageMetadata")
        if isinstance(usage, Mapping):  # first: it belongs to the turn this message may end
            self.life.usage = _usage(usage)
        for key, value in ev.items():
            if key == "setupComplete":
                out += self.confirmed()
            elif key == "serverContent" and isinstance(value, Mapping):
                out += Routed(client=tuple(self._server_content(value)))
            elif key == "toolCall" and isinstance(value, Mapping):
                out += Routed(client=tuple(self._tool_call(value)))
            elif key == "toolCallCancellation" and isinstance(value, Mapping):
                out += Routed(
                    client=(
                        {
                            "type": "rtbridge.upstream.tool_calls_cancelled",
                            "event_id": self.ids("event"),
                            "call_ids": list(value.get("ids") or []),
                        },
                    )
                )
            elif key == "goAway" and isinstance(value, Mapping):
                out += Routed(
                    client=(
                        {
                            "type": "rtbridge.upstream.going_away",
                            "event_id": self.ids("event"),
                            "time_left_ms": duration_ms(value.get("timeLeft")),
                        },
                    )
                )
            elif key == "sessionResumptionUpdate" and isinstance(value, Mapping):
                out += self._resumption(value)
            elif key != "usageMetadata":
                rest[key] = value
        if rest:
            out += self.upstream_event(rest)
        return out

    def _server_content(self, sc: Mapping[str, Any]) -> list[Event]:
        out: list[Event] = []
        unknown = {k: v for k, v in sc.items() if k not in _SERVER_CONTENT}
        if unknown:  # groundingMetadata, waitingForInput, ...: kept whole
            out += self.upstream_event({"serverContent": unknown}).client
        if sc.get("interrupted"):
            out += self.life.speech_started(round(self._input_ms))
            out += self.life.finish("cancelled", "turn_detected")
            self.discarding = True
        turn = sc.get("modelTurn")
        if isinstance(turn, Mapping) and not self.discarding:
            for part in turn.get("parts") or []:
                if isinstance(part, Mapping):
                    out += self._part(part)
        ot = sc.get("outputTranscription")
        if isinstance(ot, Mapping) and not self.discarding:
            out += self.life.transcript(str(ot.get("text") or ""), **_rest(ot, "text"))
        it = sc.get("inputTranscription")
        if isinstance(it, Mapping):
            out += self.life.user_transcript(str(it.get("text") or ""), **_rest(it, "text"))
        if sc.get("generationComplete"):
            out += self.life.finish("completed")
        if sc.get("turnComplete"):
            out += self.life.finish("completed")
            self.discarding = False
        return out

    def _part(self, part: Mapping[str, Any]) -> list[Event]:
        if part.get("thought"):
            return []
        blob = part.get("inlineData")
        if isinstance(blob, Mapping) and isinstance(blob.get("data"), str):
            mime = str(blob.get("mimeType") or "")
            if not mime.startswith("audio/pcm"):
                return []
            return self._model_audio(blob["data"], pcm_rate(mime))
        if isinstance(part.get("text"), str) and self.life.modalities == ["text"]:
            return self.life.text(part["text"])
        return []

    def _model_audio(self, b64: str, rate: int) -> list[Event]:
        if rate != _GA_RATE:
            pcm = np.frombuffer(base64.b64decode(b64), dtype="<i2")
            rs = self._up.setdefault(rate, Resampler(rate, _GA_RATE))
            up = rs.process(pcm.astype(np.int16, copy=False))
            b64 = base64.b64encode(up.astype("<i2").tobytes()).decode("ascii")
        n_bytes = len(b64) * 3 // 4 - b64[-2:].count("=")
        return self.life.audio(b64, n_bytes / 2 / (_GA_RATE / 1000))

    def _tool_call(self, tc: Mapping[str, Any]) -> list[Event]:
        out: list[Event] = []
        for call in tc.get("functionCalls") or []:
            if not isinstance(call, Mapping):
                continue
            call_id = str(call.get("id") or self.ids("call"))
            name = str(call.get("name") or "")
            self._tool_names[call_id] = name
            out += self.life.function_call(call_id, name, json.dumps(call.get("args") or {}))
        out += self.life.finish("completed")
        return out

    def _resumption(self, update: Mapping[str, Any]) -> Routed:
        handle = update.get("newHandle")
        resumable = bool(update.get("resumable"))
        if resumable and isinstance(handle, str) and handle:
            self.resume_handle = handle
        return Routed(
            client=(
                {
                    "type": "rtbridge.upstream.resumption",
                    "event_id": self.ids("event"),
                    "handle": handle or None,
                    "resumable": resumable,
                },
            )
        )


_SERVER_CONTENT = frozenset(
    {
        "modelTurn",
        "outputTranscription",
        "inputTranscription",
        "interrupted",
        "generationComplete",
        "turnComplete",
    }
)


def _rest(obj_: Mapping[str, Any], *known: str) -> Event:
    """An object's fields beyond ``known`` (they survive onto the GA event)."""
    return {k: v for k, v in obj_.items() if k not in known}


def _usage(meta: Mapping[str, Any]) -> Event:
    prompt = int(meta.get("promptTokenCount") or 0)
    resp = int(meta.get("responseTokenCount") or meta.get("candidatesTokenCount") or 0)
    return {
        "total_tokens": int(meta.get("totalTokenCount") or prompt + resp),
        "input_tokens": prompt,
        "output_tokens": resp,
    }
