"""What every call is, whatever its leg: a scope that owns its tasks and is released once.

:class:`CallScope` holds the lifetime shared by the SIP :class:`~bridge.calls.call.Call` and the
browser :class:`~bridge.webrtc.call.WebRtcCall`:

* ``run()`` is the call's ``async with asyncio.TaskGroup()``: the leg's tasks, the agent's
  events and call control's writer run in it until the call ends; then they are cancelled and
  awaited, never left behind, and the call is released in one place (its tick sinks, observers,
  the leg itself, the agent session that someone pays for) and its record written.
* Any unexpected exception in one of those tasks, in one of its tick sinks or in a callback a
  leg reports through :meth:`crashed`, ends that call with ``internal-error`` (the leg says
  goodbye: BYE, or the peer connection closed; the traceback is logged once) and touches no
  other call.
* ``end(reason)`` is idempotent: the first :class:`~bridge.calls.end.EndReason` wins.
* The agent's events arrive typed (:mod:`bridge.calls.agent_events`) and are dispatched here,
  by one ``match``, to call control, the leg's media, the event log and the call's observers.
  An upstream session that ends does not end the call: the agent session renews it and says
  so once (``rtbridge.session_renewed``, logged as ``session.renewed``); a response the old
  session left unfinished is over. Truncations are logged with the transcript of what the
  caller heard.

A leg supplies :meth:`_tasks`, :meth:`_tick_sinks`, :meth:`_close_leg` and :meth:`stats`. The
scope satisfies :class:`~bridge.calls.live.LiveCall`, all the control plane sees of a call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from typing import Any, ClassVar, Final, Protocol

from bridge.calls.agent_events import (
    AgentEvent,
    AudioDelta,
    BufferEvent,
    FunctionCallDone,
    ItemTruncated,
    Malformed,
    ResponseCreated,
    ResponseDone,
    SessionRenewed,
    SpeechStarted,
    SpeechStopped,
    Transcript,
    UpstreamErrorEvent,
)
from bridge.calls.agent_session import AgentSession
from bridge.calls.control import CallControl, MediaControl, TransferCheck
from bridge.calls.end import EndReason
from bridge.calls.info import CallInfo
from bridge.calls.observers import EventFanout
from bridge.calls.ticker import FrameTicker, TickSink
from bridge.calls.turns import TurnLatency, TurnTimer
from bridge.calls.watchdog import Watchdog
from bridge.config import AgentProfile
from bridge.errors import NotHoldable, NotTransferable, UpstreamError
from bridge.recording.call import CallRecording
from bridge.recording.writer import RecordingWriter
from bridge.records import CallStore
from bridge.security import SecurityKind, SecurityLog
from media.agent_path import AgentPath
from media.caller_path import AGENT_RATE, CallerPath
from media.clock import Clock
from media.playout import MAX_BUFFERED_S, PlaybackEvent, PlaybackStarted, PlayoutEncoding
from media.recording import RecordingMixer, RecordingMode
from sip.ratelimit import TokenBucket

__all__ = ["CallScope", "LegMedia"]

log = logging.getLogger(__name__)

#: Characters of an agent's text (a transcript, an error's message) kept in the call's event
#: log; longer text is cut and the row marked ``truncated`` with the ``length`` it had.
LOGGED_TEXT_MAX: Final = 16 * 1024
#: The upstream's ``error`` events logged per call: a burst of 20, then one a second; the rest
#: are counted (the next logged row's ``suppressed``, the record's
#: ``upstream_errors_not_logged``).
UPSTREAM_ERROR_BURST: Final = 20
UPSTREAM_ERRORS_PER_S: Final = 1.0


def _clipped(text: str) -> tuple[str, bool]:
    if len(text) <= LOGGED_TEXT_MAX:
        return text, False
    return text[:LOGGED_TEXT_MAX], True


def _text_row(data: dict[str, Any], key: str, text: str | None) -> dict[str, Any]:
    """``data`` with ``text`` under ``key``, cut to :data:`LOGGED_TEXT_MAX`."""
    if text is None:
        data[key] = None
        return data
    kept, cut = _clipped(text)
    data[key] = kept
    if cut:
        data["truncated"] = True
        data["length"] = len(text)
    return data


def _error_row(detail: Mapping[str, Any]) -> dict[str, Any]:
    """An upstream error's fields for the event log: text cut to :data:`LOGGED_TEXT_MAX`,
    anything but text and numbers as (cut) text."""
    row: dict[str, Any] = {}
    cut = False
    for key, value in list(detail.items())[:32]:
        if not isinstance(value, str | int | float | bool | None):
            value = str(value)
        if isinstance(value, str):
            value, clipped = _clipped(value)
            cut = cut or clipped
        row[str(key)[:64]] = value
    if cut:
        row["truncated"] = True
    return row


class LegMedia(MediaControl, Protocol):
    """A leg's media as the call's scope uses it: call control's needs plus agent audio in."""

    def push_agent_audio(self, response_id: str, item_id: str, audio: bytes) -> bool: ...

    def mark_done(self, response_id: str) -> None: ...


