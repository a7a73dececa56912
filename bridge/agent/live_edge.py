"""The local agent speaking OpenAI's GPT-Live WebSocket protocol (``/v1/live/sessions``).

A stand-in faithful to the wire facts in :mod:`bridge.realtime.dialects.gpt_live` (and to the
openai SDK's ``client.live`` types, which the tests drive it with):

* ``Authorization: Bearer``; nothing is sent before ``session.start``. Any other event first
  gets an ``error`` (``session_not_started``). The session object is strict: an unknown field
  anywhere the reference lists the fields gets ``error`` ``unknown_parameter`` naming it, and
  the session does not start. ``session.started`` answers with the resolved session (id,
  ``expires_at``, ``status: "active"``, model, audio, delegation, instructions).
* One audio format both ways (PCM 16/24 kHz, PCMU, PCMA); 16 kHz PCM is resampled to and from
  the core's 24 kHz. The model owns turn-taking (the core's VAD with ``interrupt_response``):
  output audio is ``session.output_audio.delta {delta}``, and simply stops when the caller
  talks over it.
* Transcripts: ``session.output_transcript.delta`` and ``session.input_transcript.delta`` with
  ``start_ms``/``end_ms`` on the session timeline (the caller audio received so far).
* ``session.instructions.append`` -> ``session.instructions.appended``; with Responses
  delegation, a tool call is ``session.delegation.created`` and ``response.event`` envelopes
  (``response.output_item.added``, ``response.function_call_arguments.delta/.done``,
  ``response.output_item.done``, ``response.completed``); ``response.item.create`` and
  ``response.create`` continue it.
* ``session.close`` -> ``session.closed`` (``close_requested``); the agent's session timer ->
  ``session.closed`` (``expired``); both then close the socket.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import numpy as np

from bridge.agent.core import AgentCore
from bridge.agent.edge import Close, DialectEdge, Native, Out
from bridge.agent.requests import ClientError, b64_audio, require_str
from bridge.config import Dialect
from bridge.realtime.dialects.base import obj
from bridge.realtime.dialects.gpt_live import SESSION_KEYS
from media.resample import Resampler

__all__ = ["LIVE_PATHS", "LiveEdge"]

Event = dict[str, Any]
LIVE_PATHS = frozenset({"/v1/live/sessions", "/openai/v1/live/sessions"})
_AUDIO_KEYS = frozenset({"format", "output"})
_OUTPUT_KEYS = frozenset({"voice"})
_FORMATS: dict[str, tuple[str, tuple[int, ...]]] = {
    "audio/pcm": ("pcm16", (16000, 24000)),
    "audio/pcmu": ("g711_ulaw", (8000,)),
    "audio/pcma": ("g711_alaw", (8000,)),
}
_CORE_FORMAT: dict[str, Event] = {
    "pcm16": {"type": "audio/pcm", "rate": 24000},
    "g711_ulaw": {"type": "audio/pcmu"},
    "g711_alaw": {"type": "audio/pcma"},
}
_BYTES_PER_MS = {"pcm16": 48.0, "g711_ulaw": 8.0, "g711_alaw": 8.0}


def _unknown(keys: Any, allowed: frozenset[str], path: str) -> None:
    for key in keys:
        if key not in allowed:
            raise ClientError(
                f"Unknown parameter: '{path}.{key}'.",
                code="unknown_parameter",
                param=f"{path}.{key}",
            )


class LiveEdge(DialectEdge):
    """One GPT-Live connection to the local agent (see the module docs)."""

    dialect = Dialect.GPT_LIVE
    paths = LIVE_PATHS

    def __init__(self, core: AgentCore, *, now_s: int = 0) -> None:
        self.core = core
        self.now_s = now_s
        self.started = False
        self._resource: Event = {}
        self._delegation: Any = None
        self._replies: list[Out] = []
        self._rate = 24000
        self._bytes_per_ms = 48.0
        self._up: Resampler | None = None
        self._down: Resampler | None = None
        self._muted = False
        self._input_ms = 0.0
        self._speech: tuple[int, int] = (0, 0)
        self._response_start_ms = 0.0
        self._output_ms = 0.0
        self._function_response: str | None = None
        self._delegations = 0

    def opening(self, session_created: list[Event], conversation_created: Event) -> list[Out]:
        return []

    def replies(self) -> list[Out]:
        out, self._replies = self._replies, []
        return out

    def _ev(self, type_: str, **fields: Any) -> Event:
        return {"type": type_, "event_id": self.core.ids.event(), **fields}

    # ---- client events -----------------------------------------------------------------

    def inbound(self, ev: Event) -> list[Event]:
        kind = ev.get("type")
        if kind != "session.start" and not self.started:
            raise ClientError(
                "Send session.start and wait for session.started first.",
                code="session_not_started",
                param="type",
            )
        if kind == "session.start":
            return self._start(ev)
        if kind == "session.input_audio.append":
            return self._append(ev)
        if kind == "session.instructions.append":
            content = ev.get("content")
            if not isinstance(content, str):
                raise ClientError(
                    "Missing required parameter: 'content'.",
                    code="missing_required_parameter",
                    param="content",
                )
            at = round(self._input_ms)
            self._replies.append(
                Native(self._ev("session.instructions.appended", start_ms=at, end_ms=at))
            )
            return [
                {
                    "type": "conversation.item.create",
                    "item": {
                        "type": "message",
                        "role": "system",
                        "content": [{"type": "input_text", "text": content}],
                    },
                }
            ]
        if kind in ("response.item.create", "response.create"):
            if obj(self._delegation).get("type") != "responses":
                raise ClientError(
                    f"{kind} requires Responses delegation.",
                    code="delegation_required",
                    param="type",
                )
            if kind == "response.create":
                return [{"type": "response.create"}]
            item = obj(ev.get("item"))
            return [{"type": "conversation.item.create", "item": dict(item)}]
        if kind in ("session.input_audio.mute", "session.input_audio.unmute"):
            self._muted = kind.endswith(".mute")
            self._replies.append(Native(self._ev(kind.replace("mute", "muted"))))
            return []
        if kind == "session.update":
            return self._update(obj(ev.get("session")))
        if kind == "session.close":
            self._replies += [
                Native(self._closed("close_requested")),
                Close(1000, "session closed"),
            ]
            return []
        raise ClientError(f"Invalid value: '{kind}'.", code="invalid_value", param="type")

    def _start(self, ev: Event) -> list[Event]:
        if self.started:
            raise ClientError(
                "The session has already started.", code="session_already_started", param="type"
            )
        _unknown([k for k in ev if k not in ("type", "event_id", "session")], frozenset(), "")
        session = obj(ev.get("session"))
        _unknown(session, SESSION_KEYS, "session")
        model = session.get("model")
        if not isinstance(model, str) or not model:
            raise ClientError(
                "Missing required parameter: 'session.model'.",
                code="missing_required_parameter",
                param="session.model",
            )
        audio = obj(session.get("audio"))
        _unknown(audio, _AUDIO_KEYS, "session.audio")
        output = obj(audio.get("output"))
        _unknown(output, _OUTPUT_KEYS, "session.audio.output")
        fmt = obj(audio.get("format")) or {"type": "audio/pcm", "rate": 24000}
        _unknown(fmt, frozenset({"type", "rate"}), "session.audio.format")
        known = _FORMATS.get(str(fmt.get("type")))
        if known is None or fmt.get("rate", known[1][-1]) not in known[1]:
            raise ClientError(
                f"Invalid value: {dict(fmt)!r}.", code="invalid_value", param="session.audio.format"
            )
        core_fmt = known[0]
        self._rate = int(fmt.get("rate", known[1][-1]))
        self._bytes_per_ms = _BYTES_PER_MS[core_fmt] * (
            self._rate / 24000 if core_fmt == "pcm16" else 1
        )
        if core_fmt == "pcm16" and self._rate != 24000:
            self._up, self._down = Resampler(self._rate, 24000), Resampler(24000, self._rate)
        delegation = session.get("delegation")
        tools = self._tools(delegation)
        self._delegation = delegation
        voice = output.get("voice", "marin")
        self._resource = {
            "id": self.core.record.session_id,
            "expires_at": self.now_s + 3600,
            "model": model,
            "status": "active",
            "audio": {
                "format": {"type": fmt.get("type"), "rate": self._rate},
                "output": {"voice": voice},
            },
            "delegation": delegation,
            "instructions": session.get("instructions", ""),
            "input": session.get("input", []),
            "store": session.get("store", False),
        }
        ga: Event = {
            "type": "realtime",
            "model": model,
            "tools": tools,
            "audio": {
                "input": {
                    "format": dict(_CORE_FORMAT[core_fmt]),
                    "transcription": {"model": "gpt-live-transcribe"},
                    "turn_detection": {
                        "type": "server_vad",
                        "create_response": True,
                        "interrupt_response": True,
                    },
                },
                "output": {
                    "format": dict(_CORE_FORMAT[core_fmt]),
                    "voice": voice if isinstance(voice, str) else "marin",
                },
            },
        }
        if isinstance(session.get("instructions"), str) and session["instructions"]:
            ga["instructions"] = session["instructions"]
        return [{"type": "session.update", "session": ga}]

    @staticmethod
    def _tools(delegation: Any) -> list[Event]:
        if delegation is None:
            return []
        d = obj(delegation)
        if d.get("type") not in ("client", "responses", "decisions"):
            raise ClientError(
                f"Invalid value: {d.get('type')!r}.",
                code="invalid_value",
                param="session.delegation.type",
            )
        responses = obj(d.get("responses"))
        return [
            dict(t)
            for t in responses.get("tools") or []
            if isinstance(t, Mapping) and t.get("type") == "function"
        ]

    def _update(self, session: Mapping[str, Any]) -> list[Event]:
        _unknown(session, frozenset({"delegation", "triggers"}), "session")
        delegation = session.get("delegation")
        if delegation is None:
            return [{"type": "session.update", "session": {"type": "realtime"}}]
        if obj(delegation).get("type") != obj(self._delegation).get("type"):
            raise ClientError(
                "The delegation type cannot change.",
                code="invalid_value",
                param="session.delegation.type",
            )
        self._delegation = delegation
        self._resource["delegation"] = delegation
        return [
            {
                "type": "session.update",
                "session": {"type": "realtime", "tools": self._tools(delegation)},
            }
        ]

    def _append(self, ev: Event) -> list[Event]:
        raw = b64_audio(require_str(ev, "audio"), "audio")
        self._input_ms += len(raw) / self._bytes_per_ms
        if self._muted:
            return []
        if self._up is not None:
            pcm = np.frombuffer(raw[: len(raw) - len(raw) % 2], dtype="<i2").astype(np.int16)
            raw = self._up.process(pcm).astype("<i2").tobytes()
        return [
            {"type": "input_audio_buffer.append", "audio": base64.b64encode(raw).decode("ascii")}
        ]

    # ---- server events -----------------------------------------------------------------

    def outbound(self, ev: Event) -> list[Out]:
        kind = ev.get("type")
        if kind == "session.updated":
            if not self.started:
                self.started = True
                return [self._ev("session.started", session=dict(self._resource))]
            return [self._ev("session.updated", session=dict(self._resource))]
        if kind == "response.created":
            self._response_start_ms, self._output_ms = self._input_ms, 0.0
            self._function_response = None
        elif kind == "response.output_audio.delta":
            return [self._audio_delta(str(ev["delta"]))]
        elif kind == "response.output_audio_transcript.delta":
            at = round(self._response_start_ms + self._output_ms)
            return [
                self._ev(
                    "session.output_transcript.delta",
                    delta=ev.get("delta", ""),
                    start_ms=at,
                    end_ms=at + 100,
                )
            ]
        elif kind == "input_audio_buffer.speech_started":
            self._speech = (int(ev.get("audio_start_ms", 0)), self._speech[1])
        elif kind == "input_audio_buffer.speech_stopped":
            self._speech = (self._speech[0], int(ev.get("audio_end_ms", 0)))
        elif kind == "conversation.item.input_audio_transcription.completed":
            start, end = self._speech
            return [
                self._ev(
                    "session.input_transcript.delta",
                    delta=ev.get("transcript", ""),
                    start_ms=start,
                    end_ms=max(start, end),
                )
            ]
        elif kind in ("response.output_item.added", "response.output_item.done"):
            item = obj(ev.get("item"))
            if item.get("type") == "function_call":
                return self._function_item(kind, ev, item)
        elif kind in (
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
        ):
            return [self._wrapped({k: v for k, v in ev.items() if k != "event_id"})]
        elif kind == "response.done" and self._function_response is not None:
            response = obj(ev.get("response"))
            return [
                self._wrapped(
                    {
                        "type": "response.completed",
                        "response": {
                            "id": response.get("id"),
                            "object": "response",
                            "status": "completed",
                            "output": [],
                        },
                    }
                )
            ]
        elif kind == "error":
            err = obj(ev.get("error"))
            return [
                self._ev(
                    "error",
                    error={
                        "type": err.get("type", "invalid_request_error"),
                        "code": err.get("code"),
                        "message": err.get("message", ""),
                        "param": err.get("param"),
                        "client_event_id": err.get("event_id"),
                    },
                )
            ]
        return []

    def _audio_delta(self, b64: str) -> Event:
        raw = base64.b64decode(b64)
        if self._down is not None:
            pcm = np.frombuffer(raw, dtype="<i2").astype(np.int16)
            raw = self._down.process(pcm).astype("<i2").tobytes()
        self._output_ms += len(raw) / self._bytes_per_ms
        return {
            "type": "session.output_audio.delta",
            "delta": base64.b64encode(raw).decode("ascii"),
        }

    def _wrapped(self, event: Event) -> Event:
        return self._ev("response.event", event=event, delegation_id=self._function_response)

    def _function_item(self, kind: str, ev: Event, item: Mapping[str, Any]) -> list[Out]:
        out: list[Out] = []
        if kind == "response.output_item.added":
            self._delegations += 1
            self._function_response = f"dlg_{self.core.record.session_id[5:]}{self._delegations}"
            out.append(
                self._ev(
                    "session.delegation.created",
                    delegation={
                        "id": self._function_response,
                        "target": "responses",
                        "type": "delegation",
                        "response_id": ev.get("response_id"),
                    },
                    offset_ms=round(self._input_ms),
                )
            )
        wire_item = {
            k: item[k]
            for k in ("id", "type", "call_id", "name", "arguments", "status")
            if k in item
        }
        out.append(
            self._wrapped(
                {"type": kind, "output_index": ev.get("output_index", 0), "item": wire_item}
            )
        )
        return out

    def _closed(self, reason: str) -> Event:
        return self._ev(
            "session.closed",
            reason=reason,
            session=dict(self._resource),
            usage={"seconds": float(round(self._input_ms / 1000))},
        )

    def expired(self, ids_event: str) -> list[Out]:
        return [Native(self._closed("expired")), Close(1000, "session expired")]
