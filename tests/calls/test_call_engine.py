"""The call engine with real SIP callers: a crash in one call's task ends that call only (with
``internal-error``, its record and a BYE) while another call carries on with audio; a burst of
SIP events past the old 256-event queue loses neither a digit nor the end; a barge-in during a
function call leaves no upstream error and no timeout output for the cancelled call."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from bridge.calls.call import Call
from bridge.calls.end import EndReason
from tests.calls import sipp_scenario as sc
from tests.calls.conftest import Stack
from tests.support.audio import ulaw_file

pytestmark = pytest.mark.peer("sipp")


async def _first_call(stack: Stack, timeout: float = 20) -> Call:
    async with asyncio.timeout(timeout):
        while not stack.manager.calls:
            await asyncio.sleep(0.02)
    (call,) = stack.manager.calls.values()
    assert isinstance(call, Call)
    return call


def _break(call: Call, fault: str) -> None:
    """Make one of the call's tasks (or a callback it owns) raise, as a bug would."""

    def boom(*_args: Any, **_kw: Any) -> None:
        raise RuntimeError(f"injected fault: {fault}")

    if fault == "leg":  # the SIP leg's caller-audio callback
        call.media.on_rtp = boom  # type: ignore[method-assign]
    elif fault == "agent events":  # the next agent event call control handles
        call.control.on_response_created = boom  # type: ignore[method-assign]
        call.control.on_speech_started = boom  # type: ignore[method-assign]
    elif fault == "control writer":  # the writer's send to the agent session

        async def send(_event: Any) -> None:
            boom()

        call.control._send_fn = send
        call.control.queue({"type": "conversation.item.delete", "item_id": "x"})
    elif fault == "tick sink":  # the leg's media path on the shared ticker
        call.media.on_tick = boom  # type: ignore[method-assign]
    else:  # pragma: no cover
        raise AssertionError(fault)


@pytest.mark.parametrize("fault", ["leg", "agent events", "control writer", "tick sink"])
async def test_a_crash_in_one_calls_task_ends_that_call_and_the_other_talks_on(
    stack: Stack, tmp_path: Path, fault: str
) -> None:
    voice = ulaw_file(tmp_path / "v.ulaw", ("voice", 1.5), ("silence", 30.0))
    victim = asyncio.create_task(
        stack.sipp_caller(tmp_path, sc.uac(sc.stream(voice), sc.wait_bye(30000)), timeout=60)
    )
    broken = await _first_call(stack)
    _break(broken, fault)
    healthy = await stack.sipp_caller(
        tmp_path, sc.uac(sc.stream(voice), sc.pause(6000), sc.send_bye(2)), timeout=60
    )
    res = await victim
    assert res.returncode == 0, res.summary()  # the broken call's caller got our BYE
    assert healthy.returncode == 0, healthy.summary()
    await stack.manager.wait_idle()
    stack.store.flush()
    records = {r.call_id: r for r in stack.store.list_calls()}
    assert records[broken.id].end_reason == EndReason.INTERNAL_ERROR
    internal = [e.data for e in stack.store.events(broken.id) if e.kind == "error"]
    assert internal and internal[0]["source"] == "internal", internal
    (other,) = [r for r in records.values() if r.call_id != broken.id]
    assert other.end_reason == "remote-bye"
    # the healthy call carried audio both ways: the agent heard it and answered it
    assert other.stats["frames_to_agent"] >= 250  # 6 s at 50 frames/s, minus set-up
    assert other.stats["rtp_out"] >= 250
    heard = [s for s in stack.agent.sessions if s.decoded_samples > 24000]  # > 1 s of caller
    answered = [s for s in heard if any(r.audio_ms > 0 for r in s.responses)]
    assert answered, [(s.decoded_samples, len(s.responses)) for s in stack.agent.sessions]


