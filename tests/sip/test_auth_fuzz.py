"""Property tests: the digest header parsers raise only DigestParseError; the verifier never
raises; challenges round-trip through their serialisation (RFC 7616 section 3.3)."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from sip.auth import (
    DigestAlgorithm,
    DigestChallenge,
    DigestCredentials,
    DigestParseError,
    DigestVerifier,
    Verification,
    build_authorization,
)

FUZZ = settings(max_examples=400, deadline=None)
SEED = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", algorithm=SHA-256, stale=FALSE, '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
ALPHABET = st.sampled_from(list('Digest realm=nonce,"\\ \t qop auth-int algorithm MD5 SHA-256'))
VERIFIER = DigestVerifier("r", {"u": "p"}.get, secret=b"x" * 32)


def parse_all(text: str) -> None:
    for parser in (DigestChallenge.parse, DigestCredentials.parse):
        with contextlib.suppress(DigestParseError):
            parser(text)
    result = VERIFIER.verify(text, "REGISTER", now=0.0)
    assert isinstance(result, Verification)


@FUZZ
@given(st.text(max_size=300))
def test_arbitrary_text(text: str) -> None:
    parse_all(text)


@FUZZ
@given(st.text(ALPHABET, max_size=120))
def test_digest_shaped_text(text: str) -> None:
    parse_all("Digest " + text)


@FUZZ
@given(st.integers(min_value=0, max_value=len(SEED)), st.text(ALPHABET, max_size=5))
def test_truncated_and_mutated_challenge(cut: int, insert: str) -> None:
    parse_all(SEED[:cut])
    parse_all(SEED[:cut] + insert + SEED[cut + 1 :])


quoted_text = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=30)


@FUZZ
@given(
    realm=quoted_text,
    nonce=quoted_text.filter(bool),
    algorithm=st.sampled_from(list(DigestAlgorithm)),
    qop=st.lists(st.sampled_from(["auth", "auth-int"]), unique=True).map(tuple),
    opaque=st.none() | quoted_text,
    stale=st.booleans(),
)
def test_challenges_round_trip_and_can_be_answered(
    realm: str,
    nonce: str,
    algorithm: DigestAlgorithm,
    qop: tuple[str, ...],
    opaque: str | None,
    stale: bool,
) -> None:
    challenge = DigestChallenge(realm, nonce, algorithm, qop, opaque, stale)
    assert DigestChallenge.parse(str(challenge)) == challenge
    value = build_authorization(challenge, "INVITE", "sip:a@b", 'user"name', "pw", b"body")
    creds = DigestCredentials.parse(value)
    assert (creds.realm, creds.nonce, creds.username) == (realm, nonce, 'user"name')
