"""Loopback attacks on rtbridge, one per defence of issue 12, over real sockets (UDP, TCP, TLS,
RTP), each while a SIPp caller talks to the agent.

Every test asserts two things: the attack fails as designed (the attacker's own counts, taken
in a process of its own, and rtbridge's counters, security events and records), and the SIPp
call placed during it completes with its agent audio on time (judged in RTP terms: see
:mod:`tests.security.attack_support`). SIPp calls from 127.0.0.1, which a trunk's allowlist
names; attackers come from other loopback addresses (strangers) unless the attack needs a
trusted one. The ``lateness_ms`` each test prints is the agent RTP's send time against its own
timestamps, for the record.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from bridge.bench._flood import Attacker
from bridge.calls.call import Call
from tests.calls import sipp_scenario as sc
from tests.calls.conftest import Stack, sipp_caller
from tests.security.attack_support import (
    AgentRtp,
    attacker,
    call_during,
    sipp_call,
    talking,
    until,
)
from tests.support.tls import make_cert

pytestmark = pytest.mark.peer("sipp")

SIPP_TRUNK = {"name": "sipp", "host": "127.0.0.1", "inbound_allow": ["127.0.0.1/32"]}


def _options(limits: dict[str, Any] | None = None, **sip: Any) -> dict[str, Any]:
    return {"sip": {"trunks": [SIPP_TRUNK], "limits": limits or {}, **sip}}


@pytest.fixture
def stack_options(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """The test's options (indirect parametrisation); ``"tls": true`` in ``sip`` gets a
    certificate made for 127.0.0.1 and a TLS listener; ``env`` is set in the environment
    (trunk passwords)."""
    options: dict[str, Any] = dict(getattr(request, "param", {}))
    for name, value in options.pop("env", {}).items():
        monkeypatch.setenv(name, value)
    sip = dict(options.get("sip", {}))
    if sip.pop("tls", False):
        cert, key = make_cert(tmp_path)
        sip.update(tls_port=0, tls_cert=str(cert), tls_key=str(key))
    options["sip"] = sip
    return options


def _report(name: str, rtp: AgentRtp, **figures: object) -> None:
    print(f"\n{name}: agent RTP {len(rtp.sent)} packets, lateness_ms {rtp.lateness_ms()}", figures)


# -- 1. transport limits ---------------------------------------------------------------------


@pytest.mark.peer("openssl")
@pytest.mark.parametrize(
    "stack_options",
    [
        _options(
            {
                "max_connections_per_source": 8,
                "message_deadline_s": 2.0,
                "write_high_water": 4096,
                "messages_per_s": 100_000,
                "messages_burst": 100_000,
            },
            tcp_port=0,
            tls=True,
            trunks=[
                SIPP_TRUNK,
                {"name": "pbx", "host": "127.0.0.4", "inbound_allow": ["127.0.0.4/32"]},
            ],
        )
    ],
    indirect=True,
)
async def test_tcp_and_tls_connection_floods_are_capped_and_timed_out(
    stack: Stack, tmp_path: Path
) -> None:
    """40 TCP connections holding half a 60 KB header, 20 TLS connections that never say
    hello (one source each), and a trusted peer that pipelines requests and never reads, while
    SIPp calls over TCP."""
    ports = stack.sip.ports
    tcp = await attacker("hold", ports["tcp"], source="127.0.0.2", count=40, seconds=8)
    tls = await attacker(
        "hold", ports["tls"], source="127.0.0.3", count=20, seconds=8, transport="tls"
    )
    noread = await attacker("noread", ports["tcp"], source="127.0.0.4", count=20_000)
    sipp, rtp = await call_during(stack, tmp_path, extra=("-t", "t1"), port=ports["tcp"])
    held, unhelloed, deaf = await tcp.result(), await tls.result(), await noread.result()
    _report("connection floods", rtp, tcp=held, tls=unhelloed, noread=deaf)
    assert sipp.returncode == 0, sipp.summary()
    rtp.assert_on_time()
    # per-source cap: 8 of each flood got in, the rest were reset at once ...
    assert held["reset_at_once"] == 32 and unhelloed["reset_at_once"] == 12
    # ... and those 8 were closed at the deadline: a half header, or no TLS hello
    assert held["closed_later"] == 8 and unhelloed["closed_later"] == 8
    assert held["still_open"] == 0 and unhelloed["still_open"] == 0
    assert deaf["closed"]  # cut off at the write high-water mark
    counts = stack.manager.security.counts
    assert counts["connection-cap"] >= 32 + 12 + 1
    assert counts["refused-request"] >= 16  # deadlines
    assert all(s.peer.host == "127.0.0.1" for s in stack.sip.transports.connections)


# -- 2. cheap checks first --------------------------------------------------------------------


@pytest.mark.parametrize("stack_options", [_options()], indirect=True)
async def test_58_kb_via_datagrams_are_dropped_before_parsing(stack: Stack, tmp_path: Path) -> None:
    """The issue's probe (58 KB of Via values, 30 a second), from the trunk's own address
    (trusted: only the bounds protect) and from a stranger."""
    port = stack.sip_port
    trusted = await attacker("vias", port, source="127.0.0.1", count=240, rate=30)
    stranger = await attacker("vias", port, source="127.0.0.2", count=240, rate=30)
    sipp, rtp = await call_during(stack, tmp_path)
    a, b = await trusted.result(), await stranger.result()
    core = stack.sip.core
    _report("via datagrams", rtp, oversized=core.stats["oversized"])
    assert sipp.returncode == 0, sipp.summary()
    rtp.assert_on_time()
    assert a["responses"] == 0 and b["responses"] == 0
    assert core.stats["oversized"] >= 400  # loopback UDP may drop a few under load
    assert stack.manager.security.counts["oversized-message"] >= 200


# -- 2, 3, 8. strangers, rates, no records ---------------------------------------------------


@pytest.mark.parametrize("stack_options", [_options()], indirect=True)
async def test_floods_from_strangers_get_at_most_one_answer_each_and_no_records(
    stack: Stack, tmp_path: Path
) -> None:
    """2,000 INVITEs with distinct Call-IDs, 1,000 REGISTERs and 1,000 OPTIONS, each from its
    own stranger: one stateless answer per request up to the source's burst, then a block;
    no transaction, no retransmission, no call record; counted as security events."""
    port = stack.sip_port
    invites = await attacker("invites", port, source="127.0.0.2", count=2000, rate=400)
    registers = await attacker("registers", port, source="127.0.0.3", count=1000, rate=200)
    options = await attacker("options", port, source="127.0.0.4", count=1000, rate=200)
    sipp, rtp = await call_during(stack, tmp_path)
    inv, reg, opt = await invites.result(), await registers.result(), await options.result()
    _report("stranger floods", rtp, invites=inv, registers=reg, options=opt)
    assert sipp.returncode == 0, sipp.summary()
    rtp.assert_on_time()
    # The burst, once each (no 100, no retransmission). The bucket also refills while the
    # burst is being spent (10/s for INVITE, 5/s for the others), so a sender the busy
    # machine delayed by a few hundred ms earns an answer or two more before its block.
    assert set(inv["statuses"]) == {"403"}
    assert 30 <= inv["responses"] <= 33
    assert 10 <= reg["responses"] <= 12 and 10 <= opt["responses"] <= 12
    assert inv["bytes_in"] < inv["bytes_out"] / 50  # no reflection: far fewer bytes back
    stack.store.flush()
    assert len(stack.store.list_calls()) == 1  # SIPp's call; the refusals are counted only
    counts = stack.manager.security.counts
    answered = inv["responses"] + reg["responses"] + opt["responses"]
    assert counts["refused-request"] == answered and counts["rate-limited"] == 3
    assert not [k for k in stack.sip.core.layer.servers if "z9hG4bKatk" in k]


# -- 3, 7. digest brute force, every digest trunk, call caps ---------------------------------

PBX = {
    "name": "pbx",
    "host": "pbx.example",
    "username": "alice",
    "password_env": "H5_PBX_PW",
    "inbound_digest": True,
}
OFFICE = {**PBX, "name": "office", "host": "office.example", "username": "bob"}
OFFICE["password_env"] = "H5_OFFICE_PW"
DIGEST_CALLER = Path(__file__).parents[1] / "sip" / "scenarios" / "uac_digest.xml"


def _digest_caller(user: str, password: str, hold_ms: int) -> str:
    """SIPp's digest caller (it answers the 401), as ``user``, holding the call a while."""
    xml = DIGEST_CALLER.read_text()
    xml = xml.replace(
        "[authentication username=alice password=trunk-secret]",
        f"[authentication username={user} password={password}]",
    )
    bye = '  <send retrans="500">\n    <![CDATA[\n      BYE'
    return xml.replace(bye, f'  <pause milliseconds="{hold_ms}"/>\n{bye}')


