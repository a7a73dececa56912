"""What the control plane, the dashboard and the records show about a call, for any leg."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["CallInfo"]


@dataclass(slots=True)
class CallInfo:
    """What the control plane and records show about a call."""

    call_id: str
    direction: str
    from_uri: str
    to_uri: str
    profile_name: str
    trunk: str | None
    codec: str
    session_format: str
    offered_at: float
    answered_at: float | None = None
    ended_at: float | None = None
    end_reason: str | None = None
    sip_status: int | None = None
    on_hold: bool = False
    #: who holds the call while it is on hold: ``us`` (the API), ``peer`` (its re-INVITE), ``both``
    held_by: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
