"""GA Realtime session configuration (``session.update``, ``session.created``, client secrets).

Spec: seed 002 (``RealtimeSessionCreateRequest``, ``RealtimeTranscriptionSessionCreateRequest``,
audio formats, turn detection, tools, tool choice, truncation, tracing), cross-checked against the
openai SDK. Only the GA shape lives here; the beta and xAI shapes are translated to it by
:mod:`bridge.realtime.dialects` before anything reads them.

Like every model in this package, these keep unknown fields and dump exactly what they parsed.
Strings that the spec enumerates (``eagerness``, ``tool_choice`` modes, ``include`` options, ...)
are typed ``str``: a new value from OpenAI must not break the bridge. Only union tags are closed,
and each tagged union has a catch-all member.

:class:`AudioFormat` is the one place that knows the three telephony-relevant audio encodings,
their GA objects (``{"type": "audio/pcm", "rate": 24000}``, ``{"type": "audio/pcmu"}``,
``{"type": "audio/pcma"}``), their flat beta/xAI names (``pcm16``, ``g711_ulaw``, ``g711_alaw``),
sample rates and frame sizes.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Tag

from bridge.errors import RemoteProtocolError
from bridge.realtime.items import OTHER, Num, WireModel, tag_of

__all__ = [
    "AudioFormat",
    "AudioFormatConfig",
    "AudioInputConfig",
    "AudioOutputConfig",
    "AudioTranscriptionConfig",
    "FunctionTool",
    "McpToolConfig",
    "NoiseReductionConfig",
    "OtherAudioFormat",
    "OtherSession",
    "OtherTool",
    "OtherTurnDetection",
    "PcmAudioFormat",
    "PcmaAudioFormat",
    "PcmuAudioFormat",
    "PromptReference",
    "RealtimeSession",
    "RetentionRatioTruncation",
    "SemanticVad",
    "ServerVad",
    "SessionAudioConfig",
    "SessionConfig",
    "Tool",
    "ToolChoice",
    "ToolChoiceFunction",
    "ToolChoiceMcp",
    "TracingConfig",
    "TranscriptionSession",
    "TranscriptionSessionAudio",
    "TurnDetection",
    "VoiceRef",
]

PCM_RATE = 24000
G711_RATE = 8000


class AudioFormat(StrEnum):
    """An audio encoding on the Realtime wire; the value is the flat (beta/xAI) name."""

    PCM16 = "pcm16"
    PCMU = "g711_ulaw"
    PCMA = "g711_alaw"

    @property
    def mime(self) -> str:
        """The GA format ``type``: ``audio/pcm``, ``audio/pcmu`` or ``audio/pcma``."""
        return _MIME[self]

    @property
    def sample_rate(self) -> int:
        """The default sample rate: 24000 for PCM16 (the only rate OpenAI takes), 8000 for G.711."""
        return PCM_RATE if self is AudioFormat.PCM16 else G711_RATE

    @property
    def sample_width(self) -> int:
        """Bytes per sample: 2 for PCM16, 1 for G.711."""
        return 2 if self is AudioFormat.PCM16 else 1

    def bytes_per_20ms(self, rate: int | None = None) -> int:
        """Bytes in 20 ms of mono audio (960 for PCM16 at 24 kHz, 160 for G.711)."""
        return (rate or self.sample_rate) * self.sample_width // 50

    def to_flat(self) -> str:
        return self.value

    @classmethod
    def from_flat(cls, name: object, *, param: str = "input_audio_format") -> AudioFormat:
        """``"pcm16"``/``"g711_ulaw"``/``"g711_alaw"`` -> format; anything else is a peer error."""
        if isinstance(name, str):
            try:
                return cls(name)
            except ValueError:
                pass
        raise RemoteProtocolError(
            f"unknown audio format {name!r}; expected pcm16, g711_ulaw or g711_alaw",
            code="invalid_value",
            param=param,
        )

    def to_ga(self, rate: int | None = None) -> dict[str, Any]:
        """The GA format object; PCM carries its rate (default 24000), G.711 has none."""
        if self is AudioFormat.PCM16:
            return {"type": "audio/pcm", "rate": rate or PCM_RATE}
        return {"type": self.mime}

    @classmethod
    def from_ga(cls, obj: object, *, param: str = "audio.input.format") -> AudioFormat:
        """A GA format object (or a bare mime string) -> format; anything else is a peer error."""
        mime = obj.get("type") if isinstance(obj, Mapping) else obj
        fmt = _BY_MIME.get(mime) if isinstance(mime, str) else None
        if fmt is None:
            raise RemoteProtocolError(
                f"unknown audio format {obj!r}; expected audio/pcm, audio/pcmu or audio/pcma",
                code="invalid_value",
                param=param,
            )
        return fmt

    @staticmethod
    def ga_rate(obj: object) -> int:
        """The sample rate a GA format object asks for (its ``rate``, else the format default)."""
        fmt = AudioFormat.from_ga(obj)
        rate = obj.get("rate") if isinstance(obj, Mapping) else None
        if isinstance(rate, int) and not isinstance(rate, bool) and rate > 0:
            return rate
        return fmt.sample_rate


_MIME = {
    AudioFormat.PCM16: "audio/pcm",
    AudioFormat.PCMU: "audio/pcmu",
    AudioFormat.PCMA: "audio/pcma",
}
_BY_MIME = {mime: fmt for fmt, mime in _MIME.items()}


# --------------------------------------------------------------------------- audio


class PcmAudioFormat(WireModel):
    type: Literal["audio/pcm"]
    rate: int | None = None


class PcmuAudioFormat(WireModel):
    type: Literal["audio/pcmu"]


class PcmaAudioFormat(WireModel):
    type: Literal["audio/pcma"]


class OtherAudioFormat(WireModel):
    type: str


AudioFormatConfig = Annotated[
    Annotated[PcmAudioFormat, Tag("audio/pcm")]
    | Annotated[PcmuAudioFormat, Tag("audio/pcmu")]
    | Annotated[PcmaAudioFormat, Tag("audio/pcma")]
    | Annotated[OtherAudioFormat, Tag(OTHER)],
    tag_of("type", ("audio/pcm", "audio/pcmu", "audio/pcma")),
]


class NoiseReductionConfig(WireModel):
    type: str | None = None  # near_field | far_field


class AudioTranscriptionConfig(WireModel):
    model: str | None = None
    language: str | None = None
    prompt: str | None = None


class ServerVad(WireModel):
    type: Literal["server_vad"]
    create_response: bool | None = None
    idle_timeout_ms: int | None = None
    interrupt_response: bool | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = None
    threshold: Num | None = None


class SemanticVad(WireModel):
    type: Literal["semantic_vad"]
    create_response: bool | None = None
    eagerness: str | None = None  # low | medium | high | auto
    interrupt_response: bool | None = None


class OtherTurnDetection(WireModel):
    type: str


TurnDetection = Annotated[
    Annotated[ServerVad, Tag("server_vad")]
    | Annotated[SemanticVad, Tag("semantic_vad")]
    | Annotated[OtherTurnDetection, Tag(OTHER)],
    tag_of("type", ("server_vad", "semantic_vad")),
]


class VoiceRef(WireModel):
    """A custom voice: ``{"id": "voice_..."}``."""

    id: str


class AudioInputConfig(WireModel):
    format: AudioFormatConfig | None = None
    noise_reduction: NoiseReductionConfig | None = None
    transcription: AudioTranscriptionConfig | None = None
    turn_detection: TurnDetection | None = None


class AudioOutputConfig(WireModel):
    format: AudioFormatConfig | None = None
    speed: Num | None = None
    voice: str | VoiceRef | None = None


class SessionAudioConfig(WireModel):
    input: AudioInputConfig | None = None
    output: AudioOutputConfig | None = None


# --------------------------------------------------------------------------- tools


class FunctionTool(WireModel):
    type: Literal["function"]
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None


class McpToolFilter(WireModel):
    read_only: bool | None = None
    tool_names: list[str] | None = None


class McpApprovalFilter(WireModel):
    always: McpToolFilter | None = None
    never: McpToolFilter | None = None


class McpToolConfig(WireModel):
    type: Literal["mcp"]
    server_label: str
    allowed_tools: list[str] | McpToolFilter | None = None
    authorization: str | None = None
    connector_id: str | None = None
    headers: dict[str, str] | None = None
    require_approval: str | McpApprovalFilter | None = None
    server_description: str | None = None
    server_url: str | None = None


class OtherTool(WireModel):
    type: str


Tool = Annotated[
    Annotated[FunctionTool, Tag("function")]
    | Annotated[McpToolConfig, Tag("mcp")]
    | Annotated[OtherTool, Tag(OTHER)],
    tag_of("type", ("function", "mcp")),
]


class ToolChoiceFunction(WireModel):
    type: Literal["function"]
    name: str


class ToolChoiceMcp(WireModel):
    type: Literal["mcp"]
    server_label: str
    name: str | None = None


ToolChoiceObject = Annotated[
    Annotated[ToolChoiceFunction, Tag("function")]
    | Annotated[ToolChoiceMcp, Tag("mcp")]
    | Annotated[OtherTool, Tag(OTHER)],
    tag_of("type", ("function", "mcp")),
]

#: ``"none"`` | ``"auto"`` | ``"required"`` or a function/MCP reference.
ToolChoice = str | ToolChoiceObject


# --------------------------------------------------------------------------- the rest


class TokenLimits(WireModel):
    post_instructions: int | None = None


class RetentionRatioTruncation(WireModel):
    type: str  # "retention_ratio"
    retention_ratio: Num | None = None
    token_limits: TokenLimits | None = None


class TracingConfig(WireModel):
    group_id: str | None = None
    metadata: dict[str, Any] | None = None
    workflow_name: str | None = None


class PromptReference(WireModel):
    id: str | None = None
    version: str | None = None
    variables: dict[str, Any] | None = None


class RealtimeSession(WireModel):
    """A ``type: "realtime"`` session (request, ``session.created``/``updated`` payload)."""

    type: Literal["realtime"]
    model: str | None = None
    instructions: str | None = None
    output_modalities: list[str] | None = None
    audio: SessionAudioConfig | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    truncation: str | RetentionRatioTruncation | None = None
    tracing: str | TracingConfig | None = None
    max_output_tokens: int | Literal["inf"] | None = None
    include: list[str] | None = None
    prompt: PromptReference | None = None
    # present in server payloads only
    id: str | None = None
    object: str | None = None
    expires_at: int | None = None


class TranscriptionSessionAudio(WireModel):
    input: AudioInputConfig | None = None


class TranscriptionSession(WireModel):
    """A ``type: "transcription"`` session: input audio is transcribed, no responses."""

    type: Literal["transcription"]
    audio: TranscriptionSessionAudio | None = None
    include: list[str] | None = None
    id: str | None = None
    object: str | None = None
    expires_at: int | None = None


class OtherSession(WireModel):
    """A session of a ``type`` this module does not know: kept as is."""

    type: str


SessionConfig = Annotated[
    Annotated[RealtimeSession, Tag("realtime")]
    | Annotated[TranscriptionSession, Tag("transcription")]
    | Annotated[OtherSession, Tag(OTHER)],
    tag_of("type", ("realtime", "transcription")),
]
