"""One response's event lifecycle, produced step by step exactly as OpenAI's GA service does.

A :class:`ResponseRun` is sans-IO: :meth:`start` gives the opening events, each :meth:`step`
the next paced batch (one ~100 ms audio delta plus transcript text, a text delta, or a piece of
function-call arguments), the last step ends with the closing events; :meth:`cancel` closes
early with ``status: "cancelled"``. The connection driver decides the pace.

Event order for an audio message (text and function calls are analogous)::

    response.created
    response.output_item.added          conversation.item.added
    response.content_part.added
    (response.output_audio_transcript.delta | response.output_audio.delta)*
    response.output_audio.done          response.output_audio_transcript.done
    response.content_part.done
    response.output_item.done           conversation.item.done
    response.done

``conversation.item.*`` events are left out when the response is out of band
(``response.conversation: "none"``).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

from bridge.agent.conversation import StoredItem
from bridge.agent.events import server_event
from bridge.agent.ids import IdFactory
from bridge.realtime.formats import AudioFormat

__all__ = ["CHUNK_MS", "OutputKind", "ResponsePlan", "ResponseRun"]

CHUNK_MS = 100


class OutputKind(Enum):
    AUDIO = "audio"
    TEXT = "text"
    FUNCTION_CALL = "function_call"


@dataclass(slots=True)
class ResponsePlan:
    """What a response will say. ``audio`` is already in ``fmt`` (the session output format)."""

    kind: OutputKind
    transcript: str = ""
    audio: bytes = b""
    fmt: AudioFormat = AudioFormat.PCM16
    voice: Any = "alloy"
    tool_name: str = ""
    tool_arguments: str = "{}"
    in_conversation: bool = True
    conversation_id: str | None = None
    metadata: Any = None
    input_tokens: int = 0
    source: str = ""  # "parrot", "tones", "tool_call", "tool_answer", "idle": for observers
    previous_item_id: str | None = None
    instructions: str = ""
    max_output_tokens: Any = "inf"

    def modalities(self) -> list[str]:
        return ["text"] if self.kind is OutputKind.TEXT else ["audio"]


class ResponseRun:
    """The events of one response; see the module docstring for their order."""

    def __init__(
        self,
        ids: IdFactory,
        plan: ResponsePlan,
        stored: StoredItem,
        *,
        response_id: str,
        call_id: str = "",
    ) -> None:
        self.ids = ids
        self.plan = plan
        self.stored = stored
        self.id = response_id
        self.call_id = call_id
        self.status = "in_progress"
        self.status_details: dict[str, Any] | None = None
        self._audio_sent = 0
        self._text_sent = ""
        self._args_sent = ""
        self._steps: Iterator[list[dict[str, Any]]] | None = None
        self._started = False
        self.done = False

    # ---- public ------------------------------------------------------------------------
    @property
    def item_id(self) -> str:
        return self.stored.id

    @property
    def audio_ms_sent(self) -> int:
        return self.plan.fmt.duration_ms(self._audio_sent)

    def start(self) -> list[dict[str, Any]]:
        """``response.created`` and the item/part openings."""
        self._started = True
        self._steps = self._body()
        item = self.stored.item
        out = [
            self._ev("response.created", response=self.response_object()),
            self._ev(
                "response.output_item.added",
                response_id=self.id,
                output_index=0,
                item=dict(item),
            ),
        ]
        if self.plan.in_conversation:
            out.append(
                self._ev(
                    "conversation.item.added",
                    previous_item_id=self.plan.previous_item_id,
                    item=dict(item),
                )
            )
        if self.plan.kind is not OutputKind.FUNCTION_CALL:
            out.append(self._ev("response.content_part.added", **self._part_fields(final=False)))
        return out

    def step(self) -> list[dict[str, Any]]:
        """The next batch; after the one holding ``response.done``, ``done`` is true."""
        if self.done or self._steps is None:
            return []
        try:
            return next(self._steps)
        except StopIteration:  # pragma: no cover - the body always ends with _finish
            self.done = True
            return []

    def cancel(self, reason: str) -> list[dict[str, Any]]:
        """Close now with ``status: "cancelled"`` (``reason``: client_cancelled/turn_detected)."""
        if self.done:
            return []
        self._steps = None
        self.status = "cancelled"
        self.status_details = {"type": "cancelled", "reason": reason}
        return self._finish(item_status="incomplete")

    def response_object(self) -> dict[str, Any]:
        output = [] if self.status == "in_progress" else [dict(self.stored.item)]
        return {
            "object": "realtime.response",
            "id": self.id,
            "status": self.status,
            "status_details": self.status_details,
            "output": output,
            "conversation_id": self.plan.conversation_id if self.plan.in_conversation else None,
            "output_modalities": self.plan.modalities(),
            "max_output_tokens": self.plan.max_output_tokens,
            "audio": {"output": {"format": self.plan.fmt.to_ga(), "voice": self.plan.voice}},
            "usage": None if self.status == "in_progress" else self._usage(),
            "metadata": self.plan.metadata,
        }

    # ---- body --------------------------------------------------------------------------
    def _body(self) -> Iterator[list[dict[str, Any]]]:
        plan = self.plan
        if plan.kind is OutputKind.AUDIO:
            chunk = max(1, int(plan.fmt.bytes_per_ms() * CHUNK_MS))
            chunk -= chunk % plan.fmt.bytes_per_sample
            words = _pieces(plan.transcript)
            n_chunks = max(1, -(-len(plan.audio) // chunk))
            for i in range(n_chunks):
                batch: list[dict[str, Any]] = []
                if words:
                    take = words if i == n_chunks - 1 else words[:1]
                    words = words[len(take) :]
                    delta = "".join(take)
                    self._text_sent += delta
                    batch.append(
                        self._ev(
                            "response.output_audio_transcript.delta", **self._cfields(), delta=delta
                        )
                    )
                piece = plan.audio[i * chunk : (i + 1) * chunk]
                if piece:
                    self._audio_sent += len(piece)
                    self.stored.audio.extend(piece)
                    batch.append(
                        self._ev(
                            "response.output_audio.delta",
                            **self._cfields(),
                            delta=base64.b64encode(piece).decode("ascii"),
                        )
                    )
                yield batch
        elif plan.kind is OutputKind.TEXT:
            for word in _pieces(plan.transcript):
                self._text_sent += word
                yield [self._ev("response.output_text.delta", **self._cfields(), delta=word)]
        else:
            args = plan.tool_arguments
            half = max(1, len(args) // 2)
            for arg_piece in (args[:half], args[half:]):
                if arg_piece:
                    self._args_sent += arg_piece
                    yield [
                        self._ev(
                            "response.function_call_arguments.delta",
                            response_id=self.id,
                            item_id=self.item_id,
                            output_index=0,
                            call_id=self.call_id,
                            delta=arg_piece,
                        )
                    ]
        self.status = "completed"
        self.status_details = {"type": "completed", "reason": None}
        yield self._finish(item_status="completed")

    def _finish(self, item_status: str) -> list[dict[str, Any]]:
        self.done = True
        plan = self.plan
        out: list[dict[str, Any]] = []
        item = self.stored.item
        item["status"] = item_status
        if plan.kind is OutputKind.AUDIO:
            out.append(self._ev("response.output_audio.done", **self._cfields()))
            out.append(
                self._ev(
                    "response.output_audio_transcript.done",
                    **self._cfields(),
                    transcript=self._text_sent,
                )
            )
            item["content"] = [{"type": "output_audio", "transcript": self._text_sent}]
            out.append(self._ev("response.content_part.done", **self._part_fields(final=True)))
        elif plan.kind is OutputKind.TEXT:
            out.append(
                self._ev("response.output_text.done", **self._cfields(), text=self._text_sent)
            )
            item["content"] = [{"type": "output_text", "text": self._text_sent}]
            out.append(self._ev("response.content_part.done", **self._part_fields(final=True)))
        else:
            item["arguments"] = self._args_sent
            out.append(
                self._ev(
                    "response.function_call_arguments.done",
                    response_id=self.id,
                    item_id=self.item_id,
                    output_index=0,
                    call_id=self.call_id,
                    name=plan.tool_name,
                    arguments=self._args_sent,
                )
            )
        out.append(
            self._ev(
                "response.output_item.done", response_id=self.id, output_index=0, item=dict(item)
            )
        )
        if plan.in_conversation:
            out.append(
                self._ev(
                    "conversation.item.done",
                    previous_item_id=self.plan.previous_item_id,
                    item=dict(item),
                )
            )
        out.append(self._ev("response.done", response=self.response_object()))
        return out

    # ---- helpers -----------------------------------------------------------------------
    def _ev(self, type_: str, **fields: Any) -> dict[str, Any]:
        return server_event(self.ids, type_, **fields)

    def _cfields(self) -> dict[str, Any]:
        return {
            "response_id": self.id,
            "item_id": self.item_id,
            "output_index": 0,
            "content_index": 0,
        }

    def _part_fields(self, *, final: bool) -> dict[str, Any]:
        if self.plan.kind is OutputKind.TEXT:
            part: dict[str, Any] = {"type": "text", "text": self._text_sent if final else ""}
        else:
            part = {"type": "audio", "transcript": self._text_sent if final else ""}
        return {**self._cfields(), "part": part}

    def _usage(self) -> dict[str, Any]:
        audio_tokens = self.audio_ms_sent // 50
        text_tokens = max(1, len(self._text_sent.split()) + len(self._args_sent) // 4)
        out_tokens = audio_tokens + text_tokens
        in_tokens = self.plan.input_tokens
        return {
            "total_tokens": in_tokens + out_tokens,
            "input_tokens": in_tokens,
            "output_tokens": out_tokens,
            "input_token_details": {
                "text_tokens": in_tokens,
                "audio_tokens": 0,
                "image_tokens": 0,
                "cached_tokens": 0,
                "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
            },
            "output_token_details": {"text_tokens": text_tokens, "audio_tokens": audio_tokens},
        }


def _pieces(text: str) -> list[str]:
    """Split text into word-sized deltas that concatenate back to ``text``."""
    if not text:
        return []
    words = text.split(" ")
    return (
        [w + " " for w in words[:-1]] + [words[-1]] if words[-1] else [w + " " for w in words[:-1]]
    )
