"""Call control on virtual time with a real playout buffer: what the caller heard decides."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridge.calls.agent_events import (
    BufferEvent,
    FunctionCallDone,
    ResponseCreated,
    ResponseDone,
    SpeechStarted,
    UpstreamErrorEvent,
    parse_agent_event,
)
from bridge.calls.control import (
    MAX_OPEN_RESPONSES,
    MAX_PENDING_TOOL_CALLS,
    MAX_TOOL_DIGITS,
    OUTBOX_MAX,
    CallControl,
    merge_telephony_tools,
)
from bridge.calls.end import EndReason
from bridge.config import AgentProfile, DtmfPolicy
from media.clock import VirtualClock
from media.playout import ClearResult, PlayoutBuffer, PlayoutEncoding, PlayoutFormat


class FakeMedia:
    def __init__(self) -> None:
        self.playout = PlayoutBuffer(PlayoutFormat(PlayoutEncoding.PCMU, 8000))
        self.dtmf: list[str] = []
        self.muted = False

    def clear(self) -> ClearResult:
        return self.playout.clear()

    def playing(self) -> bool:
        return bool(self.playout.active_responses) or self.playout.buffered_ms > 0

    def send_dtmf(self, digits: str) -> bool:
        self.dtmf.append(digits)
        return True

    def set_muted(self, muted: bool) -> None:
        self.muted = muted


class FakeLeg:
    def __init__(self) -> None:
        self.ended: list[str] = []
        self.transfers: list[str] = []

    def end(self, reason: EndReason, status: int | None = None) -> None:
        self.ended.append(reason)

    def refer(self, target: str) -> bool:
        self.transfers.append(target)
        return True


class Rig:
    def __init__(
        self, *, upstream_cancels: bool = True, model_owns_turns: bool = False, **profile: Any
    ) -> None:
        self.clock = VirtualClock(100.0)
        self.media = FakeMedia()
        self.leg = FakeLeg()
        self.sent: list[dict[str, Any]] = []
        self.emitted: list[dict[str, Any]] = []
        self.log: list[tuple[str, dict[str, Any]]] = []
        self.session: dict[str, Any] = {}
        self.control = CallControl(
            profile=AgentProfile(**profile),
            media=self.media,
            leg=self.leg,
            send=self._send,
            emit=self.emitted.append,
            log_event=lambda k, d: self.log.append((k, d)),
            session=lambda: self.session,
            clock=self.clock,
            upstream_cancels_on_speech=upstream_cancels,
            model_owns_turns=model_owns_turns,
        )
        self.media.playout.start(self.t)
        self.heard_ms: dict[str, int] = {}  # per item: audio frames actually emitted

    @property
    def t(self) -> float:
        return self.clock.now()

    async def _send(self, event: dict[str, Any]) -> None:
        self.sent.append(event)

    def drain(self) -> list[dict[str, Any]]:
        while not self.control._outbox.empty():
            self.sent.append(self.control._outbox.get_nowait())
        out, self.sent = self.sent, []
        return out

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            self.clock.advance(0.020)
            for frame in self.media.playout.tick(self.t):
                if frame.item_id and not frame.is_silence:
                    self.heard_ms[frame.item_id] = self.heard_ms.get(frame.item_id, 0) + 20
            for ev in self.media.playout.take_events():
                self.control.on_playback(ev)
            self.control.on_tick(self.t, self.t)

    def agent(self, raw: dict[str, Any]) -> bool:
        """One upstream event through call control, as the call's dispatcher hands it over;
        False: not forwarded to clients."""
        event = parse_agent_event(raw)
        control = self.control
        match event:
            case ResponseCreated(response_id=rid):
                control.on_response_created(rid)
            case ResponseDone():
                control.on_response_done(event)
            case SpeechStarted():
                control.on_speech_started()
            case FunctionCallDone():
                control.on_function_call(event)
            case UpstreamErrorEvent():
                control.on_upstream_error(event)
            case BufferEvent():
                return False
        return True

    def function_call(
        self, name: str, call_id: str, arguments: str = "{}", *, status: str = "completed"
    ) -> None:
        """A response whose one output is a function call, from created to done."""
        rid = f"resp_{call_id}"
        self.agent({"type": "response.created", "response": {"id": rid}})
        self.agent(
            {
                "type": "response.function_call_arguments.done",
                "response_id": rid,
                "item_id": f"item_{call_id}",
                "name": name,
                "call_id": call_id,
                "arguments": arguments,
            }
        )
        item = {"type": "function_call", "call_id": call_id, "name": name, "status": status}
        response_status = "completed" if status == "completed" else "cancelled"
        self.agent(
            {
                "type": "response.done",
                "response": {"id": rid, "status": response_status, "output": [item]},
            }
        )

    def respond(self, rid: str, items: dict[str, int]) -> None:
        """A response whose items carry ``items[item_id]`` ms of u-law audio."""
        self.agent({"type": "response.created", "response": {"id": rid}})
        for item_id, ms in items.items():
            self.media.playout.push(rid, item_id, b"\x10" * (8 * ms))


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


@pytest.mark.parametrize("upstream_cancels", [True, False])
def test_barge_in_truncates_what_was_heard_and_deletes_the_rest(upstream_cancels: bool) -> None:
    """An upstream whose VAD cancels its own response (OpenAI's ``interrupt_response``) gets
    no ``response.cancel``: it would answer ``response_cancel_not_active``."""
    rig = Rig(downstream_delay_ms=0, upstream_cancels=upstream_cancels)
    rig.respond("r1", {"i1": 1000})
    rig.tick(1)
    rig.media.playout.push("r1", "i2", b"\x10" * 800)  # a second item, not yet started
    rig.tick(24)  # 480 ms of i1 heard
    assert types(rig.emitted) == ["output_audio_buffer.started"]
    assert rig.agent({"type": "input_audio_buffer.speech_started", "audio_start_ms": 5})
    sent = rig.drain()
    cancel = [] if upstream_cancels else ["response.cancel"]
    assert types(sent) == [*cancel, "conversation.item.truncate", "conversation.item.delete"]
    sent = sent[len(cancel) :]
    assert sent[0]["item_id"] == "i1" and sent[0]["audio_end_ms"] == rig.heard_ms["i1"]
    assert 480 <= rig.heard_ms["i1"] <= 520  # ~25 ticks of audio
    assert sent[1]["item_id"] == "i2"
    assert rig.emitted[-1]["type"] == "output_audio_buffer.cleared"
    frames_after = rig.media.playout.tick(rig.t + 0.02)
    assert all(f.is_silence for f in frames_after)  # nothing of the response plays on
    # a second speech_started for the same items does not truncate them twice
    rig.agent({"type": "input_audio_buffer.speech_started"})
    assert "conversation.item.truncate" not in types(rig.drain())


def test_downstream_delay_is_subtracted_and_interrupt_false_is_honoured() -> None:
    rig = Rig(downstream_delay_ms=60)
    rig.respond("r1", {"i1": 1000})
    rig.tick(11)
    rig.agent({"type": "input_audio_buffer.speech_started"})
    trunc = [e for e in rig.drain() if e["type"] == "conversation.item.truncate"]
    assert trunc[0]["audio_end_ms"] == rig.heard_ms["i1"] - 60
    rig2 = Rig()
    rig2.session = {"audio": {"input": {"turn_detection": {"interrupt_response": False}}}}
    rig2.respond("r1", {"i1": 1000})
    rig2.tick(5)
    rig2.agent({"type": "input_audio_buffer.speech_started"})
    assert rig2.drain() == []


def test_upstream_output_audio_buffer_events_are_not_forwarded_twice() -> None:
    rig = Rig()
    assert rig.agent({"type": "output_audio_buffer.started", "response_id": "r"}) is False


def test_response_create_waits_for_the_active_response() -> None:
    rig = Rig(dtmf=DtmfPolicy(mode="message"))
    rig.agent({"type": "response.created", "response": {"id": "r1"}})
    rig.control.on_dtmf("5", "rfc4733")
    assert rig.drain() == []  # queued: a response is active
    assert rig.emitted[0] == {
        "type": "input_audio_buffer.dtmf_event_received",
        "event": "5",
        "received_at": rig.emitted[0]["received_at"],
    }
    rig.agent({"type": "response.done", "response": {"id": "r1"}})
    sent = rig.drain()
    assert types(sent) == ["conversation.item.create", "response.create"]
    assert "pressed 5" in sent[0]["item"]["content"][0]["text"]
    # a client's response.create while ours is pending also waits
    rig.control.on_client_event({"type": "response.create"})
    assert rig.drain() == []
    rig.agent({"type": "response.created", "response": {"id": "r2"}})
    rig.agent({"type": "response.done", "response": {"id": "r2"}})
    assert types(rig.drain()) == ["response.create"]


def test_where_the_model_owns_turns_a_create_without_an_answer_never_blocks_the_gate() -> None:
    """GPT-Live: a response.create may bring no response.created until the model decides to
    speak (or never); the next digit still goes upstream at once, and an active response
    still holds it back."""
    rig = Rig(model_owns_turns=True, dtmf=DtmfPolicy(mode="message"))
    rig.control.on_dtmf("1", "info")
    assert types(rig.drain()) == ["conversation.item.create", "response.create"]
    rig.control.on_dtmf("2", "info")  # nothing answered the first create: no wait for it
    assert types(rig.drain()) == ["conversation.item.create", "response.create"]
    rig.agent({"type": "response.created", "response": {"id": "spoken"}})
    rig.control.on_dtmf("3", "info")
    assert rig.drain() == []  # the model is speaking: the digit waits for its end
    rig.agent({"type": "response.done", "response": {"id": "spoken"}})
    sent = rig.drain()
    assert types(sent) == ["conversation.item.create", "response.create"]
    assert "pressed 3" in sent[0]["item"]["content"][0]["text"]


def test_a_renewal_ends_the_old_sessions_response_and_sends_what_waited() -> None:
    rig = Rig(dtmf=DtmfPolicy(mode="message"))
    rig.agent({"type": "response.created", "response": {"id": "r1"}})
    rig.control.on_dtmf("4", "info")
    assert rig.drain() == []
    rig.control.on_session_renewed()  # r1 died with the old session: no response.done comes
    assert types(rig.drain()) == ["conversation.item.create", "response.create"]
    assert rig.control.active_response is None


def test_vad_response_winning_the_race_requeues_ours() -> None:
    rig = Rig()
    rig.control.on_dtmf("1", "info")
    assert types(rig.drain()) == ["conversation.item.create", "response.create"]
    rig.agent({"type": "error", "error": {"code": "conversation_already_has_active_response"}})
    rig.agent({"type": "response.created", "response": {"id": "vad"}})
    assert rig.drain() == []
    rig.agent({"type": "response.done", "response": {"id": "vad"}})
    assert types(rig.drain()) == ["response.create"]


def test_dtmf_collect_until_terminator_or_timeout() -> None:
    rig = Rig(dtmf=DtmfPolicy(mode="collect", terminator="#", timeout_ms=1000))
    for d in "42#":
        rig.control.on_dtmf(d, "rfc4733")
    sent = rig.drain()
    assert "entered 42" in sent[0]["item"]["content"][0]["text"]
    rig.agent({"type": "response.created", "response": {"id": "x"}})
    rig.agent({"type": "response.done", "response": {"id": "x"}})
    rig.control.on_dtmf("7", "rfc4733")
    rig.tick(10)
    assert rig.drain() == []
    rig.tick(50)  # timeout passes
    assert "entered 7" in rig.drain()[0]["item"]["content"][0]["text"]


def test_dtmf_actions_hangup_mute_and_transfer_allowlist() -> None:
    rig = Rig(
        dtmf=DtmfPolicy(
            actions={
                "0": "hangup",
                "9": "mute",
                "1": "transfer:sip:ops@pbx",
                "2": "transfer:sip:evil@x",
            }
        ),
        transfer_targets=["sip:ops@pbx"],
    )
    rig.control.on_dtmf("9", "rfc4733")
    assert rig.media.muted
    rig.control.on_dtmf("2", "rfc4733")
    rig.control.on_dtmf("1", "rfc4733")
    assert rig.leg.transfers == ["sip:ops@pbx"]
    rig.control.on_dtmf("0", "info")
    assert rig.leg.ended == [EndReason.DTMF_HANGUP]
    assert rig.drain() == []  # actions are not messages to the agent


def test_end_call_waits_for_playback_and_grace() -> None:
    rig = Rig(telephony_tools=True, hangup_grace_ms=500)
    rig.respond("r1", {"goodbye": 600})
    rig.agent(
        {
            "type": "response.function_call_arguments.done",
            "response_id": "r1",
            "name": "end_call",
            "call_id": "c1",
            "arguments": "{}",
        }
    )
    assert rig.drain() == []  # acted on once its response is done
    rig.agent({"type": "response.done", "response": {"id": "r1"}})
    sent = rig.drain()
    assert types(sent) == ["conversation.item.create"]  # output, no new response
    rig.media.playout.mark_done("r1")
    rig.tick(30)  # 600 ms: the goodbye has been played
    assert rig.leg.ended == []
    rig.tick(20)  # + 400 ms of grace: still not
    assert rig.leg.ended == []
    rig.tick(10)
    assert rig.leg.ended == [EndReason.AGENT_END_CALL]
    kinds = [k for k, _ in rig.log]
    assert (
        kinds.index("tool_call")
        < kinds.index("output_audio_buffer.stopped")
        < kinds.index("hangup")
    )


def test_transfer_tool_refuses_targets_outside_the_allowlist() -> None:
    rig = Rig(telephony_tools=True, transfer_targets=["tel:+1555*"])
    rig.function_call("transfer_call", "c2", json.dumps({"target": "tel:+4420"}))
    sent = rig.drain()
    assert "transfer refused: 'tel:+4420' matches no rule" in sent[0]["item"]["output"]
    assert types(sent) == ["conversation.item.create", "response.create"]
    rig.agent({"type": "response.created", "response": {"id": "after"}})
    rig.agent({"type": "response.done", "response": {"id": "after"}})
    rig.function_call("transfer_call", "c3", json.dumps({"target": "tel:+15550100"}))
    rig.tick(30)
    assert rig.leg.transfers == ["tel:+15550100"]


def test_send_dtmf_tool_and_app_tool_timeout() -> None:
    rig = Rig(telephony_tools=True, tool_timeout_s=1.0)
    rig.function_call("send_dtmf", "c4", '{"digits": "12#"}')
    assert rig.media.dtmf == ["12#"]
    assert types(rig.drain()) == ["conversation.item.create", "response.create"]
    rig.agent({"type": "response.created", "response": {"id": "r"}})
    rig.agent({"type": "response.done", "response": {"id": "r"}})
    rig.function_call("lookup_order", "c5")
    rig.tick(10)
    assert rig.drain() == []  # the application has time to answer
    rig.tick(45)
    sent = rig.drain()
    assert sent[0]["item"]["call_id"] == "c5" and "did not answer" in sent[0]["item"]["output"]
    # an answered app tool does not time out
    rig.function_call("lookup_order", "c6")
    rig.control.on_client_event(
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": "c6", "output": "{}"},
        }
    )
    rig.tick(60)
    outputs = [e["item"] for e in rig.drain() if e["type"] == "conversation.item.create"]
    assert not any(item.get("call_id") == "c6" for item in outputs)


@pytest.mark.parametrize(
    "existing",
    [[], [{"type": "function", "name": "lookup"}], [{"type": "function", "name": "end_call"}]],
)
def test_tool_merge_keeps_clients_tools_and_ours_once(existing: list[dict[str, Any]]) -> None:
    merged = merge_telephony_tools({"type": "realtime", "tools": existing})
    names = [t["name"] for t in merged["tools"]]
    assert names.count("end_call") == 1 and {"transfer_call", "send_dtmf"} <= set(names)
    assert ("lookup" in names) == any(t["name"] == "lookup" for t in existing)


@pytest.mark.parametrize(
    "event",
    [
        {"type": "input_audio_buffer.dtmf", "event": "4"},
        {"type": "input_audio_buffer.dtmf_event_received", "digit": "4"},
    ],
)
def test_client_dtmf_event_is_a_keypad_digit(event: dict[str, Any]) -> None:
    rig = Rig()
    assert rig.control.on_client_event(event) is None  # not forwarded upstream as is
    assert rig.emitted[0]["type"] == "input_audio_buffer.dtmf_event_received"
    assert rig.emitted[0]["event"] == "4"
    assert "pressed 4" in rig.drain()[0]["item"]["content"][0]["text"]


def test_a_function_call_cancelled_by_barge_in_gets_no_timeout_output() -> None:
    """The caller spoke while the agent was calling a tool: the upstream cancelled the
    response, the call's item is ``incomplete``, and nobody waits for its output."""
    rig = Rig(tool_timeout_s=1.0)
    rig.function_call("lookup_order", "c7", '{"order": ', status="incomplete")
    rig.tick(100)  # two seconds: twice the tool timeout
    assert rig.drain() == []
    assert ("tool_call.cancelled", {"call_id": "c7", "name": "lookup_order"}) in rig.log
    assert rig.control.stats.tool_calls_cancelled == 1
    assert rig.control.stats.tool_timeouts == 0


def test_outbox_overflow_ends_the_call_instead_of_dropping_a_decision() -> None:
    """Call control's own decisions are never dropped: when the agent stops reading and the
    bounded outbox fills, the call ends (upstream-stalled)."""
    rig = Rig()
    for n in range(OUTBOX_MAX):
        rig.control.queue({"type": "conversation.item.delete", "item_id": f"i{n}"})
    assert rig.leg.ended == []
    rig.control.queue({"type": "conversation.item.delete", "item_id": "one-too-many"})
    assert rig.leg.ended == [EndReason.UPSTREAM_STALLED]


def test_a_digit_flood_is_rate_limited_and_buys_one_agent_response() -> None:
    """1,000 digits in an instant while the agent speaks: the profile's burst goes through,
    the rest is dropped and counted (one log row, one security report), and one response
    waits for all the digits that went through."""
    rig = Rig(dtmf=DtmfPolicy(mode="message", max_per_s=10, burst=20))
    floods: list[str] = []
    rig.control._on_flood = floods.append
    rig.agent({"type": "response.created", "response": {"id": "r1"}})
    for n in range(1000):
        rig.control.on_dtmf("0123456789"[n % 10], "rfc4733")
    assert rig.control.stats.dtmf_digits == 20 and rig.control.stats.dtmf_dropped == 980
    assert [k for k, _ in rig.log].count("dtmf") == 20
    assert [k for k, _ in rig.log].count("dtmf.dropped") == 1 and len(floods) == 1
    assert rig.drain() == []  # the agent is speaking: nothing is sent yet
    rig.agent({"type": "response.done", "response": {"id": "r1"}})
    sent = rig.drain()
    assert types(sent).count("response.create") == 1  # one response for all twenty
    assert types(sent).count("conversation.item.create") == 20
    rig.clock.advance(1.0)  # ten more a second
    for _ in range(15):
        rig.control.on_dtmf("5", "rfc4733")
    assert rig.control.stats.dtmf_digits == 30


def test_one_waiting_response_per_kind_of_trigger() -> None:
    rig = Rig()
    rig.agent({"type": "response.created", "response": {"id": "r1"}})
    for n in range(5):
        rig.control.request_response([{"type": "message", "n": n}], reason="dtmf")
        rig.control.request_response([{"type": "function_call_output", "n": n}], reason="tool")
    assert rig.control.stats.responses_queued == 2
    rig.agent({"type": "response.done", "response": {"id": "r1"}})
    assert types(rig.drain()) == ["conversation.item.create"] * 5 + ["response.create"]


def test_send_dtmf_tool_refuses_more_than_64_digits_and_sends_none() -> None:
    """A million digits blocked the event loop ~20 s and took 1.4 GB; now the agent hears the
    limit at once and nothing is sent."""
    rig = Rig(telephony_tools=True)
    rig.function_call("send_dtmf", "c1", json.dumps({"digits": "1" * 1_000_000}))
    assert rig.media.dtmf == []
    sent = rig.drain()
    output = json.loads(sent[0]["item"]["output"])
    assert output == {"error": f"at most {MAX_TOOL_DIGITS} digits per call; none were sent"}
    assert types(sent) == ["conversation.item.create", "response.create"]
    rig.agent({"type": "response.created", "response": {"id": "r"}})
    rig.agent({"type": "response.done", "response": {"id": "r"}})
    rig.function_call("send_dtmf", "c2", json.dumps({"digits": "#" * MAX_TOOL_DIGITS}))
    assert rig.media.dtmf == ["#" * MAX_TOOL_DIGITS]


def test_an_answer_past_the_playout_bound_is_stopped_and_truncated_where_it_was_heard() -> None:
    """An answer longer than the buffer holds (or an agent streaming without end): the
    response is cancelled and, once what fit has played, its item is truncated there, so
    the model does not believe the caller heard the part that was dropped."""
    rig = Rig(downstream_delay_ms=0)
    rig.media.playout = PlayoutBuffer(PlayoutFormat(PlayoutEncoding.PCMU, 8000), max_buffered_s=1.0)
    rig.media.playout.start(rig.t)
    rig.respond("r1", {"i1": 1500})  # 1.5 s: half a second past the bound
    assert rig.media.playout.stats.samples_overflow == 8 * 500
    rig.control.on_audio_overflow("r1", "i1")  # what AgentPath tells the call
    assert types(rig.drain()) == ["response.cancel"]
    rig.agent({"type": "response.done", "response": {"id": "r1", "status": "cancelled"}})
    rig.media.playout.mark_done("r1")
    rig.tick(60)
    sent = rig.drain()
    assert types(sent) == ["conversation.item.truncate"]
    assert sent[0]["item_id"] == "i1" and sent[0]["audio_end_ms"] == rig.heard_ms["i1"] == 1000
    assert ("agent_audio.overflow", {"response_id": "r1", "item_id": "i1"}) in rig.log


def test_an_agent_looping_on_tool_calls_is_bounded() -> None:
    """Tool calls for the application, made faster than it answers (an agent in a loop), wait
    at most MAX_PENDING_TOOL_CALLS at a time: the rest are answered at once with an error;
    function calls of responses that never finish are forgotten past MAX_OPEN_RESPONSES."""
    rig = Rig(tool_timeout_s=5.0)
    for n in range(MAX_PENDING_TOOL_CALLS + 8):
        rig.function_call("lookup_order", f"c{n}")
    sent = rig.drain()
    refused = [e for e in sent if e["type"] == "conversation.item.create"]
    assert len(refused) == 8  # answered at once, each with an error output
    assert all("already wait" in e["item"]["output"] for e in refused)
    assert len(rig.control._app_tools) == MAX_PENDING_TOOL_CALLS
    rig.clock.advance(5.0)
    rig.tick(1)
    assert rig.control.stats.tool_timeouts == MAX_PENDING_TOOL_CALLS
    assert not rig.control._app_tools
    for n in range(MAX_OPEN_RESPONSES + 50):  # arguments done, the response never does
        rig.agent({"type": "response.created", "response": {"id": f"open{n}"}})
        rig.agent(
            {
                "type": "response.function_call_arguments.done",
                "response_id": f"open{n}",
                "item_id": f"item{n}",
                "name": "lookup_order",
                "call_id": f"open{n}",
                "arguments": "{}",
            }
        )
    assert len(rig.control._calls) == MAX_OPEN_RESPONSES
