"""A call's session with its agent: open, configure for the leg, stream events, renew.

The session is configured for the leg (its audio format decided by the leg, G.711 falling back
to PCM16 when refused) by :mod:`bridge.calls.negotiation`.

Server events are parsed here, once, into the typed values of
:mod:`bridge.calls.agent_events` (:meth:`AgentSession.events`).

**Renewal.** An upstream session ends under a live call in one of four ways: it announces its end
beforehand (Gemini ``goAway``), it reports its time limit (OpenAI's and GPT-Live's
``session_expired``) or another end (GPT-Live ``session.closed``) and closes, or its socket is
lost. The call goes on in a new upstream session either way:

* *Make before break* when the end is announced, or known (``Capabilities.session_limit_s``,
  e.g. OpenAI's 60 minutes: :data:`RENEW_BEFORE_LIMIT_S` before it): the next session is
  opened, configured and restored while the old one still serves the call, as soon as no
  response is streaming; the call moves over at the next idle moment, with no gap. If the old
  one goes first, the next one takes over when ready.
* *Break before make* otherwise: the next session is opened within
  ``calls.upstream_reconnect_window_s`` (at most :data:`RENEW_ATTEMPTS` tries, backing off);
  meanwhile caller audio is dropped, and its audio time counted, and control events wait
  (:meth:`AgentSession.send` waits for the new socket). When the window passes, :meth:`events`
  raises the last :class:`~bridge.errors.UpstreamError` and the call ends ``upstream-lost``.
* At most :data:`MAX_RENEWALS` renewals (of either kind) within :data:`RENEWAL_PERIOD_S`; an
  upstream that ends every session it opens ends the call ``upstream-lost`` instead.
* A caller's turn that the old session heard start but never answered is sent again, from its
  start, to the next session (the old one's input buffer went with it).

A new session is *restored* with the upstream's own resumption where it has one (Gemini: the
latest ``rtbridge.upstream.resumption`` handle, which is kept here and never forwarded), else by
*replaying* the conversation as the caller heard it (:mod:`bridge.calls.conversation`) as items;
the upstream's answers to those items are not forwarded. A resumption the upstream refuses falls
back to a replay. Each renewal is one :class:`~bridge.calls.agent_events.SessionRenewed` (how,
why, the gap, the caller audio dropped); the upstream's own end-of-session events are not
forwarded. A truncation or deletion of an item the new session does not hold (the old one's) is
answered here as the upstream would have answered it, with the heard transcript.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from base64 import b64encode
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.calls.agent_events import (
    AgentEvent,
    Other,
    ResponseCreated,
    ResponseDone,
    Resumption,
    SessionEnding,
    SessionRenewed,
    SessionUpdated,
    SpeechStarted,
    UpstreamErrorEvent,
    parse_agent_event,
)
from bridge.calls.conversation import MAX_ITEMS, CallConversation
from bridge.calls.negotiation import READ_ONLY, build_session, configure, enforce_formats
from bridge.config import AgentProfile
from bridge.errors import UpstreamClosedError, UpstreamError
from bridge.realtime.dialects import CAPABILITIES, Handling
from bridge.realtime.formats import AudioFormat
from bridge.tasks import cancel_and_wait
from bridge.upstream import UpstreamSession
from media.clock import Clock, SystemClock

__all__ = [
    "INBOX_MAX",
    "MAX_RENEWALS",
    "RENEWAL_PERIOD_S",
    "RENEW_ATTEMPTS",
    "RENEW_BEFORE_LIMIT_S",
    "AgentSession",
]

log = logging.getLogger(__name__)

#: Tries at opening the next upstream session when one ends (within the reconnect window).
RENEW_ATTEMPTS = 5
#: Where the upstream's session length is known, the next session is prepared this long (at
#: most a third of the length) before the end.
RENEW_BEFORE_LIMIT_S = 60.0
#: sessions a call may open to replace ended ones within :data:`RENEWAL_PERIOD_S`. Past it
#: the upstream ends every session it opens (out of quota, broken, looping on going-away),
#: and the call ends ``upstream-lost`` instead of opening thousands of sessions a second
MAX_RENEWALS = 5
RENEWAL_PERIOD_S = 60.0
#: Upstream events waiting for the call (the pump waits beyond: back-pressure on the socket).
INBOX_MAX = 64
#: Caller audio kept from before the upstream heard the caller start (its speech pre-roll) ...
PREROLL_CHUNKS = 25
#: ... and at most this many chunks of a caller's turn not yet answered (about 10 s): sent
#: again to the next session when the old one ends in the middle of it.
TURN_CHUNKS = 500
#: Item ids of the current upstream session remembered (the newest; a truncation or deletion
#: names a recent item): a long call's session holds thousands, which must not all be kept.
#: As many as the conversation keeps for a replay: an item it forgot is gone for good anyway.
SESSION_ITEMS_KEPT = MAX_ITEMS
_OPENING = frozenset({"session.created", "conversation.created"})
_ITEM_EDITS = frozenset({"conversation.item.truncate", "conversation.item.delete"})
#: The upstream's answers to ``conversation.item.create``/``delete``.
_ITEM_ACKS = frozenset(
    {
        "conversation.item.added",
        "conversation.item.created",
        "conversation.item.done",
        "conversation.item.deleted",
    }
)


class _Ended:
    """A session's pump is over: how its upstream ended (None: a normal close)."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException | None) -> None:
        self.exc = exc


