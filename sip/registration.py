"""Registering rtbridge with a SIP provider: a sans-IO REGISTER client (RFC 3261 section 10.2).

Why this module exists: a provider routes calls for a number to us only while we hold a
registration, so rtbridge must REGISTER, answer the digest challenge (section 22 with
:mod:`sip.auth`), refresh the binding before it expires (section 10.2.4), back off after
failures and remove the binding on shutdown (section 10.2.2, ``Expires: 0``).

:class:`Registration` is a state machine in the manner of h11: an Enum of states and ONE
transition table :data:`TRANSITIONS`, from ``(state, event)`` to ``(action, next state)``.
Events come from the owner (``start``, ``stop``, the deadline passing) and from the network
(a final response, a transaction timeout); responses are first classified into events
(:class:`Ev`). Rules of the table:

* A network event the table lacks for a state is ignored (a stray or late response never
  raises); an owner event the table lacks raises :class:`~sip.errors.SipStateError`.
* At most one REGISTER is in flight (section 10.2: a new one waits for the final response).
* Each nonce is answered once. A challenge in response to the answer we computed for the
  previous challenge, without ``stale=true``, means the credentials are wrong: the machine
  stops in ``FAILED`` with a :class:`RegistrationError` naming the status. Credentials for
  the last nonce are sent pre-emptively with refreshes (section 22.3); a challenge to those is
  answered again.

Nothing here touches a socket or a clock. Outputs (:class:`~sip.message.Request` values to send
in a non-INVITE client transaction, and :class:`RegistrationEvent` values) accumulate until
:meth:`Registration.drain`; :meth:`Registration.next_deadline` says when to call
:meth:`Registration.tick`. The asyncio glue that runs it over a transport
(:func:`sip.driver.run_registration`) lives in the driver.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass, field

from sip.auth import AuthError, DigestChallenge, DigestClient, choose_challenge
from sip.errors import SipError, SipParseError, SipStateError
from sip.headers import Headers, NameAddr, Via
from sip.message import Request, Response
from sip.uri import SipUri

__all__ = [
    "TRANSITIONS",
    "Ev",
    "Registered",
    "Registration",
    "RegistrationConfig",
    "RegistrationError",
    "RegistrationEvent",
    "RegistrationFailed",
    "State",
    "Unregistered",
]

MAGIC_COOKIE = "z9hG4bK"
MAX_STALE_ROUNDS = 3
MIN_REFRESH_MARGIN = 5.0  # seconds before expiry, at the least


class RegistrationError(SipError):
    """The registrar refused us. ``status`` is the SIP status (``None`` for a timeout) and
    ``retryable`` whether the machine will try again by itself."""

    def __init__(self, message: str, *, status: int | None, retryable: bool) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class RegistrationConfig:
    """One account at one registrar.

    ``registrar`` is the Request-URI (``sip:provider.example``), ``aor`` the address of record
    (To/From), ``contact`` the URI calls should reach us at (our advertised address, section
    10.2.1). ``via_host``/``via_port``/``transport`` fill the Via sent-by. ``expires`` is what
    we ask for; a refresh goes out after ``refresh_fraction`` of the granted time. Failed
    attempts are retried after ``retry_base`` seconds, doubling up to ``retry_max`` (RFC 5626
    section 4.5). The password never appears in ``repr``.
    """

    registrar: SipUri
    aor: SipUri
    contact: SipUri
    username: str
    password: str = field(repr=False)
    via_host: str = "127.0.0.1"
    via_port: int = 5060
    transport: str = "UDP"
    expires: int = 3600
    refresh_fraction: float = 0.7
    retry_base: float = 30.0
    retry_max: float = 1800.0
    user_agent: str = "rtbridge"
    call_id: str | None = None

    def __post_init__(self) -> None:
        if not 0.5 <= self.refresh_fraction <= 0.8:
            raise ValueError("refresh_fraction must be within 0.5..0.8 of the granted expiry")
        if self.expires < 1:
            raise ValueError("expires must be at least 1 second (use stop() to unregister)")


# --- outputs --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Registered:
    """The registrar accepted the binding for ``expires`` seconds, until ``until``."""

    expires: int
    until: float


@dataclass(frozen=True, slots=True)
class RegistrationFailed:
    """An attempt failed. ``retry_at`` is when the machine tries again, ``None`` if it won't."""

    error: RegistrationError
    retry_at: float | None


