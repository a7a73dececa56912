"""Digest authentication: RFC 2617 / RFC 7616 vectors, SHA-256, qop, stale and wrong passwords."""

from __future__ import annotations

import pytest

from sip.auth import (
    AuthError,
    DigestAlgorithm,
    DigestChallenge,
    DigestClient,
    DigestCredentials,
    DigestParseError,
    DigestVerifier,
    VerifyOutcome,
    build_authorization,
    choose_challenge,
    compute_response,
)
from sip.errors import SipParseError

# RFC 2617 section 3.5.
RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)

# RFC 7616 section 3.9.1 (the same nonce for both algorithms).
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


def rfc7616_challenge(algorithm: str) -> str:
    return (
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
    )


def test_rfc2617_section_3_5_example() -> None:
    challenge = DigestChallenge.parse(RFC2617_CHALLENGE)
    assert challenge.realm == "testrealm@host.com"
    assert challenge.qop == ("auth", "auth-int")
    assert challenge.algorithm is DigestAlgorithm.MD5
    value = build_authorization(
        challenge, "GET", "/dir/index.html", "Mufasa", "Circle Of Life", cnonce="0a4f113b"
    )
    creds = DigestCredentials.parse(value)
    assert creds.response == "6629fae49393a05397450978507c4ef1"
    assert (creds.qop, creds.nc, creds.cnonce) == ("auth", "00000001", "0a4f113b")
    assert creds.opaque == "5ccc069c403ebaf9f0171e9517f40e41"
    assert value == (
        'Digest username="Mufasa", realm="testrealm@host.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", '
        'response="6629fae49393a05397450978507c4ef1", algorithm=MD5, cnonce="0a4f113b", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41", qop=auth, nc=00000001'
    )


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1_examples(algorithm: str, expected: str) -> None:
    challenge = DigestChallenge.parse(rfc7616_challenge(algorithm))
    value = build_authorization(
        challenge, "GET", "/dir/index.html", "Mufasa", "Circle of Life", cnonce=RFC7616_CNONCE
    )
    creds = DigestCredentials.parse(value)
    assert creds.response == expected
    assert creds.algorithm.value == algorithm
    assert creds.opaque == RFC7616_OPAQUE


def test_sip_register_digest_rfc3261_style_without_qop() -> None:
    # RFC 2069 compatibility: no qop in the challenge -> no cnonce/nc, response over HA1:nonce:HA2.
    challenge = DigestChallenge.parse('Digest realm="atlanta.com", nonce="84a4cc6f3082121f32b4"')
    value = build_authorization(challenge, "REGISTER", "sip:atlanta.com", "bob", "zanzibar")
    creds = DigestCredentials.parse(value)
    assert creds.qop is None and creds.cnonce is None and creds.nc is None
    import hashlib

    ha1 = hashlib.md5(b"bob:atlanta.com:zanzibar").hexdigest()
    ha2 = hashlib.md5(b"REGISTER:sip:atlanta.com").hexdigest()
    assert creds.response == hashlib.md5(f"{ha1}:84a4cc6f3082121f32b4:{ha2}".encode()).hexdigest()


def test_auth_int_covers_the_body() -> None:
    challenge = DigestChallenge.parse('Digest realm="r", nonce="n", qop="auth-int"')
    a = DigestCredentials.parse(build_authorization(challenge, "INVITE", "sip:x", "u", "p", b"v=0"))
    assert a.qop == "auth-int"
    for body, same in ((b"v=0", True), (b"v=1", False)):
        expected = compute_response(
            DigestAlgorithm.MD5,
            username="u",
            realm="r",
            password="p",
            method="INVITE",
            uri="sip:x",
            nonce="n",
            qop="auth-int",
            cnonce=a.cnonce,
            nc=a.nc,
            body=body,
        )
        assert (expected == a.response) is same


def test_sess_algorithms_and_sha512_256_round_trip_through_the_verifier() -> None:
    for algorithm in DigestAlgorithm:
        verifier = DigestVerifier("r", {"u": "p"}.get, algorithms=(algorithm,))
        (challenge,) = verifier.challenges(now=10.0)
        value = build_authorization(challenge, "REGISTER", "sip:r", "u", "p")
        assert verifier.verify(value, "REGISTER", now=11.0).ok, algorithm


