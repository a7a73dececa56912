"""Destination policy on parsed targets: the crafted targets that fooled the old shell patterns
are refused with a precise reason; rules match fields (scheme, number prefix and length, host or
domain, port, parameters); old patterns load only where unambiguous; international numbers need
their prefix listed; caps per minute and per day; every refusal is a security event."""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path

import pytest

from bridge.config import AgentProfile, load_settings
from bridge.destinations import DestinationRule, Purpose, VerdictCode, parse_target
from bridge.destinations.guard import Destinations
from bridge.errors import ConfigError
from bridge.security import SecurityKind, SecurityLog

PBX = "sip:*@pbx.acme.example"

#: targets the old fnmatch check accepted for PBX, and rtbridge's URI parser sends elsewhere
CRAFTED = [
    ("sip:+1900@evil.example;x=@pbx.acme.example", "not a valid sip:"),
    ("sip:x@evil.example?h=@pbx.acme.example", "URI headers"),
    ("sip:x@evil.example>\r\nContact: <sip:y@pbx.acme.example", "CR/LF"),
    ("sip:x@evil.example\nX: @pbx.acme.example", "CR/LF"),
    ("sip:x@evil.example\x00@pbx.acme.example", "control character (U+0000)"),
    ("sip:x%0d%0aContact:%20evil@pbx.acme.example", "escaped control character (%0d)"),
    ("sip:x@evil.example @pbx.acme.example", "whitespace"),
    ("sip:bob:secret@pbx.acme.example", "password"),
]


@pytest.mark.parametrize(("target", "why"), CRAFTED)
def test_crafted_targets_are_refused_precisely(target: str, why: str) -> None:
    assert fnmatchcase(target, PBX)  # the hole this closes
    verdict = AgentProfile(transfer_targets=[PBX]).may_transfer_to(target)
    assert not verdict and verdict.code is VerdictCode.MALFORMED
    assert why in verdict.reason
    assert "\r" not in verdict.reason and "\n" not in verdict.reason


def test_parameters_need_a_rule_that_allows_them() -> None:
    profile = AgentProfile(
        transfer_targets=[PBX, {"scheme": "sip", "host": "carrier.example", "params": ["user"]}]
    )
    v = profile.may_transfer_to("sip:desk@pbx.acme.example;maddr=192.0.2.66")
    assert not v and v.code is VerdictCode.NOT_ALLOWED and "';maddr'" in v.reason
    v = profile.may_transfer_to("sip:desk@pbx.acme.example;user=phone")
    assert not v  # user= is allowed for carrier.example only
    assert profile.may_transfer_to("sip:+15550100@carrier.example;user=phone")


@pytest.mark.parametrize(
    ("target", "allowed"),
    [
        ("sip:desk@pbx.acme.example", True),
        ("sip:desk@PBX.Acme.Example", True),  # hosts compare case-insensitively
        ("sip:desk@pbx.acme.example:5060", True),  # the default port is no port
        ("sip:desk@pbx.acme.example:5070", False),
        ("sip:pbx.acme.example", True),  # no user at all
        ("sips:desk@pbx.acme.example", False),  # another scheme
        ("sip:desk@evil.pbx.acme.example", False),  # exact host
        ("sip:desk@pbx.acme.example.evil", False),
    ],
)
def test_old_host_pattern(target: str, allowed: bool) -> None:
    assert bool(AgentProfile(transfer_targets=[PBX]).may_transfer_to(target)) is allowed