@pytest.mark.parametrize(
    "stack_options",
    [
        {
            "env": {"H5_PBX_PW": "s3cret", "H5_OFFICE_PW": "0ff1ce"},
            **_options({"max_calls_per_source": 2}, trunks=[SIPP_TRUNK, PBX, OFFICE]),
        }
    ],
    indirect=True,
)
async def test_digest_guessing_is_locked_out_and_every_digest_trunk_is_tried(
    stack: Stack, tmp_path: Path
) -> None:
    """200 wrong passwords from one source: ten are answered, then the source is blocked.
    Meanwhile the second digest-only trunk's user (the old policy only tried the first one)
    calls three times at once from one address: two calls, the third refused by the
    per-source cap; and SIPp's ordinary caller talks on."""
    guesser = await attacker("digest", stack.sip_port, source="127.0.0.2", count=200, rate=50)
    auth_uri = ("-auth_uri", f"bot@127.0.0.1:{stack.sip_port}")  # SIPp signs host:port else
    office = asyncio.create_task(
        sipp_caller(
            stack.sip_port,
            tmp_path,
            _digest_caller("bob", "0ff1ce", 4000),
            extra=("-m", "3", "-l", "3", "-r", "20", "-s", "bot", *auth_uri),
            local_ip="127.0.0.5",
            timeout=60,
        )
    )
    sipp, rtp = await call_during(stack, tmp_path)
    guessed, bob = await guesser.result(), await office
    _report("digest", rtp, guesser=guessed, office_rc=bob.returncode)
    assert sipp.returncode == 0, sipp.summary()
    rtp.assert_on_time()
    assert guessed["statuses"] == {"401": 11}  # the 11th failure starts the block
    counts = stack.manager.security.counts
    assert counts["auth-failure"] == 11 and counts["blocked-source"] == 1
    stack.store.flush()
    calls = stack.store.list_calls()
    assert sorted(c.trunk or "" for c in calls) == ["office", "office", "sipp"]
    assert all(c.end_reason == "remote-bye" for c in calls)
    capped = [e for e in stack.manager.security.recent() if e.kind == "rate-limited"]
    assert len(capped) == 1 and "max_calls_per_source" in capped[0].detail
    assert bob.returncode != 0  # SIPp counts its refused third call as failed


