"""What a response will say: parrot, tone phrase, tool answer or function call.

Pure functions over the session and the conversation; the core decides *when* (tool rule state,
which user audio is unanswered) and this module decides *what*:

- a due tool call -> a ``function_call`` item (arguments from ``AgentSettings.tool_arguments``);
- the last item is a ``function_call_output`` -> the tone phrase, transcript naming the output;
- unanswered user audio -> that audio played back ("parrot"), transcript ``parrot: <n> ms``;
- anything else (text turn, bare ``response.create``, idle timeout) -> the tone phrase.

Audio is converted to the session's output format here, once per response.
"""

from __future__ import annotations

from typing import Any

from bridge.agent.audio import Pcm, encode_output
from bridge.agent.buffer import SAMPLES_PER_MS
from bridge.agent.conversation import StoredItem
from bridge.agent.ids import IdFactory
from bridge.agent.responses import OutputKind, ResponsePlan
from bridge.agent.session import output_format, output_modalities
from bridge.agent.tones import tone_phrase

__all__ = ["new_output_item", "plan_response"]


def plan_response(
    params: dict[str, Any],
    session: dict[str, Any],
    *,
    conversation_id: str,
    user_audio: StoredItem | None,
    last_item: StoredItem | None,
    tool: tuple[str, str] | None,
    tool_names: dict[str, str],
) -> ResponsePlan:
    """``tool`` is ``(name, arguments)`` when the tool rule fires; ``tool_names`` maps the
    call ids the agent issued to tool names."""
    mods = params.get("output_modalities")
    if not (isinstance(mods, list) and mods and mods[0] in ("audio", "text")):
        mods = output_modalities(session)
    fmt = output_format(session)
    plan = ResponsePlan(
        kind=OutputKind.TEXT if mods[0] == "text" else OutputKind.AUDIO,
        fmt=fmt,
        voice=session["audio"]["output"].get("voice", "alloy"),
        in_conversation=params.get("conversation", "auto") != "none",
        conversation_id=conversation_id,
        metadata=params.get("metadata"),
        input_tokens=len(str(session.get("instructions", "")).split()),
        instructions=str(params.get("instructions") or session.get("instructions", "")),
        max_output_tokens=params.get("max_output_tokens", session.get("max_output_tokens", "inf")),
    )
    if tool is not None:
        plan.kind = OutputKind.FUNCTION_CALL
        plan.tool_name, plan.tool_arguments = tool
        plan.source = "tool_call"
        return plan
    pcm: Pcm
    if last_item is not None and last_item.item.get("type") == "function_call_output":
        pcm = tone_phrase()
        name = tool_names.get(str(last_item.item.get("call_id")), "tool")
        plan.source = "tool_answer"
        plan.transcript = f"{name} returned: {str(last_item.item.get('output', ''))[:80]}"
    elif user_audio is not None and len(user_audio.pcm):
        pcm = user_audio.pcm
        plan.source = "parrot"
        plan.transcript = f"parrot: {len(pcm) // SAMPLES_PER_MS} ms"
    else:
        pcm = tone_phrase()
        plan.source = "tones"
        plan.transcript = "tones: 3 x 200 ms"
    if plan.kind is OutputKind.AUDIO:
        plan.audio = encode_output(pcm, fmt)
    return plan


def new_output_item(plan: ResponsePlan, ids: IdFactory, call_id: str) -> dict[str, Any]:
    """The response's output item as first announced (``status: in_progress``)."""
    if plan.kind is OutputKind.FUNCTION_CALL:
        return {
            "id": ids.item(),
            "type": "function_call",
            "object": "realtime.item",
            "status": "in_progress",
            "name": plan.tool_name,
            "call_id": call_id,
            "arguments": "",
        }
    return {
        "id": ids.item(),
        "type": "message",
        "object": "realtime.item",
        "status": "in_progress",
        "role": "assistant",
        "content": [],
    }