Task = tuple[str, Coroutine[Any, Any, None]]


class CallScope:
    leg: ClassVar[str] = "call"

    def __init__(
        self,
        info: CallInfo,
        *,
        agent: AgentSession,
        media: LegMedia,
        profile: AgentProfile,
        store: CallStore,
        ticker: FrameTicker,
        watchdog: Watchdog,
        clock: Clock,
        transfers: TransferCheck | None = None,
        security: SecurityLog | None = None,
        recordings: RecordingWriter | None = None,
    ) -> None:
        self.info = info
        self.security = security or SecurityLog(clock=clock)
        self.id = info.call_id
        self.agent = agent
        self._leg_media = media
        self.profile = profile
        self.store = store
        self.ticker = ticker
        self.watchdog = watchdog
        self.clock = clock
        self._ended = asyncio.Event()
        self._end_reason = EndReason.INTERNAL_ERROR  # replaced by the first end()
        self._end_status: int | None = None
        self._sinks: list[TickSink] = []
        self._group: asyncio.TaskGroup | None = None
        self._spawned: set[asyncio.Task[None]] = set()
        self.events = EventFanout()  # every server event of the call, for observers
        #: the frame clock's deadline of the call's first tick: call-relative times (turns,
        #: the recording's sample 0) count from here
        self.origin: float | None = None
        self.turns = TurnTimer()
        self.recording: CallRecording | None = None
        self._recordings = recordings
        self._error_rows = TokenBucket(UPSTREAM_ERRORS_PER_S, UPSTREAM_ERROR_BURST, clock.now())
        self._errors_suppressed = 0  # since the last logged error row
        self._errors_not_logged = 0  # in the whole call
        self.control = CallControl(
            profile=profile,
            media=media,
            leg=self,
            send=agent.send,
            emit=self._publish,
            log_event=lambda kind, data: store.log_event(self.id, kind, data),
            session=lambda: agent.session,
            clock=clock,
            upstream_cancels_on_speech=agent.capabilities.vad_cancels_response,
            model_owns_turns=agent.capabilities.model_owns_turns,
            transfers=transfers,
            on_flood=self._flood,
        )

    # -- what a leg provides ----------------------------------------------------------------

    def peer(self) -> str | None:
        """Where the caller is, for the security log (``sip:udp:203.0.113.9:5060``)."""
        return None

    def _tasks(self) -> list[Task]:
        """The leg's own tasks (besides the agent's events and call control's writer)."""
        return []

    def _tick_sinks(self) -> list[TickSink]:
        """What the shared frame ticker drives for this call (besides the call itself)."""
        return []

    async def _close_leg(self) -> None:
        """Let go of the leg (BYE, close the peer connection, sockets)."""

    def stats(self) -> dict[str, Any]:
        raise NotImplementedError

    async def transfer(self, target: str) -> None:
        """Blind transfer; raises :class:`NotTransferable` where the leg cannot."""
        del target
        raise NotTransferable("Only SIP calls can be transferred.", code="not_sip")

    def hold(self, on: bool) -> None:
        """Put the caller on hold or resume; raises :class:`NotHoldable` where the leg cannot."""
        del on
        raise NotHoldable("Only SIP calls can be put on hold.")

    def refer(self, target: str) -> bool:
        """Call control's transfer (a tool or a DTMF action); False: this leg cannot."""
        self.store.log_event(self.id, "transfer.unsupported", {"target": target})
        return False

    def _flood(self, why: str) -> None:
        """The caller went over a per-call limit (DTMF): one security event per call."""
        self.security.record(
            SecurityKind.RATE_LIMITED, source=self.peer(), detail=why, call_id=self.id
        )

    def _publish(self, event: Mapping[str, Any]) -> None:
        """A server event for the call's clients and observers."""
        self.events.publish(event)

    # -- what the control plane sees (bridge.calls.live.LiveCall) ---------------------------

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    @property
    def session(self) -> Mapping[str, Any]:
        return self.agent.session

    def levels(self) -> tuple[float | None, float | None]:
        """dBFS of the latest 20 ms each way (the leg's media measures it)."""
        raise NotImplementedError

    def turn_latencies(self) -> tuple[int, list[TurnLatency]]:
        return self.turns.count, list(self.turns.turns)

    def recording_status(self) -> dict[str, Any] | None:
        return None if self.recording is None else self.recording.status()

    def pause_recording(self, paused: bool) -> bool | None:
        """Pause or resume the recording; None: the call is not recording, False: it already
        was in that state."""
        if self.recording is None:
            return None
        return self.recording.pause(paused)

    def barge_in_latencies_ms(self) -> tuple[int, list[float]]:
        stats = self.control.stats
        return stats.barge_ins_timed, list(stats.barge_in_latency_ms)

    def say(self, item: dict[str, Any], *, respond: bool) -> None:
        self.control.request_response([item], None, reason="api-say", create=respond)

    def send_dtmf(self, digits: str) -> bool:
        return self.control.media.send_dtmf(digits)

    async def client_event(self, event: dict[str, Any]) -> None:
        """A GA client event from outside the call (data channel, sideband, control plane)
        into the agent session through call control (``session.update`` keeps the leg's
        formats and the telephony tools; ``response.create`` waits for the active response)."""
        await self.control.client_event(event)

    def end(self, reason: EndReason, status: int | None = None) -> None:
        """Ask the call to end (idempotent: the first reason wins)."""
        if not self._ended.is_set():
            self._end_reason, self._end_status = reason, status
            self._ended.set()

    def crashed(self, where: str, exc: BaseException) -> None:
        """An unexpected exception in the call (a task, a tick sink, a leg callback): the call
        ends with ``internal-error``; the traceback is logged once, here."""
        if self.ended:
            return
        log.error(
            "%s %s: %s failed; ending the call",
            self.leg,
            self.id,
            where,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        self.store.log_event(
            self.id, "error", {"source": "internal", "where": where, "error": type(exc).__name__}
        )
        self.end(EndReason.INTERNAL_ERROR)

    # -- the media paths (the leg attaches its own) -----------------------------------------

    def attach_media(self, caller: CallerPath, agent: AgentPath) -> None:
        """The leg's two media paths: the caller's frames are timed for turn latency, and
        both directions recorded when the profile records (``record``)."""
        caller.tap = self._caller_frame
        agent.on_overflow = self._agent_audio_overflow
        mode = self.profile.record
        if mode is RecordingMode.OFF or self._recordings is None:
            return
        g711 = caller.output is not PlayoutEncoding.PCM16
        mixer = RecordingMixer(
            mode,
            caller=caller.output,
            caller_rate=8000 if g711 else AGENT_RATE,
            agent=agent.playout.format,
        )
        file = self._recordings.create(self.id, mixer.rate, mode.channels)
        self.recording = CallRecording(
            self.id, mixer, file, log_event=lambda k, d: self.store.log_event(self.id, k, d)
        )
        agent.tap = self.recording.agent_frames
        self.store.log_event(self.id, "recording.started", self.recording.status())

    def _agent_audio_overflow(self, response_id: str, item_id: str) -> None:
        """Agent audio came faster than it plays and met the playout bound: what did not fit
        is dropped (counted in the call's stats, ``agent_audio_dropped_ms``), the response is
        stopped and its item truncated where the caller's audio ends; once per response."""
        log.warning(
            "%s %s: agent audio of response %s past the %d s playout bound dropped",
            self.leg,
            self.id,
            response_id,
            MAX_BUFFERED_S,
        )
        self.control.on_audio_overflow(response_id, item_id)

    def speak_first(self) -> None:
        """What the agent says before anything else: the recording's consent announcement
        (when the call records and the profile has one), then the profile's greeting; each
        a response of its own, the second queued behind the first."""
        profile = self.profile
        said = [
            text
            for text in (
                profile.record_announcement if self.recording is not None else None,
                profile.greeting,
            )
            if text
        ]
        for text in said:
            self.control.request_response(
                None, {"instructions": f"Say: {text}"}, reason=f"opening:{text}"
            )

    def _caller_frame(self, frame: bytes, concealed: bool, lag: float) -> None:
        end_at = self.clock.now() - lag  # when this audio of the caller's arrived
        self.turns.caller_frame(end_at)
        recording = self.recording
        if recording is not None:
            recording.caller_frame(None if concealed else frame, end_at)

    def on_playback(self, event: PlaybackEvent) -> None:
        """The agent path's playback events (inside its tick, just before the frame is sent):
        call control's buffer events, and the turn's end."""
        self.control.on_playback(event)
        if isinstance(event, PlaybackStarted):  # ``at``: the frame's deadline (its RTP time)
            origin = self.origin if self.origin is not None else event.at
            turn = self.turns.playback_started(event.response_id, event.at, origin)
            if turn is not None:
                self.store.log_event(self.id, "turn.latency", turn.event())

    # -- the agent's events (the same for every leg) -----------------------------------------

    async def _agent_events(self) -> None:
        try:
            async for event in self.agent.events():
                self._on_agent_event(event)
        except UpstreamError as exc:
            self.store.log_event(self.id, "error", {"source": "upstream", "message": str(exc)})
            self.end(EndReason.UPSTREAM_LOST)
            return
        self.end(EndReason.UPSTREAM_LOST)

    def _on_agent_event(self, event: AgentEvent) -> None:
        """The one dispatcher: call control first (it decides what clients see), then the
        leg's media and the event log; every event but the upstream's own playout events
        and malformed ones goes on to clients and observers."""
        control = self.control
        match event:
            case AudioDelta(response_id=rid, item_id=iid, audio=audio):
                self.turns.audio_delta(rid, self.clock.now())
                self._leg_media.push_agent_audio(rid, iid, audio)
            case ResponseCreated(response_id=rid):
                control.on_response_created(rid)
                self.turns.response_created(rid)
            case ResponseDone(response_id=rid):
                control.on_response_done(event)
                self._leg_media.mark_done(rid)
            case SpeechStarted(item_id=iid, audio_start_ms=start_ms):
                control.on_speech_started()  # the barge-in first; the log after
                self.store.log_event(
                    self.id,
                    "input_audio_buffer.speech_started",
                    {"item_id": iid, "audio_start_ms": start_ms},
                )
            case SpeechStopped(item_id=iid, audio_end_ms=end_ms):
                self.turns.speech_stopped(end_ms, self.clock.now())
                self.store.log_event(
                    self.id,
                    "input_audio_buffer.speech_stopped",
                    {"item_id": iid, "audio_end_ms": end_ms},
                )
            case FunctionCallDone():
                control.on_function_call(event)
            case Transcript(speaker=speaker, item_id=iid, text=text):
                self.store.log_event(
                    self.id, f"transcript.{speaker}", _text_row({"item_id": iid}, "text", text)
                )
            case UpstreamErrorEvent():
                control.on_upstream_error(event)
                self._log_upstream_error(event)
            case ItemTruncated(item_id=iid, audio_end_ms=end_ms, transcript=heard):
                if heard is None:
                    heard = self.agent.conversation.heard(iid)
                row = {"item_id": iid, "audio_end_ms": end_ms}
                self.store.log_event(
                    self.id, "conversation.item.truncated", _text_row(row, "transcript", heard)
                )
            case SessionRenewed():
                if control.active_response is not None:  # it died with the old session
                    self._leg_media.mark_done(control.active_response)
                control.on_session_renewed()
                self.turns.renewed()
                data = {k: v for k, v in event.raw.items() if k != "type"}
                self.store.log_event(self.id, "session.renewed", data)
            case BufferEvent():
                return  # rtbridge emits these from real playout; never twice
            case Malformed(reason=reason):
                kind = str(event.raw.get("type"))
                self.store.log_event(
                    self.id, "error", {"source": "upstream", "event": kind, "message": reason}
                )
                return
        self._publish(event.raw)

    def _log_upstream_error(self, event: UpstreamErrorEvent) -> None:
        """The upstream's ``error`` in the call's event log, rate-limited (a flood made 162,000
        rows in 20 s): those over the rate are counted, and the next row logged says how
        many (``suppressed``)."""
        if not self._error_rows.take(self.clock.now()):
            self._errors_suppressed += 1
            self._errors_not_logged += 1
            return
        err = event.raw.get("error")
        detail = dict(err) if isinstance(err, Mapping) else {"message": event.message}
        row = {"source": "upstream", **_error_row(detail)}
        if self._errors_suppressed:
            row["suppressed"] = self._errors_suppressed
            self._errors_suppressed = 0
        self.store.log_event(self.id, "error", row)

    # -- lifetime ---------------------------------------------------------------------------

    def on_tick(self, deadline: float, now: float) -> None:
        """The call's own part of the shared tick: call control's timers, the recording's
        block and the watchdog."""
        if self.origin is None:
            self.origin = deadline
        self.control.on_tick(deadline, now)
        if self.recording is not None:
            self.recording.on_tick(deadline)
        reason = self.watchdog.check(now)
        if reason is not None:
            self.end(reason)

    def spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the call's scope (cancelled when the call ends; a crash ends the
        call). Before the call runs or after it ended, it is dropped."""
        if self._group is None or self.ended:
            coro.close()
            return
        task = self._group.create_task(self._guarded(name, coro), name=f"{self.id} {name}")
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    async def _guarded(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except Exception as exc:
            self.crashed(name, exc)

    def _sink_failed(self, exc: BaseException) -> None:
        self.crashed("tick sink", exc)

    async def run(self) -> None:
        """The call's scope: its tasks run until it ends; then everything is released. Never
        raises (a crash is an end reason); cancellation ends the call with ``shutdown``."""
        specs: list[Task] = [
            ("agent events", self._agent_events()),
            ("control writer", self.control.run()),
            *self._tasks(),
        ]
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                tasks = [
                    group.create_task(self._guarded(name, coro), name=f"{self.id} {name}")
                    for name, coro in specs
                ]
                for sink in (self, *self._tick_sinks()):
                    self.add_tick_sink(sink)
                await self._ended.wait()
                self._group = None
                for task in (*tasks, *self._spawned):
                    task.cancel()
        except asyncio.CancelledError:
            self.end(EndReason.SHUTDOWN)
            await self._release()
            raise
        await self._release()

    def add_tick_sink(self, sink: TickSink) -> None:
        """Have the shared ticker drive ``sink`` until the call is released."""
        self._sinks.append(sink)
        self.ticker.add(sink, self._sink_failed)

    def remove_tick_sink(self, sink: TickSink) -> None:
        self.ticker.remove(sink)
        if sink in self._sinks:
            self._sinks.remove(sink)

    async def _release(self) -> None:
        for sink in self._sinks:
            self.ticker.remove(sink)
        self._sinks.clear()
        self.events.close()
        if self.recording is not None:
            self.recording.close()
        for what, step in (
            ("closing the leg", self._close_leg),
            ("closing the agent", self.agent.close),
        ):
            try:
                await step()
            except Exception as exc:  # the record must be written whatever fails here
                log.error("%s %s: %s failed", self.leg, self.id, what, exc_info=exc)
        try:
            stats = self.stats()
        except Exception as exc:
            log.error("%s %s: stats failed", self.leg, self.id, exc_info=exc)
            stats = {}
        if self.recording is not None:  # what the recording had to drop, in the call's record
            stats = {**stats, **self.recording.stats()}
        if self._errors_not_logged:
            stats = {**stats, "upstream_errors_not_logged": self._errors_not_logged}
        info = self.info
        info.ended_at = self.clock.wall()
        info.end_reason = self._end_reason.value
        info.sip_status = self._end_status
        self.store.call_ended(
            self.id,
            reason=self._end_reason.value,
            sip_status=self._end_status,
            stats=stats,
            ended_at=info.ended_at,
        )
        log.info("%s call %s ended: %s", self.leg, self.id, self._end_reason.value)
