"""Call control end to end with SIPp callers: barge-in, end_call after the goodbye, DTMF
policies and actions (hang up, transfer with REFER), against the local agent."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.calls import sipp_scenario as sc
from tests.calls.conftest import Stack
from tests.support.audio import ulaw_file

pytestmark = pytest.mark.peer("sipp")


async def call(stack: Stack, tmp_path: Path, *steps: str, timeout: float = 60) -> None:
    res = await stack.sipp_caller(tmp_path, sc.uac(*steps), timeout=timeout)
    assert res.returncode == 0, res.summary()
    await stack.manager.wait_idle()
    stack.store.flush()


def log_of(stack: Stack) -> list[tuple[str, dict[str, object]]]:
    (record,) = stack.store.list_calls()
    return [(e.kind, e.data) for e in stack.store.events(record.call_id)]


@pytest.mark.parametrize("stack_options", [{"agent_kwargs": {"chunk_interval_s": 0.1}}])
async def test_barge_in_clears_and_truncates_exactly_with_no_upstream_error(
    stack: Stack, tmp_path: Path
) -> None:
    """The agent streams at real time here, so its response is still active at barge-in."""
    # speak, pause (the parrot starts), speak again while the parrot plays
    audio = ulaw_file(
        tmp_path / "a.ulaw", ("voice", 1.5), ("silence", 0.9), ("voice", 1.5), ("silence", 2.5)
    )
    await call(stack, tmp_path, sc.stream(audio), sc.pause(7000), sc.send_bye(2))
    agent = stack.agent.sessions[0]
    assert "conversation.item.truncate" in agent.received_types
    # the agent's own VAD cancelled its response (interrupt_response): rtbridge sent no
    # response.cancel, which would only earn a response_cancel_not_active error
    assert any(r.status == "cancelled" for r in agent.responses)
    assert "response.cancel" not in agent.received_types
    assert agent.truncations, agent.received_types
    assert agent.errors == []  # never an error: not for the truncate, not for a cancel
    log = log_of(stack)
    assert [d for k, d in log if k == "error"] == []  # no upstream error in the event log
    kinds = [k for k, _ in log]
    assert kinds.index("output_audio_buffer.started") < kinds.index("output_audio_buffer.cleared")
    (cleared,) = [d for k, d in log if k == "output_audio_buffer.cleared"]
    truncated = cleared["truncated"]
    assert isinstance(truncated, list) and len(truncated) == 1
    # what we truncated to is what the agent confirmed, and no more than the item's audio
    assert agent.truncations[0]["audio_end_ms"] == truncated[0]["audio_end_ms"]
    parrot = next(r for r in agent.responses if r.item_id == truncated[0]["item_id"])
    assert 0 < truncated[0]["audio_end_ms"] <= parrot.audio_ms


@pytest.mark.parametrize(
    "stack_options",
    [
        {
            "agent": {"tool_after_turns": 2, "tool_name": "end_call"},
            "profile": {"telephony_tools": True, "hangup_grace_ms": 500},
        }
    ],
)
async def test_end_call_hangs_up_after_the_goodbye_is_heard(stack: Stack, tmp_path: Path) -> None:
    audio = ulaw_file(tmp_path / "a.ulaw", ("voice", 2.5), ("silence", 6.0))
    # the digit (a second user turn) arrives while the parrot is still playing
    await call(stack, tmp_path, sc.stream(audio), sc.pause(3300), sc.info("5", 2), sc.wait_bye())
    (record,) = stack.store.list_calls()
    assert record.end_reason == "agent-end-call"
    log = log_of(stack)
    kinds = [k for k, _ in log]
    tool = kinds.index("tool_call")
    stopped = max(i for i, k in enumerate(kinds) if k == "output_audio_buffer.stopped")
    assert tool < stopped < kinds.index("hangup"), kinds
    # every frame of what the agent said was sent before the BYE
    agent = stack.agent.sessions[0]
    spoken = sum(r.audio_ms for r in agent.responses)
    sent = sum(int(d["sent_ms"]) for k, d in log if k == "output_audio_buffer.stopped")
    assert sent >= spoken - 20


async def test_rfc4733_and_info_digits_reach_the_agent_as_messages(
    stack: Stack, tmp_path: Path
) -> None:
    await call(stack, tmp_path, sc.pause(300), sc.info("7", 2), sc.pause(1500), sc.send_bye(3))
    agent = stack.agent.sessions[0]
    assert "conversation.item.create" in agent.received_types
    assert "response.create" in agent.received_types
    assert [d["digit"] for k, d in log_of(stack) if k == "dtmf"] == ["7"]


@pytest.mark.parametrize(
    "stack_options",
    [{"profile": {"dtmf": {"mode": "collect", "terminator": "#"}}}],
)
async def test_collected_digits_arrive_as_one_message(stack: Stack, tmp_path: Path) -> None:
    await call(
        stack,
        tmp_path,
        sc.pause(300),
        sc.info("4", 2),
        sc.info("2", 3),
        sc.info("#", 4),
        sc.pause(1500),
        sc.send_bye(5),
    )
    agent = stack.agent.sessions[0]
    assert agent.received_types.count("conversation.item.create") == 1
    assert [d["digit"] for k, d in log_of(stack) if k == "dtmf"] == ["4", "2", "#"]


@pytest.mark.parametrize("stack_options", [{"profile": {"dtmf": {"actions": {"0": "hangup"}}}}])
async def test_mapped_digit_hangs_up(stack: Stack, tmp_path: Path) -> None:
    await call(stack, tmp_path, sc.pause(300), sc.info("0", 2), sc.wait_bye(20000))
    (record,) = stack.store.list_calls()
    assert record.end_reason == "dtmf-hangup"
    assert "conversation.item.create" not in stack.agent.sessions[0].received_types


@pytest.mark.parametrize(
    "stack_options",
    [
        {
            "profile": {
                "transfer_targets": ["sip:desk@127.0.0.1:*"],
                "dtmf": {
                    "actions": {
                        "8": "transfer:sip:evil@192.0.2.1",
                        "9": "transfer:sip:desk@127.0.0.1",
                    }
                },
            }
        }
    ],
)
async def test_transfer_digit_refers_allowed_target_and_refuses_another(
    stack: Stack, tmp_path: Path
) -> None:
    await call(
        stack,
        tmp_path,
        sc.pause(300),
        sc.info("8", 2),
        sc.info("9", 3),
        sc.accept_refer(4),
        sc.wait_bye(20000),
    )
    (record,) = stack.store.list_calls()
    assert record.end_reason == "transferred"
    actions = [d for k, d in log_of(stack) if k == "dtmf.action"]
    assert [(a["target"], a["allowed"]) for a in actions] == [
        ("sip:evil@192.0.2.1", False),
        ("sip:desk@127.0.0.1", True),
    ]
    refers = [d for k, d in log_of(stack) if k == "refer"]
    assert refers == [{"target": "sip:desk@127.0.0.1"}]
