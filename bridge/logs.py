"""Logging set-up: plain or JSON lines, with secrets redacted from every line.

Whatever a library logs (uvicorn's access log, websockets' debug output, our own messages,
the traceback of an exception), the formatter of the one root handler rewrites API keys (also
Azure's ``api-key`` and Google's ``x-goog-api-key`` headers and ``?key=`` query parameters),
ephemeral keys, Bearer tokens, webhook secrets and SIP digest responses to ``[redacted]`` in the
finished line, exception text and stack included, in both formats. A plain line's message has
its control characters escaped (a JSON line has them as JSON escapes): what a peer sent
cannot forge a line. Base64 audio is kept out at the source (:func:`bridge.realtime.wire.redact`).

:func:`log_incident` is how a failure whose details must not leave the process (upstream URLs,
keys, upstream error bodies) is reported: the details go to the log under a short correlation
id, and only the id goes to the HTTP client or SIP peer.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import time

__all__ = ["log_incident", "redact_secrets", "setup_logging"]

_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[^\s'\",]+"),
    re.compile(r"(openai-insecure-api-key\.)[^\s'\",]+"),
    re.compile(r"\b(sk-|ek_|rtb_|xai-|whsec_)[A-Za-z0-9_\-+/=]{6,}"),
    re.compile(r"(?i)((?:password|api[-_]?key|secret|token)\s*[=:]\s*['\"]?)[^\s'\",&]+"),
    re.compile(r"(?i)((?:x-goog-api-key|api-key)['\"]?\s*[=:]\s*['\"]?)[^\s'\",]+"),
    re.compile(r"(?i)([?&](?:key|access_token)=)[^&\s'\",]+"),
    re.compile(r"\b(AIza)[A-Za-z0-9_\-]{20,}"),
    re.compile(r"(?i)(response=\")[0-9a-f]+"),
]


def redact_secrets(text: str) -> str:
    for pat in _PATTERNS:
        text = pat.sub(lambda m: m.group(1) + "[redacted]", text)
    return text


def log_incident(logger: logging.Logger, what: str, exc: BaseException | str) -> str:
    """Log ``what`` with the failure's details under a new correlation id; return the id,
    which is all a client or peer is told (``ref_3f9c0a1b2c4d``)."""
    ref = "ref_" + secrets.token_hex(6)
    logger.warning("%s [%s]: %s", what, ref, exc)
    return ref


#: What a plain log line's message must not carry raw: control characters (a terminal's
#: escape sequences, line and page breaks) and Unicode's line separators. A peer's bytes
#: (a SIP Call-ID, a URI) reach messages; raw, they could forge lines or rewrite a terminal.
_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029]")


def _escape_controls(text: str) -> str:
    return _CONTROLS.sub(lambda m: repr(m.group())[1:-1], text)


class _PlainFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        # the message only: a traceback appended after it keeps its lines
        record.message = _escape_controls(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        return redact_secrets(super().format(record))


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact_secrets(record.getMessage()),
        }
        call_id = getattr(record, "call_id", None)
        if call_id:
            out["call_id"] = call_id
        event = getattr(record, "security_event", None)
        if isinstance(event, dict):  # bridge.security: its fields (redacted when recorded)
            out["event"] = event
        if record.exc_info:
            out["exc"] = redact_secrets(self.formatException(record.exc_info))
        if record.stack_info:
            out["stack"] = redact_secrets(self.formatStack(record.stack_info))
        # JSON escapes what is below U+0020; the C1 controls and line separators too
        line = json.dumps(out, ensure_ascii=False)
        return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", line)


def setup_logging(level: str = "info", json_lines: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if json_lines else _PlainFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
