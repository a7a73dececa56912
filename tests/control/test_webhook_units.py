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
