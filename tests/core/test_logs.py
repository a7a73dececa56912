"""Secrets never reach a log line."""

from __future__ import annotations

import logging

import pytest

from bridge.logs import SecretFilter, redact_secrets


@pytest.mark.parametrize(
    "secret_text",
    [
        "Authorization: Bearer sk-proj-abcdefghijkl",
        "subprotocol openai-insecure-api-key.ek_1234567890abcdef",
        "key rtb_AAAAAAAAAAAAAAAAAAAAAAAA",
        "webhook secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "password=hunter2hunter2",
        'Authorization: Digest username="bob", response="0123456789abcdef"',
    ],
)
def test_redaction(secret_text: str) -> None:
    out = redact_secrets(secret_text)
    assert "[redacted]" in out
    for token in (
        "sk-proj-abcdefghijkl",
        "ek_1234567890abcdef",
        "rtb_AAAA",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "hunter2",
        "0123456789abcdef",
    ):
        assert token not in out


def test_filter_rewrites_formatted_record() -> None:
    rec = logging.LogRecord("x", logging.INFO, __file__, 1, "key is %s", ("sk-abcdefghijk",), None)
    SecretFilter().filter(rec)
    assert "sk-abcdefghijk" not in rec.getMessage()
