"""Logging set-up: plain or JSON lines, with secrets redacted from every record.

Whatever a library logs (uvicorn's access log, websockets' debug output, our own messages),
a filter on the root handler rewrites API keys (also Azure's ``api-key`` and Google's
``x-goog-api-key`` headers and ``?key=`` query parameters), ephemeral keys, Bearer tokens and SIP
digest responses to ``[redacted]`` before formatting. Base64 audio is kept out at the source
(:func:`bridge.realtime.wire.redact`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time

__all__ = ["SecretFilter", "redact_secrets", "setup_logging"]

_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[^\s'\",]+"),
    re.compile(r"(openai-insecure-api-key\.)[^\s'\",]+"),
    re.compile(r"\b(sk-|ek_|rtb_|xai-|whsec_)[A-Za-z0-9_\-+/=]{6,}"),
    re.compile(r"(?i)((?:password|api_key|secret)\s*[=:]\s*['\"]?)[^\s'\",]+"),
    re.compile(r"(?i)((?:x-goog-api-key|api-key)['\"]?\s*[=:]\s*['\"]?)[^\s'\",]+"),
    re.compile(r"(?i)([?&](?:key|access_token)=)[^&\s'\",]+"),
    re.compile(r"\b(AIza)[A-Za-z0-9_\-]{20,}"),
    re.compile(r"(?i)(response=\")[0-9a-f]+"),
]


def redact_secrets(text: str) -> str:
    for pat in _PATTERNS:
        text = pat.sub(lambda m: m.group(1) + "[redacted]", text)
    return text


class SecretFilter(logging.Filter):
    """Rewrites the formatted message of every record so no secret reaches a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact_secrets(msg)
        if clean != msg:
            record.msg = clean
            record.args = None
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        call_id = getattr(record, "call_id", None)
        if call_id:
            out["call_id"] = call_id
        if record.exc_info:
            out["exc"] = redact_secrets(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: str = "info", json_lines: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(SecretFilter())
    if json_lines:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