def test_tab_after_the_scheme_is_whitespace() -> None:
    assert DigestChallenge.parse('Digest\trealm="r", nonce="n"').realm == "r"


def test_challenge_parse_details() -> None:
    c = DigestChallenge.parse(
        'digest  realm="a\\"b" ,nonce=abc,algorithm=sha-256-SESS,stale=TRUE,'
        ' qop="auth-int",domain="sip:x",userhash=true,  '
    )
    assert c.realm == 'a"b' and c.nonce == "abc"
    assert c.algorithm is DigestAlgorithm.SHA256_SESS
    assert c.stale and c.userhash and c.qop == ("auth-int",) and c.domain == "sip:x"
    assert DigestChallenge.parse(str(c)) == c


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "no authentication scheme"),
        ('Basic realm="x"', "is not Digest"),
        ('Digest nonce="n"', "lacks the 'realm'"),
        ('Digest realm="r"', "lacks the 'nonce'"),
        ('Digest realm="r, nonce=n', "unterminated quoted string"),
        ('Digest realm="r" nonce="n"', "expected ','"),
        ('Digest realm="r", realm="s", nonce="n"', "appears twice"),
        ('Digest realm="r", nonce="n", algorithm=SHA-1', "unsupported digest algorithm"),
        ("Digest realm", "expected name=value"),
        ("Digest realm=", "empty value"),
    ],
)
def test_bad_challenges_raise_the_documented_error(value: str, fragment: str) -> None:
    with pytest.raises(DigestParseError, match=fragment) as info:
        DigestChallenge.parse(value)
    assert isinstance(info.value, SipParseError) and isinstance(info.value, AuthError)


def test_choose_challenge_prefers_sha256_and_skips_unusable() -> None:
    values = [
        'Digest realm="r", nonce="a", algorithm=MD5, qop="auth"',
        'Digest realm="r", nonce="b", algorithm=SHA-256, qop="auth"',
        'Digest realm="r", nonce="c", algorithm=SHA-1, qop="auth"',
        'Basic realm="r"',
    ]
    assert choose_challenge(values).nonce == "b"
    assert choose_challenge(reversed(values)).nonce == "b"
    with pytest.raises(AuthError, match="no usable digest challenge"):
        choose_challenge(values[2:])
    with pytest.raises(AuthError, match="no supported qop"):
        choose_challenge(['Digest realm="r", nonce="a", qop="auth-conf"'])


def test_client_counts_nc_per_nonce_and_hides_the_password() -> None:
    client = DigestClient("alice", "s3cret-pass")
    first = DigestChallenge.parse('Digest realm="r", nonce="n1", qop="auth"')
    second = DigestChallenge.parse('Digest realm="r", nonce="n2", qop="auth"')
    ncs = [DigestCredentials.parse(client.authorize(first, "REGISTER", "sip:r")).nc for _ in "ab"]
    assert ncs == ["00000001", "00000002"]
    assert DigestCredentials.parse(client.authorize(second, "REGISTER", "sip:r")).nc == "00000001"
    assert client.nonce_count(first) == 2
    assert "s3cret" not in repr(client)
    assert "s3cret" not in client.authorize(first, "REGISTER", "sip:r")


# --- server side ------------------------------------------------------------------------------


def verifier(**kw: object) -> DigestVerifier:
    return DigestVerifier("rtbridge", {"trunk": "right-password"}.get, secret=b"k" * 32, **kw)  # type: ignore[arg-type]


def test_verifier_ok_wrong_and_unknown_user() -> None:
    v = verifier()
    md5_first, challenge = v.challenges(now=100.0)
    assert md5_first.algorithm is DigestAlgorithm.MD5  # for UAs that answer the topmost one
    assert challenge.algorithm is DigestAlgorithm.SHA256 and challenge.qop == ("auth",)
    good = build_authorization(challenge, "INVITE", "sip:bot@127.0.0.1", "trunk", "right-password")
    result = v.verify(good, "INVITE", now=101.0, uri="sip:bot@127.0.0.1")
    assert result.outcome is VerifyOutcome.OK and result.username == "trunk"
    bad = build_authorization(challenge, "INVITE", "sip:bot@127.0.0.1", "trunk", "guess")
    result = v.verify(bad, "INVITE", now=101.0)
    assert result.outcome is VerifyOutcome.WRONG and result.reason == "wrong password"
    assert "guess" not in repr(result) and "right-password" not in repr(v)
    stranger = build_authorization(challenge, "INVITE", "sip:bot@127.0.0.1", "eve", "x")
    assert v.verify(stranger, "INVITE", now=101.0).reason == "unknown user"
    assert v.verify(good, "BYE", now=101.0).outcome is VerifyOutcome.WRONG  # method is hashed
    assert v.verify(good, "INVITE", now=101.0, uri="sip:other@x").outcome is VerifyOutcome.WRONG
    assert v.verify("Digest garbage", "INVITE", now=101.0).outcome is VerifyOutcome.WRONG


