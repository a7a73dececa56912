"""Call control: what callers judge a voice agent by, in one place for every leg.

rtbridge owns playout, so it alone knows what the caller actually heard. :class:`CallControl`
turns that knowledge and the agent's events into call behaviour:

* ``output_audio_buffer.started`` / ``.stopped`` / ``.cleared`` for clients and the event log,
  from the playout buffer's real events (the upstream's own events of that family are dropped,
  never forwarded twice);
* **barge-in** on ``input_audio_buffer.speech_started`` (unless the session's
  ``turn_detection.interrupt_response`` is false): playout is cleared before the next frame,
  each item that was heard is truncated once at exactly the audio sent (minus
  ``downstream_delay_ms``, never more than the item's audio) and items never heard are
  deleted, not truncated to 0. ``response.cancel`` is sent only to an upstream whose voice
  detection does not cancel the active response by itself (OpenAI's does, with
  ``interrupt_response``), so an ordinary barge-in never earns an upstream error. A client's
  ``output_audio_buffer.clear`` does the same without the cancel;
* **no response collisions**: rtbridge never sends ``response.create`` while a response is
  active; DTMF messages, tool results and injected messages wait in a queue until
  ``response.done`` (a VAD-created response that wins a race sends ours back to the queue).
  Where the model owns turn-taking (GPT-Live), a ``response.create`` may get no
  ``response.created`` until the model decides to speak, so nothing waits for that one;
* **DTMF** (RFC 4733 and SIP INFO on phone calls; on browser calls a client event
  ``input_audio_buffer.dtmf`` or ``input_audio_buffer.dtmf_event_received`` with ``event``
  or ``digit``): each digit becomes ``input_audio_buffer.dtmf_event_received`` for clients, and per
  the profile's policy a user message (single digits, or collected until the terminator or a
  timeout) followed by ``response.create``, or an action (hang up, mute, transfer). A caller
  gets ``dtmf.max_per_s`` digits a second (``dtmf.burst`` at once): the rest are dropped and
  counted (``dtmf_dropped``; the first drop is a ``rate-limited`` security event), so a flood
  of digits writes no rows and buys no agent responses;
* **bounded caller work**: at most one agent response waits per kind of trigger (DTMF, tool
  output, ...): what a trigger adds while its response waits joins that one response;
* **telephony tools**: ``end_call``, ``transfer_call(target)`` and ``send_dtmf(digits)`` are
  merged into every ``session.update`` when the profile enables them and executed here: hang-up
  and transfer wait until the goodbye has been played (``output_audio_buffer.stopped``) plus
  ``hangup_grace_ms``; targets outside the allowlist get an error ``function_call_output``.
  A function call is acted on when its response is done and the call's item is
  ``completed``; one whose response was cancelled under it (item ``incomplete``) is dropped.
  Tool calls meant for the application are left to the sideband; if nobody answers within
  ``tool_timeout_s``, the agent gets an error output instead of silence.

The leg plugs in through two small protocols: :class:`MediaControl` (clear, playing, DTMF out,
mute) and :class:`LegActions` (end, transfer). The agent's events arrive typed
(:mod:`bridge.calls.agent_events`) from the call's one dispatcher. All sends to the agent go
through one bounded queue drained by :meth:`CallControl.run`, so their order is the order they
were decided in. Call control's own decisions never wait and are never dropped: if
:data:`OUTBOX_MAX` of them pile up, the agent has stopped reading and the call ends
(``upstream-stalled``). Events from clients wait for room instead (back-pressure on the data
channel or the sideband).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from bridge.calls.agent_events import FunctionCallDone, ResponseDone, UpstreamErrorEvent
from bridge.calls.end import EndReason
from bridge.config import AgentProfile
from bridge.destinations import Verdict
from bridge.errors import UpstreamError
from media.clock import Clock, SystemClock
from media.playout import ClearResult, PlaybackEvent, PlaybackFinished, PlaybackStarted
from sip.ratelimit import TokenBucket

__all__ = [
    "OUTBOX_MAX",
    "TELEPHONY_TOOLS",
    "CallControl",
    "LegActions",
    "MediaControl",
    "TransferCheck",
    "merge_telephony_tools",
]

log = logging.getLogger(__name__)

DTMF_DIGITS = frozenset("0123456789*#ABCD")
#: Digits one ``send_dtmf`` tool call may send (a PIN, an extension, a menu path).
MAX_TOOL_DIGITS: Final = 64
#: How many recent barge-in latencies and truncated item ids a call keeps (bounded per call).
RECENT = 16
#: application tool calls a call may have waiting for the application's answer; past it, a
#: call is answered at once with an error (an agent looping on tool calls grew memory and
#: the per-tick timeout scan)
MAX_PENDING_TOOL_CALLS: Final = 32
#: responses whose function calls wait for the response's end; the oldest are forgotten past it
MAX_OPEN_RESPONSES: Final = 64
#: Events waiting for the agent session's writer. Call control decides a few per second; this
#: many queued means the agent stopped reading (a reconnect waits at most its window).
OUTBOX_MAX = 1024
#: Client events that carry keypad digits (a browser has no RTP events): the GA server
#: event's name used as a client event, and rtbridge's own ``input_audio_buffer.dtmf``.
DTMF_CLIENT_EVENTS = frozenset(
    {"input_audio_buffer.dtmf_event_received", "input_audio_buffer.dtmf"}
)

TELEPHONY_TOOLS: tuple[dict[str, Any], ...] = (
    {
        "type": "function",
        "name": "end_call",
        "description": "Hang up the phone call. Say goodbye first: the call ends after the "
        "caller has heard everything you said.",
        "parameters": {"type": "object", "properties": {}, "additionalProperties": False},
    },
    {
        "type": "function",
        "name": "transfer_call",
        "description": "Transfer the caller to another phone number or SIP address.",
        "parameters": {
            "type": "object",
            "properties": {
                "target": {"type": "string", "description": "tel:+15551234567 or sip:..."}
            },
            "required": ["target"],
            "additionalProperties": False,
        },
    },
    {
        "type": "function",
        "name": "send_dtmf",
        "description": "Send keypad tones to the caller (digits 0-9, *, #, A-D).",
        "parameters": {
            "type": "object",
            "properties": {"digits": {"type": "string"}},
            "required": ["digits"],
            "additionalProperties": False,
        },
    },
)
_TOOL_NAMES = frozenset(t["name"] for t in TELEPHONY_TOOLS)


def merge_telephony_tools(session: dict[str, Any]) -> dict[str, Any]:
    """``tools`` replaces the whole list on the wire, so the merge is ours: a copy of the
    session whose tools are the caller's own (minus stale copies of ours) plus ours."""
    given = session.get("tools")
    tools = [
        t
        for t in (given if isinstance(given, list) else [])
        if not (isinstance(t, Mapping) and t.get("name") in _TOOL_NAMES)
    ]
    return {**session, "tools": tools + [dict(t) for t in TELEPHONY_TOOLS]}


