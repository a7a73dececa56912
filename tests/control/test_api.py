"""Every control-plane route: the key is required (401), unknown call ids are 404, invalid bodies
are 422 naming the field; the probes and the OpenAPI document are open, Swagger UI is off."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.control.auth import COOKIE_NAME
from bridge.records import store as records_store
from tests.control.conftest import KEY, Control
from tests.sip.sipp_support import free_port

OPEN = {"/healthz", "/readyz", "/metrics", "/openapi.json"}

#: a valid body for every POST route with one (so that 404 and 401 are about the id/key)
BODIES: dict[str, dict[str, Any]] = {
    "/v1/calls": {"target": "sip:nobody@192.0.2.1"},
    "/v1/calls/{call_id}/transfer": {"target": "sip:desk@127.0.0.1"},
    "/v1/calls/{call_id}/dtmf": {"digits": "12#"},
    "/v1/calls/{call_id}/say": {"text": "hello", "role": "system"},
    "/v1/calls/{call_id}/session": {"instructions": "be brief"},
    "/v1/realtime/calls/{call_id}/accept": {"type": "realtime", "instructions": "hi"},
    "/v1/realtime/calls/{call_id}/reject": {"status_code": 486},
    "/v1/realtime/calls/{call_id}/refer": {"target_uri": "tel:+15550100"},
}
CALL_ROUTES = [
    ("GET", "/v1/calls/{call_id}"),
    ("GET", "/v1/calls/{call_id}/events"),
    ("POST", "/v1/calls/{call_id}/hangup"),
    ("POST", "/v1/calls/{call_id}/transfer"),
    ("POST", "/v1/calls/{call_id}/dtmf"),
    ("POST", "/v1/calls/{call_id}/hold"),
    ("POST", "/v1/calls/{call_id}/resume"),
    ("POST", "/v1/calls/{call_id}/say"),
    ("POST", "/v1/calls/{call_id}/session"),
    ("POST", "/v1/realtime/calls/{call_id}/accept"),
    ("POST", "/v1/realtime/calls/{call_id}/reject"),
    ("POST", "/v1/realtime/calls/{call_id}/refer"),
    ("POST", "/v1/realtime/calls/{call_id}/hangup"),
]


def control_routes(control: Control) -> list[tuple[str, str]]:
    spec = control.app.openapi()
    out = []
    for path, ops in spec["paths"].items():
        for method in ops:
            if path not in OPEN and (path.startswith("/v1/calls") or "/{call_id}" in path):
                out.append((method.upper(), path))
    out.append(("GET", "/v1/events"))
    return sorted(set(out))


async def test_probes_and_the_openapi_document_are_open(control: Control) -> None:
    async with httpx.AsyncClient(base_url=control.url) as anon:
        assert (await anon.get("/healthz")).json() == {"status": "ok"}
        ready = await anon.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        for path in ("/healthz", "/readyz"):  # load balancers' HEAD probes: as GET, no body
            head = await anon.head(path)
            assert head.status_code == 200 and head.content == b"", path
            assert head.headers["content-type"] == "application/json"
        metrics = await anon.get("/metrics")
        assert metrics.status_code == 200
        assert "rtbridge_active_calls" in metrics.text
        # the frame ticker's lateness, as a histogram (benchmarks diff two scrapes)
        assert 'rtbridge_tick_lateness_seconds_bucket{le="+Inf"}' in metrics.text
        names = [line.split()[2] for line in metrics.text.splitlines() if line.startswith("# TYPE")]
        assert names and all(n.startswith("rtbridge_") for n in names), names
        assert (await anon.get("/openapi.json")).status_code == 200
        # Swagger UI (scripts from a CDN on the cookie's origin) and ReDoc are off by default
        assert (await anon.get("/docs")).status_code == 404
        assert (await anon.get("/redoc")).status_code == 404


async def test_every_route_requires_the_key(control: Control) -> None:
    routes = control_routes(control)
    assert set(CALL_ROUTES) <= set(routes)
    assert ("POST", "/v1/calls") in routes and ("GET", "/v1/calls") in routes
    async with httpx.AsyncClient(base_url=control.url) as anon:
        for method, path in routes:
            url = path.replace("{call_id}", "call_0123")
            body = BODIES.get(path)
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
                r = await anon.request(method, url, json=body, headers=headers)
                assert r.status_code == 401, (method, path, headers, r.text)
                assert r.json()["error"]["code"] in ("missing_api_key", "invalid_api_key")
                assert KEY not in r.text
        # a dashboard login session is accepted instead of the header, a forged one is not
        login = await anon.post("/dashboard/login", data={"key": KEY})
        assert login.status_code == 303 and COOKIE_NAME in anon.cookies
        assert KEY not in anon.cookies[COOKIE_NAME]
        assert (await anon.get("/v1/calls")).status_code == 200
        anon.cookies.set(COOKIE_NAME, "0" * 43)
        assert (await anon.get("/v1/calls")).status_code == 401


async def test_unknown_call_ids_are_404_everywhere(control: Control) -> None:
    for method, path in CALL_ROUTES:
        r = await control.client.request(
            method, path.replace("{call_id}", "call_doesnotexist"), json=BODIES.get(path)
        )
        assert r.status_code == 404, (method, path, r.text)
        err = r.json()["error"]
        assert err["code"] == "call_not_found" and "call_doesnotexist" in err["message"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/calls", {}, "target"),
        ("/v1/calls", {"target": "sip:a@b", "caller": "x y"}, "caller"),
        ("/v1/calls", {"target": "sip:a@b", "surprise": 1}, "surprise"),
        ("/v1/calls/call_x/dtmf", {"digits": "12x"}, "digits"),
        ("/v1/calls/call_x/dtmf", {}, "digits"),
        ("/v1/calls/call_x/say", {"text": ""}, "text"),
        ("/v1/calls/call_x/say", {"text": "hi", "role": "assistant"}, "role"),
        ("/v1/calls/call_x/transfer", {"target": 5}, "target"),
        ("/v1/calls/call_x/session", {"type": "transcription"}, "type"),
        ("/v1/realtime/calls/call_x/reject", {"status_code": 200}, "status_code"),
        ("/v1/realtime/calls/call_x/refer", {}, "target_uri"),
        ("/v1/realtime/calls/call_x/accept", {"instructions": 3}, "instructions"),
        ("/v1/realtime/calls/call_x/accept", {"audio": {"output": "alloy"}}, "audio"),
        ("/v1/calls/call_x/session", {"audio": {"input": []}}, "audio"),
    ],
)
async def test_invalid_bodies_are_422_naming_the_field(
    control: Control, path: str, body: dict[str, Any], field: str
) -> None:
    r = await control.client.post(path, json=body)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert field in err["message"] and err["message"].startswith("Invalid request: ")
    assert err["param"] == field


async def test_accept_names_the_audio_part_that_is_not_an_object(control: Control) -> None:
    r = await control.client.post(
        "/v1/realtime/calls/call_x/accept", json={"audio": {"output": "alloy"}}
    )
    assert r.status_code == 422 and r.headers["content-type"] == "application/json"
    assert "audio.output must be an object" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/calls", b'{"target": NaN}', "target"),
        ("/v1/calls", b'{"target": "sip:a@b", "caller": Infinity}', "caller"),
        ("/v1/realtime/calls/call_x/reject", b'{"status_code": 1e400}', "status_code"),
        ("/v1/calls/call_x/dtmf", b'{"digits": -Infinity}', "digits"),
        ("/v1/calls/call_x/say", b'{"text": "hi", "respond": NaN}', "respond"),
    ],
)
async def test_non_finite_numbers_in_an_invalid_body_are_a_json_422(
    control: Control, path: str, body: bytes, field: str
) -> None:
    """Python's JSON reads NaN, Infinity and 1e400 as floats; the 422 echoing them was a 500."""
    headers = {"content-type": "application/json"}
    r = await control.client.post(path, content=body, headers=headers)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"]["param"] == field
    assert r.json()["detail"][0]["input"] in ("NaN", "Infinity", "-Infinity")


