"""``realtime.call.incoming`` webhooks: OpenAI's call API for inbound SIP calls.

When ``[webhooks] url`` is set, each inbound SIP call is offered to the application: after 180
Ringing (the caller hears ringing from then on) the bridge POSTs

    {"id": "evt_...", "object": "event", "type": "realtime.call.incoming", "created_at": ...,
     "data": {"call_id": "call_...", "sip_headers": [{"name": "From", "value": ...}, ...]}}

signed as Standard Webhooks specify (and the openai SDK's ``client.webhooks.unwrap`` checks):
``webhook-signature: v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">``, the
secret being base64-decoded first when it has the ``whsec_`` prefix. The application decides with
``POST /v1/realtime/calls/{call_id}/accept`` (a GA session object), ``/reject`` or ``/hangup``.
A delivery that fails (no 2xx, an error, a timeout) or no decision in time applies the call's
route ``fallback``: a profile, or ``reject[:status]``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from bridge.config import AgentProfile, Settings, UpstreamSettings
from media.clock import Clock, SystemClock
from media.recording import RecordingMode
from sip.driver import Reject, SipCall

__all__ = [
    "Decision",
    "IncomingCalls",
    "PendingCall",
    "profile_from_session",
    "sign",
    "webhook_headers",
]

log = logging.getLogger(__name__)

Decision = tuple[str, AgentProfile] | Reject
RETRIES = 1  # after a connection failure or a 5xx
RETRY_DELAY_S = 0.25
#: never forwarded to the application
_PRIVATE_HEADERS = frozenset({"authorization", "proxy-authorization"})


def _secret_bytes(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_") :])
    return secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value (``v1,<base64>``) for one delivery."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def webhook_headers(secret: str | None, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "user-agent": "rtbridge-webhooks",
    }
    if secret:
        headers["webhook-signature"] = sign(secret, msg_id, timestamp, body)
    return headers


def profile_from_session(base: AgentProfile, session: Mapping[str, Any]) -> AgentProfile:
    """The profile a call answers with after ``accept``: the route's profile (upstream, DTMF,
    limits) with the GA session's model, instructions, voice and tools laid over it, and
    rtbridge's ``record`` (off, stereo, mixed) when the accept names it."""
    update: dict[str, Any] = {}
    if isinstance(session.get("instructions"), str):
        update["instructions"] = session["instructions"]
    audio = session.get("audio")
    output = audio.get("output") if isinstance(audio, Mapping) else None
    voice = output.get("voice") if isinstance(output, Mapping) else None
    if isinstance(voice, str):
        update["voice"] = voice
    if isinstance(session.get("tools"), list):
        update["tools"] = [t for t in session["tools"] if isinstance(t, dict)]
    if session.get("record") is not None:  # rtbridge's own: the accept decides the recording
        update["record"] = RecordingMode(session["record"])
    if isinstance(session.get("model"), str) and session["model"]:
        upstream: UpstreamSettings = base.upstream.model_copy(update={"model": session["model"]})
        update["upstream"] = upstream
    return base.model_copy(update=update)


@dataclass
class PendingCall:
    """An inbound call waiting for the application's decision."""

    call_id: str
    sip_call: SipCall
    profile_name: str
    profile: AgentProfile
    offered_at: float = field(default_factory=time.time)
    decision: asyncio.Future[Decision] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def decide(self, decision: Decision) -> bool:
        if self.decision.done():
            return False
        self.decision.set_result(decision)
        return True


@dataclass
class WebhookStats:
    delivered: int = 0
    failed: int = 0
    fallbacks: int = 0