# -- 4. RTP hijack ------------------------------------------------------------------------------


@pytest.mark.parametrize("stack_options", [_options()], indirect=True)
async def test_forged_rtp_mid_call_takes_nothing(stack: Stack, tmp_path: Path) -> None:
    """500 forged, in-sequence RTP packets to the call's port from another address: dropped
    and counted; the attacker hears none of the agent's audio, the caller all of it."""
    attacks: list[Attacker] = []

    async def hijack(call: Call) -> None:
        await until(lambda: call.endpoint.latched is not None)
        attacks.append(
            await attacker(
                "rtp", 9, source="127.0.0.2", target=call.endpoint.port, count=500, rate=100
            )
        )

    sipp, rtp = await call_during(stack, tmp_path, on_call=hijack)
    forged = await attacks[0].result()
    _report("rtp hijack", rtp, forged=forged)
    assert sipp.returncode == 0, sipp.summary()
    rtp.assert_on_time()
    assert forged["received"] == 0  # not one packet of the agent's audio went its way
    stack.store.flush()
    (record,) = stack.store.list_calls()
    assert record.stats["rtp_foreign_source"] >= 450
    (event,) = [e for e in stack.manager.security.recent() if e.kind == "foreign-rtp"]
    assert event.call_id == record.call_id and event.source.startswith("rtp:127.0.0.2:")
    assert stack.agent.sessions[0].decoded_samples > 24000 * 3  # the caller's audio got in


# -- 4. unproven peers: no ACK, a hold without end --------------------------------------------


@pytest.mark.parametrize(
    "stack_options",
    [{**_options(timers={"t1": 0.1}), "calls": {"max_hold_s": 2.0}}],
    indirect=True,
)
async def test_an_unacked_invite_gets_no_audio_and_a_hold_ends(
    stack: Stack, tmp_path: Path
) -> None:
    """An INVITE (from the trunk's address) whose SDP names a victim and that is never ACKed:
    the victim gets no RTP at all, and the call ends at Timer H (64*T1, T1 = 0.1 s here). A
    caller that puts the agent on hold and never resumes is hung up after max_hold_s."""
    unacked = await attacker("unacked", stack.sip_port, source="127.0.0.1", seconds=9)
    holder = sc.uac(talking(tmp_path), sc.pause(3000), sc.hold(2), sc.wait_bye(30_000))
    sipp, rtp = await call_during(stack, tmp_path, scenario=holder)
    victim = await unacked.result()
    _report("unacked and hold", rtp, victim=victim)
    assert sipp.returncode == 0, sipp.summary()  # it got our BYE
    rtp.assert_on_time(at_least=100)
    assert victim["media_packets"] == 0  # not one packet to an address nobody proved
    assert victim["statuses"].get("200", 0) >= 5  # the 200 was retransmitted, then ...
    assert victim["byes"] >= 1  # ... BYE at Timer H
    stack.store.flush()
    reasons = sorted(c.end_reason or "" for c in stack.store.list_calls())
    assert reasons == ["ack-timeout", "hold-timeout"]


