"""The ops dashboard in a real browser: headless Chromium (Debian's, driven by playwright-core)
logs in, watches 100 live SIPp calls to a loopback ``rtbridge serve`` appear and disappear
without a reload, and hangs one up with its button; the call's record says it was hung up
here, SIPp saw exactly that one call end early. Screenshots: ``test-artifacts/dashboard/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.records import CallStore
from tests.calls import sipp_scenario as sc
from tests.sip.sipp_support import SippResult, free_port, run_sipp
from tests.support.peers import in_ci, require_peer
from tests.support.procs import run_rtbridge

pytestmark = [pytest.mark.peer("chromium"), pytest.mark.peer("sipp"), pytest.mark.timeout(150)]

ROOT = Path(__file__).resolve().parents[2]
PEERS = ROOT / "tests" / "peers"
DRIVER = Path(__file__).with_name("driver.mjs")
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
KEY = "rtb_dashboard_test_key"
CALLS = 100
PAUSE_MS = 12000
#: what the control plane records when a call is hung up from here (not by the caller)
LOCAL_HANGUP = {"local-hangup", "api-hangup"}
TRANSFER_TO = "sip:desk@127.0.0.1"


def _require_playwright() -> None:
    if (PEERS / "node_modules" / "playwright-core").is_dir():
        return
    msg = "playwright-core is not installed (run `bash tests/peers/install.sh`)"
    if in_ci():
        pytest.fail(msg + " and CI=true forbids skipping peer tests")
    pytest.skip(msg)


def _sipp_count(stdout: str, label: str) -> int:
    """A cumulative counter from SIPp's final statistics screen."""
    found = re.findall(rf"{label}\s*\|\s*\d+\s*\|\s*(\d+)", stdout)
    assert found, f"no {label!r} in SIPp's output:\n{stdout[-2000:]}"
    return int(found[-1])