def test_table_rules_match_fields() -> None:
    profile = AgentProfile(
        dial_targets=[
            # US numbers of 11 digits on the carrier, any port
            {"scheme": "sip", "number": "+1", "min_digits": 11, "max_digits": 11,
             "host": "sip.carrier.example", "port": "*"},
            {"scheme": "tel", "number": "+1555", "params": ["ext"]},
            {"scheme": "sips", "user": "ops-*", "domain": "acme.example", "port": 5061},
        ]
    )  # fmt: skip
    ok = [
        "sip:+15550100123@sip.carrier.example",
        "sip:+1-555-010-0123@sip.carrier.example:5080",  # visual separators, any port
        "tel:+15551234",
        "tel:+1-555-1234;ext=9",
        "sips:ops-night@acme.example:5061",
        "sips:ops-day@pbx.eu.acme.example:5061",
    ]
    refused = [
        "sip:+1555010012@sip.carrier.example",  # 10 digits
        "sip:+155501001234@sip.carrier.example",  # 12 digits
        "sip:desk@sip.carrier.example",  # not a number
        "tel:+15661234",
        "sips:ops-night@acme.example:5062",  # port (no port is 5061, the default)
        "sips:ops-night@acme.example.evil:5061",  # domain suffix, not substring
        "sips:admin@acme.example:5061",  # user pattern
    ]
    for target in ok:
        assert profile.may_dial(target), target
    for target in refused:
        v = profile.may_dial(target)
        assert not v and v.code is VerdictCode.NOT_ALLOWED, target
        assert "matches no rule of dial_targets" in v.reason
    v = profile.may_dial("sip:+15550100123@sip.carrier.example;ext=9")  # ext: tel: only
    assert not v and "';ext' is not allowed" in v.reason


def test_the_verdict_carries_the_target_as_it_will_be_sent() -> None:
    v = AgentProfile(transfer_targets=[PBX]).may_transfer_to("SIP:desk@pbx.acme.example")
    assert v and v.target == "sip:desk@pbx.acme.example"


def test_international_numbers_need_their_prefix_listed() -> None:
    profile = AgentProfile(
        dial_targets=[{"scheme": "tel", "number": "+"}, "sip:*@sip.carrier.example"],
        destinations={"home": ["+1"], "international": ["+4420"]},
    )
    assert profile.may_dial("tel:+15550100")
    assert profile.may_dial("tel:+442079460000")  # listed
    for target in (
        "tel:+441619460000",
        "tel:+88213",
        "sip:+882130001@sip.carrier.example",
        "sip:0088213000@sip.carrier.example",  # the international access code in national form
        "sip:011882130001@sip.carrier.example",  # ... and its North American form
        "sip:%2B441619460000@sip.carrier.example",  # escaped: the same URI (RFC 3261 §19.1.4)
        "sip:+44%3161%39460000@sip.carrier.example",
        "sip:%30%3088213000@sip.carrier.example",
    ):
        v = profile.may_dial(target)
        assert not v and v.code is VerdictCode.INTERNATIONAL, target
        assert "is an international number (home: +1)" in v.reason
    assert profile.may_dial("sip:5550100@sip.carrier.example")  # national format
    too_long = profile.may_dial("tel:+1555010012345678")
    assert not too_long and "at most 15 digits" in too_long.reason


def test_no_rules_no_destinations() -> None:
    v = AgentProfile().may_dial("sip:anyone@127.0.0.1")
    assert not v and "dial_targets is empty" in v.reason