def _sip(method: str, seq: int, tags: dict[str, str], port: int, body: str = "") -> bytes:
    via = f"SIP/2.0/UDP 127.0.0.1:{tags['lport']};branch=z9hG4bK{method.lower()}{seq}"
    to = f"<sip:bot@127.0.0.1:{port}>" + (f";tag={tags['to']}" if "to" in tags else "")
    ctype = ""
    if method == "INVITE":
        ctype = "Content-Type: application/sdp\r\n"
    elif method == "INFO":
        ctype = "Content-Type: application/dtmf-relay\r\n"
    return (
        f"{method} sip:bot@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: {via}\r\nMax-Forwards: 70\r\n"
        f"From: <sip:burst@127.0.0.1>;tag=b1\r\nTo: {to}\r\n"
        f"Call-ID: burst-{tags['cid']}\r\nCSeq: {seq} {method}\r\n"
        f"Contact: <sip:burst@127.0.0.1:{tags['lport']}>\r\n"
        f"{ctype}Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


@pytest.mark.parametrize(
    "stack_options",
    [{"profile": {"dtmf": {"mode": "off", "max_per_s": 10_000, "burst": 1000}}}],
)
async def test_a_burst_of_events_past_the_old_queue_bound_loses_no_digit_and_not_the_end(
    stack: Stack,
) -> None:
    """400 INFO digits in bursts of 50 (what fits a socket's receive buffer) without waiting
    for answers, then the BYE: every digit, once and in order, and the end reach the call (the
    old per-call event queue held 256 and dropped the rest). The profile's digit rate is
    raised for this: the SIP path itself must lose nothing."""
    port = stack.sip_port
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    loop = asyncio.get_running_loop()
    tags = {"cid": "x1", "lport": str(sock.getsockname()[1])}
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 9 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    )
    digits = ("0123456789*#" * 40)[:400]
    try:
        sock.sendto(_sip("INVITE", 1, tags, port, sdp), ("127.0.0.1", port))
        async with asyncio.timeout(20):
            while True:
                data = await loop.sock_recv(sock, 65535)
                if data.startswith(b"SIP/2.0 200"):
                    break
        to_tag = data.split(b"\r\nTo:", 1)[1].split(b"\r\n", 1)[0].split(b"tag=")[1]
        tags["to"] = to_tag.decode()
        sock.sendto(_sip("ACK", 1, tags, port), ("127.0.0.1", port))
        await _first_call(stack)
        infos = {
            2 + n: _sip("INFO", 2 + n, tags, port, f"Signal={d}\r\nDuration=100\r\n")
            for n, d in enumerate(digits)
        }
        for cseq, datagram in infos.items():
            sock.sendto(datagram, ("127.0.0.1", port))
            if cseq % 50 == 0:
                await asyncio.sleep(0.02)
        # UDP may drop under load: like any UAC, send again what is not answered yet
        unanswered = set(infos)
        async with asyncio.timeout(30):
            while unanswered:
                try:
                    async with asyncio.timeout(0.5):
                        while unanswered:
                            reply = await loop.sock_recv(sock, 65535)
                            if reply.startswith(b"SIP/2.0 200") and b" INFO\r\n" in reply:
                                cseq = reply.split(b"\r\nCSeq: ", 1)[1].split(b" ", 1)[0]
                                unanswered.discard(int(cseq))
                except TimeoutError:
                    for cseq in unanswered:
                        sock.sendto(infos[cseq], ("127.0.0.1", port))
            bye = _sip("BYE", 2 + len(digits), tags, port)
            while stack.manager.calls:  # the BYE goes again until the call has ended
                sock.sendto(bye, ("127.0.0.1", port))
                await asyncio.sleep(0.5)
            await stack.manager.wait_idle()
    finally:
        sock.close()
    stack.store.flush()
    (record,) = stack.store.list_calls()
    assert record.end_reason == "remote-bye"
    got = [e.data["digit"] for e in stack.store.events(record.call_id) if e.kind == "dtmf"]
    assert "".join(got) == digits


@pytest.mark.parametrize(
    "stack_options",
    [
        {
            "agent": {"tool_after_turns": 1, "tool_name": "lookup_order"},
            "agent_kwargs": {"chunk_interval_s": 0.5},
            "profile": {"tool_timeout_s": 1.5},
        }
    ],
)
async def test_barge_in_during_a_function_call_leaves_no_error_and_no_timeout_output(
    stack: Stack, tmp_path: Path
) -> None:
    """The caller speaks, pauses (the agent starts calling a tool, slowly), and speaks again
    while the call is being made: the agent's VAD cancels the response, the function call item
    is incomplete, and rtbridge neither sends a cancel of its own nor, after the tool timeout,
    an output for a call nobody waits for."""
    audio = ulaw_file(
        tmp_path / "a.ulaw", ("voice", 1.5), ("silence", 0.6), ("voice", 1.5), ("silence", 4.0)
    )
    res = await stack.sipp_caller(
        tmp_path, sc.uac(sc.stream(audio), sc.pause(7500), sc.send_bye(2)), timeout=60
    )
    assert res.returncode == 0, res.summary()
    await stack.manager.wait_idle()
    stack.store.flush()
    (record,) = stack.store.list_calls()
    log = [(e.kind, e.data) for e in stack.store.events(record.call_id)]
    kinds = [k for k, _ in log]
    agent = stack.agent.sessions[0]
    tool_responses = [r for r in agent.responses if r.kind == "function_call"]
    assert tool_responses and tool_responses[0].status == "cancelled", agent.responses
    assert "tool_call.cancelled" in kinds, kinds
    assert "tool.timeout" not in kinds, kinds
    # no function_call_output at all: nothing answered the cancelled call, not even a timeout
    assert "conversation.item.create" not in agent.received_types, agent.received_types
    assert "response.cancel" not in agent.received_types
    assert [d for k, d in log if k == "error"] == []
    assert agent.errors == []