class Driver:
    """The Node script: steps arrive as ``STEP name {json}`` lines on its stdout."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.log: list[str] = []

    async def step(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        try:
            async with asyncio.timeout(timeout):
                return await self._step(name)
        except TimeoutError:
            raise AssertionError(
                f"no step {name!r} from the browser in {timeout} s:\n" + "\n".join(self.log[-20:])
            ) from None

    async def _step(self, name: str) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while line := (await self.proc.stdout.readline()).decode(errors="replace"):
            self.log.append(line.rstrip())
            if not line.startswith("STEP "):
                continue
            _, got, data = line.rstrip("\n").split(" ", 2)
            payload: dict[str, Any] = json.loads(data)
            if got == "error":
                raise AssertionError(f"browser step failed before {name!r}: {payload}")
            assert got == name, f"expected step {name!r}, got {got!r}: {payload}"
            return payload
        stderr = b""
        if self.proc.stderr is not None:
            stderr = await self.proc.stderr.read()
        raise AssertionError(
            f"the browser driver exited before {name!r}:\n"
            + "\n".join(self.log[-20:])
            + stderr.decode(errors="replace")[-3000:]
        )

    async def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        await self.proc.stdin.drain()


@dataclass
class Session:
    driver: Driver
    sip_port: int
    db: Path
    artifacts: Path
    env: dict[str, str]


def _session_env(tmp_path: Path, extra: dict[str, str] | None) -> dict[str, str]:
    # RTP below the kernel's ephemeral ports and the 20000-30000 default of other rtbridges
    rtp_base = random.randrange(10000, 18400, 2)
    return {
        "RTBRIDGE_API_KEY": KEY,
        "XDG_DATA_HOME": str(tmp_path),
        "RTBRIDGE_CALLS__RTP_PORT_MIN": str(rtp_base),
        "RTBRIDGE_CALLS__RTP_PORT_MAX": str(rtp_base + 800),
        "RTBRIDGE_CALLS__RECORDS_DB": str(tmp_path / "calls.db"),
        "RTBRIDGE_PROFILES__DEFAULT__GREETING": "Hello",  # the agent speaks (tones) at once
        **(extra or {}),
    }


@contextlib.asynccontextmanager
async def browser(
    url: str, mode: str, extra: dict[str, Any] | None = None
) -> AsyncIterator[tuple[Driver, Path]]:
    """The browser driver in ``mode`` against ``url`` (``extra``: more of its config);
    screenshots in ``test-artifacts/dashboard/<mode>/``. It must finish by itself (exit 0)."""
    require_peer("chromium")
    node = require_peer("node")
    _require_playwright()
    artifacts = ARTIFACTS / mode
    artifacts.mkdir(parents=True, exist_ok=True)
    for old in artifacts.glob("*.png"):
        old.unlink()
    config = {
        "mode": mode,
        "url": url,
        "key": KEY,
        "peers": str(PEERS),
        "artifacts": str(artifacts),
        "expect": CALLS,
        "timeoutMs": 40000,
        **(extra or {}),
    }
    proc = await asyncio.create_subprocess_exec(
        node,
        str(DRIVER),
        json.dumps(config),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield Driver(proc), artifacts
        await asyncio.wait_for(proc.wait(), 30)
        assert proc.returncode == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@contextlib.asynccontextmanager
async def dashboard_session(
    tmp_path: Path,
    mode: str,
    env: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> AsyncIterator[Session]:
    """``rtbridge serve`` (SIP on a free port, the local agent) and the browser driver."""
    require_peer("sipp")
    sip_port = free_port(socket.SOCK_DGRAM)
    full_env = _session_env(tmp_path, env)
    args = ("serve", "--http-port", str(free_port(socket.SOCK_STREAM)), "--sip-port", str(sip_port))
    async with (
        run_rtbridge(*args, env=full_env) as url,
        browser(url, mode, extra) as (driver, shots),
    ):
        yield Session(driver, sip_port, tmp_path / "calls.db", shots, full_env)


def _sipp_args(sip_port: int) -> tuple[str, ...]:
    media = ("-mp", str(free_port(socket.SOCK_DGRAM)))  # not SIPp's default 6000
    return ("-p", str(free_port(socket.SOCK_DGRAM)), *media, f"127.0.0.1:{sip_port}")


async def test_dashboard_shows_100_live_calls_and_hangs_one_up(tmp_path: Path) -> None:
    sipp = require_peer("sipp")
    sipp_task: asyncio.Task[SippResult] | None = None
    async with dashboard_session(tmp_path, "calls-100") as session:
        driver = session.driver
        try:
            ready = await driver.step("ready")
            # the login form, not the dashboard, until the key was typed; a wrong key refused
            assert ready["loginStatus"] == 401
            assert "not the server key" in ready["refused"]
            assert KEY not in ready["url"]
            (cookie,) = [c for c in ready["cookies"] if c["name"] == "rtbridge_session"]
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert KEY not in cookie["value"]

            uac = ("-sn", "uac", "-d", str(PAUSE_MS), "-m", str(CALLS), "-r", "50")
            sipp_task = asyncio.create_task(
                run_sipp(
                    sipp,
                    *uac,
                    "-l",
                    str(CALLS),
                    *_sipp_args(session.sip_port),
                    cwd=tmp_path,
                    timeout=90,
                    sipp_timeout=60,
                )
            )
            await driver.go()
            peak = await driver.step("peak")
            if peak["peak"] != CALLS:
                res = await sipp_task
                raise AssertionError(f"{peak}\nSIPp: {res.summary()}")
            assert peak["counter"] == str(CALLS)
            cells = peak["sample"]["cells"]
            assert cells[6] == "PCMU" and cells[7].endswith("ms") and cells[8].endswith("%"), cells
            assert (peak["filtered"], peak["filterCount"]) == (1, "1 shown"), peak
            assert peak["unfiltered"] == CALLS, peak

            hung = await driver.step("hungup")
            assert hung["shownReason"] in LOCAL_HANGUP, hung
            assert hung["detailState"].startswith("ended"), hung
            assert hung["liveAfterHangup"] < CALLS
            assert "Agent: tones" in hung["transcript"], hung  # the greeting, in the panel

            done = await driver.step("done", timeout=60)
            print(  # a figure, not a pass/fail claim: the machine is shared
                f"dashboard: {done['statsTicks']} stats ticks applied in the page, "
                f"mean {done['statsMsMean']:.2f} ms, max {done['statsMsMax']:.2f} ms "
                f"(up to {CALLS} rows)"
            )
            assert done["errors"] == [], done["errors"]
            assert done["sameDocument"], "the page reloaded"
            assert done["snapshots"] == 1, "the live stream reconnected"
            summary = {k: v for k, v in done.items() if k != "reasons"}
            assert done["ended"] == CALLS and done["noCallsShown"], summary
            assert done["recentRows"] == 50, summary  # the newest 50 ended calls
            assert set(done["reasons"]) == {"remote-bye"}, done  # SIPp's BYEs came last
            res = await sipp_task
        finally:
            if sipp_task is not None and not sipp_task.done():
                sipp_task.cancel()

    # SIPp: every call but the one hung up here completed its own script
    assert _sipp_count(res.stdout, "Successful call") == CALLS - 1, res.summary()
    assert _sipp_count(res.stdout, "Failed call") == 1, res.summary()
    store = CallStore(session.db)
    try:
        record = store.get_call(hung["id"])
        assert record is not None and record.end_reason in LOCAL_HANGUP, record
        ended = store.list_calls(limit=CALLS + 10, state="ended")
        assert len(ended) == CALLS, [(r.call_id, r.end_reason, r.sip_status) for r in ended]
        reasons = sorted(r.end_reason or "" for r in ended)
        assert reasons.count("remote-bye") == CALLS - 1, reasons
    finally:
        store.close()
    shots = {p.name for p in session.artifacts.glob("*.png")}
    expected = {"01-login.png", "02-logged-in.png", "03-live-calls.png", "04-call-detail.png"}
    assert expected | {"05-hung-up.png", "06-all-ended.png"} <= shots, shots


async def test_dashboard_transfers_a_call_with_the_button(tmp_path: Path) -> None:
    """Transfer from the call's panel: a target outside the profile's allowlist is refused
    with the reason shown and listed in the security events panel; an allowed one is
    REFERred, SIPp accepts it, the call ends as transferred."""
    sipp = require_peer("sipp")
    scenario = tmp_path / "refer.xml"
    scenario.write_text(sc.uac(sc.accept_refer(2), sc.wait_bye(30000)))
    env = {"RTBRIDGE_PROFILES__DEFAULT__TRANSFER_TARGETS": json.dumps([TRANSFER_TO + ":*"])}
    sipp_task: asyncio.Task[SippResult] | None = None
    async with dashboard_session(tmp_path, "transfer", env) as session:
        driver = session.driver
        try:
            await driver.step("ready")
            sipp_task = asyncio.create_task(
                run_sipp(
                    sipp,
                    "-sf",
                    str(scenario),
                    "-m",
                    "1",
                    *_sipp_args(session.sip_port),
                    cwd=tmp_path,
                    timeout=60,
                    sipp_timeout=40,
                )
            )
            await driver.go()
            done = await driver.step("transferred")
            assert "matches no rule of transfer_targets" in done["refusedNotice"], done
            row = done["securityRow"]  # the refusal, in the security events panel
            assert "destination-refused" in row and "sip:evil@192.0.2.1" in row, row
            assert "http:127.0.0.1" in row, row
            assert done["shownReason"] == "transferred", done
            assert done["detailState"] == "ended: transferred", done
            # the call's log, in its events pane: our REFER, SIPp's NOTIFY of the target's 200
            assert f'refer  {{"target":"{TRANSFER_TO}"}}' in done["events"], done["events"]
            assert 'refer.progress  {"status":200' in done["events"], done["events"]
            assert done["errors"] == [], done
            res = await sipp_task
        finally:
            if sipp_task is not None and not sipp_task.done():
                sipp_task.cancel()
    assert res.returncode == 0, res.summary()  # SIPp got the REFER, then our BYE
    store = CallStore(session.db)
    try:
        record = store.get_call(done["id"])
        assert record is not None and record.end_reason == "transferred", record
        refers = [e.data for e in store.events(done["id"]) if e.kind == "refer"]
        assert refers == [{"target": TRANSFER_TO}]
    finally:
        store.close()


async def test_dashboard_reconnects_when_rtbridge_restarts(tmp_path: Path) -> None:
    """The live stream drops when rtbridge stops; the page says so, keeps retrying, and is
    live again (a fresh snapshot, same document, still logged in) once rtbridge is back."""
    env = _session_env(tmp_path, None)
    args = ("serve", "--http-port", str(free_port(socket.SOCK_STREAM)))
    async with contextlib.AsyncExitStack() as stack:
        first = contextlib.AsyncExitStack()
        url = await first.enter_async_context(run_rtbridge(*args, env=env))
        driver, _ = await stack.enter_async_context(browser(url, "reconnect"))
        try:
            await driver.step("ready")
        finally:
            await first.aclose()  # SIGTERM: rtbridge ends the open stream and exits
        await driver.go()
        dropped = await driver.step("dropped")
        assert dropped["state"] in ("reconnecting", "offline"), dropped
        async with run_rtbridge(*args, env=env) as again:
            assert again == url
            await driver.go()
            back = await driver.step("reconnected")
    assert back["sameDocument"] and back["snapshots"] >= 2, back
    assert back["state"] == "live"
    assert [e for e in back["errors"] if not e.startswith("console:")] == [], back
