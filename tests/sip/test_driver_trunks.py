"""Tier 2: what a trunk's settings put on the wire (issue 14): the E.164 caller id, the
identity headers, a delayed offer; and a call on a trunk its keepalive marked down fails at
once, with nothing sent."""

from __future__ import annotations

import asyncio
import socket

import pytest

from sip.driver import SipEndpoint, start_sip
from sip.errors import SipError
from sip.message import Request, parse_message
from sip.settings import SipSettings, TrunkSettings
from tests.sip.sipp_support import ANSWER_SDP


async def _endpoint_and_trunk(**trunk: object) -> tuple[SipEndpoint, socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    settings = SipSettings(
        bind_host="127.0.0.1",
        udp_port=0,
        tcp_port=None,
        trunks=[
            TrunkSettings.model_validate(
                {"name": "carrier", "host": "127.0.0.1", "port": sock.getsockname()[1], **trunk}
            )
        ],
    )
    return await start_sip(settings), sock


async def test_identity_headers_and_delayed_offer_go_on_the_invite() -> None:
    ep, sock = await _endpoint_and_trunk(
        caller_id="+14155550100",
        asserted_identity="sip:+14155550100@acme.example",
        diversion="sip:+14155550199@acme.example",
        options_interval_s=None,
    )
    try:
        await ep.invite("sip:+15550100@127.0.0.1", b"", trunk="carrier")
        data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 65535), 5)
    finally:
        await ep.close(hangup=False)
        sock.close()
    invite = parse_message(data)
    assert isinstance(invite, Request) and invite.method == "INVITE"
    assert invite.from_.uri.user == "+14155550100"
    assert invite.headers.get("P-Asserted-Identity") == "<sip:+14155550100@acme.example>"
    assert (invite.headers.get("Diversion") or "").startswith("<sip:+14155550199@acme.example>")
    assert invite.body == b"" and invite.headers.get("Content-Type") is None  # delayed offer
    assert invite.headers.get("Session-Expires") == "1800;refresher=uac"


async def test_a_trunk_s_own_session_timer_settings_reach_its_invites() -> None:
    ep, sock = await _endpoint_and_trunk(session_timers={"session_expires": 600, "min_se": 300})
    try:
        await ep.invite("sip:+15550100@127.0.0.1", ANSWER_SDP, trunk="carrier")
        data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 65535), 5)
    finally:
        await ep.close(hangup=False)
        sock.close()
    invite = parse_message(data)
    assert isinstance(invite, Request)
    assert invite.headers.get("Session-Expires") == "600;refresher=uac"  # not [sip]'s 1800
    assert invite.headers.get("Min-SE") == "300"


async def test_a_call_on_a_trunk_marked_down_fails_at_once() -> None:
    ep, sock = await _endpoint_and_trunk(options_interval_s=60)
    try:
        health = ep.trunk_health["carrier"]
        health.observe(None, 0.0)
        assert health.up  # one lost OPTIONS is not enough
        health.observe(None, 1.0)
        with pytest.raises(SipError, match="down"):
            await ep.invite("sip:x@127.0.0.1", ANSWER_SDP, trunk="carrier")
    finally:
        await ep.close(hangup=False)
        sock.close()


@pytest.mark.parametrize("value", ["14155550100", "+0123", "sip:x@y<z>"])
def test_caller_ids_and_identities_are_checked_when_the_config_loads(value: str) -> None:
    with pytest.raises(ValueError):
        TrunkSettings(name="t", host="h", caller_id=value, asserted_identity=value)


def test_a_trunk_s_session_timer_keys_it_leaves_out_are_the_endpoint_s() -> None:
    settings = SipSettings.model_validate(
        {
            "session_timers": {"session_expires": 900, "min_se": 120},
            "trunks": [{"name": "t", "host": "h", "session_timers": {"refresher": "uas"}}],
        }
    )
    own = settings.trunk("t").session_timers
    assert own is not None
    assert (own.session_expires, own.min_se, own.refresher) == (900, 120, "uas")
    with pytest.raises(ValueError, match="min_se"):  # checked once merged
        SipSettings.model_validate(
            {
                "session_timers": {"min_se": 1000},
                "trunks": [{"name": "t", "host": "h", "session_timers": {"session_expires": 600}}],
            }
        )
