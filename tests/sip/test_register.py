"""The REGISTER client machine against an in-memory registrar built on sip.auth's verifier."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from sip.auth import DigestAlgorithm, DigestCredentials, DigestVerifier, VerifyOutcome
from sip.driver import register_once, run_registration
from sip.headers import Headers
from sip.message import Request, Response, parse_message, reason_phrase
from sip.registration import (
    TRANSITIONS,
    Ev,
    Registered,
    Registration,
    RegistrationConfig,
    RegistrationError,
    RegistrationFailed,
    State,
    Unregistered,
)
from sip.uri import SipUri

PASSWORD = "correct horse"


def config(password: str = PASSWORD, **kw: object) -> RegistrationConfig:
    return RegistrationConfig(
        registrar=SipUri(host="registrar.example"),
        aor=SipUri(host="registrar.example", user="alice"),
        contact=SipUri(host="127.0.0.1", user="alice", port=5070),
        username="alice",
        password=password,
        via_port=5070,
        **kw,  # type: ignore[arg-type]
    )


def respond(request: Request, status: int, *extra: tuple[str, str]) -> Response:
    h = Headers()
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        for value in request.headers.get_all(name):
            h.add(name, value + (";tag=reg" if name == "To" else ""))
    for name, value in extra:
        h.add(name, value)
    # Round-trip through bytes so the machine sees what a socket would deliver.
    response = parse_message(bytes(Response(h, b"", status, reason_phrase(status))))
    assert isinstance(response, Response)
    return response


class Registrar:
    """A registrar that challenges (401 or 407) and grants what was asked, capped."""

    def __init__(self, *, status: int = 401, max_expires: int = 600, lifetime: float = 300.0):
        self.verifier = DigestVerifier(
            "registrar.example",
            {"alice": PASSWORD}.get,
            secret=b"s" * 32,
            algorithms=(DigestAlgorithm.MD5,),
            nonce_lifetime=lifetime,
        )
        self.status = status
        self.max_expires = max_expires
        self.now = 0.0
        self.seen: list[Request] = []
        self.bindings: dict[str, int] = {}

    def __call__(self, request: Request) -> Response:
        self.seen.append(request)
        header = "Authorization" if self.status == 401 else "Proxy-Authorization"
        value = request.headers.get(header)
        result = self.verifier.verify(value, "REGISTER", self.now) if value else None
        if result is None or not result.ok:
            stale = result is not None and result.outcome is VerifyOutcome.STALE
            (challenge,) = self.verifier.challenges(self.now, stale=stale)
            name = "WWW-Authenticate" if self.status == 401 else "Proxy-Authenticate"
            return respond(request, self.status, (name, str(challenge)))
        expires = min(int(request.headers.get("Expires") or "0"), self.max_expires)
        contact = request.headers.get("Contact") or ""
        if expires:
            self.bindings[contact] = expires
        else:
            self.bindings.pop(contact, None)
        extra = [("Contact", f"{c};expires={e}") for c, e in self.bindings.items()]
        return respond(request, 200, *extra)


def pump(reg: Registration, server: Callable[[Request], Response], now: float) -> list[object]:
    """Deliver every request to ``server`` and its response back, until quiet."""
    events: list[object] = []
    while outputs := reg.drain():
        for out in outputs:
            if isinstance(out, Request):
                reg.receive_response(server(out), now)
            else:
                events.append(out)
    return events


def test_register_answers_the_challenge_then_refreshes_before_expiry() -> None:
    registrar = Registrar(lifetime=1000.0)
    reg = Registration(config())
    reg.start(0.0)
    events = pump(reg, registrar, 0.0)
    assert events == [Registered(600, 600.0)]
    assert reg.state is State.REGISTERED
    first, second = registrar.seen
    assert "Authorization" not in first.headers
    creds = DigestCredentials.parse(second.headers.get("Authorization") or "")
    assert (creds.username, creds.uri, creds.nc) == ("alice", "sip:registrar.example", "00000001")
    assert second.cseq.seq == first.cseq.seq + 1 and second.call_id == first.call_id
    assert second.headers.get("Expires") == "3600"
    assert str(second.uri) == "sip:registrar.example"
    assert second.top_via.branch != first.top_via.branch
    # Refresh at 70% of the granted 600 s, with the cached credentials (nc=2): no new 401.
    assert reg.next_deadline() == pytest.approx(420.0)
    reg.tick(419.0)
    assert reg.drain() == []
    registrar.now = 420.0
    reg.tick(420.0)
    assert pump(reg, registrar, 420.0) == [Registered(600, 1020.0)]
    refresh = registrar.seen[-1]
    assert len(registrar.seen) == 3
    assert DigestCredentials.parse(refresh.headers.get("Authorization") or "").nc == "00000002"
    assert refresh.call_id == first.call_id and refresh.cseq.seq == second.cseq.seq + 1


def test_refresh_with_an_expired_nonce_is_answered_again() -> None:
    registrar = Registrar(lifetime=100.0)
    reg = Registration(config())
    reg.start(0.0)
    pump(reg, registrar, 0.0)
    registrar.now = 420.0
    reg.tick(420.0)
    assert pump(reg, registrar, 420.0) == [Registered(600, 1020.0)]
    stale_challenge = registrar.seen[-2]
    assert stale_challenge.headers.get("Authorization")  # pre-emptive, then stale=TRUE
    assert len(registrar.seen) == 4


def test_wrong_password_fails_clearly_with_the_status() -> None:
    registrar = Registrar()
    reg = Registration(config(password="wrong"))
    reg.start(0.0)
    (event,) = pump(reg, registrar, 0.0)
    assert isinstance(event, RegistrationFailed) and event.retry_at is None
    assert reg.state is State.FAILED and reg.next_deadline() is None
    error = event.error
    assert error.status == 401 and not error.retryable
    assert "wrong credentials" in str(error) and "'alice'" in str(error)
    assert "401 Unauthorized" in str(error)
    assert "wrong" not in repr(reg) and "wrong" not in repr(reg.config)
    assert len(registrar.seen) == 2  # the nonce was answered once, not again


def test_proxy_407_is_answered_with_proxy_authorization() -> None:
    registrar = Registrar(status=407)
    reg = Registration(config())
    reg.start(0.0)
    assert pump(reg, registrar, 0.0) == [Registered(600, 600.0)]
    assert registrar.seen[-1].headers.get("Proxy-Authorization")
    assert "Authorization" not in registrar.seen[-1].headers


def test_407_then_401_answers_both() -> None:
    proxy, registrar = Registrar(status=407), Registrar(status=401)

    def chain(request: Request) -> Response:
        response = proxy(request)
        return response if response.status == 407 else registrar(request)

    reg = Registration(config())
    reg.start(0.0)
    assert pump(reg, chain, 0.0) == [Registered(600, 600.0)]
    last = registrar.seen[-1]
    assert last.headers.get("Proxy-Authorization") and last.headers.get("Authorization")


def test_423_raises_expires_to_min_expires() -> None:
    reg = Registration(config(expires=60))
    reg.start(0.0)
    (request,) = reg.drain()
    assert isinstance(request, Request)
    reg.receive_response(respond(request, 423, ("Min-Expires", "120")), 0.0)
    (retry,) = reg.drain()
    assert isinstance(retry, Request) and retry.headers.get("Expires") == "120"
    reg.receive_response(respond(retry, 200), 0.0)
    assert reg.drain() == [Registered(120, 120.0)]


def test_transient_failures_back_off_and_retry() -> None:
    reg = Registration(config(retry_base=10.0, retry_max=25.0))
    reg.start(0.0)
    (request,) = reg.drain()
    reg.transaction_failed(0.0)
    (event,) = reg.drain()
    assert isinstance(event, RegistrationFailed) and event.retry_at == 10.0
    assert event.error.retryable and event.error.status is None
    assert "no response (timeout)" in str(event.error) or "timeout" in str(event.error)
    assert reg.state is State.RETRY_WAIT
    reg.tick(10.0)
    (request,) = reg.drain()
    assert isinstance(request, Request)
    reg.receive_response(respond(request, 503), 10.0)
    (event,) = reg.drain()
    assert isinstance(event, RegistrationFailed) and event.retry_at == 30.0  # 10 + 20
    reg.tick(30.0)
    (request,) = reg.drain()
    assert isinstance(request, Request)
    reg.receive_response(respond(request, 503, ("Retry-After", "7")), 30.0)
    (event,) = reg.drain()
    assert isinstance(event, RegistrationFailed) and event.retry_at == 37.0
    assert event.error.status == 503


def test_a_failed_refresh_is_retried_before_the_binding_lapses() -> None:
    registrar = Registrar(lifetime=1000.0)
    reg = Registration(config(retry_base=300.0))
    reg.start(0.0)
    pump(reg, registrar, 0.0)  # granted 600 s, refresh at 420
    reg.tick(420.0)
    (refresh,) = reg.drain()
    assert isinstance(refresh, Request)
    reg.transaction_failed(452.0)
    (event,) = reg.drain()
    assert isinstance(event, RegistrationFailed)
    assert event.retry_at == pytest.approx(452.0 + (600.0 - 452.0) / 2)  # not 452 + 300
    assert reg.registered_until == 600.0


def test_a_challenge_we_cannot_answer_is_final_and_says_why() -> None:
    reg = Registration(config())
    reg.start(0.0)
    (request,) = reg.drain()
    assert isinstance(request, Request)
    sha1 = 'Digest realm="r", nonce="n", algorithm=SHA-1, qop="auth"'
    reg.receive_response(respond(request, 401, ("WWW-Authenticate", sha1)), 0.0)
    (event,) = reg.drain()
    assert isinstance(event, RegistrationFailed) and event.retry_at is None
    assert "unsupported digest algorithm 'SHA-1'" in str(event.error)


def test_a_2xx_granting_zero_seconds_is_retried() -> None:
    reg = Registration(config(retry_base=10.0))
    reg.start(0.0)
    (request,) = reg.drain()
    assert isinstance(request, Request)
    ours = "<sip:alice@127.0.0.1:5070>;expires=0"
    reg.receive_response(respond(request, 200, ("Contact", ours)), 0.0)
    (event,) = reg.drain()
    assert isinstance(event, RegistrationFailed) and event.retry_at == 10.0
    assert "200 OK granting our contact 0 seconds" in str(event.error)
    assert reg.state is State.RETRY_WAIT


def test_granted_time_comes_from_our_contact_then_expires_header() -> None:
    reg = Registration(config())
    reg.start(0.0)
    (request,) = reg.drain()
    assert isinstance(request, Request)
    contacts = (
        ("Contact", "<sip:alice@10.0.0.9:5060>;expires=3000"),  # another device's binding
        ("Contact", "<sip:alice@127.0.0.1:5070>;expires=120"),
        ("Expires", "900"),
    )
    reg.receive_response(respond(request, 200, *contacts), 0.0)
    assert reg.drain() == [Registered(120, 120.0)]


def test_403_is_final() -> None:
    reg = Registration(config())
    reg.start(0.0)
    (request,) = reg.drain()
    assert isinstance(request, Request)
    reg.receive_response(respond(request, 403), 0.0)
    (event,) = reg.drain()
    assert isinstance(event, RegistrationFailed) and event.retry_at is None
    assert event.error.status == 403 and "403 Forbidden" in str(event.error)
    reg.start(1.0)  # the owner may try again after fixing things
    assert reg.state is State.REGISTERING


def test_stop_unregisters_with_expires_zero() -> None:
    registrar = Registrar()
    reg = Registration(config())
    reg.start(0.0)
    pump(reg, registrar, 0.0)
    reg.stop(5.0)
    assert pump(reg, registrar, 5.0) == [Unregistered()]
    last = registrar.seen[-1]
    assert last.headers.get("Expires") == "0"
    assert last.headers.get("Contact") == "<sip:alice@127.0.0.1:5070>"
    assert reg.state is State.IDLE and reg.next_deadline() is None
    assert registrar.bindings == {}


def test_stop_while_registering_waits_for_the_final_response() -> None:
    registrar = Registrar()
    reg = Registration(config())
    reg.start(0.0)
    (request,) = reg.drain()
    assert isinstance(request, Request)
    reg.stop(0.1)
    assert reg.state is State.STOP_PENDING and reg.drain() == []
    reg.receive_response(registrar(request), 0.2)  # the 401
    assert pump(reg, registrar, 0.2) == [Unregistered()]
    assert registrar.seen[-1].headers.get("Expires") == "0"
    assert registrar.seen[-1].headers.get("Authorization")


def test_stray_provisional_and_foreign_responses_are_ignored() -> None:
    reg = Registration(config())
    reg.receive_response(Response(status=200), 0.0)  # nothing pending
    reg.start(0.0)
    (request,) = reg.drain()
    assert isinstance(request, Request)
    reg.receive_response(respond(request, 100), 0.0)
    other = respond(request, 200)
    other.headers.set("CSeq", "1 REGISTER")
    reg.receive_response(other, 0.0)
    assert reg.state is State.REGISTERING and reg.drain() == []
    reg.transaction_failed(0.0)
    reg.transaction_failed(0.0)  # a second report is ignored
    assert len(reg.drain()) == 1


def test_every_owner_event_is_in_the_table_for_every_state() -> None:
    for state in State:
        for event in (Ev.START, Ev.STOP, Ev.DEADLINE):
            assert (state, event) in TRANSITIONS, (state, event)


def test_every_action_in_the_table_exists() -> None:
    for action, _ in TRANSITIONS.values():
        assert callable(getattr(Registration, f"_do_{action}")), action


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="refresh_fraction"):
        config(refresh_fraction=0.95)


async def test_asyncio_glue_register_once_and_run_registration() -> None:
    registrar = Registrar()
    clock = [0.0]

    async def send(request: Request) -> Response | None:
        await asyncio.sleep(0)
        return registrar(request)

    reg = Registration(config())
    registered = await register_once(reg, send, clock=lambda: clock[0])
    assert registered.expires == 600

    bad = Registration(config(password="nope"))
    with pytest.raises(RegistrationError, match="wrong credentials"):
        await register_once(bad, send, clock=lambda: clock[0])

    stop = asyncio.Event()
    events: list[object] = []
    fresh = Registration(config())
    task = asyncio.create_task(run_registration(fresh, send, stop, on_event=events.append))
    for _ in range(50):
        await asyncio.sleep(0)
        if events:
            break
    stop.set()
    await asyncio.wait_for(task, 5)
    assert isinstance(events[0], Registered) and events[-1] == Unregistered()
