"""SRTP (SDES, RFC 4568 / RFC 3711) with real softphones: baresip with ``mediaenc=srtp-mand``
over TLS calls rtbridge and is called by it, and hears the parrot repeat its words (the
correlation of the parrot tests in test_baresip_calls.py); linphonec with mandatory SRTP calls
rtbridge and its media authenticates. The keys never reach the call's records."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from sip.sdes import SUITES
from tests.calls.baresip_calls import call_with_baresip, heard, make_confdir, speech_wav
from tests.calls.conftest import Stack
from tests.sip.baresip_support import free_port_pair
from tests.sip.sipp_support import free_port
from tests.sip.test_linphone import start_linphonec, stop_linphonec
from tests.support.audio import best_correlation
from tests.support.tls import make_cert

pytestmark = pytest.mark.peer("baresip")


@pytest.fixture
def stack_options(tmp_path: Path) -> dict[str, Any]:
    """TLS signalling, and a trunk to a baresip on a free port that requires SRTP."""
    cert, key = make_cert(tmp_path)
    return {
        "sip": {
            "tls_port": 0,
            "tls_cert": str(cert),
            "tls_key": str(key),
            "tls_ca_file": str(cert),
            "trunks": [
                {
                    "name": "softphone",
                    "host": "127.0.0.1",
                    "port": free_port_pair() + 1,  # baresip's TLS port: its SIP port + 1
                    "transport": "tls",
                    "media_encryption": "required",
                }
            ],
        },
        "profile": {"dial_targets": ["sip:*@127.0.0.1:*"]},
    }


def _correlation(speech: NDArray[np.int16], recorded: NDArray[np.int16]) -> float:
    voiced = speech[int(0.3 * 8000) : int(0.3 * 8000) + len(speech) - int(6.3 * 8000)]
    return best_correlation(voiced, recorded)


def _srtp_suite(stack: Stack, call_id: str) -> object:
    events = stack.store.events(call_id)
    assert "inline:" not in json.dumps([e.data for e in events])  # no key in the records
    answered = [e for e in events if e.kind == "answered"]
    return answered[0].data.get("srtp") if answered else None


async def test_baresip_calls_over_tls_with_mandatory_srtp_and_hears_the_parrot(
    stack: Stack, tmp_path: Path
) -> None:
    source, speech = speech_wav(tmp_path)
    certs = (tmp_path / "cert.pem", tmp_path / "key.pem")
    confdir = make_confdir(tmp_path, source, tls=certs, mediaenc="srtp-mand")
    target = f"sip:bot@127.0.0.1:{stack.sip.ports['tls']};transport=tls"
    log = await call_with_baresip(confdir, target)
    recorded = heard(confdir)
    await stack.manager.wait_idle()
    stack.store.flush()
    (record,) = stack.store.list_calls()
    assert _srtp_suite(stack, record.call_id) in SUITES, log[-2000:]
    assert record.end_reason == "remote-bye"
    # every packet but a stray one or two (baresip's last RTCP as it hangs up) authenticated
    assert record.stats["srtp_failed"] <= 2 and record.stats["rtp_in"] > 100, record.stats
    score = _correlation(speech, recorded)
    print(f"parrot correlation (SRTP, baresip calls): {score:.3f}")
    assert score > 0.8, (score, log[-2000:])


async def test_rtbridge_calls_baresip_over_tls_with_mandatory_srtp_and_it_hears_the_parrot(
    stack: Stack, tmp_path: Path
) -> None:
    source, speech = speech_wav(tmp_path)
    port = stack.sip.settings.trunk("softphone").port
    certs = (tmp_path / "cert.pem", tmp_path / "key.pem")
    confdir = make_confdir(tmp_path, source, port=port - 1, tls=certs, mediaenc="srtp-mand")
    phone = asyncio.create_task(call_with_baresip(confdir, None, seconds=25))
    await asyncio.sleep(1.0)  # baresip binds its port
    call_id = await stack.sip_leg.originate(
        f"sip:caller@127.0.0.1:{port}",
        trunk="softphone",  # the trunk says TLS
    )
    result = await asyncio.wait_for(stack.sip_leg.outcomes[call_id], 20)
    assert result.outcome == "answered"
    log = await phone
    recorded = heard(confdir)
    await stack.manager.wait_idle()
    stack.store.flush()
    assert _srtp_suite(stack, call_id) in SUITES, log[-2000:]
    score = _correlation(speech, recorded)
    print(f"parrot correlation (SRTP, rtbridge calls): {score:.3f}")
    assert score > 0.8, (score, log[-2000:])


@pytest.mark.peer("linphonec")
async def test_linphonec_with_mandatory_srtp_calls_rtbridge(stack: Stack, tmp_path: Path) -> None:
    source, _speech = speech_wav(tmp_path)
    proc = await start_linphonec(tmp_path, free_port(), auto_answer=False, srtp=True)
    try:
        assert proc.stdin is not None
        proc.stdin.write(f"play {source}\n".encode())  # what linphonec sends, in files mode
        proc.stdin.write(f"call sip:bot@127.0.0.1:{stack.sip_port}\n".encode())
        await proc.stdin.drain()
        async with asyncio.timeout(15):
            while not stack.manager.calls:
                await asyncio.sleep(0.05)
        await asyncio.sleep(2.0)  # linphonec speaks for a while
        (call,) = stack.manager.calls.values()
        stats = call.stats()
        # linphonec's speech arrives, authenticated, and reaches the agent (a handful of
        # packets around the start of its media do not authenticate and are dropped)
        assert stats["frames_to_agent"] > 50 and stats["srtp_failed"] < 10, json.dumps(stats)
    finally:
        out = await stop_linphonec(proc, tmp_path)
    await stack.manager.wait_idle()
    stack.store.flush()
    (record,) = stack.store.list_calls()
    assert _srtp_suite(stack, record.call_id) in SUITES, out[-2000:]
