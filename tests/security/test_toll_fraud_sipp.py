"""Toll fraud replayed against a real ``rtbridge serve`` with a SIPp caller.

The profile allows transfers and calls to ``sip:*@pbx.acme.example``, which the old shell
patterns read on raw strings. Each crafted target below matched that pattern while naming
another host (a UDP socket of this test, standing for ``evil.example``). The local agent is told
to call ``transfer_call`` with it after the caller's first turn; while the call is up, the same
target goes to ``POST /v1/calls/{id}/transfer``, ``POST /v1/realtime/calls/{id}/refer`` and
``POST /v1/calls``. Every attempt must be refused (the tool gets an error output, the routes a
422), recorded as a ``destination-refused`` security event, and no SIP message may be sent:
SIPp (whose scenario has no REFER in it) sees none, and the crafted host receives nothing.
"""

from __future__ import annotations

import asyncio
import json
import socket
from fnmatch import fnmatchcase
from pathlib import Path

import httpx
import pytest

from tests.calls import sipp_scenario as sc
from tests.calls.conftest import rtp_range, sipp_caller
from tests.calls.test_call_control_sipp import ulaw_file
from tests.sip.sipp_support import free_port
from tests.support.peers import require_peer
from tests.support.procs import run_rtbridge

pytestmark = pytest.mark.peer("sipp")

KEY = "rtb_toll_fraud_test_key"
AUTH = {"Authorization": f"Bearer {KEY}"}
PBX = "sip:*@pbx.acme.example"

CRAFTED = {
    # the parser reads host 127.0.0.1:EVIL, user "+1900@..." is not a user part
    "user-part": "sip:+1900@127.0.0.1:{evil};x=@pbx.acme.example",
    # URI headers: the host is 127.0.0.1:EVIL
    "uri-headers": "sip:x@127.0.0.1:{evil}?h=@pbx.acme.example",
    # CR/LF: a REFER carrying an injected second Contact
    "crlf": "sip:x@127.0.0.1:{evil}>\r\nContact: <sip:y@pbx.acme.example",
}


def _config(tmp_path: Path, target: str) -> Path:
    base = rtp_range()["rtp_port_min"]
    cfg = tmp_path / "rtbridge.toml"
    cfg.write_text(
        f"""
[server]
data_dir = {json.dumps(str(tmp_path / "data"))}

[agent]
tool_after_turns = 1
tool_name = "transfer_call"
tool_arguments = {json.dumps(json.dumps({"target": target}))}

[calls]
rtp_port_min = {base}
rtp_port_max = {base + 200}

[profiles.default]
telephony_tools = true
hangup_grace_ms = 0
transfer_targets = ["{PBX}"]
dial_targets = ["{PBX}"]
"""
    )
    return cfg


async def _live_call(client: httpx.AsyncClient) -> str:
    async with asyncio.timeout(20):
        while True:
            calls = (await client.get("/v1/calls", params={"state": "active"})).json()["data"]
            if calls:
                return str(calls[0]["id"])
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("kind", list(CRAFTED))
async def test_crafted_targets_are_refused_logged_and_never_sent(tmp_path: Path, kind: str) -> None:
    require_peer("sipp")
    evil = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    evil.bind(("127.0.0.1", 0))
    evil.setblocking(False)
    target = CRAFTED[kind].format(evil=evil.getsockname()[1])
    assert fnmatchcase(target, PBX)  # what the old allowlist let through
    audio = ulaw_file(tmp_path / "voice.ulaw", ("voice", 1.5), ("silence", 1.0))
    sip_port = free_port()
    scenario = sc.uac(sc.stream(audio), sc.pause(6000), sc.send_bye(2))
    env = {"RTBRIDGE_API_KEY": KEY, "XDG_DATA_HOME": str(tmp_path / "xdg")}
    args = ("serve", "--config", str(_config(tmp_path, target)))
    args += ("--http-port", str(free_port(socket.SOCK_STREAM)), "--sip-port", str(sip_port))
    try:
        async with (
            run_rtbridge(*args, env=env) as url,
            httpx.AsyncClient(base_url=url, headers=AUTH, timeout=20) as client,
        ):
            caller = asyncio.create_task(
                sipp_caller(sip_port, tmp_path, scenario, extra=("-trace_msg",), timeout=60)
            )
            call_id = await _live_call(client)
            attempts = [
                await client.post(f"/v1/calls/{call_id}/transfer", json={"target": target}),
                await client.post(
                    f"/v1/realtime/calls/{call_id}/refer", json={"target_uri": target}
                ),
                await client.post("/v1/calls", json={"target": target}),
            ]
            res = await caller
            assert res.returncode == 0, res.summary()  # no unexpected REFER reached SIPp
            for r in attempts:
                assert r.status_code == 422, r.text
                err = r.json()["error"]
                assert err["code"] == "target_malformed"
                assert err["param"] in ("target", "target_uri")
            log = (await client.get(f"/v1/calls/{call_id}/events")).json()["data"]
            security = (
                await client.get(
                    "/v1/security/events", params={"kind": "destination-refused", "limit": 50}
                )
            ).json()
            metrics = (await client.get("/metrics")).text
    finally:
        traces = tmp_path.glob("*_messages.log")
        messages = "".join(p.read_text(errors="replace") for p in traces)
        leaked = []
        while True:
            try:
                leaked.append(evil.recv(65535))
            except BlockingIOError:
                break
        evil.close()

    # the agent asked, call control refused and told it why
    tool = [e["data"] for e in log if e["kind"] == "tool_call"]
    assert tool and tool[0]["name"] == "transfer_call"
    assert tool[0]["arguments"] == {"target": target}
    refused = [e["data"] for e in log if e["kind"] == "transfer.refused"]
    assert refused and "transfer refused" not in refused[0]["why"]  # the policy's own reason
    assert not [e for e in log if e["kind"] == "refer"]
    # four security events: the tool's (source: the agent) and the three routes' (HTTP client)
    events = security["data"]
    assert sorted((e["source"], e["call_id"] or "") for e in events) == [
        ("agent", call_id),
        ("http:127.0.0.1", ""),
        ("http:127.0.0.1", call_id),
        ("http:127.0.0.1", call_id),
    ]
    assert all("\r" not in e["detail"] and "\n" not in e["detail"] for e in events)
    assert security["counts"]["destination-refused"] == 4
    assert 'rtbridge_security_events_total{kind="destination-refused"} 4.0' in metrics
    # and nothing left for the crafted host: no REFER to the caller, no INVITE to it
    assert "INVITE sip:bot@" in messages and "BYE sip:" in messages  # the trace is there
    assert "REFER sip:" not in messages and "Refer-To" not in messages
    assert "INVITE sip:x@" not in messages and "INVITE sip:+1900" not in messages
    assert leaked == []