@dataclass(frozen=True, slots=True)
class Unregistered:
    """The binding is gone (``Expires: 0`` answered, or given up while unregistering)."""

    reason: str = "unregistered"


RegistrationEvent = Registered | RegistrationFailed | Unregistered
Output = Request | RegistrationEvent


# --- the machine ----------------------------------------------------------------------------


class State(enum.Enum):
    IDLE = "idle"  # no binding and nothing in flight
    REGISTERING = "registering"  # a REGISTER (first or refresh) is in flight
    REGISTERED = "registered"  # bound; the deadline is the refresh time
    RETRY_WAIT = "retry_wait"  # an attempt failed; the deadline is the retry time
    STOP_PENDING = "stop_pending"  # stop() came while a REGISTER was in flight
    UNREGISTERING = "unregistering"  # a REGISTER with Expires: 0 is in flight
    FAILED = "failed"  # refused for good (wrong credentials, 403, 404, ...)


class Ev(enum.Enum):
    START = "start"  # owner
    STOP = "stop"  # owner
    DEADLINE = "deadline"  # owner, through tick()
    OK = "2xx"  # network from here on
    CHALLENGE = "401/407 to answer"
    AUTH_FAILED = "401/407 again: wrong credentials"
    TOO_BRIEF = "423 Interval Too Brief"
    TRANSIENT = "408/480/5xx/timeout"
    REJECTED = "other final response"


_OWNER_EVENTS = frozenset({Ev.START, Ev.STOP, Ev.DEADLINE})
_ANY_FINAL = (Ev.OK, Ev.CHALLENGE, Ev.AUTH_FAILED, Ev.TOO_BRIEF, Ev.TRANSIENT, Ev.REJECTED)

TRANSITIONS: dict[tuple[State, Ev], tuple[str, State]] = {
    (State.IDLE, Ev.START): ("send_register", State.REGISTERING),
    (State.IDLE, Ev.STOP): ("nothing", State.IDLE),
    (State.REGISTERING, Ev.START): ("nothing", State.REGISTERING),
    (State.REGISTERING, Ev.OK): ("registered", State.REGISTERED),
    (State.REGISTERING, Ev.CHALLENGE): ("send_register", State.REGISTERING),
    (State.REGISTERING, Ev.TOO_BRIEF): ("send_register", State.REGISTERING),
    (State.REGISTERING, Ev.AUTH_FAILED): ("fail", State.FAILED),
    (State.REGISTERING, Ev.REJECTED): ("fail", State.FAILED),
    (State.REGISTERING, Ev.TRANSIENT): ("schedule_retry", State.RETRY_WAIT),
    (State.REGISTERING, Ev.STOP): ("nothing", State.STOP_PENDING),
    (State.REGISTERING, Ev.DEADLINE): ("nothing", State.REGISTERING),
    (State.REGISTERED, Ev.START): ("nothing", State.REGISTERED),
    (State.REGISTERED, Ev.DEADLINE): ("send_register", State.REGISTERING),
    (State.REGISTERED, Ev.STOP): ("send_unregister", State.UNREGISTERING),
    (State.RETRY_WAIT, Ev.START): ("nothing", State.RETRY_WAIT),
    (State.RETRY_WAIT, Ev.DEADLINE): ("send_register", State.REGISTERING),
    (State.RETRY_WAIT, Ev.STOP): ("send_unregister", State.UNREGISTERING),
    **{(State.STOP_PENDING, ev): ("send_unregister", State.UNREGISTERING) for ev in _ANY_FINAL},
    (State.STOP_PENDING, Ev.START): ("nothing", State.REGISTERING),
    (State.STOP_PENDING, Ev.STOP): ("nothing", State.STOP_PENDING),
    (State.STOP_PENDING, Ev.DEADLINE): ("nothing", State.STOP_PENDING),
    (State.UNREGISTERING, Ev.OK): ("unregistered", State.IDLE),
    (State.UNREGISTERING, Ev.CHALLENGE): ("send_unregister", State.UNREGISTERING),
    (State.UNREGISTERING, Ev.TOO_BRIEF): ("unregistered", State.IDLE),
    (State.UNREGISTERING, Ev.AUTH_FAILED): ("unregistered", State.IDLE),
    (State.UNREGISTERING, Ev.REJECTED): ("unregistered", State.IDLE),
    (State.UNREGISTERING, Ev.TRANSIENT): ("unregistered", State.IDLE),
    (State.UNREGISTERING, Ev.STOP): ("nothing", State.UNREGISTERING),
    (State.UNREGISTERING, Ev.DEADLINE): ("nothing", State.UNREGISTERING),
    (State.UNREGISTERING, Ev.START): ("nothing", State.UNREGISTERING),
    (State.FAILED, Ev.START): ("send_register", State.REGISTERING),
    (State.FAILED, Ev.STOP): ("nothing", State.IDLE),
    (State.FAILED, Ev.DEADLINE): ("nothing", State.FAILED),
    (State.IDLE, Ev.DEADLINE): ("nothing", State.IDLE),
}