class MediaControl(Protocol):
    """What a leg's media path offers call control."""

    def clear(self) -> ClearResult: ...

    def playing(self) -> bool: ...

    def send_dtmf(self, digits: str) -> bool: ...

    def set_muted(self, muted: bool) -> None: ...


class TransferCheck(Protocol):
    """The call's transfer policy (:meth:`bridge.destinations.guard.Destinations.for_call`:
    the profile's rules, its caps, and a security event for every refusal)."""

    def check(self, target: str) -> Verdict: ...


class LegActions(Protocol):
    """What a leg's signalling offers call control."""

    def end(self, reason: EndReason, status: int | None = None) -> None: ...

    def refer(self, target: str) -> bool:
        """Start a blind transfer; False where the leg cannot transfer."""
        ...


def _event_id() -> str:
    return "event_rtb" + secrets.token_hex(8)


@dataclass(slots=True)
class _Deferred:
    """Items to add and a response to create once no response is active."""

    items: list[dict[str, Any]]
    response: dict[str, Any] | None = None
    reason: str = ""


@dataclass(slots=True)
class ControlStats:
    barge_ins: int = 0
    truncations: int = 0
    deletions: int = 0
    responses_queued: int = 0
    dtmf_digits: int = 0
    dtmf_dropped: int = 0  # over the profile's digit rate
    tool_timeouts: int = 0
    tool_calls_cancelled: int = 0
    #: the most recent barge-in latencies (``barge_ins_timed`` counts them all)
    barge_in_latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))
    barge_ins_timed: int = 0


