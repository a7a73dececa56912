"""baresip as a caller that speaks and listens: espeak-ng speech as its microphone (aufile),
everything it hears recorded to WAV (sndfile). Tests only."""

from __future__ import annotations

import asyncio
import subprocess
import wave
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from tests.sip.baresip_support import quit_after_call
from tests.support.peers import require_peer

UTTERANCE = "Hello, I would like to check the status of my order, number four two seven."


def speech_wav(
    root: Path, *, rate: int = 8000, tail_s: float = 6.0
) -> tuple[Path, NDArray[np.int16]]:
    """espeak-ng speech at ``rate`` Hz mono, followed by ``tail_s`` of silence (time for the
    parrot to answer before baresip hangs up at the end of its file)."""
    espeak, sox = require_peer("espeak-ng"), require_peer("sox")
    raw = root / "speech-raw.wav"
    out = root / "speech.wav"
    subprocess.run([espeak, "-s", "150", "-w", str(raw), UTTERANCE], check=True)
    subprocess.run(
        [
            sox,
            str(raw),
            "-r",
            str(rate),
            "-c",
            "1",
            "-b",
            "16",
            str(out),
            "pad",
            "0.3",
            str(tail_s),
        ],
        check=True,
    )
    return out, read_wav(out)


def read_wav(path: Path) -> NDArray[np.int16]:
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        if w.getnchannels() == 2:
            data = data[::2]
        return data


def make_confdir(
    root: Path,
    source: Path,
    codec: str = "PCMU",
    *,
    port: int = 0,
    tls: tuple[Path, Path] | None = None,
    mediaenc: str | None = None,
) -> Path:
    """A baresip that speaks ``source`` and records what it hears, listening on ``port`` (it
    answers calls at once); with ``tls`` (cert, key) it has a certificate and trusts it, with
    ``mediaenc`` (``srtp-mand``...) its account encrypts media by SDES."""
    confdir = root / "baresip"
    (confdir / "rec").mkdir(parents=True, exist_ok=True)
    extra: list[str] = []
    if tls is not None:
        pem = confdir / "baresip.pem"
        pem.write_text(tls[0].read_text() + tls[1].read_text())
        extra += [f"sip_certificate {pem}", f"sip_cafile {tls[0]}"]
    if mediaenc is not None:
        extra.append("module srtp.so")
    (confdir / "config").write_text(
        "\n".join(
            [
                "poll_method epoll",
                f"sip_listen 127.0.0.1:{port}",
                *extra,
                "audio_player aubridge,null",
                f"audio_source aufile,{source}",
                "audio_alert aubridge,null",
                "module_path /usr/lib/baresip/modules",
                "module g711.so",
                "module aufile.so",
                "module aubridge.so",
                "module sndfile.so",
                f"snd_path {confdir / 'rec'}",
                "module menu.so",
                "module account.so",
                "module_app contact.so",
            ]
        )
        + "\n"
    )
    params = f";regint=0;answermode=auto;audio_codecs={codec}"
    if mediaenc is not None:
        params += f";mediaenc={mediaenc}"
    transport = ";transport=tls" if tls is not None else ""
    (confdir / "accounts").write_text(f"<sip:caller@127.0.0.1{transport}>{params}\n")
    (confdir / "contacts").write_text("")
    return confdir


async def call_with_baresip(confdir: Path, target: str | None, seconds: int = 25) -> str:
    """Dial ``target`` (None: wait to be called); baresip hangs up when its WAV ends, and is
    told to quit (SIGTERM) once it says the call terminated, at the latest after ``seconds``.
    Returns baresip's console log."""
    baresip = require_peer("baresip")
    log_path = confdir / "out.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            baresip,
            "-f",
            str(confdir),
            "-t",
            str(seconds),
            *(("-e", f"/dial {target}") if target else ()),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            cwd=confdir,
        )
        await quit_after_call(proc, log_path, seconds + 15)
    return log_path.read_text(errors="replace")


def heard(confdir: Path) -> NDArray[np.int16]:
    """What baresip heard (sndfile's decoded-stream dump)."""
    files = sorted((confdir / "rec").glob("*dec*.wav"))
    assert files, f"sndfile wrote nothing: {list((confdir / 'rec').iterdir())}"
    return read_wav(files[0])
