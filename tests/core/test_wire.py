"""Frame helpers: the templated append is exact JSON; parse errors are precise; redaction."""

from __future__ import annotations

import base64
import json

import pytest

from bridge.errors import LocalProtocolError, RemoteProtocolError
from bridge.realtime import wire


def test_append_frame_is_exact_json() -> None:
    audio = bytes(range(256)) * 3
    for event_id in (None, "event_1"):
        obj = json.loads(wire.append_frame(audio, event_id))
        assert obj["type"] == "input_audio_buffer.append"
        assert base64.b64decode(obj["audio"]) == audio
        assert obj.get("event_id") == event_id


def test_append_frame_refuses_unsafe_event_id() -> None:
    with pytest.raises(LocalProtocolError):
        wire.append_frame(b"\0\0", 'a"b')


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{", "invalid_json"),
        ("[1]", "invalid_json"),
        ('{"x":1}', "missing_required_parameter"),
        ('{"type":5}', "missing_required_parameter"),
    ],
)
def test_loads_errors(frame: str, code: str) -> None:
    with pytest.raises(RemoteProtocolError) as err:
        wire.loads(frame)
    assert err.value.code == code


def test_loads_dumps_round_trip_keeps_unknown_fields() -> None:
    frame = '{"type":"x.unknown","nested":{"a":[1,2,null]},"z":"é"}'
    assert wire.loads(wire.dumps(wire.loads(frame))) == json.loads(frame)


def test_redact_hides_audio_not_text() -> None:
    delta = {"type": "response.output_audio.delta", "delta": "A" * 4000}
    assert wire.redact(delta)["delta"] == "<4000 chars base64>"
    text = {"type": "response.output_text.delta", "delta": "hello"}
    assert wire.redact(text)["delta"] == "hello"
    item = {
        "type": "conversation.item.create",
        "item": {"content": [{"type": "input_audio", "audio": "QUJD"}]},
    }
    assert wire.redact(item)["item"]["content"][0]["audio"] == "<4 chars base64>"
