"""What the control plane, the metrics and the dashboard see of a live call, for any leg.

:class:`LiveCall` is the seam: the routes, the sideband, the metrics and the dashboard work
through it and never reach into a leg's signalling or media (no SIP core, no RTP endpoint,
no peer connection). :class:`~bridge.calls.scope.CallScope` implements it for both legs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from bridge.calls.end import EndReason
from bridge.calls.info import CallInfo
from bridge.calls.observers import EventFanout
from bridge.calls.turns import TurnLatency
from bridge.config import AgentProfile

__all__ = ["LiveCall"]


class LiveCall(Protocol):
    id: str
    info: CallInfo
    profile: AgentProfile
    #: every server event of the call (sideband sockets, dashboards), bounded per observer
    events: EventFanout

    @property
    def leg(self) -> str:
        """``sip`` or ``webrtc``."""
        ...

    @property
    def ended(self) -> bool: ...

    @property
    def session(self) -> Mapping[str, Any]:
        """The agent session's configuration as the upstream last confirmed it."""
        ...

    def end(self, reason: EndReason, status: int | None = None) -> None:
        """End the call (BYE, or close the peer connection); the first reason wins."""
        ...

    def stats(self) -> dict[str, Any]:
        """The call's media counters, as recorded when it ends."""
        ...

    def levels(self) -> tuple[float | None, float | None]:
        """dBFS of the latest 20 ms each way (caller -> agent, agent -> caller); None where
        nothing flowed lately."""
        ...

    def barge_in_latencies_ms(self) -> tuple[int, list[float]]:
        """How many barge-ins were timed so far, and the latest latencies (ms)."""
        ...

    def turn_latencies(self) -> tuple[int, list[TurnLatency]]:
        """How many turns were timed so far, and the latest ones."""
        ...

    def recording_status(self) -> dict[str, Any] | None:
        """``{mode, format, sample_rate, url, paused}`` while the call records, else None."""
        ...

    def pause_recording(self, paused: bool) -> bool | None:
        """Pause or resume the recording: None when the call does not record, False when it
        already was so."""
        ...

    def say(self, item: dict[str, Any], *, respond: bool) -> None:
        """Add a conversation item (and a response after the active one, if ``respond``)."""
        ...

    def send_dtmf(self, digits: str) -> bool:
        """RFC 4733 digits to the caller; False where the leg cannot send them now."""
        ...

    def hold(self, on: bool) -> None:
        """Put the caller on hold (``on``) or resume: at once here, the peer told by re-INVITE;
        idempotent. Raises :class:`~bridge.errors.NotHoldable` where the leg cannot now."""
        ...

    async def client_event(self, event: dict[str, Any]) -> None:
        """A GA client event into the call (through call control)."""
        ...

    async def transfer(self, target: str) -> None:
        """Blind transfer (SIP REFER); raises :class:`~bridge.errors.NotTransferable`."""
        ...
