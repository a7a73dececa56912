"""Property-based run over the OpenAPI document (schemathesis): no request the spec allows, with
or without the key, makes the control plane answer 5xx. Originate is limited to a loopback SIPp
callee (the only allowlisted target); one real originate to it is placed first. The fuzzer runs
in a process of its own (:mod:`tests.control.fuzz_api` says why)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from tests.calls import sipp_scenario as sc
from tests.control.conftest import AUTH, Control, sipp_call, uac
from tests.sip.sipp_support import free_port, run_sipp
from tests.support.audio import ulaw_file
from tests.support.peers import require_peer

pytestmark = pytest.mark.peer("sipp")


UAS_PORT = free_port()
TARGET = f"sip:service@127.0.0.1:{UAS_PORT}"
OPTIONS = {
    "profile": {"dial_targets": [TARGET], "transfer_targets": [TARGET]},
    "sip": {"trunks": [{"name": "loopback", "host": "127.0.0.1", "port": UAS_PORT}]},
}


def audio(tmp_path: Path) -> Path:
    return ulaw_file(tmp_path / "voice.ulaw", ("voice", 1.0), ("silence", 30.0))


@pytest.mark.parametrize("stack_options", [OPTIONS])
async def test_no_request_makes_a_server_error(control: Control, tmp_path: Path) -> None:
    # a real originate through the loopback trunk to SIPp (which answers, then we hang up)
    uas = asyncio.create_task(
        run_sipp(
            require_peer("sipp"),
            "-sn",
            "uas",
            "-p",
            str(UAS_PORT),
            "-mp",
            str(free_port()),
            "-rtp_echo",
            "-m",
            "1",
            cwd=tmp_path,
            timeout=60,
        )
    )
    await asyncio.sleep(0.5)
    r = await control.client.post(
        "/v1/calls", json={"target": TARGET, "trunk": "loopback", "caller": "+15550100"}
    )
    assert r.status_code == 201, r.text
    call_id = r.json()["id"]
    outcome = await asyncio.wait_for(control.stack.sip_leg.outcomes[call_id], 20)
    assert outcome.outcome == "answered"
    view = (await control.client.get(f"/v1/calls/{call_id}")).json()
    assert view["direction"] == "outbound" and view["to"] == TARGET
    assert (await control.client.post(f"/v1/calls/{call_id}/hangup")).status_code == 200
    res = await uas
    assert res.returncode == 0, res.summary()
    await control.stack.manager.wait_idle()

    # a live inbound call too, so that the live-call handlers are fuzzed (until one hangs it up)
    caller = asyncio.create_task(
        sipp_call(control.stack, tmp_path, uac(sc.stream(audio(tmp_path)), sc.wait_bye(120000)))
    )
    async with asyncio.timeout(20):
        while not control.stack.manager.calls:
            await asyncio.sleep(0.05)
    (live_id,) = control.stack.manager.calls

    spec = control.app.openapi()
    job = {"base_url": control.url, "spec": spec, "call_ids": [call_id, live_id], "auth": AUTH}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.control.fuzz_api",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(json.dumps(job).encode()), 600)
    assert proc.returncode == 0, out
    failures = json.loads(out)["failures"]
    assert not failures, "\n".join(failures)
    control.stack.manager.hangup(live_id)
    rc, out = await caller
    assert rc == 0, out
    # whatever the fuzzer placed, nothing is left behind
    for live in list(control.stack.manager.calls.values()):
        live.end("test-cleanup")
    await asyncio.wait_for(control.stack.manager.wait_idle(), 20)
