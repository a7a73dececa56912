"""The conversation as the call saw it: what a new upstream session is told when the old one ends.

An upstream session holds the conversation's context; when it ends under a live call (its time
limit, a ``goAway``, a lost socket) and the upstream cannot resume it, the next session is told
the conversation again as items (:meth:`CallConversation.replay`). What it is told is what the
caller actually heard, not what the upstream generated: an agent message cut by a barge-in is
replayed as far as it was played (the ``audio_end_ms`` of its truncation), and a message never
played at all (deleted by the barge-in) is not replayed.

:class:`CallConversation` is fed, in order, with the agent's typed events
(:meth:`~CallConversation.observe`: the caller's turns and their transcripts, the agent's audio
and transcript deltas, function calls) and with the client events the call sends upstream
(:meth:`~CallConversation.sent`: text messages such as DTMF or the control plane's, function
call outputs, deletions). Each agent transcript delta is stamped with the item's audio received
so far, so a truncation at ``audio_end_ms`` keeps the text said by then
(:meth:`~CallConversation.truncate`), which is also the heard transcript the event log records.

A caller's turn has text only when the session transcribes its input; turns without a
transcript are not replayed. Sans-IO; a bounded number of items is kept (the oldest are
forgotten).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.calls.agent_events import (
    AgentEvent,
    AudioDelta,
    FunctionCallDone,
    SpeechStarted,
    Transcript,
    TranscriptDelta,
)
from bridge.realtime.formats import AudioFormat

__all__ = ["MAX_ITEMS", "CallConversation"]

#: Items kept for a replay (older ones are forgotten).
MAX_ITEMS = 64
_TEXT_PARTS = frozenset({"input_text", "text", "output_text"})


@dataclass(slots=True)
class _Item:
    id: str
    kind: str  # message | function_call | function_call_output
    role: str = "assistant"  # user | assistant | system (messages)
    text: str = ""
    audio_ms: float = 0.0
    marks: list[tuple[float, str]] = field(default_factory=list)  # (audio ms, delta)
    heard_ms: int | None = None  # truncated there
    call_id: str = ""
    name: str = ""
    arguments: str = ""
    output: str = ""


class CallConversation:
    """The items of one call's conversation, as the caller experienced them."""

    def __init__(self, max_items: int = MAX_ITEMS) -> None:
        self._items: OrderedDict[str, _Item] = OrderedDict()
        self._max = max_items
        self._local = 0
        self._names: dict[str, str] = {}  # call_id -> tool name

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def _item(self, item_id: str, kind: str, role: str = "assistant") -> _Item:
        item = self._items.get(item_id)
        if item is None:
            item = self._items[item_id] = _Item(item_id, kind, role)
            while len(self._items) > self._max:
                self._items.popitem(last=False)
        return item

    # -- what the call sees ---------------------------------------------------------------

    def observe(self, event: AgentEvent, fmt: AudioFormat) -> None:
        """One agent event (``fmt``: the session's audio format, for audio durations)."""
        match event:
            case SpeechStarted(item_id=iid) if iid:
                self._item(iid, "message", "user")
            case Transcript(speaker="user", item_id=iid, text=text) if iid:
                self._item(iid, "message", "user").text = text
            case AudioDelta(item_id=iid, audio=audio) if iid:
                self._item(iid, "message").audio_ms += len(audio) / fmt.bytes_per_ms()
            case TranscriptDelta(item_id=iid, delta=delta) if iid and delta:
                item = self._item(iid, "message")
                item.marks.append((item.audio_ms, delta))
                if item.heard_ms is None:
                    item.text += delta
            case Transcript(speaker="agent", item_id=iid, text=text) if iid:
                item = self._item(iid, "message")
                if item.heard_ms is None:
                    item.text = text
            case FunctionCallDone(item_id=iid, call_id=call_id, name=name, arguments=args):
                item = self._item(iid or f"fc_{call_id}", "function_call")
                item.call_id, item.name, item.arguments = call_id, name, args
                self._names[call_id] = name
                while len(self._names) > MAX_ITEMS:  # the oldest are no longer replayed
                    del self._names[next(iter(self._names))]
            case _:
                pass

    def sent(self, event: Mapping[str, Any]) -> None:
        """A client event the call sends upstream."""
        kind = event.get("type")
        if kind == "conversation.item.delete":
            self._items.pop(str(event.get("item_id")), None)
            return
        if kind != "conversation.item.create":
            return
        raw = event.get("item")
        if not isinstance(raw, Mapping):
            return
        item_id = raw.get("id")
        if not isinstance(item_id, str) or not item_id:
            self._local += 1
            item_id = f"item_rtbconv{self._local:06d}"
        if raw.get("type") == "function_call_output":
            item = self._item(item_id, "function_call_output")
            item.call_id = str(raw.get("call_id", ""))
            item.output = str(raw.get("output", ""))
        elif raw.get("type", "message") == "message":
            texts = [
                str(p.get("text"))
                for p in raw.get("content") or []
                if isinstance(p, Mapping) and p.get("type") in _TEXT_PARTS and p.get("text")
            ]
            if texts:
                role = str(raw.get("role") or "user")
                self._item(item_id, "message", role).text = "\n".join(texts)

    def truncate(self, item_id: str, audio_end_ms: int) -> str | None:
        """The agent's item was heard up to ``audio_end_ms``: keep what was said by then and
        return it (None: not an agent message this conversation knows)."""
        item = self._items.get(item_id)
        if item is None or item.kind != "message" or item.role != "assistant":
            return None
        item.heard_ms = audio_end_ms
        if item.marks:
            item.text = "".join(d for at, d in item.marks if at <= audio_end_ms)
        return item.text

    def heard(self, item_id: str) -> str | None:
        """The transcript of an agent item as heard (after a truncation), if known."""
        item = self._items.get(item_id)
        return item.text if item is not None and item.role == "assistant" else None

    # -- what a new session is told -------------------------------------------------------

    def replay(self, item_types: frozenset[str]) -> list[dict[str, Any]]:
        """The conversation as GA items for ``conversation.item.create``, oldest first.

        ``item_types``: the item types the upstream can add to its history
        (``Capabilities.history_items``); function calls and their outputs become text
        messages where it takes only messages. Items keep their ids where they are replayed
        as themselves."""
        typed = {"function_call", "function_call_output"} <= item_types
        out: list[dict[str, Any]] = []
        calls: set[str] = set()
        for item in self._items.values():
            if item.kind == "message":
                if not item.text:
                    continue
                part = "output_text" if item.role == "assistant" else "input_text"
                out.append(
                    {
                        "id": item.id,
                        "type": "message",
                        "role": item.role,
                        "content": [{"type": part, "text": item.text}],
                    }
                )
            elif item.kind == "function_call":
                if typed:
                    calls.add(item.call_id)
                    out.append(
                        {
                            "id": item.id,
                            "type": "function_call",
                            "call_id": item.call_id,
                            "name": item.name,
                            "arguments": item.arguments,
                        }
                    )
                else:
                    text = f"(called {item.name} with {item.arguments})"
                    out.append(_note(item.id, "assistant", text))
            elif typed:
                if item.call_id not in calls:
                    continue  # its call was forgotten: an orphan output is refused
                out.append(
                    {
                        "id": item.id,
                        "type": "function_call_output",
                        "call_id": item.call_id,
                        "output": item.output,
                    }
                )
            else:
                name = self._names.get(item.call_id, "the tool")
                text = f"({name} returned {_compact(item.output)})"
                out.append(_note(item.id, "system", text))
        return out


def _note(item_id: str, role: str, text: str) -> dict[str, Any]:
    """A function call or its output told as a text message (its own id, at most 32 chars)."""
    part = "output_text" if role == "assistant" else "input_text"
    return {
        "id": f"{item_id[:29]}_rt",
        "type": "message",
        "role": role,
        "content": [{"type": part, "text": text}],
    }


def _compact(output: str) -> str:
    try:
        return json.dumps(json.loads(output), separators=(",", ":"))
    except ValueError:
        return output
