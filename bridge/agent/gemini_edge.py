"""The local agent speaking Gemini Live's ``BidiGenerateContent`` WebSocket protocol.

A faithful stand-in for Google's service, so rtbridge's Gemini translator (and Google's own SDK)
can be driven with no network (wire facts: :mod:`bridge.realtime.dialects.gemini`):

* ``/ws/google.ai.generativelanguage.{v1beta,v1alpha}.GenerativeService.BidiGenerateContent``;
  the key as ``?key=`` or ``x-goog-api-key``.
* Nothing is sent before ``setup``; ``setup`` must come first and only once: anything else
  first, a second ``setup``, or a message holding other than exactly one of ``setup``,
  ``clientContent``, ``realtimeInput``, ``toolResponse`` closes the socket with 1007. The
  answer is ``setupComplete {}``.
* ``realtimeInput.audio`` (``audio/pcm;rate=N``, 16 kHz normally) is resampled to the core's
  24 kHz; with ``automaticActivityDetection.disabled`` turns are ``activityStart`` /
  ``activityEnd``, otherwise the energy VAD finds them (``activityStart`` then closes 1007).
* Output: ``serverContent.modelTurn`` inline audio ``audio/pcm;rate=24000``,
  ``outputTranscription`` / ``inputTranscription`` when the setup asked for them,
  ``generationComplete`` then ``turnComplete``; a turn cut by the caller ends
  ``interrupted`` then ``turnComplete``. Tool calls are ``toolCall.functionCalls[{id, name,
  args}]`` (args an object), answered by ``toolResponse``; a caller speaking while calls are
  open gets ``toolCallCancellation``.
* With ``sessionResumption`` in the setup, every finished turn is followed by
  ``sessionResumptionUpdate {newHandle, resumable: true}``; a later connection whose setup
  names that handle continues the same conversation (an unknown handle closes 1007).
* The agent's session timer sends ``goAway {timeLeft}`` and closes when the time is up.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, MutableMapping
from typing import Any

import numpy as np

from bridge.agent.conversation import Conversation
from bridge.agent.core import AgentCore
from bridge.agent.edge import Close, DialectEdge, EdgeClose, Native, Out
from bridge.config import Dialect
from bridge.realtime.dialects.base import obj
from bridge.realtime.dialects.gemini import GEMINI_OUTPUT_RATE, pcm_rate
from media.resample import Resampler

__all__ = ["GEMINI_PATHS", "GeminiEdge"]

Event = dict[str, Any]
GEMINI_PATHS = frozenset(
    f"/ws/google.ai.generativelanguage.{v}.GenerativeService.BidiGenerateContent"
    for v in ("v1alpha", "v1beta")
)
_CORE_RATE = 24000
_PCM24 = {"type": "audio/pcm", "rate": _CORE_RATE}
_KINDS = ("setup", "clientContent", "realtimeInput", "toolResponse")
_DEFAULT_VOICE = "Puck"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = obj(content).get("parts")
    return "".join(
        str(p.get("text")) for p in parts or [] if isinstance(p, Mapping) and "text" in p
    )


class GeminiEdge(DialectEdge):
    """One Gemini connection to the local agent (see the module docs).

    ``resumable`` maps handles this agent issued to the conversation they resume; the agent
    shares one map across connections.
    """

    dialect = Dialect.GEMINI
    paths = GEMINI_PATHS

    def __init__(self, core: AgentCore, resumable: MutableMapping[str, Conversation]) -> None:
        self.core = core
        self.resumable = resumable
        self._setup = False
        self._confirmed = False
        self._manual = False
        self._in_transcripts = False
        self._out_transcripts = False
        self._resumption = False
        self._active = False
        self._open_calls: list[str] = []
        self._resamplers: dict[int, Resampler] = {}
        self._handles = 0

    def opening(self, session_created: list[Event], conversation_created: Event) -> list[Out]:
        return []

    # ---- client messages ---------------------------------------------------------------

    def inbound(self, ev: Event) -> list[Event]:
        kinds = [k for k in _KINDS if k in ev]
        if len(kinds) != 1 or len(ev) != 1:
            raise EdgeClose(
                1007,
                "A message must hold exactly one of setup, clientContent, "
                "realtimeInput or toolResponse.",
            )
        kind = kinds[0]
        body = ev[kind]
        if not isinstance(body, Mapping):
            raise EdgeClose(1007, f"Invalid value at '{kind}': expected an object.")
        if kind == "setup":
            if self._setup:
                raise EdgeClose(1007, "setup must be the first message and is sent only once.")
            self._setup = True
            return [self._session_update(body)]
        if not self._setup:
            raise EdgeClose(1007, "The first message must be setup.")
        if kind == "realtimeInput":
            return self._realtime_input(body)
        if kind == "clientContent":
            return self._client_content(body)
        return self._tool_response(body)

    def _session_update(self, setup: Mapping[str, Any]) -> Event:
        model = setup.get("model")
        if not isinstance(model, str) or not model:
            raise EdgeClose(1007, "setup.model is required.")
        gen = obj(setup.get("generationConfig"))
        modalities = gen.get("responseModalities") or ["AUDIO"]
        voice = obj(
            obj(obj(gen.get("speechConfig")).get("voiceConfig")).get("prebuiltVoiceConfig")
        ).get("voiceName")
        ric = obj(setup.get("realtimeInputConfig"))
        aad = obj(ric.get("automaticActivityDetection"))
        self._manual = aad.get("disabled") is True
        td: Event | None = None
        if not self._manual:
            td = {
                "type": "server_vad",
                "create_response": True,
                "interrupt_response": ric.get("activityHandling") != "NO_INTERRUPTION",
            }
            if isinstance(aad.get("silenceDurationMs"), int):
                td["silence_duration_ms"] = aad["silenceDurationMs"]
            if isinstance(aad.get("prefixPaddingMs"), int):
                td["prefix_padding_ms"] = aad["prefixPaddingMs"]
        self._in_transcripts = "inputAudioTranscription" in setup
        self._out_transcripts = "outputAudioTranscription" in setup
        resumption = setup.get("sessionResumption")
        self._resumption = isinstance(resumption, Mapping)
        handle = obj(resumption).get("handle")
        if isinstance(handle, str) and handle:
            conversation = self.resumable.get(handle)
            if conversation is None:
                raise EdgeClose(1007, "Invalid session resumption handle.")
            self.core.conversation = conversation
            self.core.record.resumed_from = handle
        tools = []
        for tool in setup.get("tools") or []:
            for decl in obj(tool).get("functionDeclarations") or []:
                decl = obj(decl)
                params = decl.get("parametersJsonSchema", decl.get("parameters"))
                tools.append(
                    {
                        "type": "function",
                        "name": decl.get("name"),
                        "description": decl.get("description", ""),
                        "parameters": params or {"type": "object", "properties": {}},
                    }
                )
        session: Event = {
            "type": "realtime",
            "model": model,
            "output_modalities": ["text"] if modalities == ["TEXT"] else ["audio"],
            "tools": tools,
            "audio": {
                "input": {
                    "format": dict(_PCM24),
                    "turn_detection": td,
                    "transcription": {"model": "gemini"} if self._in_transcripts else None,
                },
                "output": {
                    "format": dict(_PCM24),
                    "voice": voice if isinstance(voice, str) else _DEFAULT_VOICE,
                },
            },
        }
        instructions = _text_of(setup.get("systemInstruction"))
        if instructions:
            session["instructions"] = instructions
        return {"type": "session.update", "session": session}

    def _audio(self, blob: Any) -> list[Event]:
        blob = obj(blob)
        data, mime = blob.get("data"), str(blob.get("mimeType") or "")
        if not isinstance(data, str) or not mime.startswith("audio/pcm"):
            raise EdgeClose(1007, "realtimeInput.audio must be audio/pcm with base64 data.")
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise EdgeClose(1007, "realtimeInput.audio.data is not base64.") from None
        rate = pcm_rate(mime, 16000)
        pcm = np.frombuffer(raw[: len(raw) - len(raw) % 2], dtype="<i2").astype(np.int16)
        if rate != _CORE_RATE:
            pcm = self._resamplers.setdefault(rate, Resampler(rate, _CORE_RATE)).process(pcm)
        if not len(pcm):
            return []
        b64 = base64.b64encode(pcm.astype("<i2").tobytes()).decode("ascii")
        return [{"type": "input_audio_buffer.append", "audio": b64}]

    def _interrupt(self) -> list[Event]:
        return [{"type": "response.cancel"}] if self._active else []

    def _realtime_input(self, ri: Mapping[str, Any]) -> list[Event]:
        out: list[Event] = []
        if "audio" in ri:
            out += self._audio(ri["audio"])
        for blob in ri.get("mediaChunks") or []:
            out += self._audio(blob)
        if "activityStart" in ri or "activityEnd" in ri:
            if not self._manual:
                raise EdgeClose(
                    1007, "activityStart/activityEnd need automatic activity detection disabled."
                )
            if "activityStart" in ri:
                out += [*self._interrupt(), {"type": "input_audio_buffer.clear"}]
            if "activityEnd" in ri:
                out += [{"type": "input_audio_buffer.commit"}, {"type": "response.create"}]
        if isinstance(ri.get("text"), str) and ri["text"]:
            out += [*self._interrupt(), _user_text(ri["text"]), {"type": "response.create"}]
        return out

    def _client_content(self, cc: Mapping[str, Any]) -> list[Event]:
        out: list[Event] = []
        for turn in cc.get("turns") or []:
            turn = obj(turn)
            text = _text_of(turn)
            if turn.get("role") == "model":
                out.append(
                    {
                        "type": "conversation.item.create",
                        "item": {
                            "type": "message",
                            "role": "assistant",
                            "content": [{"type": "output_text", "text": text}],
                        },
                    }
                )
            else:
                out.append(_user_text(text))
        if cc.get("turnComplete"):
            out = [*self._interrupt(), *out, {"type": "response.create"}]
        return out

    def _tool_response(self, tr: Mapping[str, Any]) -> list[Event]:
        out: list[Event] = []
        for fr in tr.get("functionResponses") or []:
            fr = obj(fr)
            call_id = str(fr.get("id") or "")
            if call_id in self._open_calls:
                self._open_calls.remove(call_id)
            out.append(
                {
                    "type": "conversation.item.create",
                    "item": {
                        "type": "function_call_output",
                        "call_id": call_id,
                        "output": json.dumps(fr.get("response") or {}),
                    },
                }
            )
        if out and not self._open_calls:
            out.append({"type": "response.create"})
        return out

    # ---- server events -----------------------------------------------------------------

    def outbound(self, ev: Event) -> list[Out]:
        kind = ev.get("type")
        if kind == "session.updated" and not self._confirmed:
            self._confirmed = True
            return [{"setupComplete": {}}]
        if kind == "response.created":
            self._active = True
        elif kind == "response.output_audio.delta":
            return [
                _content(
                    modelTurn={
                        "parts": [
                            {
                                "inlineData": {
                                    "mimeType": f"audio/pcm;rate={GEMINI_OUTPUT_RATE}",
                                    "data": ev["delta"],
                                }
                            }
                        ]
                    }
                )
            ]
        elif kind == "response.output_audio_transcript.delta" and self._out_transcripts:
            return [_content(outputTranscription={"text": ev.get("delta", "")})]
        elif kind == "response.output_text.delta":
            return [_content(modelTurn={"parts": [{"text": ev.get("delta", "")}]})]
        elif (
            kind == "conversation.item.input_audio_transcription.completed" and self._in_transcripts
        ):
            return [_content(inputTranscription={"text": ev.get("transcript", "")})]
        elif kind == "response.function_call_arguments.done":
            call_id = str(ev.get("call_id"))
            self._open_calls.append(call_id)
            try:
                args = json.loads(ev.get("arguments") or "{}")
            except ValueError:
                args = {}
            return [
                {
                    "toolCall": {
                        "functionCalls": [{"id": call_id, "name": ev.get("name"), "args": args}]
                    }
                }
            ]
        elif kind == "input_audio_buffer.speech_started" and self._open_calls:
            ids, self._open_calls = self._open_calls, []
            return [{"toolCallCancellation": {"ids": ids}}]
        elif kind == "response.done":
            return self._turn_end(obj(ev.get("response")))
        elif kind == "error":
            err = obj(ev.get("error"))
            if err.get("code") == "conversation_already_has_active_response":
                return []  # Gemini answers a turn after the one it is speaking: no error
            return [Close(1007, str(err.get("message") or "invalid request")[:120])]
        return []

    def _turn_end(self, response: Mapping[str, Any]) -> list[Out]:
        self._active = False
        output = response.get("output") or []
        if any(obj(i).get("type") == "function_call" for i in output):
            return []  # the model waits for the toolResponse
        if response.get("status") == "cancelled":
            out: list[Out] = [_content(interrupted=True), _content(turnComplete=True)]
        else:
            out = [_content(generationComplete=True), _content(turnComplete=True)]
        if self._resumption:
            self._handles += 1
            handle = f"{self.core.record.session_id}-h{self._handles}"
            self.resumable[handle] = self.core.conversation
            out.append({"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}})
        return out

    def going_away(self, time_left_s: float) -> list[Out]:
        return [Native({"goAway": {"timeLeft": f"{time_left_s:g}s"}})]

    def expired(self, ids_event: str) -> list[Out]:
        return [Close(1000, "session time limit reached")]


def _content(**fields: Any) -> Event:
    return {"serverContent": fields}


def _user_text(text: str) -> Event:
    return {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        },
    }
