"""Tier 3: SIPp (a real peer nobody here wrote) against rtbridge over 127.0.0.1 (issue 4).

Each test picks its own ports (SIP, SIPp's control port ``-cp``, media) and bounds SIPp with
``-timeout 30s -timeout_error``; SIPp exits 0 only when every call of its scenario passed.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from sip.driver import Answer, Decision, SipCall
from sip.events import (
    CallAnswered,
    CallEnded,
    CallRinging,
    EndReason,
    ReferProgress,
    ReferReceived,
)
from sip.settings import TrunkSettings
from tests.sip.sipp_support import ANSWER_SDP, SCENARIOS, SippResult, endpoint, free_port, run_sipp
from tests.support.peers import require_peer

pytestmark = pytest.mark.peer("sipp")
PW_ENV = "RTBRIDGE_TEST_SIPP_INVITE_PW"


def _calls(res: SippResult) -> tuple[int, int]:
    """(successful, failed) from SIPp's final statistics screen."""
    ok = re.findall(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", res.stdout)
    bad = re.findall(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", res.stdout)
    return (int(ok[-1]) if ok else -1, int(bad[-1]) if bad else -1)


@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_sipp_uac_30_calls_at_30_cps(transport: str, tmp_path: Path) -> None:
    sipp = require_peer("sipp")
    ep = await endpoint()
    try:
        port = ep.ports["udp" if transport == "u1" else "tcp"]
        res = await run_sipp(
            sipp,
            "-sn",
            "uac",
            f"127.0.0.1:{port}",
            "-t",
            transport,
            "-p",
            str(free_port()),
            "-m",
            "30",
            "-r",
            "30",
            "-d",
            "0",
            cwd=tmp_path,
        )
        assert res.returncode == 0, res.summary()
        assert _calls(res) == (30, 0), res.summary()
        await asyncio.sleep(0.1)
        assert not [c for c in ep.core.calls.values() if not c.ended]
        assert not ep.calls, "every call's resources were freed"
    finally:
        await ep.close()


async def test_sipp_uac_with_10_percent_loss(tmp_path: Path) -> None:
    sipp = require_peer("sipp")
    ep = await endpoint()
    try:
        res = await run_sipp(
            sipp,
            "-sn",
            "uac",
            f"127.0.0.1:{ep.ports['udp']}",
            "-p",
            str(free_port()),
            "-m",
            "30",
            "-r",
            "10",
            "-d",
            "0",
            "-lost",
            "10",
            cwd=tmp_path,
            timeout=120,
        )
        assert res.returncode == 0, res.summary()
        assert _calls(res) == (30, 0), res.summary()
    finally:
        await ep.close()


class _Ringer:
    """Rings and never answers; records how each call ended."""

    def __init__(self) -> None:
        self.ended: list[CallEnded] = []

    async def on_offer(self, call: SipCall) -> Decision:
        call.ring()
        self.ended.append(await call.wait_ended())
        return None


async def test_sipp_cancels_a_ringing_call(tmp_path: Path) -> None:
    """200 for the CANCEL, 487 for the INVITE, the ACK absorbed (no 487 retransmission)."""
    sipp = require_peer("sipp")
    ringer = _Ringer()
    ep = await endpoint(ringer)
    try:
        res = await run_sipp(
            sipp,
            "-sf",
            str(SCENARIOS / "uac_cancel.xml"),
            f"127.0.0.1:{ep.ports['udp']}",
            "-p",
            str(free_port()),
            "-m",
            "5",
            "-r",
            "5",
            cwd=tmp_path,
        )
        assert res.returncode == 0, res.summary()
        assert _calls(res) == (5, 0), res.summary()
        await asyncio.sleep(0.1)
        assert [e.reason for e in ringer.ended] == [EndReason.CANCELLED] * 5
        assert {e.status for e in ringer.ended} == {487}
    finally:
        await ep.close()


async def _uac_call(
    sipp_args: list[str],
    tmp_path: Path,
    hangup_after: float = 0.3,
    *,
    trunk: bool = False,
    tcp: bool = False,
    refer_to: str | None = None,
) -> tuple[SippResult, list[object]]:
    sipp = require_peer("sipp")
    port = free_port()
    trunks = [
        TrunkSettings(
            name="sipp", host="127.0.0.1", port=port, username="rtbridge", password_env=PW_ENV
        )
    ]
    ep = await endpoint(trunks=trunks if trunk else None)
    try:
        run = asyncio.create_task(
            run_sipp(sipp, *sipp_args, "-p", str(port), "-m", "1", cwd=tmp_path)
        )
        await asyncio.sleep(0.5)  # SIPp binds its port; our INVITE would be retransmitted anyway
        target = f"sip:service@127.0.0.1:{port}" + (";transport=tcp" if tcp else "")
        call = await ep.invite(target, ANSWER_SDP, trunk="sipp" if trunk else None)
        events: list[object] = []
        async with asyncio.timeout(30):
            async for ev in call.events():
                events.append(ev)
                if isinstance(ev, CallAnswered) and refer_to is not None:
                    call.refer(refer_to)
                elif isinstance(ev, CallAnswered):
                    await asyncio.sleep(hangup_after)
                    call.hangup()
                elif isinstance(ev, ReferProgress) and ev.final:
                    call.hangup()  # blind transfer done: leave the call
        return await run, events
    finally:
        await ep.close()


@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_rtbridge_calls_sipp_uas_rtp_echo(transport: str, tmp_path: Path) -> None:
    res, events = await _uac_call(
        ["-sn", "uas", "-rtp_echo", "-mp", str(free_port()), "-t", transport],
        tmp_path,
        tcp=transport == "t1",
    )
    assert res.returncode == 0, res.summary()
    assert _calls(res) == (1, 0), res.summary()
    kinds = [type(e) for e in events]
    assert kinds == [CallRinging, CallAnswered, CallEnded]
    answered = events[1]
    assert isinstance(answered, CallAnswered) and b"m=audio" in answered.sdp
    assert events[-1] == CallEnded(answered.call_id, EndReason.LOCAL_BYE)


async def test_rtbridge_acks_a_486_from_sipp(tmp_path: Path) -> None:
    res, events = await _uac_call(["-sf", str(SCENARIOS / "uas_486.xml")], tmp_path)
    assert res.returncode == 0, res.summary()  # SIPp passes only once our ACK arrived
    assert _calls(res) == (1, 0), res.summary()
    assert len(events) == 1 and isinstance(events[0], CallEnded)
    assert (events[0].reason, events[0].status) == (EndReason.FAILED, 486)


async def test_rtbridge_retries_a_407_challenged_invite_with_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trunk's password comes from the environment variable the config names."""
    monkeypatch.setenv(PW_ENV, "invite-secret")
    res, events = await _uac_call(["-sf", str(SCENARIOS / "invite_407.xml")], tmp_path, trunk=True)
    assert res.returncode == 0, res.summary()  # SIPp checked every Proxy-Authorization field
    assert _calls(res) == (1, 0), res.summary()
    assert [type(e) for e in events] == [CallAnswered, CallEnded]


class _Recorder:
    """Answers and records each call's events until it ends."""

    def __init__(self) -> None:
        self.events: list[object] = []
        self.done = asyncio.Event()

    async def on_offer(self, call: SipCall) -> Decision:
        asyncio.get_running_loop().create_task(self._follow(call))
        return Answer(ANSWER_SDP)

    async def _follow(self, call: SipCall) -> None:
        async for ev in call.events():
            self.events.append(ev)
        self.done.set()


async def test_sipp_info_dtmf_and_hold_by_reinvite(tmp_path: Path) -> None:
    """A real peer's INFO digits arrive as DtmfReceived; its sendonly re-INVITE is answered
    recvonly (SIPp checks) and arrives as HoldChanged, then resumed."""
    sipp = require_peer("sipp")
    rec = _Recorder()
    ep = await endpoint(rec)
    try:
        res = await run_sipp(
            sipp,
            "-sf",
            str(SCENARIOS / "uac_info_hold.xml"),
            f"127.0.0.1:{ep.ports['udp']}",
            "-p",
            str(free_port()),
            "-m",
            "1",
            cwd=tmp_path,
        )
        assert res.returncode == 0, res.summary()
        async with asyncio.timeout(5):
            await rec.done.wait()
    finally:
        await ep.close()
    kinds = [
        (type(e).__name__, getattr(e, "digit", getattr(e, "on_hold", None))) for e in rec.events
    ]
    assert kinds == [
        ("CallAnswered", None),
        ("DtmfReceived", "5"),
        ("DtmfReceived", "#"),
        ("RemoteSdpChanged", None),
        ("HoldChanged", True),
        ("RemoteSdpChanged", None),
        ("HoldChanged", False),
        ("CallEnded", None),
    ]
    assert isinstance(rec.events[-1], CallEnded) and rec.events[-1].reason is EndReason.REMOTE_BYE


class _Transferee(_Recorder):
    """Answers; on REFER pretends the new leg succeeded and reports 200 by NOTIFY."""

    async def _follow(self, call: SipCall) -> None:
        async for ev in call.events():
            self.events.append(ev)
            if isinstance(ev, ReferReceived):
                call.answer_refer(202)
                call.notify_refer(200)
        self.done.set()


async def test_sipp_refers_rtbridge_blind_transfer(tmp_path: Path) -> None:
    sipp = require_peer("sipp")
    rec = _Transferee()
    ep = await endpoint(rec)
    try:
        res = await run_sipp(
            sipp,
            "-sf",
            str(SCENARIOS / "uac_refer.xml"),
            f"127.0.0.1:{ep.ports['udp']}",
            "-p",
            str(free_port()),
            "-m",
            "1",
            cwd=tmp_path,
        )
        assert res.returncode == 0, res.summary()  # SIPp checked both NOTIFY bodies
        async with asyncio.timeout(5):
            await rec.done.wait()
    finally:
        await ep.close()
    refers = [e for e in rec.events if isinstance(e, ReferReceived)]
    assert len(refers) == 1 and refers[0].refer_to == "<sip:carol@127.0.0.1:5999>"
    assert isinstance(rec.events[-1], CallEnded)
    assert rec.events[-1].reason is EndReason.REMOTE_BYE


async def test_rtbridge_transfers_a_sipp_callee_blind(tmp_path: Path) -> None:
    """REFER out: 202, NOTIFY sipfrag 200 -> ReferProgress(final) -> we hang up (SIPp checks)."""
    res, events = await _uac_call(
        ["-sf", str(SCENARIOS / "uas_refer.xml")], tmp_path, refer_to="sip:carol@127.0.0.1:5999"
    )
    assert res.returncode == 0, res.summary()
    progress = [e for e in events if isinstance(e, ReferProgress)]
    assert [(p.status, p.final) for p in progress] == [(200, True)]
    assert isinstance(events[-1], CallEnded) and events[-1].reason is EndReason.LOCAL_BYE


@pytest.mark.parametrize("password", ["trunk-secret", "wrong"])
async def test_trunk_with_inbound_digest_challenges_sipp(
    password: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """401 with a challenge; SIPp's digest answer gets the call in, a wrong one does not."""
    sipp = require_peer("sipp")
    monkeypatch.setenv(PW_ENV, password)
    trunk = TrunkSettings(
        name="pbx", host="192.0.2.99", username="alice", password_env=PW_ENV, inbound_digest=True
    )
    rec = _Recorder()
    ep = await endpoint(rec, trunks=[trunk])
    try:
        res = await run_sipp(
            sipp,
            "-sf",
            str(SCENARIOS / "uac_digest.xml"),
            f"127.0.0.1:{ep.ports['udp']}",
            "-p",
            str(free_port()),
            "-m",
            "1",
            "-auth_uri",
            f"service@127.0.0.1:{ep.ports['udp']}",  # SIPp adds "sip:"; else it signs host:port
            cwd=tmp_path,
            sipp_timeout=30 if password == "trunk-secret" else 4,
        )
        if password == "trunk-secret":
            assert res.returncode == 0, res.summary()
            async with asyncio.timeout(5):
                await rec.done.wait()
            assert isinstance(rec.events[0], CallAnswered)
        else:
            assert res.returncode != 0, "the retried INVITE must not be answered"
            assert not rec.events
    finally:
        await ep.close()


def _sipp_pid(port: int) -> int | None:
    """The pid of the SIPp running with ``-p port``, if one runs."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes()
        except OSError:
            continue
        if argv.split(b"\0", 1)[0].endswith(b"sipp") and f"\0-p\0{port}\0".encode() in argv:
            return int(cmdline.parent.name)
    return None


async def test_a_cancelled_sipp_is_stopped_and_reaped_with_its_caller(tmp_path: Path) -> None:
    """A test that gives up on its SIPp (cancels the task running it) leaves no SIPp behind:
    one left running outlived its test's event loop, and its transport, garbage-collected
    during some later test, failed that one ("Event loop is closed")."""
    sipp = require_peer("sipp")
    port = free_port()
    task = asyncio.create_task(run_sipp(sipp, "-sn", "uas", "-p", str(port), cwd=tmp_path))
    async with asyncio.timeout(15):
        while (pid := _sipp_pid(port)) is None:
            await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not Path(f"/proc/{pid}").exists(), "SIPp still runs (or is an unreaped zombie)"