#: The standby session is ready (put in the inbox to wake :meth:`AgentSession.events`).
_READY = object()
#: The current session nears the upstream's known length limit (put in the inbox by a timer).
_LIMIT = object()


@dataclass(slots=True)
class _Prepared:
    """A new upstream session, configured and told the conversation, not yet in use."""

    up: UpstreamSession
    pending: list[dict[str, Any]]
    how: str  # resumed | replayed
    handle: str | None
    replayed: set[str]
    attempts: int
    resent_ms: float = 0.0


class AgentSession:
    """The upstream side of one call. ``async with AgentSession(...) as agent:``."""

    def __init__(
        self,
        profile: AgentProfile,
        *,
        preferred: AudioFormat,
        ready_timeout_s: float = 10.0,
        reconnect_window_s: float = 5.0,
        session_limit_s: float | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        """``session_limit_s``: how long one upstream session lasts (default: what the
        dialect's :class:`~bridge.realtime.dialects.Capabilities` say); the next one is made
        ready, and taken over at an idle moment, before it ends."""
        self.profile = profile
        self.format = preferred
        self.session: dict[str, Any] = build_session(profile, preferred)
        self.capabilities = CAPABILITIES[profile.upstream.dialect]
        self._limit = session_limit_s or self.capabilities.session_limit_s
        self._limit_at: float | None = None
        self._limit_timer: asyncio.TimerHandle | None = None
        #: the conversation as the caller heard it (what a replay tells a new session)
        self.conversation = CallConversation()
        self._ready_timeout = ready_timeout_s
        self._window = reconnect_window_s
        self._environ = environ
        self._clock = clock or SystemClock()
        self._up: UpstreamSession | None = None
        self._usable = asyncio.Event()  # set while the socket is open and configured
        self._pending: list[dict[str, Any]] = []  # the current session's, read while configuring
        self._inbox: asyncio.Queue[tuple[UpstreamSession, object]] = asyncio.Queue(INBOX_MAX)
        self._pump: asyncio.Task[None] | None = None
        self._standby: asyncio.Task[_Prepared] | None = None
        self._standby_wanted = False  # the upstream is going away: prepare when idle
        self._renewals: deque[float] = deque()  # when recent renewals began (clock time)
        self._retiring: set[asyncio.Task[None]] = set()
        self._cause: str | None = None  # how the upstream said its session ends
        self._resume_handle: str | None = None
        self._responding = False
        #: items the current upstream session holds (the newest :data:`SESSION_ITEMS_KEPT`)
        self._session_items: OrderedDict[str, None] = OrderedDict()
        self._replayed: set[str] = set()  # ... of which told to it by a replay
        self._replay_events: set[str] = set()
        self._renewing = False
        self._dropped_ms = 0.0  # caller audio dropped while renewing
        #: caller audio of the turn the upstream has not answered yet (None: no turn open)
        self._preroll: deque[bytes] = deque(maxlen=PREROLL_CHUNKS)
        self._turn: deque[bytes] | None = None
        self.renewals = 0
        self.renewal_gaps_ms: list[int] = []
        self.refusals: list[str] = []  # upstream errors answered by negotiation (kept for logs)
        self.closed = False

    async def __aenter__(self) -> AgentSession:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect and configure; raises :class:`UpstreamError` (never hangs)."""
        up = self._new_upstream(None)
        await up.connect()
        try:
            self._pending = await self._configure(up, self.session, fallback=True)
        except BaseException:
            await up.close()
            raise
        self._install(up)

    def _new_upstream(self, resume_handle: str | None) -> UpstreamSession:
        return UpstreamSession(
            self.profile.upstream,
            environ=self._environ,
            clock=self._clock,
            resume_handle=resume_handle,
        )

    def _install(self, up: UpstreamSession) -> None:
        self._up = up
        self._pump = asyncio.create_task(self._pump_events(up), name=f"agent events {up.url}")
        if self._limit:
            early = self._limit - min(RENEW_BEFORE_LIMIT_S, self._limit / 3)
            self._limit_at = self._clock.now() + early
            self._limit_timer = asyncio.get_running_loop().call_later(early, self._limit_due, up)
        self._usable.set()

    def _limit_due(self, up: UpstreamSession) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # (a busy inbox: _accept sees it)
            self._inbox.put_nowait((up, _LIMIT))

    def _near_limit(self) -> None:
        """The session nears its length limit: prepare the next one, as for a ``goAway``."""
        if self._limit_at is not None and self._clock.now() >= self._limit_at:
            self._limit_at = None
            self._cause = self._cause or "session_limit"
            self._standby_wanted = True
            self._prepare_if_idle()

    async def _pump_events(self, up: UpstreamSession) -> None:
        """One upstream session's events into the inbox, then how it ended."""
        end: BaseException | None = None
        try:
            async for raw in up.events():
                await self._inbox.put((up, raw))
        except Exception as exc:  # an UpstreamError ends the session; anything else is a bug
            end = exc
        await self._inbox.put((up, _Ended(end)))

    async def _configure(
        self, up: UpstreamSession, session: dict[str, Any], *, fallback: bool
    ) -> list[dict[str, Any]]:
        """Configure ``up`` (see :func:`~bridge.calls.negotiation.configure`); returns the
        events read meanwhile."""
        done = await configure(
            up,
            session,
            self.format,
            fallback=fallback,
            ready_timeout=self._ready_timeout,
            refusals=self.refusals,
        )
        self.format, self.session = done.format, done.session
        return done.pending

    # -- traffic ------------------------------------------------------------------------

    def send_audio(self, audio: bytes) -> bool:
        """Caller audio in the session format; False when dropped (upstream stalled, or the
        session is being renewed: then the audio time is counted for the renewal's report)."""
        up = self._up
        if up is None or not self._usable.is_set():
            if self._renewing:
                self._dropped_ms += len(audio) / self.format.bytes_per_ms()
            return False
        (self._preroll if self._turn is None else self._turn).append(audio)
        try:
            return up.send_audio(audio)
        except UpstreamError:
            return False

    async def send(self, event: Mapping[str, Any]) -> None:
        """A control event; ``session.update`` gets the leg's audio formats.

        If the session is being renewed, this waits until :meth:`events` has a new one and
        sends there; it raises :class:`UpstreamClosedError` only once the session is closed
        for good. A truncation or deletion of an item the current upstream session does not
        hold (an earlier session's) is answered here, as the upstream would have answered it.
        """
        if event.get("type") == "session.update" and isinstance(event.get("session"), Mapping):
            event = {**event, "session": enforce_formats(event["session"], self.format)}
        self.conversation.sent(event)
        created = event.get("item") if event.get("type") == "conversation.item.create" else None
        if isinstance(created, Mapping) and isinstance(created.get("id"), str):
            self._hold(created["id"])
        heard = None
        if event.get("type") == "conversation.item.truncate":
            end = event.get("audio_end_ms")
            heard = (
                self.conversation.truncate(str(event.get("item_id")), end)
                if isinstance(end, int)
                else None
            )
        while True:
            await self._usable.wait()
            up = self._up
            if self.closed or up is None:
                raise UpstreamClosedError("agent session is closed")
            try:
                if not await self._answered_here(up, event, heard):
                    await up.send(event)
                return
            except UpstreamError as exc:
                self._lost(up, exc)

    def _hold(self, item_id: str) -> None:
        """The current upstream session holds ``item_id`` (the oldest remembered forgotten)."""
        items = self._session_items
        items[item_id] = None
        items.move_to_end(item_id)
        if len(items) > SESSION_ITEMS_KEPT:
            items.popitem(last=False)

    async def _answered_here(
        self, up: UpstreamSession, event: Mapping[str, Any], heard: str | None
    ) -> bool:
        """Truncations and deletions of items from an earlier upstream session."""
        kind = event.get("type")
        item_id = str(event.get("item_id"))
        if kind not in _ITEM_EDITS or (
            item_id in self._session_items and item_id not in self._replayed
        ):
            return False
        if kind == "conversation.item.delete":
            if item_id in self._replayed:
                return False  # the replayed copy goes
            answer: dict[str, Any] = {"type": "conversation.item.deleted", "item_id": item_id}
        else:
            if item_id in self._replayed and self.capabilities.truncate is Handling.UPSTREAM:
                # its replayed copy holds the whole text: replace it with what was heard
                await up.send({"type": "conversation.item.delete", "item_id": item_id})
                if heard:
                    item = {
                        "id": item_id,
                        "type": "message",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": heard}],
                    }
                    await up.send({"type": "conversation.item.create", "item": item})
            answer = {
                "type": "conversation.item.truncated",
                "item_id": item_id,
                "content_index": event.get("content_index", 0),
                "audio_end_ms": event.get("audio_end_ms"),
                "transcript": heard,
            }
        await self._inbox.put((up, {"event_id": _event_id(), **answer}))
        return True

    def _lost(self, up: UpstreamSession, exc: BaseException) -> None:
        """A send found the socket broken: make the pump notice and the session renew."""
        if self._up is up and self._usable.is_set():
            log.warning("upstream send failed (%s); waiting for the renewal", exc)
            self._usable.clear()
            up.abort()

    # -- events ---------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[AgentEvent]:
        """Server events until :meth:`close`; the session is renewed when the upstream's ends
        (yielding one :class:`SessionRenewed` each time); raises :class:`UpstreamError` when
        no new session could be opened within the window."""
        while not self.closed:
            while self._pending:
                event = self._accept(self._pending.pop(0))
                if event is not None:
                    yield event
            up, item = await self._inbox.get()
            if up is not self._up:
                continue  # the rest of a retired session
            renewed: SessionRenewed | None = None
            if item is _LIMIT:
                self._near_limit()
            elif item is _READY:
                renewed = await self._switch_when_idle()
            elif isinstance(item, _Ended):
                if self.closed:
                    return
                if item.exc is not None and not isinstance(item.exc, UpstreamError):
                    raise item.exc
                renewed = await self._renew(
                    item.exc or UpstreamClosedError("upstream closed the session")
                )
            elif isinstance(item, Mapping):
                event = self._accept(item)
                if event is not None:
                    yield event
                if isinstance(event, ResponseDone):
                    renewed = await self._switch_when_idle()
            if renewed is not None:
                yield renewed

    def _accept(self, raw: Mapping[str, Any]) -> AgentEvent | None:
        """Parse one event and keep what the session needs; None: not for the call."""
        if self._limit_at is not None:
            self._near_limit()
        event = parse_agent_event(raw)
        match event:
            case Resumption(handle=handle, resumable=resumable):
                if resumable and handle:
                    self._resume_handle = handle
                return None
            case SessionEnding(kind="going_away", time_left_ms=left):
                log.info("upstream session going away in %s ms; renewing", left)
                self._cause = "going_away"
                self._standby_wanted = True
                self._prepare_if_idle()
                return None
            case SessionEnding(reason=reason):
                log.info("upstream closed its session (%s); renewing", reason)
                self._cause = "session_closed"
                return None
            case UpstreamErrorEvent(code="session_expired"):
                log.info("upstream session expired; renewing")
                self._cause = "session_expired"
                return None
            case UpstreamErrorEvent() if _client_event_id(raw) in self._replay_events:
                log.warning("upstream refused a replayed item: %s", event.message)
                return None
            case Other() if raw.get("type") in _ITEM_ACKS and _item_id(raw) in self._replayed:
                return None  # the upstream's answer to a replayed item
            case SessionUpdated(session=session):
                self.session = {k: v for k, v in session.items() if k not in READ_ONLY}
            case SpeechStarted():
                if self._turn is None:
                    self._turn = deque(self._preroll, maxlen=TURN_CHUNKS)
                    self._preroll.clear()
            case ResponseCreated():
                self._responding = True
                self._turn = None
            case ResponseDone():
                self._responding = False
                self._prepare_if_idle()
        item_id = _item_id(raw)
        if item_id:
            self._hold(item_id)
        self.conversation.observe(event, self.format)
        return event

    # -- renewal ------------------------------------------------------------------------

    def _renewal_session(self) -> dict[str, Any]:
        up = self._up
        desired = up.translator.desired_session if up is not None else None
        return enforce_formats(desired or self.session, self.format)

    def _may_renew(self) -> bool:
        """Count a renewal against :data:`MAX_RENEWALS`; False: over budget, open nothing."""
        now = self._clock.now()
        while self._renewals and now - self._renewals[0] >= RENEWAL_PERIOD_S:
            self._renewals.popleft()
        if len(self._renewals) >= MAX_RENEWALS:
            log.warning(
                "upstream ended %d sessions within %g s: not opening another",
                len(self._renewals),
                RENEWAL_PERIOD_S,
            )
            return False
        self._renewals.append(now)
        return True

    def _prepare_if_idle(self) -> None:
        """The upstream is going away: open the next session now, unless a response is
        streaming (its end is part of the conversation the next session must have)."""
        if self._standby_wanted and not self._responding and self._standby is None:
            self._standby_wanted = False
            if not self._may_renew():
                return  # renewed (or given up) when the old one goes
            up = self._up
            self._standby = asyncio.create_task(
                self._prepare_standby(up), name="agent session standby"
            )

    async def _prepare_standby(self, up: UpstreamSession | None) -> _Prepared:
        try:
            return await self._prepare(self._clock.now() + self._window, self._renewal_session())
        finally:
            if up is not None:
                await self._inbox.put((up, _READY))

    async def _switch_when_idle(self) -> SessionRenewed | None:
        """Make-before-break: move to the prepared session once it is ready and the old one
        is not in the middle of a response."""
        task = self._standby
        if task is None or not task.done() or self._responding:
            return None
        self._standby = None
        try:
            prepared = task.result()
        except UpstreamError as exc:
            log.warning("could not prepare the next upstream session: %s", exc)
            return None  # renewed when the old one goes
        if prepared.how == "resumed" and prepared.handle != self._resume_handle:
            # a turn ended after it was prepared: resume from the newer handle
            await prepared.up.close()
            self._standby_wanted = True
            self._prepare_if_idle()
            return None
        await self._replay_rest(prepared)
        await self._resend_turn(prepared)
        return self._switch(prepared, self._cause or "going_away", lost_at=None)

    async def _renew(self, cause_exc: UpstreamError) -> SessionRenewed:
        """Break-before-make: the session is gone; open the next one within the window."""
        if not self._may_renew():
            raise UpstreamClosedError(
                f"the upstream ended {MAX_RENEWALS} sessions within {RENEWAL_PERIOD_S:g} s; "
                f"giving up: {cause_exc}"
            )
        lost_at = self._clock.now()
        self._usable.clear()
        self._renewing = True
        self._dropped_ms = 0.0
        cause = self._cause or "connection_lost"
        log.warning("upstream session ended (%s: %s); renewing", cause, cause_exc)
        session = self._renewal_session()
        if self._up is not None:
            self._retire(self._up)
            self._up = None
        prepared: _Prepared | None = None
        task, self._standby = self._standby, None
        if task is not None:
            try:
                prepared = await asyncio.wait_for(asyncio.shield(task), self._window)
                await self._replay_rest(prepared)
            except (UpstreamError, TimeoutError):
                task.cancel()
                prepared = None
        if prepared is None:
            try:
                prepared = await self._prepare(lost_at + self._window, session, cause_exc)
            finally:
                self._renewing = False
        await self._resend_turn(prepared)
        return self._switch(prepared, cause, lost_at=lost_at)

    async def _prepare(
        self, deadline: float, session: dict[str, Any], cause_exc: UpstreamError | None = None
    ) -> _Prepared:
        """Open, configure and restore the next session: the upstream's own resumption when
        it gave a handle, else the conversation replayed. Bounded: :data:`RENEW_ATTEMPTS`
        tries within the window; the last error is raised."""
        now = self._clock.now
        handle = self._resume_handle if self.capabilities.resumption else None
        last = cause_exc or UpstreamClosedError("upstream session ended")
        delay = 0.1
        for attempt in range(1, RENEW_ATTEMPTS + 1):
            up = self._new_upstream(handle)
            try:
                await up.connect()
                pending = await self._configure(up, session, fallback=False)
                prepared = _Prepared(
                    up,
                    [e for e in pending if e.get("type") not in _OPENING],
                    "resumed" if handle else "replayed",
                    handle,
                    set(),
                    attempt,
                )
                if handle is None:
                    await self._replay_rest(prepared)
                return prepared
            except UpstreamError as exc:
                last = exc
                await up.close()
                if handle is not None:
                    handle = None  # it would not resume: tell the conversation instead
                elif not exc.retryable:
                    break
            except BaseException:
                await up.close()
                raise
            if now() >= deadline:
                break
            await asyncio.sleep(min(delay, max(0.0, deadline - now())))
            delay = min(delay * 2, 1.0)
        raise last

    async def _replay_rest(self, prepared: _Prepared) -> None:
        """Tell a replayed session the items of the conversation it has not been told yet."""
        if prepared.how != "replayed":
            return
        for item in self.conversation.replay(self.capabilities.history_items):
            if item["id"] in prepared.replayed:
                continue
            event_id = _event_id()
            self._replay_events.add(event_id)
            prepared.replayed.add(item["id"])
            await prepared.up.send(
                {"type": "conversation.item.create", "event_id": event_id, "item": item}
            )

    async def _resend_turn(self, prepared: _Prepared) -> None:
        """The caller was in the middle of a turn the old session never answered: the next
        one hears it from its start (the old session's input buffer went with it)."""
        turn, self._turn = self._turn, None
        self._preroll.clear()
        for chunk in turn or ():
            await prepared.up.send(
                {"type": "input_audio_buffer.append", "audio": b64encode(chunk).decode("ascii")}
            )
            prepared.resent_ms += len(chunk) / self.format.bytes_per_ms()

    def _switch(self, prepared: _Prepared, cause: str, *, lost_at: float | None) -> SessionRenewed:
        old = self._up
        if old is not None and old is not prepared.up:
            self._retire(old)
        self._pending = prepared.pending
        self._replayed = set(prepared.replayed)
        self._session_items = OrderedDict.fromkeys(prepared.replayed)
        self._responding = False
        self._cause = None
        self._standby_wanted = False
        self._renewing = False
        gap_ms = 0 if lost_at is None else round((self._clock.now() - lost_at) * 1000)
        dropped, self._dropped_ms = round(self._dropped_ms), 0.0
        self.renewals += 1
        self.renewal_gaps_ms.append(gap_ms)
        self._install(prepared.up)
        renewed = SessionRenewed(
            how=prepared.how,
            cause=cause,
            gap_ms=gap_ms,
            attempts=prepared.attempts,
            items_replayed=len(prepared.replayed),
            audio_dropped_ms=dropped,
            audio_resent_ms=round(prepared.resent_ms),
        )
        log.info("agent session renewed: %s", renewed.raw)
        return renewed

    def _retire(self, up: UpstreamSession) -> None:
        """Stop reading an old session and close it in the background."""
        if self._pump is not None:
            self._pump.cancel()
            self._pump = None
        if self._limit_timer is not None:
            self._limit_timer.cancel()
            self._limit_timer = None
        task = asyncio.create_task(up.close(), name=f"agent session retire {up.url}")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def close(self) -> None:
        self.closed = True
        self._usable.set()  # senders waiting for a renewal learn that it is over
        if self._limit_timer is not None:
            self._limit_timer.cancel()
        standby, self._standby = self._standby, None
        if standby is not None:
            await cancel_and_wait(standby, expected=(Exception,))
            prepared: _Prepared | None = None  # if it failed, it closed what it had opened
            if not standby.cancelled() and standby.exception() is None:
                prepared = standby.result()
            if prepared is not None:
                await prepared.up.close()
        if self._pump is not None:
            self._pump.cancel()
        if self._up is not None:
            await self._up.close()
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)


def _item_id(raw: Mapping[str, Any]) -> str | None:
    value = raw.get("item_id")
    if value is None:
        item = raw.get("item")
        value = item.get("id") if isinstance(item, Mapping) else None
    return value if isinstance(value, str) and value else None


def _client_event_id(raw: Mapping[str, Any]) -> Any:
    err = raw.get("error")
    return err.get("event_id") if isinstance(err, Mapping) else None


def _event_id() -> str:
    return "event_rtb" + secrets.token_hex(8)
