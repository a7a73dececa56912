"""Phone calls end to end with SIPp as the caller and the callee, and the local agent upstream."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from bridge.recording.writer import read_wav_info
from media.recording import RecordingMode
from tests.calls.conftest import Stack
from tests.sip.sipp_support import free_port, run_sipp
from tests.support.peers import require_peer

pytestmark = pytest.mark.peer("sipp")


def _pcap_dir(tmp_path: Path) -> Path:
    link = tmp_path / "pcap"
    if not link.exists():
        os.symlink("/usr/share/sip-tester", link)
    return tmp_path


async def _records_settled(stack: Stack) -> None:
    async with asyncio.timeout(20):
        await stack.manager.wait_idle()
    stack.store.flush()


async def test_sipp_uac_pcap_alaw_audio_and_digit_reach_the_agent(
    stack: Stack, tmp_path: Path
) -> None:
    res = await stack.sipp_caller(_pcap_dir(tmp_path), builtin="uac_pcap", timeout=90)
    assert res.returncode == 0, res.summary()
    await _records_settled(stack)

    # The agent got the caller's A-law untouched (pass-through), re-cut from 30 ms to 20 ms.
    session = stack.agent.sessions[0]
    assert session.session["audio"]["input"]["format"] == {"type": "audio/pcma"}
    sizes = session.audio_chunk_sizes
    assert len(sizes) >= 300 and set(sizes) == {160}, sizes[:10]

    (record,) = stack.store.list_calls()
    assert (record.direction, record.codec, record.session_format) == (
        "inbound",
        "PCMA",
        "g711_alaw",
    )
    assert record.end_reason == "remote-bye"
    digits = [e.data["digit"] for e in stack.store.events(record.call_id) if e.kind == "dtmf"]
    assert digits == ["1"]
    assert stack.manager.ports.in_use == 0  # the call is freed


SCENARIOS = Path(__file__).parent / "scenarios"


async def _sipp_caller_until_bye(stack: Stack, tmp_path: Path) -> asyncio.Task[object]:
    scenario = (SCENARIOS / "uac_wait_bye.xml").read_text()
    return asyncio.create_task(stack.sipp_caller(tmp_path, scenario, timeout=90))


async def _until(predicate: object, timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("stack_options", [{"calls": {"upstream_reconnect_window_s": 1.0}}])
async def test_agent_dying_mid_call_ends_it_with_bye_and_a_reason(
    stack: Stack, tmp_path: Path
) -> None:
    caller = await _sipp_caller_until_bye(stack, tmp_path)
    await _until(lambda: stack.manager.calls)
    await stack.agent.stop()  # the agent process goes away and does not come back
    res = await caller
    assert res.returncode == 0, res.summary()  # SIPp received our BYE and answered it
    await _records_settled(stack)
    (record,) = stack.store.list_calls()
    assert record.end_reason == "upstream-lost"
    kinds = [e.kind for e in stack.store.events(record.call_id)]
    assert "error" in kinds and "answered" in kinds


@pytest.mark.parametrize("stack_options", [{"calls": {"rtp_timeout_s": 1.5}}])
async def test_silent_caller_is_hung_up_after_rtp_timeout(stack: Stack, tmp_path: Path) -> None:
    caller = await _sipp_caller_until_bye(stack, tmp_path)
    res = await caller
    assert res.returncode == 0, res.summary()
    await _records_settled(stack)
    (record,) = stack.store.list_calls()
    assert record.end_reason == "rtp-timeout"
    # nobody keeps paying for the upstream session: the agent sees it closed (its side of
    # the close handshake may lag the record by a moment on a loaded machine)
    await _until(lambda: stack.agent.sessions[0].closed, timeout=10)


@pytest.mark.parametrize(
    "stack_options",
    [{"profile": {"dial_targets": ["sip:*@127.0.0.1:*"], "greeting": "Hello"}}],
)
async def test_outbound_call_to_sipp_echo_agent_hears_its_own_audio(
    stack: Stack, tmp_path: Path
) -> None:
    sipp = require_peer("sipp")
    port, media = free_port(), free_port()
    callee = asyncio.create_task(
        run_sipp(
            sipp,
            "-sn",
            "uas",
            "-rtp_echo",
            "-m",
            "1",
            "-p",
            str(port),
            "-mp",
            str(media),
            cwd=tmp_path,
            timeout=90,
        )
    )
    await asyncio.sleep(0.5)  # let SIPp bind
    # recorded mixed, for this call alone (the API's originate takes the same ``record``)
    call_id = await stack.sip_leg.originate(
        f"sip:echo@127.0.0.1:{port}", record=RecordingMode.MIXED
    )
    result = await asyncio.wait_for(stack.sip_leg.outcomes[call_id], 20)
    assert result.outcome == "answered"
    session = stack.agent.sessions[0]
    # the greeting (tones) goes out, SIPp echoes it, the agent hears it back
    await _until(lambda: session.decoded_samples > 24000 // 2)
    pcm = session.decoded_pcm
    assert float(abs(pcm.astype("float64")).mean()) > 100.0
    assert stack.manager.hangup(call_id)
    res = await callee
    assert res.returncode == 0, res.summary()
    await _records_settled(stack)
    record = stack.store.get_call(call_id)
    assert record is not None and record.end_reason == "local-hangup"
    assert record.direction == "outbound"
    info = read_wav_info(stack.manager.recordings.path_for(call_id))
    assert (info.channels, info.rate) == (1, 8000) and info.seconds > 0.5


@pytest.mark.parametrize("stack_options", [{"profile": {"dial_targets": ["sip:*@127.0.0.1:*"]}}])
async def test_outbound_call_to_busy_callee_is_recorded_as_busy(
    stack: Stack, tmp_path: Path
) -> None:
    sipp = require_peer("sipp")
    port = free_port()
    callee = asyncio.create_task(
        run_sipp(
            sipp,
            "-sf",
            str(Path(__file__).parents[1] / "sip" / "scenarios" / "uas_486.xml"),
            "-m",
            "1",
            "-p",
            str(port),
            cwd=tmp_path,
            timeout=60,
        )
    )
    await asyncio.sleep(0.5)
    call_id = await stack.sip_leg.originate(f"sip:busy@127.0.0.1:{port}")
    result = await asyncio.wait_for(stack.sip_leg.outcomes[call_id], 20)
    assert (result.outcome, result.sip_status) == ("busy", 486)
    res = await callee
    assert res.returncode == 0, res.summary()  # SIPp got our ACK for its 486
    stack.store.flush()
    record = stack.store.get_call(call_id)
    assert record is not None and (record.end_reason, record.sip_status) == ("busy", 486)
    assert stack.manager.ports.in_use == 0


async def test_target_outside_allowlist_is_refused_before_dialling(stack: Stack) -> None:
    from bridge.errors import CallNotAllowed

    with pytest.raises(CallNotAllowed, match="dial_targets"):
        await stack.sip_leg.originate("sip:+4420@carrier.example.com")


async def test_lifecycle_stream_sees_a_call_come_and_go(stack: Stack, tmp_path: Path) -> None:
    sub = stack.manager.lifecycle.subscribe()
    res = await stack.sipp_caller(tmp_path, builtin="uac", extra=("-d", "500"))
    assert res.returncode == 0, res.summary()
    await _records_settled(stack)
    stack.manager.lifecycle.close()
    events = [e async for e in sub]
    assert [e["type"] for e in events] == ["call.offered", "call.answered", "call.ended"]
    assert len({e["call_id"] for e in events}) == 1
    assert events[-1]["reason"] == "remote-bye"


@pytest.mark.parametrize(
    "stack_options",
    [
        {
            "sip": {
                "trunks": [
                    {
                        "name": "carrier",
                        "host": "198.51.100.7",
                        "inbound_allow": ["198.51.100.0/24"],
                    }
                ]
            }
        }
    ],
)
async def test_invite_from_outside_the_trunk_allowlist_gets_403(
    stack: Stack, tmp_path: Path
) -> None:
    from tests.calls import sipp_scenario as sc

    res = await stack.sipp_caller(tmp_path, sc.uac_rejected(403), timeout=30)
    assert res.returncode == 0, res.summary()
    assert stack.agent.sessions == []  # nobody pays for an agent session for a stranger
    assert stack.manager.calls == {}
    stack.store.flush()
    assert stack.store.list_calls() == []  # a refusal is no call: it is counted, not stored
    (event,) = stack.manager.security.recent()
    assert event.kind == "refused-request" and event.source is not None
    assert event.source.startswith("sip:udp:127.0.0.1:")
    assert stack.sip.core.layer.servers == {}  # answered statelessly: nothing retransmits


@pytest.mark.parametrize("stack_options", [{"calls": {"max_calls": 1, "retry_after_s": 17}}])
async def test_over_max_calls_gets_503_with_retry_after_and_a_record(
    stack: Stack, tmp_path: Path
) -> None:
    from tests.calls import sipp_scenario as sc

    first = await _sipp_caller_until_bye(stack, tmp_path)
    await _until(lambda: stack.manager.calls)
    res = await stack.sipp_caller(tmp_path, sc.uac_rejected(503, header="Retry-After"), timeout=30)
    assert res.returncode == 0, res.summary()
    (live,) = stack.manager.calls
    assert stack.manager.hangup(live)
    assert (await first).returncode == 0
    await _records_settled(stack)
    reasons = sorted((r.end_reason, r.sip_status) for r in stack.store.list_calls())
    assert reasons == [("local-hangup", None), ("max-calls", 503)]


@pytest.mark.parametrize(
    "stack_options", [{"profile": {"upstream": {"url": "ws://127.0.0.1:9/v1/realtime"}}}]
)
async def test_unreachable_agent_is_503_and_frees_the_rtp_ports(
    stack: Stack, tmp_path: Path
) -> None:
    from tests.calls import sipp_scenario as sc

    res = await stack.sipp_caller(tmp_path, sc.uac_rejected(503, header="Retry-After"), timeout=30)
    assert res.returncode == 0, res.summary()
    assert stack.manager.ports.in_use == 0  # every refusal gives the port pair back
    stack.store.flush()
    (record,) = stack.store.list_calls()
    assert (record.end_reason, record.sip_status) == ("upstream-unavailable", 503)


async def test_rtp_pair_held_by_another_process_is_skipped(stack: Stack, tmp_path: Path) -> None:
    import random
    import socket

    from bridge.calls.rtp_endpoint import PortAllocator

    class FirstFree(random.Random):
        def randrange(self, *args: object, **kwargs: object) -> int:
            return 0  # the allocator picks the first free pair: the squatted one

    base = stack.settings.calls.rtp_port_min
    stack.manager.ports = PortAllocator(base, base + 4, rng=FirstFree())  # two pairs
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind(("127.0.0.1", base))
    try:
        res = await stack.sipp_caller(tmp_path, builtin="uac", extra=("-d", "300"), timeout=30)
        assert res.returncode == 0, res.summary()
        await _records_settled(stack)
        (record,) = stack.store.list_calls()
        assert record.end_reason == "remote-bye"
    finally:
        squatter.close()
