"""Whatever a client sends, the core answers with events and never raises (socket stays open)."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.agent import AgentCore
from bridge.agent.core import CLIENT_EVENT_TYPES
from bridge.agent.ids import IdFactory
from bridge.config import AgentSettings

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_keys = st.sampled_from(
    [
        "audio",
        "item",
        "item_id",
        "content_index",
        "audio_end_ms",
        "response",
        "response_id",
        "previous_item_id",
        "event_id",
    ]
)
_direction = st.one_of(
    _json,
    st.dictionaries(
        st.sampled_from(["format", "turn_detection", "voice", "transcription"]), _json, max_size=3
    ),
)
_audio = st.one_of(_json, st.dictionaries(st.sampled_from(["input", "output"]), _direction))
_session_like = st.one_of(
    _json,
    st.fixed_dictionaries(
        {"type": st.sampled_from(["realtime", "transcription", 5])},
        optional={
            "audio": _audio,
            "instructions": _json,
            "tools": _json,
            "tool_choice": _json,
            "output_modalities": _json,
        },
    ),
)
_item = st.one_of(
    _json,
    st.fixed_dictionaries(
        {"type": st.sampled_from(["message", "function_call", "function_call_output", 3])},
        optional={
            "role": st.sampled_from(["user", "assistant", "system", None]),
            "content": st.one_of(
                _json,
                st.lists(
                    st.dictionaries(st.sampled_from(["type", "text", "audio"]), _json, max_size=3),
                    max_size=2,
                ),
            ),
            "id": _json,
            "call_id": _json,
            "output": _json,
        },
    ),
)
_event = st.builds(
    lambda t, fields, session, item: {"type": t, **fields, "session": session, "item": item},
    st.sampled_from([*CLIENT_EVENT_TYPES, "session.update", "bogus.event"]),
    st.dictionaries(_keys, _json, max_size=4),
    _session_like,
    _item,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_event, min_size=1, max_size=6))
def test_core_never_raises(events: list[dict[str, Any]]) -> None:
    core = AgentCore(AgentSettings(port=0, tool_after_turns=1, tool_name="t"), ids=IdFactory(1))
    core.opening()
    for ev in events:
        try:
            frame = orjson.dumps(ev).decode()
        except TypeError:
            continue
        out = core.receive(frame)
        for _ in range(50):
            out += core.pump()
        assert all(isinstance(o.get("type"), str) for o in out)
        orjson.dumps(out)  # everything sent is serialisable
