"""Webhook signing as the openai SDK verifies it (``whsec_`` and raw secrets), tampering
detected, and a GA session laid over a profile."""

from __future__ import annotations

import base64
import json
import time

import httpx
import openai
import pytest

from bridge.config import AgentProfile, Settings, WebhookSettings
from bridge.control.webhooks import IncomingCalls, profile_from_session, sign, webhook_headers
from sip.events import CallOffered
from sip.headers import NameAddr
from sip.transaction import Peer

BODY = json.dumps(
    {
        "id": "evt_1",
        "object": "event",
        "type": "realtime.call.incoming",
        "created_at": 1,
        "data": {"call_id": "call_1", "sip_headers": [{"name": "From", "value": "<sip:a@b>"}]},
    }
).encode()


@pytest.mark.parametrize(
    "secret", ["whsec_" + base64.b64encode(b"k" * 32).decode(), "plain-text-secret"]
)
def test_signature_verifies_with_the_openai_sdk(secret: str) -> None:
    sdk = openai.OpenAI(api_key="unused", webhook_secret=secret)
    headers = webhook_headers(secret, "msg_1", int(time.time()), BODY)
    event = sdk.webhooks.unwrap(BODY, headers)
    assert event.type == "realtime.call.incoming" and event.data.call_id == "call_1"
    with pytest.raises(openai.InvalidWebhookSignatureError):
        sdk.webhooks.unwrap(BODY.replace(b"call_1", b"call_2"), headers)


def test_signature_is_standard_webhooks() -> None:
    # the Standard Webhooks spec's own test vector
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    got = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert got == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_accepted_session_overrides_the_profile() -> None:
    base = AgentProfile(instructions="old", voice="alloy", max_duration_s=60)
    p = profile_from_session(
        base,
        {
            "type": "realtime",
            "model": "gpt-realtime-mini",
            "instructions": "new",
            "audio": {"output": {"voice": "marin"}},
            "tools": [{"type": "function", "name": "lookup"}],
        },
    )
    assert (p.instructions, p.voice, p.upstream.model) == ("new", "marin", "gpt-realtime-mini")
    assert p.tools == [{"type": "function", "name": "lookup"}]
    assert p.max_duration_s == 60  # the route's limits stay
    assert profile_from_session(base, {"type": "realtime"}) == base
    # an accept relayed by another worker is not validated again: odd shapes leave the voice
    for audio in ("x", {"output": "alloy"}, {"output": {"voice": 5}}):
        assert profile_from_session(base, {"audio": audio}).voice == base.voice


class _Offered:
    """An inbound SIP call as the event needs one: its id and the offer the core emitted."""

    id = "sip-2"

    def __init__(self, headers: tuple[tuple[str, str], ...]) -> None:
        caller, callee = NameAddr.parse("<sip:a@b>;tag=1"), NameAddr.parse("<sip:bot@c>")
        peer = Peer("udp", "192.0.2.1", 5060)
        self.offer = CallOffered(self.id, caller, callee, "sip:bot@c", b"", peer, None, headers)


def test_the_event_carries_the_invite_headers_in_order_without_credentials() -> None:
    secret = 'Digest username="acme", response="0123456789abcdef"'
    headers = (
        ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport=5060"),
        ("Proxy-Authorization", secret),
        ("From", "<sip:a@b>;tag=1"),
        ("X-Account", "42"),
        ("Authorization", secret),
        ("X-Account", "43"),
    )
    event = IncomingCalls(Settings()).event("call_2", _Offered(headers))  # type: ignore[arg-type]
    assert event["data"]["sip_headers"] == [
        {"name": "Via", "value": headers[0][1]},
        {"name": "From", "value": "<sip:a@b>;tag=1"},
        {"name": "X-Account", "value": "42"},
        {"name": "X-Account", "value": "43"},
    ]
    assert "0123456789abcdef" not in json.dumps(event)


class _Offerless:
    """A SIP call as far as delivery needs one (no offer, no endpoint)."""

    id = "sip-1"
    offer = None


@pytest.mark.parametrize(
    ("statuses", "delivered", "attempts"),
    [([200], True, 1), ([503, 204], True, 2), ([503, 503], False, 2), ([404], False, 1)],
)
async def test_delivery_retries_once_after_a_server_error(
    statuses: list[int], delivered: bool, attempts: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "whsec_" + base64.b64encode(b"s" * 32).decode()
    monkeypatch.setenv("RTB_UNIT_WHSEC", secret)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(statuses[len(seen) - 1])

    settings = Settings(
        webhooks=WebhookSettings(url="http://hooks.invalid/x", secret_env="RTB_UNIT_WHSEC")
    )
    incoming = IncomingCalls(
        settings, client=httpx.AsyncClient(transport=httpx.MockTransport(handler))
    )
    ok = await incoming._deliver("call_1", _Offerless())  # type: ignore[arg-type]
    await incoming.aclose()
    assert (ok, len(seen)) == (delivered, attempts)
    assert len({r.headers["webhook-id"] for r in seen}) == 1  # one event, retried
    sdk = openai.OpenAI(api_key="unused", webhook_secret=secret)
    for r in seen:
        assert sdk.webhooks.unwrap(r.content, dict(r.headers)).data.call_id == "call_1"


def test_the_accept_may_decide_the_recording() -> None:
    from bridge.config import AgentProfile
    from bridge.control.webhooks import profile_from_session
    from media.recording import RecordingMode

    base = AgentProfile(record=RecordingMode.OFF)
    assert profile_from_session(base, {"record": "stereo"}).record is RecordingMode.STEREO
    assert profile_from_session(base, {"instructions": "x"}).record is RecordingMode.OFF


async def test_the_answer_body_is_not_read() -> None:
    """A receiver answering 200 with a huge body (an endless one, in effect: 16 MiB here): the
    delivery counts (only the status is used), at most a first chunk of the body is pulled (was:
    all of it, into memory) and the response is closed."""
    pulled: list[int] = []
    closed: list[bool] = []

    class Endless(httpx.AsyncByteStream):
        async def __aiter__(self):  # type: ignore[no-untyped-def]
            for _ in range(256):
                pulled.append(1)
                yield b"x" * 65536

        async def aclose(self) -> None:
            closed.append(True)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Endless())

    settings = Settings(webhooks=WebhookSettings(url="http://hooks.invalid/x"))
    incoming = IncomingCalls(
        settings, client=httpx.AsyncClient(transport=httpx.MockTransport(handler))
    )
    ok = await incoming._deliver("call_1", _Offerless())  # type: ignore[arg-type]
    await incoming.aclose()
    assert ok
    assert len(pulled) <= 1
    assert closed == [True]