class IncomingCalls:
    """The :attr:`CallManager.incoming` hook: offer, wait for the decision, else fall back."""

    def __init__(
        self,
        settings: Settings,
        *,
        environ: Mapping[str, str] | None = None,
        client: httpx.AsyncClient | None = None,
        log_event: Callable[[str, str, dict[str, Any]], None] = lambda _id, _kind, _data: None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock or SystemClock()
        self.log_event = log_event  # into the call's event log
        self.environ = environ
        self.pending: dict[str, PendingCall] = {}
        #: awaited once a call is pending, before its webhook goes out (a cluster publishes
        #: it, so the application's accept or reject may reach any node)
        self.on_pending: Callable[[], Awaitable[None]] | None = None
        self.stats = WebhookStats()
        self._client = client

    @property
    def enabled(self) -> bool:
        return bool(self.settings.webhooks.url)

    async def aclose(self) -> None:
        for p in list(self.pending.values()):
            p.decide(Reject(503, "Service Unavailable"))
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _fallback(self, sip_call: SipCall, profile_name: str, profile: AgentProfile) -> Decision:
        self.stats.fallbacks += 1
        offer = sip_call.offer
        route = (
            self.settings.matching_route(
                trunk=offer.trunk, to_uri=offer.request_uri, from_uri=str(offer.caller.uri)
            )
            if offer is not None
            else None
        )
        fb = route.fallback if route is not None else None
        if fb is None:
            return profile_name, profile
        if fb.startswith("reject"):
            _, _, status = fb.partition(":")
            return Reject(int(status) if status.isdigit() else 603, "Declined")
        return fb, self.settings.profiles[fb]

    async def __call__(
        self, call_id: str, sip_call: SipCall, profile_name: str, profile: AgentProfile
    ) -> Decision:
        if not self.enabled:
            return profile_name, profile
        pending = PendingCall(call_id, sip_call, profile_name, profile)
        self.pending[call_id] = pending
        try:
            if self.on_pending is not None:
                await self.on_pending()
            decision, how = await self._decide(pending)
        finally:
            self.pending.pop(call_id, None)
        if isinstance(decision, Reject):
            outcome: dict[str, Any] = {"decision": how, "status": decision.status}
        else:
            outcome = {"decision": how, "profile": decision[0]}
        self.log_event(call_id, "webhook", outcome)
        return decision

    async def _decide(self, pending: PendingCall) -> tuple[Decision, str]:
        """The decision and how it came: ``application``, ``fallback`` or ``caller-gone``."""
        call_id, sip_call = pending.call_id, pending.sip_call
        wh = self.settings.webhooks
        delivered = await self._deliver(call_id, sip_call)
        if pending.decision.done():  # decided while the webhook was being answered
            return pending.decision.result(), "application"
        if not delivered:
            self.stats.failed += 1
            return self._fallback(sip_call, pending.profile_name, pending.profile), "fallback"
        self.stats.delivered += 1
        ended: asyncio.Future[Any] = asyncio.ensure_future(sip_call.wait_ended())
        waiters: set[asyncio.Future[Any]] = {pending.decision, ended}
        try:
            done, _ = await asyncio.wait(
                waiters, timeout=wh.decision_timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            ended.cancel()
        if pending.decision in done:
            return pending.decision.result(), "application"
        if ended in done:
            return Reject(487, "Request Terminated"), "caller-gone"
        log.warning("call %s: no decision in %.1f s: fallback", call_id, wh.decision_timeout_s)
        return self._fallback(sip_call, pending.profile_name, pending.profile), "fallback"

    @staticmethod
    def sip_headers(sip_call: SipCall) -> list[dict[str, str]]:
        """The INVITE's headers as received, in order (credentials left out)."""
        if sip_call.offer is None:
            return []
        return [
            {"name": name, "value": value}
            for name, value in sip_call.offer.headers
            if name.lower() not in _PRIVATE_HEADERS
        ]

    def event(self, call_id: str, sip_call: SipCall) -> dict[str, Any]:
        headers = self.sip_headers(sip_call)
        return {
            "id": "evt_" + secrets.token_hex(12),
            "object": "event",
            "type": "realtime.call.incoming",
            "created_at": int(self._clock.wall()),
            "data": {"call_id": call_id, "sip_headers": headers},
        }

    async def _deliver(self, call_id: str, sip_call: SipCall) -> bool:
        """POST the event; one quick retry (same ``webhook-id``, so receivers can de-duplicate)
        after a connection failure or a 5xx, within ``timeout_s`` overall."""
        wh = self.settings.webhooks
        event = self.event(call_id, sip_call)
        body = json.dumps(event, separators=(",", ":")).encode()
        secret = wh.secret(self.environ)
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=wh.timeout_s, follow_redirects=False)
        try:
            async with asyncio.timeout(wh.timeout_s):
                for attempt in range(RETRIES + 1):
                    if attempt:
                        await asyncio.sleep(RETRY_DELAY_S)
                    headers = webhook_headers(secret, event["id"], int(self._clock.wall()), body)
                    try:
                        # only the status is used: the answer's body is never read (a huge or
                        # endless one would otherwise be buffered whole), the response closed
                        async with self._client.stream(
                            "POST", wh.url, content=body, headers=headers
                        ) as resp:
                            status = resp.status_code
                    except (httpx.TransportError, OSError) as exc:
                        log.warning("call %s: webhook failed: %s", call_id, type(exc).__name__)
                        continue
                    if 200 <= status < 300:
                        return True
                    log.warning("call %s: webhook answered %d", call_id, status)
                    if status < 500:
                        return False
        except TimeoutError:
            log.warning("call %s: webhook timed out after %.1f s", call_id, wh.timeout_s)
        return False