_TRANSIENT_STATUSES = frozenset({408, 480, 500, 502, 503, 504})
_AUTH_HEADERS = {
    401: ("WWW-Authenticate", "Authorization"),
    407: ("Proxy-Authenticate", "Proxy-Authorization"),
}


class Registration:
    """The REGISTER client for one :class:`RegistrationConfig`; see the module docstring."""

    def __init__(self, config: RegistrationConfig) -> None:
        self.config = config
        self.state = State.IDLE
        self.call_id = config.call_id or f"{secrets.token_hex(10)}@{config.via_host}"
        self.error: RegistrationError | None = None
        self.registered_until: float | None = None
        self._client = DigestClient(config.username, config.password)
        self._cseq = secrets.randbelow(2**15) + 1
        self._tag = secrets.token_hex(6)
        self._expires = config.expires
        self._deadline: float | None = None
        self._failures = 0
        self._stale_rounds = 0
        self._pending: Request | None = None
        self._challenges: dict[int, DigestChallenge] = {}  # the last challenge per 401/407
        self._unanswered: set[int] = set()  # statuses whose challenge is not yet answered
        self._sent_fresh: set[int] = set()  # statuses the pending request answers afresh
        self._last_response: Response | None = None
        self._auth_problem: str | None = None
        self._granted = 0
        self._timeout_reason = "timeout"
        self._out: list[Output] = []

    def __repr__(self) -> str:
        return f"<Registration {self.config.aor} {self.state.value}>"

    # --- the owner's API ---------------------------------------------------------------
    def start(self, now: float) -> None:
        """Register (again, after ``FAILED``); a no-op while registering or registered."""
        self._handle(Ev.START, now)

    def stop(self, now: float) -> None:
        """Remove our binding (``Expires: 0``), after any REGISTER in flight completes."""
        self._handle(Ev.STOP, now)

    def tick(self, now: float) -> None:
        """Fire the refresh or retry timer if it is due."""
        if self._deadline is not None and now >= self._deadline:
            self._deadline = None
            self._handle(Ev.DEADLINE, now)

    def next_deadline(self) -> float | None:
        return self._deadline

    def retry_now(self, now: float) -> None:
        """Another server can take the REGISTER that just failed (a trunk with several targets,
        RFC 3263 §4.3): the retry, a new REGISTER, is due now rather than after the back-off,
        which this failure does not lengthen. A no-op unless a retry is waiting."""
        if self.state is State.RETRY_WAIT and self._deadline is not None:
            self._failures = max(0, self._failures - 1)
            self._deadline = now

    def drain(self) -> list[Output]:
        out, self._out = self._out, []
        return out

    # --- from the transaction layer ----------------------------------------------------
    def receive_response(self, response: Response, now: float) -> None:
        """Feed a response of the pending REGISTER's transaction; provisional ones and
        responses to other requests are ignored."""
        pending = self._pending
        if pending is None or response.status < 200:
            return
        try:
            if response.call_id != self.call_id or response.cseq.seq != pending.cseq.seq:
                return
        except SipParseError:
            return
        self._pending = None
        self._last_response = response
        self._handle(
            self._classify(response, unregister=pending.headers.get("Expires") == "0"), now
        )

    def transaction_failed(self, now: float, reason: str = "timeout") -> None:
        """The REGISTER's transaction timed out (timer F) or the transport failed."""
        if self._pending is None:
            return
        self._pending = None
        self._last_response = None
        self._timeout_reason = reason
        self._handle(Ev.TRANSIENT, now)

    # --- the table ----------------------------------------------------------------------
    def _handle(self, event: Ev, now: float) -> None:
        entry = TRANSITIONS.get((self.state, event))
        if entry is None:
            if event in _OWNER_EVENTS:
                raise SipStateError("Registration", self.state.name, event.name)
            return
        action, next_state = entry
        self.state = next_state
        getattr(self, f"_do_{action}")(event, now)

    def _classify(self, response: Response, *, unregister: bool) -> Ev:
        self._auth_problem = None
        self._granted = 0
        status = response.status
        if 200 <= status < 300:
            if unregister:
                return Ev.OK
            self._granted = self._granted_expires(response)
            # A 2xx that grants our contact no time is a failure worth retrying.
            return Ev.OK if self._granted > 0 else Ev.TRANSIENT
        if status in _AUTH_HEADERS:
            return self._classify_challenge(response)
        if status == 423:
            minimum = _int_header(response, "Min-Expires")
            if minimum is None or minimum <= self._expires:
                return Ev.REJECTED
            self._expires = minimum
            return Ev.TOO_BRIEF
        if status in _TRANSIENT_STATUSES:
            return Ev.TRANSIENT
        return Ev.REJECTED

    def _classify_challenge(self, response: Response) -> Ev:
        header, _ = _AUTH_HEADERS[response.status]
        try:
            challenge = choose_challenge(response.headers.get_all(header))
        except AuthError as exc:
            self._auth_problem = str(exc)
            return Ev.REJECTED
        if challenge.stale:
            self._stale_rounds += 1
            if self._stale_rounds > MAX_STALE_ROUNDS:
                self._auth_problem = "the registrar keeps answering stale=true"
                return Ev.REJECTED
        elif response.status in self._sent_fresh:
            # We answered this kind of challenge just now and got challenged again.
            return Ev.AUTH_FAILED
        self._challenges[response.status] = challenge
        self._unanswered.add(response.status)
        return Ev.CHALLENGE

    # --- actions ------------------------------------------------------------------------
    def _do_nothing(self, event: Ev, now: float) -> None:
        pass

    def _do_send_register(self, event: Ev, now: float) -> None:
        if event in (Ev.START, Ev.DEADLINE):
            self._stale_rounds = 0
        self._send(self._expires)

    def _do_send_unregister(self, event: Ev, now: float) -> None:
        self._deadline = None
        self._send(0)

    def _do_registered(self, event: Ev, now: float) -> None:
        granted = self._granted
        self._failures = 0
        self._stale_rounds = 0
        self.registered_until = now + granted
        fraction = self.config.refresh_fraction
        refresh_in = min(granted * fraction, max(granted - MIN_REFRESH_MARGIN, granted / 2))
        self._deadline = now + refresh_in
        self.error = None
        self._out.append(Registered(granted, now + granted))

    def _do_unregistered(self, event: Ev, now: float) -> None:
        self.registered_until = None
        self._deadline = None
        response = self._last_response
        reason = (
            "unregistered"
            if event is Ev.OK
            else f"gave up unregistering ({self._describe(response)})"
        )
        self._out.append(Unregistered(reason))

    def _do_fail(self, event: Ev, now: float) -> None:
        response = self._last_response
        status = response.status if response is not None else None
        if event is Ev.AUTH_FAILED:
            message = (
                f"REGISTER for {self.config.aor} rejected: wrong credentials for user "
                f"{self.config.username!r} ({self._describe(response)} after a digest answer)"
            )
        else:
            problem = self._auth_problem
            detail = f": {problem}" if problem and status in _AUTH_HEADERS else ""
            message = f"REGISTER for {self.config.aor} refused: {self._describe(response)}{detail}"
        self.error = RegistrationError(message, status=status, retryable=False)
        self._deadline = None
        self.registered_until = None
        self._out.append(RegistrationFailed(self.error, None))

    def _do_schedule_retry(self, event: Ev, now: float) -> None:
        response = self._last_response
        what = self._describe(response) if response is not None else self._timeout_reason
        if response is not None and 200 <= response.status < 300:
            what += " granting our contact 0 seconds"
        status = response.status if response is not None else None
        error = RegistrationError(
            f"REGISTER for {self.config.aor} failed: {what}", status=status, retryable=True
        )
        self._retry(error, now)

    # --- helpers ------------------------------------------------------------------------
    def _retry(self, error: RegistrationError, now: float) -> None:
        self._failures += 1
        backoff = self.config.retry_base * 2 ** min(self._failures - 1, 20)
        delay = min(self.config.retry_max, backoff)
        if self.registered_until is not None and now < self.registered_until:
            # A refresh failed but the binding still holds: retry well before it lapses.
            delay = min(delay, max(1.0, (self.registered_until - now) / 2))
        response = self._last_response
        retry_after = _int_header(response, "Retry-After") if response is not None else None
        if retry_after is not None:
            delay = min(self.config.retry_max, max(float(retry_after), 1.0))
        self.error = error
        self._deadline = now + delay
        self._out.append(RegistrationFailed(error, self._deadline))

    @staticmethod
    def _describe(response: Response | None) -> str:
        if response is None:
            return "no response (timeout)"
        return f"{response.status} {response.reason}"

    def _granted_expires(self, response: Response) -> int:
        """The binding time the registrar granted us (RFC 3261 section 10.2.4)."""
        ours = self.config.contact
        contacts: list[NameAddr] = []
        for value in response.headers.get_all("Contact"):
            try:
                contacts.append(NameAddr.parse(value))
            except SipError:
                continue
        key = (ours.user, ours.host.lower(), ours.port or 5060)
        mine = [
            c
            for c in contacts
            if isinstance(u := c.uri, SipUri) and (u.user, u.host.lower(), u.port or 5060) == key
        ]
        # A registrar behind NAT fixing may rewrite our contact: then a lone contact is ours.
        for contact in mine or (contacts if len(contacts) == 1 else []):
            param = contact.param("expires")
            if param is not None and param.isdigit() and len(param) < 10:
                return int(param)
        header = _int_header(response, "Expires")
        return header if header is not None else self._expires

    def _send(self, expires: int) -> None:
        cfg = self.config
        self._cseq += 1
        branch = MAGIC_COOKIE + secrets.token_hex(8)
        via = Via(
            cfg.transport.upper(), cfg.via_host, cfg.via_port, (("branch", branch), ("rport", None))
        )
        h = Headers()
        h.add("Via", str(via))
        h.add("Max-Forwards", "70")
        h.add("From", str(NameAddr(cfg.aor).with_tag(self._tag)))
        h.add("To", str(NameAddr(cfg.aor)))
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{self._cseq} REGISTER")
        h.add("Contact", str(NameAddr(cfg.contact)))
        h.add("Expires", str(expires))
        h.add("User-Agent", cfg.user_agent)
        uri = str(cfg.registrar)
        for status in sorted(self._challenges):
            _, credentials_header = _AUTH_HEADERS[status]
            h.add(
                credentials_header,
                self._client.authorize(self._challenges[status], "REGISTER", uri),
            )
        # Answers to challenges received just now are "fresh"; re-used ones are pre-emptive.
        self._sent_fresh, self._unanswered = self._unanswered, set()
        request = Request(method="REGISTER", uri=cfg.registrar, headers=h)
        self._pending = request
        self._out.append(request)


def _int_header(response: Response | None, name: str) -> int | None:
    if response is None:
        return None
    value = response.headers.get(name)
    if value is None:
        return None
    text = value.split(";", 1)[0].split("(", 1)[0].strip()
    return int(text) if text.isdigit() and len(text) < 10 else None
