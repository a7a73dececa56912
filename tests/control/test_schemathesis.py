"""Property-based run over the OpenAPI document (schemathesis): no request the spec allows, with
or without the key, makes the control plane answer 5xx. Originate is limited to a loopback SIPp
callee (the only allowlisted target); one real originate to it is placed first."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import pkgutil
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from tests.calls import sipp_scenario as sc
from tests.control.conftest import AUTH, Control, sipp_call, uac
from tests.sip.sipp_support import free_port, run_sipp
from tests.support.audio import ulaw_file
from tests.support.peers import require_peer

pytestmark = pytest.mark.peer("sipp")


def _import_all(package: Any) -> None:
    """schemathesis imports submodules lazily, and here it runs in a thread while the event
    loop runs in the main one. CPython 3.11's AST builder keeps a shared recursion depth, so
    a module compiled in one thread while another compiles can fail with "SystemError: AST
    constructor recursion depth mismatch" (CPython gh-106905). Import them all up front."""
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        with contextlib.suppress(Exception):
            importlib.import_module(info.name)


_import_all(schemathesis)

UAS_PORT = free_port()
TARGET = f"sip:service@127.0.0.1:{UAS_PORT}"
OPTIONS = {
    "profile": {"dial_targets": [TARGET], "transfer_targets": [TARGET]},
    "sip": {"trunks": [{"name": "loopback", "host": "127.0.0.1", "port": UAS_PORT}]},
}


def audio(tmp_path: Path) -> Path:
    return ulaw_file(tmp_path / "voice.ulaw", ("voice", 1.0), ("silence", 30.0))


def fuzz(base_url: str, spec: dict[str, Any], call_ids: list[str]) -> list[str]:
    """Runs in a thread (schemathesis' transport is synchronous); returns the failures."""
    schema = schemathesis.openapi.from_dict(spec)
    failures: list[str] = []
    seen: list[int] = []
    live_posts: list[str] = []  # POSTs the live call accepted
    strategies = []
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path == "/v1/events":
            continue  # an endless stream; covered by test_live_calls
        strategies.append(op.as_strategy())

    @hypothesis.settings(
        max_examples=300,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    @given(
        case=st.one_of(strategies),
        authed=st.booleans(),
        real_id=st.one_of(st.none(), st.sampled_from(call_ids)),
    )
    def run(case: Any, authed: bool, real_id: str | None) -> None:
        if real_id and case.path_parameters and "call_id" in case.path_parameters:
            case.path_parameters["call_id"] = real_id
        headers = dict(AUTH) if authed else {}
        response = case.call(base_url=base_url, headers=headers, timeout=20)
        seen.append(response.status_code)
        if real_id == call_ids[-1] and response.status_code == 200 and case.method == "POST":
            live_posts.append(case.path)
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}")
            failures.append(response.text[:500])

    run()
    assert len(seen) >= 100 and {200, 401, 404, 422} <= set(seen), sorted(set(seen))
    assert live_posts, "the live call was never driven"
    return failures


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
    failures = await asyncio.to_thread(fuzz, control.url, spec, [call_id, live_id])
    assert not failures, "\n".join(failures)
    control.stack.manager.hangup(live_id)
    rc, out = await caller
    assert rc == 0, out
    # whatever the fuzzer placed, nothing is left behind
    for live in list(control.stack.manager.calls.values()):
        live.end("test-cleanup")
    await asyncio.wait_for(control.stack.manager.wait_idle(), 20)
