"""Running baresip (a real softphone) headless against rtbridge (tests only).

baresip plays a WAV file as its microphone (module ``aufile``), plays what it hears into a
null ``aubridge`` device and auto-answers incoming calls. TESTING.md describes the setup.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import struct
import wave
from pathlib import Path

from tests.sip.sipp_support import free_port


def make_confdir(
    root: Path, sip_port: int, *, seconds: int = 20, tls: tuple[Path, Path] | None = None
) -> Path:
    """A baresip config directory: listen on 127.0.0.1:``sip_port``, PCMU only, auto-answer."""
    root.mkdir(parents=True, exist_ok=True)
    tone = root / "tone.wav"
    with wave.open(str(tone), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(
            b"".join(
                struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 8000)))
                for i in range(8000 * seconds)
            )
        )
    lines = [
        "poll_method epoll",
        f"sip_listen 127.0.0.1:{sip_port}",
        "call_local_timeout 120",
        "audio_player aubridge,null",
        f"audio_source aufile,{tone}",
        "audio_alert aubridge,null",
        "module_path /usr/lib/baresip/modules",
        "module g711.so",
        "module aufile.so",
        "module aubridge.so",
        "module menu.so",
        "module account.so",
        "module_app contact.so",
    ]
    if tls is not None:
        cert_and_key = root / "baresip.pem"
        cert_and_key.write_text(tls[0].read_text() + tls[1].read_text())
        lines += [f"sip_certificate {cert_and_key}", f"sip_cafile {tls[0]}"]
    (root / "config").write_text("\n".join(lines) + "\n")
    transport = ";transport=tls" if tls else ""
    (root / "accounts").write_text(
        f"<sip:bot@127.0.0.1{transport}>;regint=0;answermode=auto;audio_codecs=PCMU\n"
    )
    (root / "contacts").write_text("")
    return root


async def start_baresip(
    baresip: str, confdir: Path, *commands: str, seconds: int = 15
) -> asyncio.subprocess.Process:
    """Start baresip; its console output goes to ``confdir/out.log`` (a pipe nobody reads
    would fill up with status lines and stall baresip)."""
    args = [baresip, "-f", str(confdir), "-t", str(seconds)]
    for command in commands:
        args += ["-e", command]
    with (confdir / "out.log").open("wb") as log:
        return await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            cwd=confdir,
        )


async def stop_baresip(proc: asyncio.subprocess.Process, confdir: Path) -> str:
    """Once the test's call is over: give baresip up to 5 s to say its call terminated,
    then tell it to quit (it would otherwise idle until its ``-t`` ran out)."""
    log = confdir / "out.log"
    await quit_after_call(proc, log, 5)
    return log.read_text(errors="replace")


#: what baresip prints when a call ends
CALL_ENDED = b" terminated (duration:"


async def quit_after_call(proc: asyncio.subprocess.Process, log: Path, limit_s: float) -> None:
    """Wait until baresip has said (in ``log``) that its call terminated, at most ``limit_s``
    seconds, then tell it to quit (SIGTERM: it closes its recordings and exits); killed if it
    has not within 10 s."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(limit_s):
            while proc.returncode is None and CALL_ENDED not in log.read_bytes():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 0.2)
    if proc.returncode is None:
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), 10)
    except TimeoutError:
        proc.kill()
        await proc.wait()


def free_port_pair() -> int:
    """A free port whose next port is free too (baresip listens for TLS on its port + 1)."""
    for _ in range(50):
        port = free_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair")
