"""What the dashboard shows of a call: loss as a share of the expected packets, levels rounded
and floored, non-numbers as gaps; live server events reduced to what the panel prints."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bridge.calls.info import CallInfo
from bridge.dashboard.views import call_stats, live_view, slim_event


@dataclass
class FakeMedia:
    in_db: float | None
    out_db: float | None

    def levels(self) -> tuple[float | None, float | None]:
        return self.in_db, self.out_db


@dataclass
class FakeCall:
    counters: dict[str, Any]
    media: Any
    id: str = "call_1"
    info: CallInfo = field(
        default_factory=lambda: CallInfo(
            "call_1", "inbound", "sip:a@x", "sip:b@y", "default", None, "PCMU", "g711_ulaw", 1.0
        )
    )

    leg: str = "sip"

    def stats(self) -> dict[str, Any]:
        return self.counters

    def levels(self) -> tuple[float | None, float | None]:
        levels = getattr(self.media, "levels", None)
        return levels() if callable(levels) else (None, None)


def test_loss_jitter_and_levels() -> None:
    call = FakeCall({"lost": 1, "rtp_in": 99, "jitter_ms": 3.25}, FakeMedia(-20.04, -200.0))
    s = call_stats(call)
    assert s == {
        "jitter_ms": 3.25,
        "loss_pct": 1.0,
        "level_in": -20.0,
        "level_out": -90.0,  # floored: the meter's silence
        "on_hold": False,
    }
    assert "counters" not in s


def test_missing_or_odd_numbers_are_gaps() -> None:
    call = FakeCall({"jitter_ms": math.nan, "rtp_in": 0, "note": [1]}, object())
    s = call_stats(call, full=True)
    assert s["jitter_ms"] is None and s["loss_pct"] == 0.0
    assert s["level_in"] is None and s["level_out"] is None  # a leg without levels()
    assert set(s["counters"]) == {"jitter_ms", "rtp_in"}  # scalars only


def test_live_view_says_ringing_until_answered() -> None:
    call = FakeCall({}, object())
    assert live_view(call)["state"] == "offered" and live_view(call)["leg"] == "sip"
    call.info.answered_at = 2.0
    assert live_view(call)["state"] == "answered"


def test_slim_events() -> None:
    assert slim_event({"type": "response.output_audio.delta", "delta": "AAAA"}, 1.0) is None
    assert slim_event({"type": "response.output_audio_transcript.delta"}, 1.0) is None
    said = slim_event(
        {"type": "response.output_audio_transcript.done", "item_id": "i1", "transcript": "hi"}, 2.0
    )
    assert said == {
        "type": "response.output_audio_transcript.done",
        "ts": 2.0,
        "item_id": "i1",
        "text": "hi",
        "who": "agent",
    }
    heard = slim_event(
        {"type": "conversation.item.input_audio_transcription.completed", "transcript": "x" * 5000},
        3.0,
    )
    assert heard is not None and heard["who"] == "user" and len(heard["text"]) == 2001
    done = slim_event({"type": "response.done", "response": {"id": "r1", "status": "cancelled"}}, 4)
    assert done is not None and (done["response_id"], done["status"]) == ("r1", "cancelled")
    err = slim_event({"type": "error", "error": {"message": "boom", "code": "x"}}, 5.0)
    assert err is not None and (err["message"], err["code"]) == ("boom", "x")
    digit = slim_event({"type": "input_audio_buffer.dtmf_event_received", "event": "5"}, 6.0)
    assert digit == {"type": "input_audio_buffer.dtmf_event_received", "ts": 6.0, "event": "5"}