@pytest.mark.parametrize(
    ("pattern", "rule"),
    [
        (PBX, {"host": "pbx.acme.example"}),
        ("sip:+1555*@sip.carrier.example", {"number": "+1555", "host": "sip.carrier.example"}),
        ("sip:+15550100@pbx", {"number": "+15550100", "min_digits": 8, "max_digits": 8,
                               "host": "pbx"}),
        ("tel:+1555*", {"scheme": "tel", "number": "+1555"}),
        ("tel:*", {"scheme": "tel"}),
        ("sip:desk@*.acme.example", {"user": "desk", "domain": "acme.example"}),
        ("sip:*@127.0.0.1:*", {"host": "127.0.0.1", "port": "*"}),
        ("sip:desk@*", {"user": "desk", "host": "*", "port": "*"}),
        ("sips:*@[::1]:5061", {"scheme": "sips", "host": "[::1]", "port": 5061}),
        ("sip:sales-*@pbx", {"user": "sales-*", "host": "pbx"}),
    ],
)  # fmt: skip
def test_unambiguous_old_patterns_still_load(pattern: str, rule: dict[str, object]) -> None:
    assert DestinationRule.from_pattern(pattern) == DestinationRule.model_validate(rule)


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("sip:desk@127.0.0.1*", "is ambiguous"),
        ("sip:desk@pbx*.acme.example", "is ambiguous"),
        ("sip:*@pbx.acme.example;transport=tcp", "rule table"),
        ("sip:*@pbx.acme.example?x=1", "rule table"),
        ("tel:+1*5", "one trailing '*'"),
        ("*", "must start with sip:, sips: or tel:"),
        ("sip:@pbx", "empty user part"),
        ("sip:a@b@c", "more than one '@'"),
        ("sip:*@pbx:50x", "the port must be a number"),
    ],
)
def test_ambiguous_patterns_stop_start_up(tmp_path: Path, pattern: str, why: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[profiles.support]\ntransfer_targets = [{pattern!r}]\n".replace("'", '"'))
    with pytest.raises(ConfigError, match=r"profiles\.support\.transfer_targets") as err:
        load_settings(cfg, environ={})
    assert why in str(err.value)


def test_table_rules_in_toml(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        """
[profiles.support]
dial_targets = [
  { scheme = "tel", number = "+1555", min_digits = 11, max_digits = 11 },
  { scheme = "sip", number = "+4420", host = "sip.carrier.example", params = ["user"] },
]
transfer_targets = ["sip:*@pbx.acme.example", { user = "operator", domain = "acme.example" }]
[profiles.support.destinations]
international = ["+4420"]
dials_per_minute = 5
"""
    )
    p = load_settings(cfg, environ={}).profiles["support"]
    assert p.may_dial("tel:+15550100123") and p.may_dial("sip:+442079460000@sip.carrier.example")
    assert p.may_transfer_to("sip:operator@eu.acme.example")
    assert not p.may_transfer_to("sip:sales@eu.acme.example")
    bad = tmp_path / "bad.toml"
    bad.write_text('[profiles.x]\ndial_targets = [{ scheme = "tel", host = "a" }]\n')
    with pytest.raises(ConfigError, match="a tel: rule has no user, host"):
        load_settings(bad, environ={})


def test_parse_target_keeps_the_number() -> None:
    assert parse_target("tel:+1-555-0100").number == "+15550100"
    assert parse_target("sip:+1(555)0100@carrier").number == "+15550100"
    assert parse_target("sip:desk@carrier").number is None


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_caps_per_minute_and_per_day_are_security_events() -> None:
    clock = Clock()
    security = SecurityLog()
    guard = Destinations(security, clock=clock)
    profile = AgentProfile(
        dial_targets=["tel:+1555*"],
        destinations={"dials_per_minute": 3, "dials_per_day": 5},
    )

    def dial() -> VerdictCode:
        return guard.check(Purpose.DIAL, "sales", profile, "tel:+15550100", source="http:x").code

    assert [dial() for _ in range(4)] == [VerdictCode.ALLOWED] * 3 + [VerdictCode.CAP_REACHED]
    clock.t += 60.0  # a new minute: the day's cap is next
    assert [dial() for _ in range(3)] == [VerdictCode.ALLOWED] * 2 + [VerdictCode.CAP_REACHED]
    clock.t += 3600.0
    assert dial() is VerdictCode.CAP_REACHED  # still the same day
    clock.t += 86_400.0
    assert dial() is VerdictCode.ALLOWED
    capped = security.recent(kinds=[SecurityKind.RATE_LIMITED])
    assert len(capped) == 3
    assert "reached its cap of 5 per day outbound calls" in capped[0].detail
    assert "cap of 3 per minute" in capped[-1].detail
    # transfers have their own caps; refusals are not counted against them
    for _ in range(10):
        v = guard.check(Purpose.TRANSFER, "sales", profile, "tel:+15550100", source="agent")
        assert v.code is VerdictCode.NOT_ALLOWED


def test_every_refusal_is_a_security_event_with_the_call() -> None:
    security = SecurityLog()
    guard = Destinations(security)
    profile = AgentProfile(transfer_targets=[PBX])
    check = guard.for_call("call_42", "support", profile)
    assert check.check("sip:desk@pbx.acme.example")
    for target, _why in CRAFTED:
        assert not check.check(target)
    events = security.recent()
    assert len(events) == len(CRAFTED)
    assert {e.kind for e in events} == {SecurityKind.DESTINATION_REFUSED}
    assert {e.call_id for e in events} == {"call_42"} and {e.source for e in events} == {"agent"}
    assert all(e.detail.startswith("transfer refused (profile 'support'): ") for e in events)