async def test_invalid_query_and_json_are_422(control: Control) -> None:
    r = await control.client.get("/v1/calls", params={"state": "bogus"})
    assert r.status_code == 422 and "state" in r.json()["error"]["message"]
    r = await control.client.get("/v1/calls", params={"limit": 0})
    assert r.status_code == 422 and "limit" in r.json()["error"]["message"]
    r = await control.client.post(
        "/v1/calls", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422


async def test_originate_refuses_targets_outside_the_allowlist(control: Control) -> None:
    r = await control.client.post("/v1/calls", json={"target": "sip:+19005550100@192.0.2.1"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "target_not_allowed"
    r = await control.client.post("/v1/calls", json={"target": "sip:a@b", "profile": "nope"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "profile"
    r = await control.client.post("/v1/calls", json={"target": "sip:a@b", "trunk": "nope"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "trunk"
    assert control.stack.manager.calls == {}


async def test_list_filters(control: Control) -> None:
    r = await control.client.get("/v1/calls", params={"state": "active", "leg": "sip"})
    assert r.status_code == 200 and r.json() == {"object": "list", "data": []}


async def test_ended_calls_are_searched_a_page_at_a_time(control: Control) -> None:
    """``GET /v1/calls/search``: filters, newest first, pages joined by ``next_cursor``; a
    cursor not made by the server is a precise 422."""
    store = control.plane.store
    # an hour ago: inside the records' retention (the store prunes older ended calls, and
    # its first prune may run after these writes)
    start = control.stack.manager.clock.wall() - 3600.0
    for n in range(5):
        store.call_offered(
            f"call_s{n}",
            direction="inbound",
            leg="sip",
            from_uri=f"sip:+1555010{n % 2}@198.51.100.7",
            to_uri="sip:bot@127.0.0.1",
            profile="default",
            offered_at=start + n,
        )
        store.call_ended(f"call_s{n}", reason="remote-bye" if n % 2 else "rtp-timeout")
    got: list[str] = []
    window = {"since": start, "until": start + 10}
    params: dict[str, Any] = {"number": "+1 555 0100", "limit": 2, **window}
    while True:
        r = await control.client.get("/v1/calls/search", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["object"] == "list" and len(page["data"]) <= 2
        for view in page["data"]:
            assert view["state"] == "ended" and view["end_reason"] == "rtp-timeout", view
            got.append(view["id"])
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert got == ["call_s4", "call_s2", "call_s0"]
    r = await control.client.get("/v1/calls/search", params={"end_reason": "remote-bye", **window})
    assert [c["id"] for c in r.json()["data"]] == ["call_s3", "call_s1"]
    r = await control.client.get("/v1/calls/search", params={"profile": "other"})
    assert r.json() == {"object": "list", "data": [], "next_cursor": None}
    for bad in ("nonsense", "1.5~", "nan~call_s1", "~call_s1"):
        r = await control.client.get("/v1/calls/search", params={"cursor": bad})
        assert r.status_code == 422 and r.json()["error"]["param"] == "cursor", (bad, r.text)


async def test_a_slow_event_stream_client_is_told_what_it_missed(control: Control) -> None:
    got: list[dict[str, Any]] = []
    async with control.client.stream("GET", "/v1/events") as r:
        lines = r.aiter_lines()
        while (await anext(lines)) != ": connected":
            pass
        for i in range(1500):  # at once, faster than any client reads: the queue holds 1024
            control.stack.manager.lifecycle.publish({"type": "call.test", "call_id": str(i)})
        async with asyncio.timeout(10):
            async for line in lines:
                if line.startswith("data: "):
                    got.append(json.loads(line[6:]))
                if len(got) >= 1025:
                    break
    dropped = [e for e in got if e["type"] == "rtbridge.events_dropped"]
    assert dropped == [{"type": "rtbridge.events_dropped", "dropped": 476}]
    assert [e["call_id"] for e in got if e["type"] == "call.test"] == [str(i) for i in range(1024)]
    async with httpx.AsyncClient(base_url=control.url) as anon:
        text = (await anon.get("/metrics")).text
    assert "rtbridge_sideband_dropped_events_total 476.0" in text


@pytest.mark.parametrize(
    "stack_options",
    [
        {
            "sip": {
                "trunks": [
                    {
                        "name": "gone",
                        "host": "127.0.0.1",
                        "port": free_port(kind=1),  # nothing listens: connections refused
                        "transport": "tcp",
                        "options_interval_s": 1,
                    }
                ]
            }
        }
    ],
)
async def test_trunks_list_their_keepalive_state(control: Control) -> None:
    async with asyncio.timeout(20):
        while True:
            (trunk,) = (await control.client.get("/v1/trunks")).json()["data"]
            if trunk["state"] == "down":
                break
            await asyncio.sleep(0.1)
    assert trunk == {
        "name": "gone",
        "state": "down",
        "last_status": None,
        "failures": trunk["failures"],
        "detail": f"no answer to {trunk['failures']} OPTIONS",
    }
    assert trunk["failures"] >= 2
    metrics = (await control.client.get("/metrics")).text
    assert 'rtbridge_sip_trunk_up{trunk="gone"} 0.0' in metrics


async def test_a_request_waiting_on_the_records_database_holds_up_no_other(
    control: Control, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An ended call is looked up in the call records; that read waits for the records writer
    (read-your-writes) and the database. Here the SQLite file is locked by another process
    (a backup, a shell), so the writer cannot write what was just logged and the read waits.
    The server runs on this test's event loop: had the read blocked the loop, every live
    call's audio would stall with it, and nothing below could run before it ended."""
    monkeypatch.setattr(records_store, "READ_FLUSH_S", 30.0)  # the wait outlasts the test
    store = control.stack.store
    store.call_offered("call_gone", direction="inbound", leg="sip", from_uri="sip:a@127.0.0.1")
    store.call_ended("call_gone", reason="caller_hangup")
    store.flush()
    blocker = sqlite3.connect(tmp_path / "calls.db", isolation_level=None)  # the stack's
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        store.log_event("call_gone", "dtmf", {"digit": "7"})  # waits for the lock
        client = control.client
        waiting = [
            asyncio.create_task(client.get("/v1/calls/call_gone")),
            asyncio.create_task(client.post("/v1/calls/call_gone/hangup")),
            asyncio.create_task(client.post("/v1/calls/call_gone/dtmf", json={"digits": "1"})),
        ]
        await asyncio.sleep(0.5)  # the requests reach their handlers and wait on the read
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        active = await client.get("/v1/calls", params={"state": "active"})  # no record read
        assert active.status_code == 200 and active.json()["data"] == []
        assert not any(t.done() for t in waiting)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    got, hangup, dtmf = await asyncio.gather(*waiting)
    assert got.status_code == 200 and got.json()["state"] == "ended"
    assert got.json()["end_reason"] == "caller_hangup"
    for refused in (hangup, dtmf):
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "call_ended"
    events = (await client.get("/v1/calls/call_gone/events")).json()["data"]
    assert [e["data"] for e in events if e["kind"] == "dtmf"] == [{"digit": "7"}]


@pytest.mark.parametrize(
    ("range_", "status", "content"),
    [
        ("bytes=2-5", 206, b"2345"),
        ("items=0-1", 200, b"0123456789"),  # unknown unit: ignored (RFC 9110 §14.2)
        ("bytes=abc", 200, b"0123456789"),  # malformed: ignored
        ("bytes=5-1", 200, b"0123456789"),
        ("0-1", 200, b"0123456789"),
        ("bytes=2-3,100-200", 206, b"23"),  # 416 only when no range is satisfiable (§15.5.17)
    ],
)
async def test_recording_ranges_follow_rfc_9110(
    control: Control, range_: str, status: int, content: bytes
) -> None:
    path = control.plane.manager.recordings.path_for("call_ranges")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"0123456789")
    r = await control.client.get("/v1/calls/call_ranges/recording", headers={"Range": range_})
    assert (r.status_code, r.content) == (status, content)
    assert r.headers["content-type"] == "audio/wav"


async def test_an_unsatisfiable_recording_range_is_416_in_the_error_shape(control: Control) -> None:
    path = control.plane.manager.recordings.path_for("call_ranges")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"0123456789")
    r = await control.client.get(
        "/v1/calls/call_ranges/recording", headers={"Range": "bytes=999999999-"}
    )
    assert r.status_code == 416 and r.headers["content-type"] == "application/json"
    assert r.headers["content-range"] == "bytes */10"
    assert r.json()["error"]["code"] == "range_not_satisfiable"
