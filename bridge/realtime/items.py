"""Conversation items of the Realtime protocol, and the base model every typed wire value uses.

Spec: seed 000 (``RealtimeConversationItem``: system/user/assistant messages, ``function_call``,
``function_call_output`` and the MCP items), cross-checked against the openai SDK's
``types/realtime`` models for which fields are required.

Why typed items: the local agent and the call logic read items (function calls, transcripts,
assistant audio) and must not guess at shapes. Why lenient typing: a proxy must never lose what it
does not understand. So:

* every model allows extra fields and dumps exactly what it parsed (``exclude_unset``);
* unions are discriminated by their tag (``type`` for items and content parts, ``role`` for
  messages) and have a catch-all member, so an unknown item type, role or content type parses as
  :class:`OtherItem` / :class:`OtherMessageItem` / :class:`OtherContent` and survives unchanged;
* validation is strict (no ``"5"`` -> ``5`` coercion) so that a dump is always equal to its input.

Content types: GA uses ``input_text``/``input_audio``/``input_image`` for user and system content
and ``output_text``/``output_audio`` for assistant content; the beta dialect (and some xAI
clients) name the assistant ones ``text``/``audio``. Both parse; the dialect translator renames.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Discriminator, Tag

from bridge.realtime.wire import redact

__all__ = [
    "AssistantMessageItem",
    "AudioContent",
    "ContentPart",
    "ConversationItem",
    "FunctionCallItem",
    "FunctionCallOutputItem",
    "InputAudioContent",
    "InputImageContent",
    "InputTextContent",
    "McpApprovalRequestItem",
    "McpApprovalResponseItem",
    "McpCallItem",
    "McpListToolsItem",
    "McpTool",
    "MessageItem",
    "Num",
    "OtherContent",
    "OtherItem",
    "OtherMessageItem",
    "OutputAudioContent",
    "OutputTextContent",
    "SystemMessageItem",
    "TextContent",
    "UserMessageItem",
    "WireModel",
    "tag_of",
]

#: A JSON number. ``int`` first so that ``1`` stays ``1`` (a plain ``float`` field would dump
#: ``1.0`` and change the frame).
Num: TypeAlias = int | float

#: The catch-all tag of every discriminated union here.
OTHER = "*"


class WireModel(BaseModel):
    """Base of every typed Realtime value: extra fields kept, strict types, audio-safe repr."""

    model_config = ConfigDict(extra="allow", strict=True)

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        # repr() and str() both come here: show the wire form with base64 audio replaced by its
        # length, so a logged event never carries a 100 kB blob.
        return list(redact(self.model_dump(mode="json", exclude_unset=True)).items())


def tag_of(field: str, known: Collection[str], *, required: bool = True) -> Discriminator:
    """A discriminator on ``field``: its value if in ``known``, else the catch-all tag ``"*"``.

    A missing tag selects the catch-all too unless ``required``; then it fails with the error type
    ``missing_tag.<field>`` (reported as ``missing_required_parameter``).
    """

    def discriminate(value: Any) -> str | None:
        if isinstance(value, dict):
            if field not in value:
                return None if required else OTHER
            tag = value[field]
        elif isinstance(value, BaseModel):
            tag = getattr(value, field, None)
        else:  # not an object: the catch-all member reports the type error
            return OTHER
        # an unknown or non-string tag (``null`` too) selects the catch-all, which keeps the value
        # or reports its type error
        return tag if isinstance(tag, str) and tag in known else OTHER

    return Discriminator(
        discriminate,
        custom_error_type=f"missing_tag.{field}",
        custom_error_message=f"missing required field '{field}'",
    )


# --------------------------------------------------------------------------- content parts


class InputTextContent(WireModel):
    type: Literal["input_text"]
    text: str | None = None


class InputAudioContent(WireModel):
    type: Literal["input_audio"]
    audio: str | None = None
    transcript: str | None = None


class InputImageContent(WireModel):
    type: Literal["input_image"]
    image_url: str | None = None
    detail: str | None = None


class OutputTextContent(WireModel):
    type: Literal["output_text"]
    text: str | None = None


class OutputAudioContent(WireModel):
    type: Literal["output_audio"]
    audio: str | None = None
    transcript: str | None = None


class TextContent(WireModel):
    """Beta name of :class:`OutputTextContent`."""

    type: Literal["text"]
    text: str | None = None


class AudioContent(WireModel):
    """Beta name of :class:`OutputAudioContent`."""

    type: Literal["audio"]
    audio: str | None = None
    transcript: str | None = None


class OtherContent(WireModel):
    """A content part of a type this module does not know (or with no ``type``): kept as is."""

    type: str | None = None


_CONTENT_TYPES = (
    "input_text",
    "input_audio",
    "input_image",
    "output_text",
    "output_audio",
    "text",
    "audio",
)

ContentPart = Annotated[
    Annotated[InputTextContent, Tag("input_text")]
    | Annotated[InputAudioContent, Tag("input_audio")]
    | Annotated[InputImageContent, Tag("input_image")]
    | Annotated[OutputTextContent, Tag("output_text")]
    | Annotated[OutputAudioContent, Tag("output_audio")]
    | Annotated[TextContent, Tag("text")]
    | Annotated[AudioContent, Tag("audio")]
    | Annotated[OtherContent, Tag(OTHER)],
    tag_of("type", _CONTENT_TYPES, required=False),
]


# --------------------------------------------------------------------------- messages


class _ItemCommon(WireModel):
    id: str | None = None
    object: str | None = None
    status: str | None = None


class SystemMessageItem(_ItemCommon):
    type: Literal["message"]
    role: Literal["system"]
    content: list[ContentPart]


class UserMessageItem(_ItemCommon):
    type: Literal["message"]
    role: Literal["user"]
    content: list[ContentPart]


class AssistantMessageItem(_ItemCommon):
    type: Literal["message"]
    role: Literal["assistant"]
    content: list[ContentPart]


class OtherMessageItem(_ItemCommon):
    """A message with a role this module does not know (e.g. ``developer``)."""

    type: Literal["message"]
    role: str
    content: list[ContentPart] | None = None


MessageItem = Annotated[
    Annotated[SystemMessageItem, Tag("system")]
    | Annotated[UserMessageItem, Tag("user")]
    | Annotated[AssistantMessageItem, Tag("assistant")]
    | Annotated[OtherMessageItem, Tag(OTHER)],
    tag_of("role", ("system", "user", "assistant")),
]


# --------------------------------------------------------------------------- tool items


class FunctionCallItem(_ItemCommon):
    type: Literal["function_call"]
    name: str
    arguments: str
    call_id: str | None = None


class FunctionCallOutputItem(_ItemCommon):
    type: Literal["function_call_output"]
    call_id: str
    output: str


class McpApprovalResponseItem(_ItemCommon):
    type: Literal["mcp_approval_response"]
    approval_request_id: str
    approved: bool
    reason: str | None = None


class McpTool(WireModel):
    """One tool in an ``mcp_list_tools`` item."""

    name: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    annotations: dict[str, Any] | None = None


class McpListToolsItem(_ItemCommon):
    type: Literal["mcp_list_tools"]
    server_label: str
    tools: list[McpTool] | None = None


class McpCallItem(_ItemCommon):
    type: Literal["mcp_call"]
    server_label: str
    name: str
    arguments: str | None = None
    approval_request_id: str | None = None
    # ``{type: protocol_error | tool_execution_error | http_error, code?, message}``
    error: dict[str, Any] | None = None
    output: str | None = None


class McpApprovalRequestItem(_ItemCommon):
    type: Literal["mcp_approval_request"]
    server_label: str
    name: str
    arguments: str | None = None


class OtherItem(_ItemCommon):
    """An item of a type this module does not know (``item_reference``, future types): kept."""

    type: str


_ITEM_TYPES = (
    "message",
    "function_call",
    "function_call_output",
    "mcp_approval_response",
    "mcp_list_tools",
    "mcp_call",
    "mcp_approval_request",
)

ConversationItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[McpApprovalResponseItem, Tag("mcp_approval_response")]
    | Annotated[McpListToolsItem, Tag("mcp_list_tools")]
    | Annotated[McpCallItem, Tag("mcp_call")]
    | Annotated[McpApprovalRequestItem, Tag("mcp_approval_request")]
    | Annotated[OtherItem, Tag(OTHER)],
    tag_of("type", _ITEM_TYPES),
]
