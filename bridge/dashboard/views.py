"""What the dashboard shows, as small JSON objects built from live calls and call records.

Pure functions over the call manager's live calls (:class:`~bridge.calls.live.LiveCall`, SIP
and browser legs alike) and :class:`~bridge.records.CallRecord` rows. The
stream sends a call's description once and afterwards only the few numbers that move (levels,
jitter, loss), so a hundred live calls cost the browser a few kilobytes a second.
"""

from __future__ import annotations

import math
from typing import Any

from bridge.calls.live import LiveCall
from bridge.records import CallEvent, CallRecord

__all__ = [
    "call_stats",
    "ended_view",
    "live_view",
    "log_entry",
    "slim_event",
]

#: Meter floor: quieter than this shows as an empty meter.
SILENCE_DBFS = -90.0
_TEXT_MAX = 2000


def live_view(call: LiveCall) -> dict[str, Any]:
    """A live call's row: who, how, since when (epoch seconds)."""
    i = call.info
    return {
        "id": call.id,
        "state": "answered" if i.answered_at is not None else "offered",
        "leg": call.leg,
        "direction": i.direction,
        "from": i.from_uri,
        "to": i.to_uri,
        "profile": i.profile_name,
        "codec": i.codec,
        "session_format": i.session_format,
        "offered_at": i.offered_at,
        "answered_at": i.answered_at,
        "on_hold": i.on_hold,
    }


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _dbfs(value: object) -> float | None:
    v = _num(value)
    if v is None:
        return None
    return round(max(v, SILENCE_DBFS), 1)


def call_stats(call: LiveCall, *, full: bool = False) -> dict[str, Any]:
    """The numbers that move: jitter (ms), loss (% of expected caller packets), the audio level
    of each direction (dBFS of the latest frame: ``in`` from the caller, ``out`` to the caller),
    hold. ``full`` adds every media counter of the call (the detail panel shows them)."""
    s = call.stats()
    lost = _num(s.get("lost")) or 0.0
    received = _num(s.get("rtp_in")) or 0.0
    expected = lost + received
    level_in, level_out = call.levels()
    out: dict[str, Any] = {
        "jitter_ms": _num(s.get("jitter_ms")),
        "loss_pct": round(100.0 * lost / expected, 2) if expected else 0.0,
        "level_in": _dbfs(level_in),
        "level_out": _dbfs(level_out),
        "on_hold": call.info.on_hold,
    }
    if full:
        out["counters"] = {k: v for k, v in s.items() if isinstance(v, int | float | str | None)}
    return out


def ended_view(rec: CallRecord) -> dict[str, Any]:
    """A finished (or refused) call, with why it ended."""
    return {
        "id": rec.call_id,
        "state": rec.state,
        "leg": rec.leg,
        "direction": rec.direction,
        "from": rec.from_uri,
        "to": rec.to_uri,
        "profile": rec.profile,
        "codec": rec.codec,
        "offered_at": rec.offered_at,
        "answered_at": rec.answered_at,
        "ended_at": rec.ended_at,
        "end_reason": rec.end_reason,
        "sip_status": rec.sip_status,
    }


def _clip(value: object) -> object:
    if isinstance(value, str) and len(value) > _TEXT_MAX:
        return value[:_TEXT_MAX] + "…"
    return value


def log_entry(ev: CallEvent) -> dict[str, Any]:
    """One entry of a call's stored event log (transcripts, DTMF, tool calls, errors, ...)."""
    return {
        "seq": ev.seq,
        "ts": ev.ts,
        "kind": ev.kind,
        "data": {k: _clip(v) for k, v in ev.data.items()},
    }


_KEEP = ("item_id", "response_id", "event", "name", "call_id", "audio_end_ms")


def slim_event(event: dict[str, Any], ts: float) -> dict[str, Any] | None:
    """A live server event of a call, reduced to what the detail panel shows; None to skip
    (audio and text deltas: the finished transcript follows)."""
    kind = event.get("type")
    if not isinstance(kind, str) or kind.endswith(".delta"):
        return None
    out: dict[str, Any] = {"type": kind, "ts": ts}
    for k in _KEEP:
        if k in event:
            out[k] = _clip(event[k])
    if kind == "response.output_audio_transcript.done":
        out["text"] = _clip(event.get("transcript", ""))
        out["who"] = "agent"
    elif kind == "conversation.item.input_audio_transcription.completed":
        out["text"] = _clip(event.get("transcript", ""))
        out["who"] = "user"
    elif kind == "response.function_call_arguments.done":
        out["arguments"] = _clip(event.get("arguments", ""))
    elif kind in ("response.created", "response.done"):
        resp = event.get("response")
        if isinstance(resp, dict):
            out["response_id"] = resp.get("id")
            out["status"] = resp.get("status")
    elif kind == "error":
        err = event.get("error")
        if isinstance(err, dict):
            out["message"] = _clip(err.get("message"))
            out["code"] = err.get("code")
    return out