# -- 5. DNS off the media path -------------------------------------------------------------------


class CountingResolver:
    """The manager's resolver: ``media.caller.test`` is loopback, ``slow.example`` never
    answers; every lookup counted."""

    def __init__(self) -> None:
        self.lookups: list[str] = []

    async def __call__(self, host: str, family: int) -> list[str]:
        self.lookups.append(host)
        if host == "slow.example":
            await asyncio.sleep(60)
        return ["127.0.0.1"] if host == "media.caller.test" else []


RESOLVER = CountingResolver()


@pytest.mark.parametrize(
    "stack_options",
    [
        {
            **_options(),
            "calls": {"sdp_resolve_timeout_s": 1.0},
            "manager": {"resolver": RESOLVER},
        }
    ],
    indirect=True,
)
async def test_sdp_hostnames_are_resolved_once_and_never_while_media_flows(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SIPp caller's SDP names a host (``c=IN IP4 media.caller.test``): one lookup at
    negotiation, none while media flows (the system resolver is watched too). Meanwhile 20
    INVITEs from the trunk name a host whose resolver never answers: each is refused with
    488 after the timeout, and no call's audio waits for them."""
    RESOLVER.lookups.clear()
    system: list[object] = []
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: system.append(a) or real(*a, **k))
    slow = await attacker(
        "invites", stack.sip_port, source="127.0.0.1", count=20, rate=5, media_host="slow.example"
    )
    at_answer: list[int] = []

    async def answered(call: Call) -> None:
        at_answer.append(len(system))
        assert call.endpoint.remote == ("127.0.0.1", call.endpoint.remote[1])

    scenario = sipp_call(6, tmp_path).replace(
        "c=IN IP[media_ip_type] [media_ip]", "c=IN IP4 media.caller.test"
    )
    sipp, rtp = await call_during(stack, tmp_path, scenario=scenario, on_call=answered)
    refused = await slow.result()
    _report("dns", rtp, lookups=len(RESOLVER.lookups), attacker=refused)
    assert sipp.returncode == 0, sipp.summary()
    rtp.assert_on_time()
    assert RESOLVER.lookups.count("media.caller.test") == 1
    assert len(system) == at_answer[0]  # nothing looked up while media flowed
    assert RESOLVER.lookups.count("slow.example") == 20
    assert refused["statuses"].get("488", 0) >= 20 and "200" not in refused["statuses"]


# -- 6. bounded caller work ------------------------------------------------------------------


@pytest.mark.parametrize("stack_options", [_options()], indirect=True)
async def test_a_flood_of_digits_is_rate_limited_and_buys_no_responses(
    stack: Stack, tmp_path: Path
) -> None:
    """100 SIP INFO digits as fast as SIPp sends them (about what one SIPp scenario holds):
    the profile's rate goes through, the rest is dropped and counted (no event rows, no agent
    responses for them)."""
    digits = "".join(sc.info("0123456789"[n % 10], 2 + n) for n in range(100))
    scenario = sc.uac(talking(tmp_path), sc.pause(1000), digits, sc.pause(3000), sc.send_bye(102))
    sipp, rtp = await call_during(stack, tmp_path, scenario=scenario)
    _report("digit flood", rtp)
    assert sipp.returncode == 0, sipp.summary()
    rtp.assert_on_time()
    stack.store.flush()
    (record,) = stack.store.list_calls()
    kinds = [e.kind for e in stack.store.events(record.call_id)]
    assert 20 <= kinds.count("dtmf") <= 80 and kinds.count("dtmf.dropped") == 1
    (event,) = [e for e in stack.manager.security.recent() if e.kind == "rate-limited"]
    assert event.call_id == record.call_id
    creates = stack.agent.sessions[0].received_types.count("response.create")
    assert creates <= kinds.count("dtmf") // 4  # digits that got through share responses