def test_verifier_stale_nonce_with_right_digest() -> None:
    v = verifier(nonce_lifetime=30.0)
    challenge = v.challenges(now=0.0)[0]
    assert challenge.algorithm is DigestAlgorithm.MD5
    good = build_authorization(challenge, "REGISTER", "sip:r", "trunk", "right-password")
    assert v.verify(good, "REGISTER", now=29.0).ok
    late = v.verify(good, "REGISTER", now=31.0)
    assert late.outcome is VerifyOutcome.STALE
    wrong_and_late = build_authorization(challenge, "REGISTER", "sip:r", "trunk", "nope")
    assert v.verify(wrong_and_late, "REGISTER", now=31.0).outcome is VerifyOutcome.WRONG
    # A nonce from before a restart (other secret) is stale, not wrong, when the digest is right.
    other = DigestVerifier("rtbridge", {"trunk": "right-password"}.get, secret=b"z" * 32)
    foreign = build_authorization(
        other.challenges(0.0)[0], "REGISTER", "sip:r", "trunk", "right-password"
    )
    assert v.verify(foreign, "REGISTER", now=1.0).outcome is VerifyOutcome.STALE
    rechallenge = v.challenges(now=31.0, stale=True)[0]
    assert rechallenge.stale and "stale=TRUE" in str(rechallenge)


def test_verifier_rejects_a_replayed_nonce_count() -> None:
    v = verifier()
    challenge = v.challenges(now=0.0)[0]
    client = DigestClient("trunk", "right-password")
    first = client.authorize(challenge, "INVITE", "sip:bot@x")
    assert v.verify(first, "INVITE", now=1.0).ok
    replay = v.verify(first, "INVITE", now=2.0)
    assert (replay.outcome, replay.reason) == (VerifyOutcome.STALE, "nonce count replayed")
    assert v.verify(client.authorize(challenge, "INVITE", "sip:bot@x"), "INVITE", now=3.0).ok


def test_verifier_rejects_what_it_did_not_offer() -> None:
    v = verifier(algorithms=(DigestAlgorithm.SHA256,))
    md5 = DigestChallenge("rtbridge", v.make_nonce(0.0), DigestAlgorithm.MD5, ("auth",))
    value = build_authorization(md5, "REGISTER", "sip:r", "trunk", "right-password")
    assert v.verify(value, "REGISTER", now=1.0).reason == "algorithm was not offered"
    no_qop = DigestChallenge("rtbridge", v.make_nonce(0.0), DigestAlgorithm.SHA256)
    value = build_authorization(no_qop, "REGISTER", "sip:r", "trunk", "right-password")
    assert v.verify(value, "REGISTER", now=1.0).reason == "qop=auth is required"
    other_realm = DigestChallenge("elsewhere", v.make_nonce(0.0), DigestAlgorithm.SHA256, ("auth",))
    value = build_authorization(other_realm, "REGISTER", "sip:r", "trunk", "right-password")
    assert v.verify(value, "REGISTER", now=1.0).reason == "realm does not match"


def test_credentials_parse_errors() -> None:
    with pytest.raises(DigestParseError, match="needs cnonce and nc"):
        DigestCredentials.parse(
            'Digest username="u", realm="r", nonce="n", uri="s", response="x", qop=auth'
        )
    with pytest.raises(DigestParseError, match="8 hex digits"):
        DigestCredentials.parse(
            'Digest username="u", realm="r", nonce="n", uri="s", response="x", qop=auth, '
            'cnonce="c", nc=1'
        )
