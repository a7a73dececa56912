"""Session config and conversation items: typed members, catch-alls, AudioFormat helpers."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter

from bridge.errors import RemoteProtocolError
from bridge.realtime import items as I
from bridge.realtime import session as S
from bridge.realtime.session import AudioFormat

from ._fixtures import load

ITEM = TypeAdapter(I.ConversationItem)
SESSION = TypeAdapter(S.SessionConfig)


def _dump(adapter: TypeAdapter[Any], value: Any) -> Any:
    return adapter.dump_python(value, mode="json", exclude_unset=True)


# --------------------------------------------------------------------------- AudioFormat


@pytest.mark.parametrize(
    ("fmt", "flat", "ga", "rate", "frame"),
    [
        (AudioFormat.PCM16, "pcm16", {"type": "audio/pcm", "rate": 24000}, 24000, 960),
        (AudioFormat.PCMU, "g711_ulaw", {"type": "audio/pcmu"}, 8000, 160),
        (AudioFormat.PCMA, "g711_alaw", {"type": "audio/pcma"}, 8000, 160),
    ],
)
def test_audio_format_helpers(
    fmt: AudioFormat, flat: str, ga: dict[str, Any], rate: int, frame: int
) -> None:
    assert AudioFormat.from_flat(flat) is fmt
    assert fmt.to_flat() == flat
    assert fmt.to_ga() == ga
    assert AudioFormat.from_ga(ga) is fmt
    assert AudioFormat.from_ga(ga["type"]) is fmt
    assert fmt.sample_rate == rate
    assert fmt.bytes_per_20ms() == frame
    assert AudioFormat.ga_rate(ga) == rate


def test_pcm_at_other_rates() -> None:
    assert AudioFormat.PCM16.to_ga(16000) == {"type": "audio/pcm", "rate": 16000}
    assert AudioFormat.ga_rate({"type": "audio/pcm", "rate": 16000}) == 16000
    assert AudioFormat.ga_rate({"type": "audio/pcm"}) == 24000
    assert AudioFormat.PCM16.bytes_per_20ms(16000) == 640
    assert AudioFormat.PCM16.bytes_per_20ms(48000) == 1920


@pytest.mark.parametrize("bad", ["pcm8", "", None, 16, "audio/pcm"])
def test_unknown_flat_format_is_a_peer_error(bad: Any) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        AudioFormat.from_flat(bad, param="session.input_audio_format")
    assert (info.value.code, info.value.param) == ("invalid_value", "session.input_audio_format")


@pytest.mark.parametrize("bad", [{"type": "audio/opus"}, {}, "pcm16", None, {"type": 5}])
def test_unknown_ga_format_is_a_peer_error(bad: Any) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        AudioFormat.from_ga(bad)
    assert (info.value.code, info.value.param) == ("invalid_value", "audio.input.format")


# --------------------------------------------------------------------------- session


def _sessions() -> list[Any]:
    return [
        pytest.param(p.values[0]["session"], id=p.id)
        for side in ("client", "server")
        for p in load("ga", side)
        if p.values[0]["type"].startswith("session.")
    ]


@pytest.mark.parametrize("session", _sessions())
def test_session_fixtures_are_typed(session: dict[str, Any]) -> None:
    parsed = SESSION.validate_python(session)
    expected = S.TranscriptionSession if session["type"] == "transcription" else S.RealtimeSession
    assert type(parsed) is expected
    assert _dump(SESSION, parsed) == session


def test_session_members_are_typed() -> None:
    [ev] = [p.values[0] for p in load("ga", "client") if p.id == "session.update@telephony"]
    s = SESSION.validate_python(ev["session"])
    assert isinstance(s, S.RealtimeSession)
    assert s.audio and s.audio.input and s.audio.output
    assert isinstance(s.audio.input.format, S.PcmuAudioFormat)
    assert isinstance(s.audio.input.turn_detection, S.ServerVad)
    assert s.audio.input.turn_detection.idle_timeout_ms == 6000
    assert isinstance(s.audio.output.voice, S.VoiceRef)
    assert s.tools is not None
    assert [type(t) for t in s.tools] == [S.FunctionTool, S.McpToolConfig]
    assert isinstance(s.tool_choice, S.ToolChoiceFunction)
    assert isinstance(s.truncation, S.RetentionRatioTruncation)
    assert isinstance(s.tracing, S.TracingConfig)
    assert s.max_output_tokens == 1024
    [ev] = [p.values[0] for p in load("ga", "client") if p.id == "session.update"]
    s = SESSION.validate_python(ev["session"])
    assert isinstance(s, S.RealtimeSession) and s.audio and s.audio.input
    assert isinstance(s.audio.input.turn_detection, S.SemanticVad)
    assert s.audio.input.turn_detection.eagerness == "medium"
    assert s.max_output_tokens == "inf"
    assert s.tracing == "auto"


def test_unknown_session_type_survives() -> None:
    raw = {"type": "translation", "languages": ["fr"]}
    parsed = SESSION.validate_python(raw)
    assert type(parsed) is S.OtherSession
    assert _dump(SESSION, parsed) == raw


# --------------------------------------------------------------------------- items

ITEMS = [
    (
        {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "x"}]},
        I.SystemMessageItem,
    ),
    (
        {"type": "message", "role": "user", "content": [{"type": "input_audio", "audio": "AAAA"}]},
        I.UserMessageItem,
    ),
    (
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_audio", "transcript": "hi"}],
        },
        I.AssistantMessageItem,
    ),
    ({"type": "message", "role": "developer", "content": []}, I.OtherMessageItem),
    ({"type": "function_call", "name": "f", "arguments": "{}", "call_id": "c"}, I.FunctionCallItem),
    ({"type": "function_call_output", "call_id": "c", "output": ""}, I.FunctionCallOutputItem),
    (
        {"type": "mcp_approval_response", "id": "a", "approval_request_id": "r", "approved": False},
        I.McpApprovalResponseItem,
    ),
    (
        {
            "type": "mcp_list_tools",
            "id": "l",
            "server_label": "s",
            "tools": [{"name": "t", "input_schema": {}}],
        },
        I.McpListToolsItem,
    ),
    (
        {
            "type": "mcp_call",
            "id": "m",
            "server_label": "s",
            "name": "t",
            "arguments": "{}",
            "error": {"type": "http_error", "code": 502, "message": "bad gateway"},
        },
        I.McpCallItem,
    ),
    (
        {
            "type": "mcp_approval_request",
            "id": "r",
            "server_label": "s",
            "name": "t",
            "arguments": "{}",
        },
        I.McpApprovalRequestItem,
    ),
    ({"type": "item_reference", "id": "item_1"}, I.OtherItem),
]


@pytest.mark.parametrize(("raw", "cls"), ITEMS)
def test_items_are_typed_and_round_trip(raw: dict[str, Any], cls: type[Any]) -> None:
    parsed = ITEM.validate_python(raw)
    assert type(parsed) is cls
    assert _dump(ITEM, parsed) == raw


@pytest.mark.parametrize(
    ("part", "cls"),
    [
        ({"type": "input_text", "text": "a"}, I.InputTextContent),
        ({"type": "input_audio", "audio": "AAAA", "transcript": None}, I.InputAudioContent),
        (
            {"type": "input_image", "image_url": "data:image/png;base64,AA==", "detail": "low"},
            I.InputImageContent,
        ),
        ({"type": "output_text", "text": "a"}, I.OutputTextContent),
        ({"type": "output_audio", "audio": "AAAA", "transcript": "a"}, I.OutputAudioContent),
        ({"type": "text", "text": "a"}, I.TextContent),
        ({"type": "audio", "transcript": "a"}, I.AudioContent),
        ({"type": "input_file", "file_id": "f"}, I.OtherContent),
        ({"transcript": "no type"}, I.OtherContent),
    ],
)
def test_content_parts_are_typed(part: dict[str, Any], cls: type[Any]) -> None:
    raw = {"type": "message", "role": "assistant", "content": [part]}
    parsed = ITEM.validate_python(raw)
    assert isinstance(parsed, I.AssistantMessageItem)
    assert type(parsed.content[0]) is cls
    assert _dump(ITEM, parsed) == raw


def test_item_repr_hides_audio() -> None:
    parsed = ITEM.validate_python(
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_audio", "audio": "QUJD" * 1000}],
        }
    )
    assert "QUJDQUJD" not in repr(parsed)
    assert "4000 chars base64" in repr(parsed)


def test_models_are_strict() -> None:
    with pytest.raises(ValueError):
        ITEM.validate_python({"type": "function_call_output", "call_id": "c", "output": 5})
    with pytest.raises(ValueError):
        ITEM.validate_python(
            {
                "type": "mcp_approval_response",
                "id": "a",
                "approval_request_id": "r",
                "approved": "yes",
            }
        )