class CallControl:
    def __init__(
        self,
        *,
        profile: AgentProfile,
        media: MediaControl,
        leg: LegActions,
        send: Callable[[dict[str, Any]], Awaitable[None]],
        emit: Callable[[dict[str, Any]], None],
        log_event: Callable[[str, dict[str, Any]], None],
        session: Callable[[], dict[str, Any]],
        clock: Clock | None = None,
        upstream_cancels_on_speech: bool = True,
        model_owns_turns: bool = False,
        transfers: TransferCheck | None = None,
        on_flood: Callable[[str], None] | None = None,
    ) -> None:
        self.profile = profile
        #: told once per call when the caller goes over a limit (a security event)
        self._on_flood = on_flood
        self._transfers = transfers
        self.media = media
        self.leg = leg
        self._send_fn = send  # to the agent session (waits through a reconnect)
        self._emit = emit  # to clients/observers (GA server events)
        self._log = log_event
        self._session = session
        self._clock = clock or SystemClock()
        #: the upstream's voice detection cancels its active response when the caller speaks
        #: (OpenAI's ``interrupt_response``): then a barge-in sends no ``response.cancel``
        self.upstream_cancels_on_speech = upstream_cancels_on_speech
        #: the model decides when it speaks (GPT-Live): a ``response.create`` may bring no
        #: ``response.created`` until it does, so the gate does not wait for one
        self.model_owns_turns = model_owns_turns
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(OUTBOX_MAX)
        self.active_response: str | None = None
        self._create_pending = False
        self._deferred: deque[_Deferred] = deque()
        #: items already truncated or deleted (never twice), the most recent :data:`RECENT`
        self._truncated: OrderedDict[str, None] = OrderedDict()
        #: responses whose audio met the playout bound: response id -> the item cut there
        self._overflowed: OrderedDict[str, str] = OrderedDict()
        self._digits: list[str] = []
        self._digits_deadline: float | None = None
        self._dtmf_rate = TokenBucket(profile.dtmf.max_per_s, profile.dtmf.burst, self._clock.now())
        self._muted = False
        self._after_playback: tuple[str, str] | None = None  # ("hangup"|"transfer", target)
        self._after_playback_at: float | None = None
        self._app_tools: dict[str, float] = {}  # call_id -> deadline
        #: function calls whose arguments are done, by response id, until the response is
        self._calls: dict[str, list[FunctionCallDone]] = {}
        self.stats = ControlStats()

    # -- the one writer to the agent ----------------------------------------------------

    def _send(self, event: dict[str, Any]) -> None:
        try:
            self._outbox.put_nowait(event)
        except asyncio.QueueFull:
            log.error("call control: %d events wait for the agent; ending the call", OUTBOX_MAX)
            self.leg.end(EndReason.UPSTREAM_STALLED)

    async def forward(self, event: dict[str, Any]) -> None:
        """Queue a client event for the agent behind what call control already decided
        (waits while the outbox is full: back-pressure on the client)."""
        await self._outbox.put(event)

    def queue(self, event: dict[str, Any]) -> None:
        """Queue an event of rtbridge's own (a greeting, the control plane's) for the agent."""
        self._send(event)

    async def run(self) -> None:
        """Drain the outbox into the agent session, in decision order (the call owns this).
        A lost socket makes the send wait for the reconnect; a session closed for good ends
        the writer (the call's agent-event task ends the call)."""
        while True:
            event = await self._outbox.get()
            try:
                await self._send_fn(event)
            except UpstreamError:
                return

    # -- responses without collisions ---------------------------------------------------

    def request_response(
        self,
        items: list[dict[str, Any]] | None = None,
        response: dict[str, Any] | None = None,
        *,
        reason: str = "",
        create: bool = True,
    ) -> None:
        """Add ``items`` and (if ``create``) ask for a response, now or after the active one."""
        deferred = _Deferred(list(items or []), response if create else None, reason)
        if not create:
            for item in deferred.items:
                self._send({"type": "conversation.item.create", "item": item})
            return
        if self.active_response is None and not self._create_pending:
            self._flush(deferred)
            return
        for waiting in self._deferred:  # one waiting response per kind of trigger
            if waiting.reason == reason and waiting.response == deferred.response:
                waiting.items.extend(deferred.items)
                return
        self.stats.responses_queued += 1
        self._deferred.append(deferred)

    def _flush(self, deferred: _Deferred) -> None:
        for item in deferred.items:
            self._send({"type": "conversation.item.create", "item": item})
        create: dict[str, Any] = {"type": "response.create"}
        if deferred.response:
            create["response"] = deferred.response
        self._create_pending = not self.model_owns_turns
        self._send(create)

    def _next_deferred(self) -> None:
        if self._deferred and self.active_response is None and not self._create_pending:
            self._flush(self._deferred.popleft())

    # -- agent events (typed, from the call's dispatcher) --------------------------------

    def on_response_created(self, response_id: str) -> None:
        self.active_response = response_id
        self._create_pending = False

    def on_response_done(self, event: ResponseDone) -> None:
        self.active_response = None
        self._create_pending = False
        self._settle_function_calls(event)
        self._next_deferred()

    def on_session_renewed(self) -> None:
        """A new upstream session: no response of the old one is active any more (function
        calls it left open are answered by nobody and dropped)."""
        self.active_response = None
        self._create_pending = False
        self._calls.clear()
        self._next_deferred()

    def on_upstream_error(self, event: UpstreamErrorEvent) -> None:
        if event.code == "conversation_already_has_active_response" and self._create_pending:
            # a VAD-created response won the race: ours waits for its response.done
            self._create_pending = False
            self._deferred.appendleft(_Deferred([], None, "requeued"))

    def on_speech_started(self) -> None:
        if self._interrupts():
            self.barge_in(cancel=not self.upstream_cancels_on_speech, started_at=self._now())

    def on_function_call(self, event: FunctionCallDone) -> None:
        """The agent's arguments are complete; it is acted on once its response is done."""
        try:
            args = json.loads(event.arguments or "{}")
        except ValueError:
            args = {}
        self._log(
            "tool_call",
            {
                "name": event.name,
                "call_id": event.call_id,
                "arguments": args if isinstance(args, dict) else {},
            },
        )
        calls = self._calls.setdefault(event.response_id, [])
        if len(calls) < MAX_PENDING_TOOL_CALLS:
            calls.append(event)
        while len(self._calls) > MAX_OPEN_RESPONSES:  # responses that never finished
            del self._calls[next(iter(self._calls))]

    def _settled(self, item_id: str) -> None:
        self._truncated[item_id] = None
        while len(self._truncated) > RECENT:
            self._truncated.popitem(last=False)

    def _interrupts(self) -> bool:
        session = self._session()
        audio = session.get("audio")
        audio_in = audio.get("input") if isinstance(audio, Mapping) else None
        td = audio_in.get("turn_detection") if isinstance(audio_in, Mapping) else None
        return not (isinstance(td, Mapping) and td.get("interrupt_response") is False)

    def _now(self) -> float:
        return self._clock.now()

    # -- playout ------------------------------------------------------------------------

    def on_playback(self, event: PlaybackEvent) -> None:
        if isinstance(event, PlaybackStarted):
            out = {
                "type": "output_audio_buffer.started",
                "event_id": _event_id(),
                "response_id": event.response_id,
            }
        elif isinstance(event, PlaybackFinished):
            out = {
                "type": "output_audio_buffer.stopped",
                "event_id": _event_id(),
                "response_id": event.response_id,
            }
            self._truncate_overflowed(event)
        else:
            return
        self._emit(out)
        detail: dict[str, Any] = {"response_id": out["response_id"]}
        if isinstance(event, PlaybackFinished):
            detail["sent_ms"] = round(event.sent_ms)
        self._log(out["type"], detail)

    def on_audio_overflow(self, response_id: str, item_id: str) -> None:
        """The response's audio met the playout bound (an answer longer than the buffer, or
        an agent streaming without end): it is cancelled, and once what fit has played, the
        item is truncated there, so the model's conversation holds what the caller heard."""
        self._overflowed[response_id] = item_id
        while len(self._overflowed) > RECENT:
            self._overflowed.popitem(last=False)
        if self.active_response == response_id:
            self._send({"type": "response.cancel"})
        self._log("agent_audio.overflow", {"response_id": response_id, "item_id": item_id})

    def _truncate_overflowed(self, event: PlaybackFinished) -> None:
        item_id = self._overflowed.pop(event.response_id, None)
        if item_id is None or item_id in self._truncated:
            return
        self._cut(item_id, int(dict(event.items).get(item_id, 0.0)))

    def _cut(self, item_id: str, end_ms: int) -> bool:
        """Make the conversation hold ``end_ms`` of the item's audio, what the caller heard:
        truncate it there, or delete it when nothing was heard (False)."""
        self._settled(item_id)
        if end_ms <= 0:
            self._send({"type": "conversation.item.delete", "item_id": item_id})
            self.stats.deletions += 1
            return False
        self._send(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": end_ms,
            }
        )
        self.stats.truncations += 1
        return True

    def barge_in(self, *, cancel: bool, started_at: float | None = None) -> ClearResult:
        """Stop playout before the next frame and make the conversation match what was heard
        (``cancel``: also cancel the active response)."""
        result = self.media.clear()
        if cancel and self.active_response is not None:
            self._send({"type": "response.cancel"})
        delay = self.profile.downstream_delay_ms
        truncated: list[dict[str, Any]] = []
        for item in result.played:
            if item.item_id in self._truncated:
                continue
            end_ms = max(0, item.audio_end_ms - delay)
            if self._cut(item.item_id, end_ms):
                truncated.append({"item_id": item.item_id, "audio_end_ms": end_ms})
        for item in result.unplayed:
            if item.item_id and item.item_id not in self._truncated:
                self._settled(item.item_id)
                self._send({"type": "conversation.item.delete", "item_id": item.item_id})
                self.stats.deletions += 1
        if result.was_playing or result.played or result.unplayed:
            response_ids = {i.response_id for i in (*result.played, *result.unplayed)}
            for rid in sorted(response_ids) or [self.active_response or ""]:
                self._emit(
                    {
                        "type": "output_audio_buffer.cleared",
                        "event_id": _event_id(),
                        "response_id": rid,
                    }
                )
            self.stats.barge_ins += 1
            if started_at is not None:
                self.stats.barge_in_latency_ms.append((self._now() - started_at) * 1000.0)
                self.stats.barge_ins_timed += 1
            self._log(
                "output_audio_buffer.cleared",
                {
                    "cancelled": cancel and self.active_response is not None,
                    "truncated": truncated,
                    "deleted": [i.item_id for i in result.unplayed],
                },
            )
        return result

    # -- client events (data channel, sideband, control plane) ---------------------------

    async def client_event(self, event: dict[str, Any]) -> None:
        """A client's event (data channel, sideband, control plane) into the call."""
        forward = self.on_client_event(event)
        if forward is not None:
            await self.forward(forward)

    def on_client_event(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """Filter a client's event: returns what to send upstream (None: handled here)."""
        kind = event.get("type")
        if kind == "output_audio_buffer.clear":
            self.barge_in(cancel=False)
            return None
        if kind in DTMF_CLIENT_EVENTS:
            # keypad digits from a browser (data channel) or an operator (sideband)
            digits = str(event.get("event") or event.get("digit") or "")
            for digit in digits:
                self.on_dtmf(digit.upper(), "client")
            return None
        if kind == "session.update" and self.profile.telephony_tools:
            session = event.get("session")
            if isinstance(session, dict):
                return {**event, "session": merge_telephony_tools(session)}
        if kind == "response.create":
            self.request_response(None, event.get("response"), reason="client")
            return None
        if kind == "conversation.item.create":
            item = event.get("item") or {}
            if isinstance(item, dict) and item.get("type") == "function_call_output":
                self._app_tools.pop(str(item.get("call_id")), None)
        return event

    # -- DTMF -----------------------------------------------------------------------------

    def on_dtmf(self, digit: str, source: str) -> None:
        if digit not in DTMF_DIGITS:
            return
        if not self._dtmf_rate.take(self._now()):
            self.stats.dtmf_dropped += 1
            if self.stats.dtmf_dropped == 1:
                policy = self.profile.dtmf
                why = f"DTMF over {policy.max_per_s:g}/s (burst {policy.burst}): dropping"
                self._log("dtmf.dropped", {"source": source, "why": why})
                if self._on_flood is not None:
                    self._on_flood(why)
            return
        self.stats.dtmf_digits += 1
        self._emit(
            {
                "type": "input_audio_buffer.dtmf_event_received",
                "event": digit,
                "received_at": int(self._clock.wall()),
            }
        )
        self._log("dtmf", {"digit": digit, "source": source})
        policy = self.profile.dtmf
        action = policy.actions.get(digit)
        if action is not None:
            self._dtmf_action(digit, action)
            return
        if policy.mode == "message":
            self._user_message(f"The caller pressed {digit} on the keypad.", "dtmf")
        elif policy.mode == "collect":
            if digit == policy.terminator:
                self._flush_digits()
            else:
                self._digits.append(digit)
                self._digits_deadline = self._now() + policy.timeout_ms / 1000.0

    def _flush_digits(self) -> None:
        digits, self._digits, self._digits_deadline = "".join(self._digits), [], None
        if digits:
            self._user_message(f"The caller entered {digits} on the keypad.", "dtmf")

    def _dtmf_action(self, digit: str, action: str) -> None:
        if action == "hangup":
            self._log("dtmf.action", {"digit": digit, "action": "hangup"})
            self.leg.end(EndReason.DTMF_HANGUP)
        elif action == "mute":
            self._muted = not self._muted
            self.media.set_muted(self._muted)
            self._log("dtmf.action", {"digit": digit, "action": "mute", "muted": self._muted})
        elif action.startswith("transfer:"):
            target = action.split(":", 1)[1]
            verdict = self._may_transfer(target)
            self._log(
                "dtmf.action",
                {
                    "digit": digit,
                    "action": "transfer",
                    "target": target,
                    "allowed": verdict.allowed,
                },
            )
            if verdict and verdict.target is not None:
                self.leg.refer(verdict.target)

    def _may_transfer(self, target: str) -> Verdict:
        if self._transfers is not None:
            return self._transfers.check(target)
        return self.profile.may_transfer_to(target)

    def _user_message(self, text: str, reason: str) -> None:
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        }
        self.request_response([item], reason=reason)

    # -- tools ----------------------------------------------------------------------------

    def _settle_function_calls(self, done: ResponseDone) -> None:
        """Act on the response's function calls whose items completed; drop the others (a
        barge-in cancelled the response under them: nobody waits for their output)."""
        pending = self._calls.pop(done.response_id, [])
        status = {c.call_id: c.status for c in done.function_calls}
        for call in pending:
            item_status = status.get(call.call_id)
            if item_status is None:  # the upstream did not list it: the response decides
                item_status = "completed" if done.status == "completed" else "incomplete"
            if item_status != "completed":
                self.stats.tool_calls_cancelled += 1
                self._log("tool_call.cancelled", {"call_id": call.call_id, "name": call.name})
                continue
            self._run_function_call(call)

    def _run_function_call(self, call: FunctionCallDone) -> None:
        name, call_id = call.name, call.call_id
        try:
            args = json.loads(call.arguments or "{}")
        except ValueError:
            args = {}
        if not isinstance(args, dict):
            args = {}
        if name not in _TOOL_NAMES or not self.profile.telephony_tools:
            if len(self._app_tools) >= MAX_PENDING_TOOL_CALLS:
                self._log("tool.refused", {"call_id": call_id, "name": name})
                self._tool_output(
                    call_id,
                    {"error": f"{MAX_PENDING_TOOL_CALLS} tool calls already wait for an answer."},
                )
                return
            self._app_tools[call_id] = self._now() + self.profile.tool_timeout_s
            return
        if name == "end_call":
            self._tool_output(
                call_id, {"ok": True, "status": "hanging up after playback"}, respond=False
            )
            self._after_playback = ("hangup", "")
        elif name == "transfer_call":
            verdict = self._may_transfer(str(args.get("target", "")))
            if not verdict or verdict.target is None:
                self._log("transfer.refused", {"target": args.get("target"), "why": verdict.reason})
                self._tool_output(call_id, {"error": f"transfer refused: {verdict.reason}"})
                return
            self._tool_output(call_id, {"ok": True, "status": "transferring"}, respond=False)
            self._after_playback = ("transfer", verdict.target)
        elif name == "send_dtmf":
            digits = args.get("digits", "")
            digits = digits if isinstance(digits, str) else str(digits)
            if len(digits) > MAX_TOOL_DIGITS:  # before any work on them
                self._log("dtmf.refused", {"digits": digits[:MAX_TOOL_DIGITS], "n": len(digits)})
                self._tool_output(
                    call_id,
                    {"error": f"at most {MAX_TOOL_DIGITS} digits per call; none were sent"},
                )
                return
            if not digits or any(d not in DTMF_DIGITS for d in digits):
                self._tool_output(call_id, {"error": "digits must be 0-9, *, #, A-D"})
                return
            ok = self.media.send_dtmf(digits)
            self._log("dtmf.sent", {"digits": digits, "ok": ok})
            error = "DTMF cannot be sent now (not available, or too many digits waiting)"
            self._tool_output(call_id, {"ok": ok} if ok else {"error": error})

    def _tool_output(self, call_id: str, output: dict[str, Any], *, respond: bool = True) -> None:
        item = {"type": "function_call_output", "call_id": call_id, "output": json.dumps(output)}
        self.request_response([item], reason="tool", create=respond)

    # -- timers (called on every frame tick) ----------------------------------------------

    def on_tick(self, deadline: float, now: float) -> None:
        del deadline
        if self._digits_deadline is not None and now >= self._digits_deadline:
            self._flush_digits()
        tools = self._app_tools  # in deadline order: one timeout, added in time order
        while tools:
            call_id, due = next(iter(tools.items()))
            if now < due:
                break
            del tools[call_id]
            self.stats.tool_timeouts += 1
            self._log("tool.timeout", {"call_id": call_id})
            self._tool_output(
                call_id, {"error": "The application did not answer this tool call in time."}
            )
        if self._after_playback is not None:
            if self.media.playing() or self.active_response is not None:
                self._after_playback_at = None
            elif self._after_playback_at is None:
                self._after_playback_at = now + self.profile.hangup_grace_ms / 1000.0
            elif now >= self._after_playback_at:
                action, target = self._after_playback
                self._after_playback = None
                if action == "hangup":
                    self._log("hangup", {"source": "end_call"})
                    self.leg.end(EndReason.AGENT_END_CALL)
                else:
                    self._log("transfer", {"target": target, "source": "transfer_call"})
                    if not self.leg.refer(target):
                        self._log("transfer.failed", {"target": target})
