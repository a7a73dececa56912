"""Secrets never reach a log line: messages, arguments and exception text, in both formats."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bridge.logs import log_incident, redact_secrets, setup_logging


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


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """setup_logging's handler, writing into a buffer instead of stderr."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    buf = io.StringIO()
    yield buf
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


def _log_everything(buf: io.StringIO, json_lines: bool) -> str:
    setup_logging("info", json_lines=json_lines)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buf)
    log = logging.getLogger("rtbridge.test")
    log.info("key is %s", "sk-abcdefghijk")
    try:
        raise RuntimeError("upstream said: Authorization: Bearer sk-live-0123456789abcdef")
    except RuntimeError:
        log.exception("call failed")
    try:
        raise ValueError({"api-key": "xai-ABCDEFGHIJKLMNOP"})
    except ValueError:
        log.error("with a traceback", exc_info=True, stack_info=True)
    return buf.getvalue()


@pytest.mark.parametrize("json_lines", [False, True])
def test_every_line_and_traceback_is_redacted(captured: io.StringIO, json_lines: bool) -> None:
    out = _log_everything(captured, json_lines)
    assert "Traceback" in out and "RuntimeError" in out  # the exception text is there ...
    for secret in ("sk-abcdefghijk", "sk-live-0123456789abcdef", "xai-ABCDEFGHIJKLMNOP"):
        assert secret not in out  # ... without the secrets
    assert out.count("[redacted]") >= 3
    if json_lines:
        lines = [json.loads(line) for line in out.splitlines()]
        assert [rec["msg"] for rec in lines] == [
            "key is sk-[redacted]",
            "call failed",
            "with a traceback",
        ]
        assert "Bearer [redacted]" in lines[1]["exc"]


def test_incident_logs_details_under_a_reference(captured: io.StringIO) -> None:
    setup_logging("info")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(captured)
    ref = log_incident(
        logging.getLogger("rtbridge.test"),
        "agent unavailable",
        "upstream wss://api.example/v1/realtime refused the session: HTTP 401 bad key sk-abc123456",
    )
    assert ref.startswith("ref_") and len(ref) == 16
    line = captured.getvalue()
    assert ref in line and "wss://api.example/v1/realtime" in line
    assert "sk-abc123456" not in line


@pytest.mark.parametrize("json_lines", [False, True])
def test_what_a_peer_sent_cannot_forge_a_line_or_drive_a_terminal(
    captured: io.StringIO, json_lines: bool
) -> None:
    """A SIP Call-ID (a peer's bytes) logged as sent: escape sequences, vertical tab, form
    feed, NEL and Unicode line separators. CR and LF never get past the SIP parser; the
    formatter escapes them too."""
    setup_logging("info", json_lines=json_lines)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(captured)
    forged = "x\x1b[2J\x1b[1;31m\x0b\x0c2026-12-08 00:00:00,000 ERROR rtbridge.security: FORGED"
    forged += "\u2028FORGED2\x85\r\nFORGED3"
    logging.getLogger("bridge.calls.sip_leg").warning("rejecting call %s: full", forged)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("rtbridge.test").exception("after it")
    out = captured.getvalue()
    assert not any(c in out for c in "\x1b\x0b\x0c\x85\u2028\r")
    first = out.splitlines()[0]  # str.splitlines breaks at VT, FF, NEL, U+2028 too
    assert "FORGED3" in first and first.count("ERROR") == 1  # the forged text, as text
    if json_lines:
        assert json.loads(first)["msg"].endswith("\r\nFORGED3: full")
    else:
        assert "\\x1b[2J" in first and "\\u2028" in first and "\\r\\nFORGED3" in first
        assert "Traceback (most recent call last):\n" in out  # a traceback keeps its lines
