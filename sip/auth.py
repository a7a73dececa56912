"""HTTP digest authentication as SIP uses it (RFC 3261 section 22, RFC 7616, RFC 2617, RFC 8760).

Why this module exists: providers challenge our REGISTER and outbound INVITE with 401/407, and
trunks that point at us may have to be challenged before a call is accepted. Both sides live
here, with no I/O:

- :class:`DigestChallenge`: a ``WWW-Authenticate``/``Proxy-Authenticate`` value (RFC 7616
  section 3.3, RFC 3261 section 25.1 ``challenge``), parsed and serialised.
- :func:`build_authorization` and :class:`DigestClient`: the ``Authorization``/
  ``Proxy-Authorization`` value (RFC 7616 section 3.4) for MD5, MD5-sess, SHA-256, SHA-256-sess
  and SHA-512-256(-sess) (RFC 8760 section 2), qop ``auth`` and ``auth-int``, and the legacy
  no-qop form of RFC 2069. :class:`DigestClient` counts ``nc`` per nonce (RFC 7616 section 3.4)
  and picks the strongest of several challenges (RFC 8760 section 2.4).
- :class:`DigestVerifier`: the server side. Nonces carry a timestamp and an HMAC over it, so a
  restart or an expired nonce is recognised without server state and answered with
  ``stale=true`` (RFC 7616 section 3.3) when the digest itself was right; a replayed
  ``nc`` is stale too (section 5.12), for as long as the nonce lives: its last count is kept
  until the nonce expires, never forgotten earlier to make room. Responses are compared in
  constant time.

Passwords appear in no repr, log line or exception message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum

from sip.errors import SipError, SipParseError

__all__ = [
    "MAX_VERIFIED_NONCES",
    "AuthError",
    "DigestAlgorithm",
    "DigestChallenge",
    "DigestClient",
    "DigestCredentials",
    "DigestParseError",
    "DigestVerifier",
    "Verification",
    "VerifyOutcome",
    "build_authorization",
    "choose_challenge",
    "compute_response",
]

MAX_HEADER_CHARS = 8192
_NONCE_MAC_BYTES = 16
_MAX_TRACKED_NONCES = 64
#: Nonces whose last ``nc`` the verifier keeps until they expire. Past this many live ones (a
#: successful login each within one nonce lifetime) new logins are answered stale until some
#: expire: forgetting a live nonce's count would let its digests be replayed.
MAX_VERIFIED_NONCES = 65_536


class AuthError(SipError):
    """Digest authentication cannot proceed (no usable challenge, unsupported algorithm)."""


class DigestParseError(SipParseError, AuthError):
    """A challenge or credentials header value is malformed (RFC 7616 section 3.3 / 3.4)."""


class DigestAlgorithm(Enum):
    """The ``algorithm`` parameter (RFC 7616 section 3.3, RFC 8760 section 2.1)."""

    MD5 = "MD5"
    MD5_SESS = "MD5-sess"
    SHA256 = "SHA-256"
    SHA256_SESS = "SHA-256-sess"
    SHA512_256 = "SHA-512-256"
    SHA512_256_SESS = "SHA-512-256-sess"

    @classmethod
    def parse(cls, text: str) -> DigestAlgorithm:
        for algorithm in cls:
            if algorithm.value.lower() == text.lower():
                return algorithm
        raise AuthError(f"unsupported digest algorithm {text[:40]!r}")

    @property
    def is_session(self) -> bool:
        return self.value.endswith("-sess")

    @property
    def strength(self) -> int:
        """Preference when several challenges are offered (RFC 8760 section 2.4)."""
        return {"MD5": 0, "SHA-256": 1, "SHA-512-256": 2}[self.value.removesuffix("-sess")]

    def hash(self, data: str | bytes) -> str:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        base = self.value.removesuffix("-sess")
        name = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}[base]
        return hashlib.new(name, raw).hexdigest()


# --- the auth-param grammar (RFC 7616 section 3.3, RFC 7235 section 2.1) -------------------


def _parse_params(value: str, what: str) -> tuple[str, dict[str, str]]:
    """Split ``Digest a=b, c="d"`` into the scheme and lower-cased parameter names."""
    if len(value) > MAX_HEADER_CHARS:
        raise DigestParseError(f"{what} is longer than {MAX_HEADER_CHARS} characters")
    parts = value.split(None, 1)
    scheme, rest = (parts[0], parts[1] if len(parts) > 1 else "") if parts else ("", "")
    if not scheme or not _is_token(scheme):
        raise DigestParseError(f"{what} has no authentication scheme")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while True:
        while i < n and rest[i] in " \t\r\n,":
            i += 1
        if i >= n:
            break
        start = i
        while i < n and rest[i] not in "= \t,":
            i += 1
        name = rest[start:i].lower()
        while i < n and rest[i] in " \t":
            i += 1
        if not name or not _is_token(name) or i >= n or rest[i] != "=":
            raise DigestParseError(f"{what}: expected name=value at offset {start}")
        i += 1
        while i < n and rest[i] in " \t":
            i += 1
        if i < n and rest[i] == '"':
            i += 1
            chars: list[str] = []
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(rest[i])
                i += 1
            if i >= n:
                raise DigestParseError(f"{what}: unterminated quoted string for {name[:40]!r}")
            i += 1
            param = "".join(chars)
        else:
            start = i
            while i < n and rest[i] not in " \t,":
                i += 1
            param = rest[start:i]
            if not param:
                raise DigestParseError(f"{what}: empty value for {name[:40]!r}")
        if name in params:
            raise DigestParseError(f"{what}: parameter {name[:40]!r} appears twice")
        params[name] = param
        while i < n and rest[i] in " \t":
            i += 1
        if i < n and rest[i] != ",":
            raise DigestParseError(f"{what}: expected ',' after {name[:40]!r}")
    return scheme, params


_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")


def _is_token(text: str) -> bool:
    return all(c in _TOKEN_CHARS for c in text)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _require(params: dict[str, str], name: str, what: str) -> str:
    value = params.get(name)
    if value is None:
        raise DigestParseError(f"{what} lacks the {name!r} parameter")
    return value


def _algorithm(params: dict[str, str], what: str) -> DigestAlgorithm:
    try:
        return DigestAlgorithm.parse(params.get("algorithm", "MD5"))
    except AuthError as exc:
        raise DigestParseError(f"{what}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class DigestChallenge:
    """A digest challenge: the value of ``WWW-Authenticate`` or ``Proxy-Authenticate``.

    ``qop`` lists the offered protection qualities (``auth``, ``auth-int``); empty means the
    RFC 2069 form without qop. ``stale`` says the previous nonce expired but the credentials were
    right (RFC 7616 section 3.3): retry with the new nonce without asking anyone.
    """

    realm: str
    nonce: str
    algorithm: DigestAlgorithm = DigestAlgorithm.MD5
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    domain: str | None = None
    userhash: bool = False

    @classmethod
    def parse(cls, value: str) -> DigestChallenge:
        """Parse one challenge (RFC 3261 section 25.1 allows one per header field value)."""
        what = "digest challenge"
        scheme, params = _parse_params(value, what)
        if scheme.lower() != "digest":
            raise DigestParseError(f"{what}: scheme {scheme[:20]!r} is not Digest")
        qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
        return cls(
            realm=_require(params, "realm", what),
            nonce=_require(params, "nonce", what),
            algorithm=_algorithm(params, what),
            qop=qop,
            opaque=params.get("opaque"),
            stale=params.get("stale", "false").lower() == "true",
            domain=params.get("domain"),
            userhash=params.get("userhash", "false").lower() == "true",
        )

    def __str__(self) -> str:
        parts = [f"realm={_quote(self.realm)}"]
        if self.domain is not None:
            parts.append(f"domain={_quote(self.domain)}")
        parts.append(f"nonce={_quote(self.nonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.stale:
            parts.append("stale=TRUE")
        parts.append(f"algorithm={self.algorithm.value}")
        if self.qop:
            parts.append(f"qop={_quote(','.join(self.qop))}")
        if self.userhash:
            parts.append("userhash=true")
        return "Digest " + ", ".join(parts)


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """The value of ``Authorization``/``Proxy-Authorization`` (RFC 7616 section 3.4).

    It holds the response hash, never the password.
    """

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: DigestAlgorithm = DigestAlgorithm.MD5
    qop: str | None = None
    cnonce: str | None = None
    nc: str | None = None
    opaque: str | None = None
    userhash: bool = False

    @classmethod
    def parse(cls, value: str) -> DigestCredentials:
        what = "digest credentials"
        scheme, params = _parse_params(value, what)
        if scheme.lower() != "digest":
            raise DigestParseError(f"{what}: scheme {scheme[:20]!r} is not Digest")
        qop = params.get("qop")
        creds = cls(
            username=_require(params, "username", what),
            realm=_require(params, "realm", what),
            nonce=_require(params, "nonce", what),
            uri=_require(params, "uri", what),
            response=_require(params, "response", what),
            algorithm=_algorithm(params, what),
            qop=qop.lower() if qop is not None else None,
            cnonce=params.get("cnonce"),
            nc=params.get("nc"),
            opaque=params.get("opaque"),
            userhash=params.get("userhash", "false").lower() == "true",
        )
        if creds.qop is not None and (creds.cnonce is None or creds.nc is None):
            raise DigestParseError(f"{what}: qop={creds.qop} needs cnonce and nc")
        if creds.nc is not None and (len(creds.nc) != 8 or not _is_hex(creds.nc)):
            raise DigestParseError(f"{what}: nc must be 8 hex digits")
        return creds

    def __str__(self) -> str:
        parts = [
            f"username={_quote(self.username)}",
            f"realm={_quote(self.realm)}",
            f"nonce={_quote(self.nonce)}",
            f"uri={_quote(self.uri)}",
            f"response={_quote(self.response)}",
            f"algorithm={self.algorithm.value}",
        ]
        if self.cnonce is not None:
            parts.append(f"cnonce={_quote(self.cnonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.qop is not None:
            parts.append(f"qop={self.qop}")
        if self.nc is not None:
            parts.append(f"nc={self.nc}")
        if self.userhash:
            parts.append("userhash=true")
        return "Digest " + ", ".join(parts)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def compute_response(
    algorithm: DigestAlgorithm,
    *,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    cnonce: str | None = None,
    nc: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value (RFC 7616 section 3.4.1; RFC 2617 section 3.2.2 for no qop)."""
    ha1 = algorithm.hash(f"{username}:{realm}:{password}")
    if algorithm.is_session:
        ha1 = algorithm.hash(f"{ha1}:{nonce}:{cnonce or ''}")
    if qop == "auth-int":
        ha2 = algorithm.hash(f"{method}:{uri}:{algorithm.hash(body)}")
    else:
        ha2 = algorithm.hash(f"{method}:{uri}")
    if qop is None:
        return algorithm.hash(f"{ha1}:{nonce}:{ha2}")
    return algorithm.hash(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def _choose_qop(challenge: DigestChallenge) -> str | None:
    if not challenge.qop:
        return None
    if "auth" in challenge.qop:
        return "auth"
    if "auth-int" in challenge.qop:
        return "auth-int"
    raise AuthError(f"the challenge offers no supported qop: {', '.join(challenge.qop)[:60]}")


def build_authorization(
    challenge: DigestChallenge,
    method: str,
    uri: str,
    username: str,
    password: str,
    body: bytes = b"",
    cnonce: str | None = None,
    nc: int = 1,
) -> str:
    """The ``Authorization``/``Proxy-Authorization`` value answering ``challenge``.

    qop ``auth`` is preferred when offered, else ``auth-int`` (whose digest covers ``body``);
    without qop the RFC 2069 form is sent. ``cnonce`` defaults to 128 random bits and ``nc``
    is the count of requests sent with this nonce, starting at 1 (RFC 7616 section 3.4).
    ``userhash`` challenges get a hashed username (RFC 7616 section 3.4.4).
    """
    qop = _choose_qop(challenge)
    needs_cnonce = qop is not None or challenge.algorithm.is_session
    cnonce = (cnonce or secrets.token_hex(16)) if needs_cnonce else None
    nc_text = f"{nc:08x}" if qop is not None else None
    response = compute_response(
        challenge.algorithm,
        username=username,
        realm=challenge.realm,
        password=password,
        method=method,
        uri=uri,
        nonce=challenge.nonce,
        qop=qop,
        cnonce=cnonce,
        nc=nc_text,
        body=body,
    )
    shown = (
        challenge.algorithm.hash(f"{username}:{challenge.realm}")
        if challenge.userhash
        else username
    )
    return str(
        DigestCredentials(
            username=shown,
            realm=challenge.realm,
            nonce=challenge.nonce,
            uri=uri,
            response=response,
            algorithm=challenge.algorithm,
            qop=qop,
            cnonce=cnonce,
            nc=nc_text,
            opaque=challenge.opaque,
            userhash=challenge.userhash,
        )
    )


def choose_challenge(values: Iterable[str]) -> DigestChallenge:
    """The strongest digest challenge among several header values (RFC 8760 section 2.4).

    RFC 8760 lets a UAC's local policy override the server's order; ours is to prefer the
    strongest algorithm (SHA-512-256, then SHA-256, then MD5), the first listed on a tie.
    Values that are not digest or name an unsupported algorithm are skipped; raises
    :class:`AuthError` when none is usable.
    """
    best: DigestChallenge | None = None
    problems: list[str] = []
    for value in values:
        try:
            challenge = DigestChallenge.parse(value)
            _choose_qop(challenge)
        except AuthError as exc:
            problems.append(str(exc))
            continue
        if best is None or challenge.algorithm.strength > best.algorithm.strength:
            best = challenge
    if best is None:
        detail = "; ".join(problems) if problems else "no challenge header"
        raise AuthError(f"no usable digest challenge ({detail})")
    return best


class DigestClient:
    """Answers challenges for one account and counts ``nc`` per nonce (RFC 7616 section 3.4).

    The password stays inside; ``repr`` shows the username only.
    """

    __slots__ = ("_counts", "_password", "username")

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self._password = password
        self._counts: OrderedDict[tuple[str, str], int] = OrderedDict()

    def __repr__(self) -> str:
        return f"DigestClient(username={self.username!r}, password=<hidden>)"

    def authorize(
        self,
        challenge: DigestChallenge,
        method: str,
        uri: str,
        body: bytes = b"",
        *,
        cnonce: str | None = None,
    ) -> str:
        """A credentials value for one request; each call with the same nonce bumps ``nc``."""
        key = (challenge.realm, challenge.nonce)
        count = self._counts.pop(key, 0) + 1
        self._counts[key] = count
        while len(self._counts) > _MAX_TRACKED_NONCES:
            self._counts.popitem(last=False)
        return build_authorization(
            challenge, method, uri, self.username, self._password, body, cnonce, count
        )

    def nonce_count(self, challenge: DigestChallenge) -> int:
        """How many requests have used this challenge's nonce so far."""
        return self._counts.get((challenge.realm, challenge.nonce), 0)


# --- server side ------------------------------------------------------------------------------


class VerifyOutcome(Enum):
    """What :meth:`DigestVerifier.verify` concluded."""

    OK = "ok"
    STALE = "stale"  # the digest was right but the nonce expired or is not ours: rechallenge
    WRONG = "wrong"  # wrong password, unknown user, or malformed credentials: 401/407 again


@dataclass(frozen=True, slots=True)
class Verification:
    outcome: VerifyOutcome
    username: str | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is VerifyOutcome.OK


@dataclass(slots=True)
class DigestVerifier:
    """Issues challenges and checks credentials for one realm (RFC 7616 section 3, 3261 §22.4).

    ``passwords`` maps a username to its password (``None`` for an unknown user). ``secret``
    keys the nonce HMAC; nonces older than ``nonce_lifetime`` seconds are answered with
    ``stale``. ``now`` is any monotonic clock in seconds, the same for both calls.

    ``algorithms`` is the order of the challenge header fields, most preferred first (RFC 8760
    section 2.4). The default puts MD5 first on purpose: UAs that predate RFC 8760 answer the
    topmost challenge whatever its algorithm (SIPp 3.6.1 does, and fails on SHA-256), while
    a UA that supports SHA-256 may still pick it from the second field.
    """

    realm: str
    passwords: Callable[[str], str | None] = field(repr=False)
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    algorithms: tuple[DigestAlgorithm, ...] = (DigestAlgorithm.MD5, DigestAlgorithm.SHA256)
    nonce_lifetime: float = 300.0
    max_verified_nonces: int = MAX_VERIFIED_NONCES
    #: nonce -> (its last nc, when it was issued), oldest first verified first
    _counts: OrderedDict[str, tuple[int, float]] = field(
        default_factory=OrderedDict, init=False, repr=False
    )

    def make_nonce(self, now: float) -> str:
        stamp = struct.pack(">d", now)
        mac = hmac.new(self.secret, stamp + self.realm.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(stamp + mac[:_NONCE_MAC_BYTES]).decode().rstrip("=")

    def nonce_age(self, nonce: str, now: float) -> float | None:
        """Seconds since we issued ``nonce``, or ``None`` if we did not issue it."""
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (ValueError, TypeError):
            return None
        if len(raw) != 8 + _NONCE_MAC_BYTES:
            return None
        stamp, mac = raw[:8], raw[8:]
        expected = hmac.new(self.secret, stamp + self.realm.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(mac, expected[:_NONCE_MAC_BYTES]):
            return None
        (issued,) = struct.unpack(">d", stamp)
        return float(now - issued)

    def challenges(self, now: float, *, stale: bool = False) -> list[DigestChallenge]:
        """One challenge per algorithm in ``algorithms`` order (RFC 8760 section 2.4), to be
        sent as one header field each."""
        nonce = self.make_nonce(now)
        return [
            DigestChallenge(self.realm, nonce, algorithm, ("auth",), stale=stale)
            for algorithm in self.algorithms
        ]

    def verify(
        self,
        value: str,
        method: str,
        now: float,
        *,
        uri: str | None = None,
        body: bytes = b"",
    ) -> Verification:
        """Check one ``Authorization``/``Proxy-Authorization`` value.

        The digest is checked first: a right digest on an expired or foreign nonce is
        ``STALE`` (RFC 7616 section 3.3), anything else that fails is ``WRONG``. ``uri``, when
        given, must equal the credentials' ``uri`` (the Request-URI, RFC 3261 section 22.4).
        """
        try:
            creds = DigestCredentials.parse(value)
        except DigestParseError as exc:
            return Verification(VerifyOutcome.WRONG, None, f"malformed credentials: {exc}")
        user = creds.username
        if creds.realm != self.realm:
            return Verification(VerifyOutcome.WRONG, user, "realm does not match")
        if creds.algorithm not in self.algorithms:
            return Verification(VerifyOutcome.WRONG, user, "algorithm was not offered")
        if creds.userhash:
            return Verification(VerifyOutcome.WRONG, user, "userhash was not offered")
        if creds.qop not in ("auth", "auth-int"):
            return Verification(VerifyOutcome.WRONG, user, "qop=auth is required")
        if uri is not None and creds.uri != uri:
            return Verification(VerifyOutcome.WRONG, user, "digest uri is not the Request-URI")
        password = self.passwords(user)
        if password is None:
            return Verification(VerifyOutcome.WRONG, user, "unknown user")
        expected = compute_response(
            creds.algorithm,
            username=user,
            realm=self.realm,
            password=password,
            method=method,
            uri=creds.uri,
            nonce=creds.nonce,
            qop=creds.qop,
            cnonce=creds.cnonce,
            nc=creds.nc,
            body=body,
        )
        if not hmac.compare_digest(expected.encode(), creds.response.lower().encode()):
            return Verification(VerifyOutcome.WRONG, user, "wrong password")
        age = self.nonce_age(creds.nonce, now)
        if age is None:
            return Verification(VerifyOutcome.STALE, user, "nonce was not issued here")
        if not -1.0 <= age <= self.nonce_lifetime:
            return Verification(VerifyOutcome.STALE, user, "nonce expired")
        # Replay protection (RFC 7616 section 5.12): each nonce's nc must increase, for the
        # nonce's whole life.
        count = int(creds.nc or "0", 16)
        seen = self._counts.get(creds.nonce)
        if seen is not None and count <= seen[0]:
            return Verification(VerifyOutcome.STALE, user, "nonce count replayed")
        if seen is None:
            self._forget_expired(now)
            if len(self._counts) >= self.max_verified_nonces:
                return Verification(VerifyOutcome.STALE, user, "too many live nonces")
        self._counts[creds.nonce] = (count, now - age)
        return Verification(VerifyOutcome.OK, user)

    def _forget_expired(self, now: float) -> None:
        """Drop the counts of nonces past their lifetime (they are stale whatever their nc)."""
        counts = self._counts
        while counts:
            issued = next(iter(counts.values()))[1]
            if now - issued <= self.nonce_lifetime:
                return
            counts.popitem(last=False)

    @property
    def tracked_nonces(self) -> int:
        return len(self._counts)
