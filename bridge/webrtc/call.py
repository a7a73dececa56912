"""One live browser call: a scope that owns its peer connection, agent session and media path.

A :class:`WebRtcCall` has the same minimal interface as the SIP :class:`~bridge.calls.call.Call`
(``id``, ``info``, ``agent``, ``events``, ``end()``, ``ended``, ``send_client_event()``,
``run()``), and the :class:`~bridge.calls.manager.CallManager` owns it the same way
(``manager.calls``), so the control plane and the sideband treat both legs alike.

The ``oai-events`` data channel carries GA events both ways, as with OpenAI's WebRTC service:
client events go to the agent session (which translates them to the upstream's dialect and
sets ``audio.*.format`` itself in every ``session.update``); server events come back except
``response.output_audio.delta`` (agent audio travels on the media track). The server owns
playout here: :class:`~bridge.calls.control.CallControl`, the same call control as phone calls,
emits ``output_audio_buffer.started`` / ``.stopped`` / ``.cleared`` from what was actually
played, does barge-in (flush, cancel, truncate each item at what the caller heard), keeps
``response.create`` from colliding with an active response, and runs the profile's tools.

The call ends (reasons recorded): ``ice-failed``, ``ice-timeout`` (never connected),
``peer-closed``, ``datachannel-closed``, ``media-timeout`` (no caller audio for
``calls.rtp_timeout_s``), ``max-duration``, ``upstream-lost``,
``local-hangup``, ``shutdown``, ``internal-error``. The time limits are the call's
:class:`~bridge.calls.watchdog.Watchdog`, checked on the shared tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson
from aiortc import RTCDataChannel, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bridge.calls.agent_session import AgentSession
from bridge.calls.control import TransferCheck
from bridge.calls.end import EndReason
from bridge.calls.info import CallInfo
from bridge.calls.scope import CallScope, Task
from bridge.calls.ticker import FrameTicker
from bridge.calls.watchdog import Watchdog
from bridge.config import AgentProfile
from bridge.recording.writer import RecordingWriter
from bridge.records import CallStore
from bridge.security import SecurityLog
from bridge.webrtc.media import WebRtcMedia
from media.clock import Clock

__all__ = ["CHANNEL_LABEL", "WebRtcCall"]

log = logging.getLogger(__name__)

#: the largest client event taken from the data channel: the a=max-message-size aiortc puts
#: in our answer (RFC 8841); a larger one is answered with an error event and dropped
MAX_CLIENT_EVENT_BYTES = 262144

CHANNEL_LABEL = "oai-events"
#: Server events held until the data channel opens; client events waiting for the agent.
_PENDING_MAX = 512
_INBOX_MAX = 1024
#: Audio travels on the media track; the client got the call's own ``session.created``.
_NOT_ON_CHANNEL = frozenset({"response.output_audio.delta", "session.created"})


def _dumps(event: Mapping[str, Any]) -> str:
    return orjson.dumps(event).decode()


class WebRtcCall(CallScope):
    leg: ClassVar[str] = "webrtc"

    def __init__(
        self,
        info: CallInfo,
        *,
        pc: RTCPeerConnection,
        agent: AgentSession,
        media: WebRtcMedia,
        profile: AgentProfile,
        store: CallStore,
        ticker: FrameTicker,
        watchdog: Watchdog,
        clock: Clock,
        transfers: TransferCheck | None = None,
        security: SecurityLog | None = None,
        recordings: RecordingWriter | None = None,
    ) -> None:
        self.pc = pc
        self.media = media
        self._connected = False
        self.channel: RTCDataChannel | None = None
        super().__init__(
            info,
            agent=agent,
            media=media,
            profile=profile,
            store=store,
            ticker=ticker,
            watchdog=watchdog,
            clock=clock,
            transfers=transfers,
            security=security,
            recordings=recordings,
        )
        self.attach_media(media.caller, media.agent)
        self._pending: list[str] = []  # server events before the channel opened
        self.pending_dropped = 0
        self._inbox: asyncio.Queue[str] = asyncio.Queue(_INBOX_MAX)
        self._remote_track: asyncio.Future[MediaStreamTrack] = (
            asyncio.get_running_loop().create_future()
        )
        self.channel_in = 0
        self.channel_out = 0
        self._counter = 0
        media.on_playback = self.on_playback
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)
        pc.on("connectionstatechange", self._on_connection_state)

    # -- peer connection callbacks (synchronous) -----------------------------------------

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and not self._remote_track.done():
            self._remote_track.set_result(track)

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and not self._connected:
            self._connected = True
            self.watchdog.connected(self.clock.now())
            self.store.log_event(self.id, "connected", {})
            if not self.ended:
                self.add_tick_sink(self.media)  # playout runs only while someone can hear it
        elif state == "failed":
            self.end(EndReason.ICE_FAILED)
        elif state == "closed":
            self.end(EndReason.PEER_CLOSED)

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != CHANNEL_LABEL or self.channel is not None:
            return
        self.channel = channel
        channel.on("message", self._on_channel_message)
        channel.on("close", lambda: self.end(EndReason.DATACHANNEL_CLOSED))
        if channel.readyState == "open":
            self._on_channel_open()
        else:
            channel.on("open", self._on_channel_open)

    def _on_channel_open(self) -> None:
        self._send_to_channel(
            {
                "type": "session.created",
                "event_id": self._event_id(),
                "session": {**self.agent.session, "id": self.id, "object": "realtime.session"},
            }
        )
        pending, self._pending = self._pending, []
        for text in pending:
            self._channel_send(text)

    def _on_channel_message(self, message: str | bytes) -> None:
        if len(message) > MAX_CLIENT_EVENT_BYTES:  # over what our SDP told the browser
            self.channel_in += 1
            self._error_to_client(
                f"client event larger than {MAX_CLIENT_EVENT_BYTES} bytes; dropped", "too_large"
            )
            return
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        self.channel_in += 1
        try:
            self._inbox.put_nowait(message)
        except asyncio.QueueFull:
            self._error_to_client("rtbridge is behind on client events; event dropped", "busy")

    # -- lifetime ------------------------------------------------------------------------

    def _tasks(self) -> list[Task]:
        return [("client events", self._client_events()), ("caller audio", self._caller_audio())]

    def levels(self) -> tuple[float | None, float | None]:
        return self.media.levels()

    async def _close_leg(self) -> None:
        self.media.track.stop()
        with contextlib.suppress(Exception):
            await self.pc.close()

    def stats(self) -> dict[str, Any]:
        m, p = self.media.stats, self.media.playout.stats
        return {
            "frames_in": m.frames_in,
            "frames_to_agent": m.frames_to_agent,
            "frames_dropped_upstream": m.frames_dropped_upstream,
            "packets_over_rate": m.packets_over_rate,
            "packets_out": m.packets_out,
            "audio_packets_out": m.audio_packets_out,
            "packets_dropped_out": m.packets_dropped_out,
            "playout_underruns": p.underruns,
            "agent_audio_dropped_ms": round(self.media.playout.overflow_ms),
            "foreign_datagrams": self.media.foreign.dropped,
            "channel_in": self.channel_in,
            "channel_out": self.channel_out,
            "channel_pending_dropped": self.pending_dropped,
            "observer_drops": self.events.dropped,
            "session_format": self.agent.format.value,
            "upstream_reconnects": self.agent.renewals,
            "upstream_renewal_gaps_ms": list(self.agent.renewal_gaps_ms),
        }

    # -- the call's tasks ----------------------------------------------------------------

    async def _caller_audio(self) -> None:
        if self.media.inline:
            return  # packets arrive through media.on_rtp, decoded inline
        track = await self._remote_track
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            self.media.on_frame(frame, self.clock.now())

    async def _client_events(self) -> None:
        while True:
            text = await self._inbox.get()
            try:
                event = orjson.loads(text)
            except orjson.JSONDecodeError:
                self._error_to_client("the data channel carries JSON events", "invalid_json")
                continue
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                self._error_to_client("an event is a JSON object with a 'type'", "invalid_event")
                continue
            await self.client_event(event)

    def _publish(self, event: Mapping[str, Any]) -> None:
        """A server event to observers and (audio deltas excepted) the data channel."""
        self.events.publish(event)
        if event.get("type") not in _NOT_ON_CHANNEL:
            self._channel_send(_dumps(event))

    # -- the data channel ----------------------------------------------------------------

    def _channel_send(self, text: str) -> None:
        channel = self.channel
        if channel is None or channel.readyState != "open":
            if len(self._pending) < _PENDING_MAX:
                self._pending.append(text)
            else:
                self.pending_dropped += 1
            return
        try:
            channel.send(text)
            self.channel_out += 1
        except Exception as exc:  # the channel closed under us; its close event ends the call
            log.debug("call %s: data channel send failed: %s", self.id, exc)

    def _send_to_channel(self, event: dict[str, Any]) -> None:
        self._channel_send(_dumps(event))

    def _error_to_client(self, message: str, code: str) -> None:
        self._send_to_channel(
            {
                "type": "error",
                "event_id": self._event_id(),
                "error": {"type": "invalid_request_error", "code": code, "message": message},
            }
        )

    def _event_id(self) -> str:
        self._counter += 1
        return f"event_rtb_{self.id[-8:]}_{self._counter}"
