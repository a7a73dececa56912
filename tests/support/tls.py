"""A throwaway certificate for 127.0.0.1, made with the openssl command (tests only)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.peers import require_peer

__all__ = ["make_cert"]


def make_cert(tmp: Path) -> tuple[Path, Path]:
    """A self-signed certificate valid for IP 127.0.0.1 for a day: ``(cert.pem, key.pem)``."""
    openssl = require_peer("openssl")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key
