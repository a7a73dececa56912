"""Issue 14's acceptance with SIPp against the whole stack (SIP leg, calls, the local agent):
delayed offer over UDP and TCP, session timers with SIPp and with rtbridge refreshing (and the
BYE when SIPp stops answering), UPDATE refresh, a re-INVITE moving the media to a new port,
a re-INVITE changing the codec to A-law,
183 with SDP before 200 (the greeting; ringback until the agent is ready, over RTP and SRTP,
stopped by a CANCEL or a 503), OPTIONS keepalive with a dead trunk marked down, the outbound
ring timeout, rtbridge holding and resuming the caller (and a hold the caller refuses).

Session-timer intervals are seconds here, not minutes: the test lowers the core's policy
(RFC 4028's 90 s floor is for the wire, the timer logic is the same at any scale).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from bridge.calls.end import EndReason
from bridge.calls.live import LiveCall
from bridge.control.actions import live_view
from bridge.control.metrics import Metrics
from bridge.errors import CallNotAllowed
from media import g711
from media.resample import Resampler
from media.rtp import RtpPacket, seq_diff
from media.srtp import SrtpSession
from sip.keepalive import TrunkState
from sip.sdes import CryptoAttribute, new_key
from sip.session_timer import Refresher, TimerPolicy
from tests.calls.conftest import Stack, sipp_caller
from tests.sip.sipp_support import free_port, run_sipp
from tests.support.audio import best_correlation, loud_frames, voiced_signal
from tests.support.peers import require_peer

pytestmark = pytest.mark.peer("sipp")

SCENARIOS = Path(__file__).parent / "scenarios"

_FROM = "From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]"
_SDP = """v=0
      o=user1 53655765 {version} IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio {port} RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15"""


def _request(
    method: str, cseq: int, *, dialog: bool, headers: str = "", sdp: str = "", retrans: bool = True
) -> str:
    to = "<sip:bot@[remote_ip]:[remote_port]>" + ("[peer_tag_param]" if dialog else "")
    body_headers = "Content-Type: application/sdp\n      " if sdp else ""
    extra = f"{headers}\n      " if headers else ""
    retransmit = ' retrans="500"' if retrans and method != "ACK" else ""
    return f"""  <send{retransmit}>
    <![CDATA[
      {method} sip:bot@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      {_FROM}
      To: {to}
      Call-ID: [call_id]
      CSeq: {cseq} {method}
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE
      {extra}{body_headers}Content-Length: [len]

      {sdp}
    ]]>
  </send>
"""


def _response(status: str, headers: str = "", *, sdp: str = "", retrans: bool = False) -> str:
    """SIPp's answer to the request it just took (``sdp``: its body)."""
    extra = f"{headers}\n      " if headers else ""
    body = f"Content-Type: application/sdp\n      Content-Length: [len]\n\n      {sdp}"
    return f"""  <send{' retrans="500"' if retrans else ""}>
    <![CDATA[
      SIP/2.0 {status}
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      {extra}{body if sdp else "Content-Length: 0"}

    ]]>
  </send>
"""


def _ok(headers: str = "") -> str:
    return _response("200 OK", headers)


def _scenario(name: str, *steps: str) -> str:
    return (
        '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<!DOCTYPE scenario SYSTEM "sipp.dtd">\n'
        f'<scenario name="{name}">\n' + "".join(steps) + "</scenario>\n"
    )


_SETUP = """  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
"""


def _invite(headers: str = "", *, sdp: bool = True) -> str:
    body = _SDP.format(version=1, port="[media_port]") if sdp else ""
    return _request("INVITE", 1, dialog=False, headers=headers, sdp=body) + _SETUP


def _bye(cseq: int) -> str:
    return _request("BYE", cseq, dialog=True) + '  <recv response="200"/>\n'


def _pause(ms: int) -> str:
    return f'  <pause milliseconds="{ms}"/>\n'


def _reoffer(name: str, sdp: str, status: int, *, pause_ms: int, before_ms: int = 0) -> str:
    """A call whose caller re-offers ``sdp`` in a re-INVITE (answered ``status``), then talks
    ``pause_ms`` and hangs up."""
    return _scenario(
        name,
        _invite(),
        _request("ACK", 1, dialog=True, retrans=False),
        _pause(before_ms) if before_ms else "",
        _request("INVITE", 2, dialog=True, sdp=sdp)
        + f'  <recv response="100" optional="true"/>\n  <recv response="{status}"/>\n'
        + _request("ACK", 2, dialog=True, retrans=False),
        _pause(pause_ms),
        _bye(3),
    )


async def _caller(stack: Stack, tmp_path: Path, xml: str, *extra: str, tcp: bool = False) -> None:
    """One SIPp call running ``xml`` against the stack, over UDP or TCP (over TCP nothing is
    retransmitted: an unanswered request is sent once)."""
    port = stack.sip.ports["tcp" if tcp else "udp"]
    transport = ("-t", "t1") if tcp else ()
    res = await sipp_caller(port, tmp_path, xml, extra=(*transport, *extra), timeout=90)
    assert res.returncode == 0, res.summary()


async def _settled(stack: Stack) -> None:
    async with asyncio.timeout(20):
        await stack.manager.wait_idle()
    stack.store.flush()


async def _agent_hears_its_greeting(stack: Stack) -> None:
    """Until the agent heard a quarter second back: its greeting went out as RTP to where
    the call's SDP pointed and SIPp (``-rtp_echo``) returned it."""
    async with asyncio.timeout(30):
        while not stack.agent.sessions or stack.agent.sessions[0].decoded_samples < 6000:
            await asyncio.sleep(0.05)


def _short_timers(stack: Stack, expires: int = 4) -> None:
    stack.sip.core.config.session_timer = TimerPolicy(
        session_expires=expires, min_se=2, refresher=Refresher.UAC
    )


_GREETING = {"profile": {"greeting": "Hello"}, "sip": {"tcp_port": 0}}


@pytest.mark.parametrize(
    "stack_options",
    [_GREETING, {**_GREETING, "profile": {"greeting": "Hello", "early_media": "ringback"}}],
    ids=["greeting", "ringback"],  # no answer to send before the 200: ringback is a plain 180
)
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_delayed_offer_our_offer_in_the_200_the_answer_in_the_ack(
    stack: Stack, tmp_path: Path, tcp: bool
) -> None:
    ack = _request(
        "ACK", 1, dialog=True, sdp=_SDP.format(version=1, port="[media_port]"), retrans=False
    )
    xml = _scenario(
        "delayed offer", _invite(sdp=False), ack, _pause(2500), _bye(2)
    )  # SIPp echoes RTP on [media_port]: the agent's greeting comes back to it
    caller = asyncio.create_task(_caller(stack, tmp_path, xml, "-rtp_echo", tcp=tcp))
    await _agent_hears_its_greeting(stack)
    await caller
    await _settled(stack)
    (record,) = stack.store.list_calls()
    assert (record.codec, record.end_reason) == ("PCMU", "remote-bye")
    assert stack.manager.ports.in_use == 0


async def test_sipp_refreshes_by_update_and_reinvite_and_the_call_lives_past_its_interval(
    stack: Stack, tmp_path: Path
) -> None:
    _short_timers(stack)
    se = "Supported: timer\n      Session-Expires: 4;refresher=uac"
    xml = _scenario(
        "sipp refreshes",
        _invite(se),
        _request("ACK", 1, dialog=True, retrans=False),
        _pause(2000),
        _request("UPDATE", 2, dialog=True, headers=se) + '  <recv response="200"/>\n',
        _pause(2000),
        _request(
            "INVITE", 3, dialog=True, headers=se, sdp=_SDP.format(version=2, port="[media_port]")
        )
        + '  <recv response="100" optional="true"/>\n  <recv response="200"/>\n'
        + _request("ACK", 3, dialog=True, retrans=False),
        _pause(2000),
        _bye(4),
    )
    # 6 s: without the refreshes rtbridge would have ended the call after 4 - 4/3 s
    await _caller(stack, tmp_path, xml)
    await _settled(stack)
    (record,) = stack.store.list_calls()
    assert record.end_reason == "remote-bye"


@pytest.mark.parametrize("stack_options", [{"sip": {"tcp_port": 0}}])
async def test_rtbridge_refreshes_and_ends_the_call_with_bye_when_sipp_stops_answering(
    stack: Stack, tmp_path: Path
) -> None:
    _short_timers(stack)
    se = "Supported: timer\n      Session-Expires: 4;refresher=uas"
    # in its UPDATE rtbridge is the UAC and asks to go on refreshing: refresher=uac
    refresh_ok = '  <recv request="UPDATE"/>\n' + _ok(
        "Require: timer\n      Session-Expires: 4;refresher=uac"
    )
    xml = _scenario(
        "rtbridge refreshes",
        _invite(se),
        _request("ACK", 1, dialog=True, retrans=False),
        refresh_ok,
        refresh_ok,
        '  <recv request="UPDATE"/>\n',  # SIPp goes silent: no answer from now on
        '  <recv request="BYE" timeout="20000"/>\n' + _ok(),
    )
    await _caller(stack, tmp_path, xml, tcp=True)
    await _settled(stack)
    (record,) = stack.store.list_calls()
    assert record.end_reason == "session-expired"


@pytest.mark.parametrize("stack_options", [_GREETING])
async def test_a_reinvite_moves_the_agents_audio_to_the_new_port(
    stack: Stack, tmp_path: Path
) -> None:
    new = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    new.bind(("127.0.0.1", 0))
    new.setblocking(False)
    new_port = new.getsockname()[1]
    moved = _SDP.format(version=2, port=new_port)
    xml = _reoffer("media moves", moved, 200, pause_ms=3000, before_ms=200)
    caller = asyncio.create_task(_caller(stack, tmp_path, xml))
    loop = asyncio.get_running_loop()
    packets: list[RtpPacket] = []
    try:
        async with asyncio.timeout(20):
            while len(packets) < 25:
                data = await loop.sock_recv(new, 2048)
                packets.append(RtpPacket.parse(data))
    finally:
        new.close()
    await caller
    await _settled(stack)
    assert {p.payload_type for p in packets} == {0}  # the call's PCMU, now at the new port
    assert any(any(b != 0xFF for b in p.payload) for p in packets)  # the greeting, not silence


@pytest.mark.parametrize(
    "stack_options",
    [{"profile": {"greeting": "Hello", "early_media": "greeting", "early_media_s": 1}}],
)
async def test_early_media_183_with_sdp_before_the_200(stack: Stack, tmp_path: Path) -> None:
    xml = _scenario(
        "early media",
        _request("INVITE", 1, dialog=False, sdp=_SDP.format(version=1, port="[media_port]")),
        '  <recv response="100" optional="true"/>\n  <recv response="180" optional="true"/>\n',
        '  <recv response="183">\n    <action><ereg regexp="m=audio [0-9]+ RTP/AVP 0"'
        ' search_in="body" check_it="true" assign_to="m"/></action>\n  </recv>\n'
        '  <Reference variables="m"/>\n',
        '  <recv response="200"/>\n',
        _request("ACK", 1, dialog=True, retrans=False),
        _pause(500),
        _bye(2),
    )
    await _caller(stack, tmp_path, xml)
    await _settled(stack)
    (record,) = stack.store.list_calls()
    (early,) = [e.data for e in stack.store.events(record.call_id) if e.kind == "early-media"]
    assert early == {"mode": "greeting", "seconds": 1} and record.end_reason == "remote-bye"


class HeldUpstream:
    """A TCP hop in front of the local agent that holds every connection until
    :meth:`release`: the agent takes as long to connect as the test wants."""

    def __init__(self) -> None:
        self.released = asyncio.Event()
        self.target: tuple[str, int] | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def release(self, target: tuple[str, int]) -> None:
        self.target = target
        self.released.set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)  # type: ignore[arg-type]
        try:
            await self.released.wait()
            assert self.target is not None
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except OSError:
            pass  # the target refuses: rtbridge sees its upstream fail
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


_HELD = free_port(socket.SOCK_STREAM)
_RINGBACK = {
    "profile": {
        "greeting": "Hello",
        "early_media": "ringback",
        "upstream": {"url": f"ws://127.0.0.1:{_HELD}/v1/realtime"},
    }
}
_SUITE = "AES_CM_128_HMAC_SHA1_80"


@pytest.fixture
async def held() -> AsyncIterator[HeldUpstream]:
    hop = HeldUpstream()
    server = await asyncio.start_server(hop.handle, "127.0.0.1", _HELD)
    try:
        yield hop
    finally:
        server.close()
        for task in hop.tasks:
            task.cancel()


def _media_socket() -> socket.socket:
    """The caller's RTP port, read by the test itself (SIPp only signals)."""
    media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    media.bind(("127.0.0.1", 0))
    media.setblocking(False)
    return media


def _caller_sdp(port: int, key: bytes | None) -> str:
    sdp = _SDP.format(version=1, port=port)
    if key is None:
        return sdp
    crypto = CryptoAttribute(1, _SUITE, key)
    return sdp.replace("RTP/AVP", "RTP/SAVP") + f"\n      a=crypto:{crypto}"


_RINGING = (
    '  <recv response="100" optional="true"/>\n'
    '  <recv response="183">\n    <action><ereg regexp="m=audio [0-9]+ RTP/S?AVP 0"'
    ' search_in="body" check_it="true" assign_to="m"/></action>\n  </recv>\n'
    '  <Reference variables="m"/>\n'
)


def _our_key(tmp_path: Path) -> bytes:
    """rtbridge's SRTP key, from the 183 in SIPp's message log."""
    (log,) = tmp_path.glob("*_messages.log")
    text = log.read_text(errors="replace")
    provisional = text[text.index("SIP/2.0 183") :]
    found = re.search(r"a=crypto:(\d+ \S+ inline:\S+)", provisional)
    assert found is not None
    return CryptoAttribute.parse(found.group(1)).key


def _pcmu(packets: list[RtpPacket]) -> NDArray[np.float64]:
    return np.concatenate([g711.ulaw_decode(p.payload) for p in packets]).astype(np.float64)


def _peaks_hz(pcm: NDArray[np.float64], count: int) -> list[int]:
    spectrum = np.abs(np.fft.rfft(pcm))
    return sorted(round(i * 8000 / len(pcm) / 10) * 10 for i in np.argsort(spectrum)[-count:])


@pytest.mark.parametrize("stack_options", [_RINGBACK])
@pytest.mark.parametrize("srtp", [False, True], ids=["rtp", "srtp"])
async def test_ringback_plays_after_a_183_until_the_agent_is_ready_then_the_200_and_greeting(
    held: HeldUpstream, stack: Stack, tmp_path: Path, srtp: bool
) -> None:
    media = _media_socket()
    key = new_key(_SUITE) if srtp else None
    xml = _scenario(
        "ringback",
        _request("INVITE", 1, dialog=False, sdp=_caller_sdp(media.getsockname()[1], key)),
        _RINGING,
        '  <recv response="200"/>\n',
        _request("ACK", 1, dialog=True, retrans=False),
        _pause(2500),
        _bye(2),
    )
    caller = asyncio.create_task(_caller(stack, tmp_path, xml, "-trace_msg"))
    loop = asyncio.get_running_loop()
    ringing: list[bytes] = []
    try:
        async with asyncio.timeout(20):
            while len(ringing) < 25:  # half a second of ringback ...
                ringing.append(await loop.sock_recv(media, 2048))
        assert not stack.manager.calls  # ... before the 200: the agent is still connecting
        held.release(("127.0.0.1", stack.agent.port))
        later: list[bytes] = []
        async with asyncio.timeout(60):
            while not caller.done():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.2):
                        later.append(await loop.sock_recv(media, 2048))
        await caller
    finally:
        media.close()
    await _settled(stack)
    if key is not None:  # everything that came was SRTP, with the keys of the SDP exchange
        session = SrtpSession(_SUITE, key, _our_key(tmp_path))
        ringing = [session.unprotect(d) for d in ringing]
        later = [session.unprotect(d) for d in later]
    tone = [RtpPacket.parse(d) for d in ringing]
    after = [RtpPacket.parse(d) for d in later]
    ssrc = tone[0].ssrc
    assert {(p.ssrc, p.payload_type) for p in tone} == {(ssrc, 0)}
    assert all(seq_diff(b.sequence_number, a.sequence_number) == 1 for a, b in pairwise(tone))
    assert _peaks_hz(_pcmu(tone), 2) == [440, 480]  # the US ringback, the profile's default
    # the tone stops when the call starts: the call's own stream follows, with the greeting
    call = [p for p in after if p.ssrc != ssrc]
    assert call and all(p.ssrc == ssrc for p in after[: after.index(call[0])])
    assert loud_frames(_pcmu(call).astype(np.int16), 160).any()
    (record,) = stack.store.list_calls()
    assert record.end_reason == "remote-bye"
    kinds = [e.kind for e in stack.store.events(record.call_id)]
    assert kinds.index("early-media") < kinds.index("answered")
    (early,) = [e.data for e in stack.store.events(record.call_id) if e.kind == "early-media"]
    assert (early["mode"], early["tone"], early["codec"]) == ("ringback", "us", "PCMU")
    assert isinstance(early["packets"], int) and early["packets"] >= 25
    assert stack.manager.ports.in_use == 0


def _ack_final(branch: str) -> str:
    """The ACK of a non-2xx final response (RFC 3261 §17.1.1.3: the INVITE's branch)."""
    return f"""  <send>
    <![CDATA[
      ACK sip:bot@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[{branch}]
      {_FROM}
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"""


_CANCEL = f"""  <pause milliseconds="1000"/>
  <send retrans="500">
    <![CDATA[
      CANCEL sip:bot@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-4]
      {_FROM}
      To: <sip:bot@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 CANCEL
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
  <recv response="487"/>
""" + _ack_final("branch-7")


@pytest.mark.parametrize("stack_options", [_RINGBACK])
@pytest.mark.parametrize(
    ("end", "reason"), [("cancel", "cancelled"), ("503", "upstream-unavailable")]
)
async def test_ringback_stops_when_the_caller_cancels_or_the_agent_fails_and_the_call_is_freed(
    held: HeldUpstream, stack: Stack, tmp_path: Path, end: str, reason: str
) -> None:
    media = _media_socket()
    ending = _CANCEL if end == "cancel" else '  <recv response="503"/>\n' + _ack_final("branch-4")
    xml = _scenario(
        f"ringback ends: {end}",
        _request("INVITE", 1, dialog=False, sdp=_caller_sdp(media.getsockname()[1], None)),
        _RINGING,
        ending,
    )
    caller = asyncio.create_task(_caller(stack, tmp_path, xml))
    loop = asyncio.get_running_loop()
    tone: list[RtpPacket] = []
    try:
        async with asyncio.timeout(20):
            while len(tone) < 10:
                tone.append(RtpPacket.parse(await loop.sock_recv(media, 2048)))
        if end == "503":  # the agent's upstream refuses the connection
            held.release(("127.0.0.1", _dead_port()))
        await caller
        await _settled(stack)
        (record,) = stack.store.list_calls()
        assert (record.state, record.end_reason) == ("ended", reason)
        (early,) = [e.data for e in stack.store.events(record.call_id) if e.kind == "early-media"]
        assert early["mode"] == "ringback" and isinstance(early["packets"], int)
        assert early["packets"] >= len(tone)
        # freed: no ringback left on the ticker, the port pair back in the pool, and silence
        assert len(stack.manager.ticker) == 0 and stack.manager.ports.in_use == 0
        while True:
            try:
                media.recv(2048)  # what was on its way before the end
            except BlockingIOError:
                break
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await loop.sock_recv(media, 2048)
    finally:
        media.close()


_OPTIONS_UAS = _scenario("answers OPTIONS", '  <recv request="OPTIONS"/>\n' + _ok())


def _dead_port() -> int:
    return free_port(socket.SOCK_STREAM)  # nothing listens there: the connection is refused


_LIVE, _DEAD = free_port(), _dead_port()


@pytest.mark.parametrize(
    "stack_options",
    [
        {
            "sip": {
                "trunks": [
                    {"name": "live", "host": "127.0.0.1", "port": _LIVE, "options_interval_s": 1},
                    {
                        "name": "dead",
                        "host": "127.0.0.1",
                        "port": _DEAD,
                        "transport": "tcp",
                        "options_interval_s": 1,
                    },
                ]
            },
            "profile": {"dial_targets": ["sip:*@127.0.0.1:*"]},
        }
    ],
)
async def test_options_keepalive_marks_a_live_trunk_up_and_a_dead_one_down(
    stack: Stack, tmp_path: Path
) -> None:
    path = tmp_path / "options.xml"
    path.write_text(_OPTIONS_UAS)
    uas = asyncio.create_task(
        run_sipp(
            require_peer("sipp"),
            "-sf",
            str(path),
            "-m",
            "3",
            "-p",
            str(_LIVE),
            cwd=tmp_path,
            timeout=60,
        )
    )
    health = stack.sip.trunk_health
    async with asyncio.timeout(20):
        while health["live"].state is not TrunkState.UP or health["dead"].up:
            await asyncio.sleep(0.05)
    scrape = Metrics(stack.manager, trunks=lambda: health).render().decode()
    assert 'rtbridge_sip_trunk_up{trunk="live"} 1.0' in scrape
    assert 'rtbridge_sip_trunk_up{trunk="dead"} 0.0' in scrape
    with pytest.raises(CallNotAllowed, match="down"):
        await stack.sip_leg.originate(f"sip:x@127.0.0.1:{_DEAD}", trunk="dead")
    res = await uas
    assert res.returncode == 0, res.summary()  # SIPp got and answered three OPTIONS


@pytest.mark.parametrize(
    "stack_options",
    [
        {
            "sip": {
                "trunks": [
                    {"name": "slow", "host": "127.0.0.1", "port": _LIVE + 2, "ring_timeout_s": 2}
                ]
            },
            "profile": {"dial_targets": ["sip:*@127.0.0.1:*"]},
        },
        {  # dialled to a URI, no trunk: it rang for ever, holding its ports and set-up slot
            "sip": {"ring_timeout_s": 2},
            "profile": {"dial_targets": ["sip:*@127.0.0.1:*"]},
        },
    ],
    ids=["trunk", "direct"],
)
async def test_an_outbound_call_ringing_past_its_ring_timeout_is_cancelled_as_no_answer(
    stack: Stack, tmp_path: Path
) -> None:
    callee = asyncio.create_task(
        run_sipp(
            require_peer("sipp"),
            "-sf",
            str(SCENARIOS / "uas_ring_until_cancel.xml"),
            "-m",
            "1",
            "-p",
            str(_LIVE + 2),
            cwd=tmp_path,
            timeout=60,
        )
    )
    await asyncio.sleep(0.5)  # let SIPp bind
    trunk = "slow" if stack.sip.settings.trunks else None
    call_id = await stack.sip_leg.originate(f"sip:ring@127.0.0.1:{_LIVE + 2}", trunk=trunk)
    result = await asyncio.wait_for(stack.sip_leg.outcomes[call_id], 20)
    assert (result.outcome, result.sip_status) == ("no-answer", 487)
    res = await callee
    assert res.returncode == 0, res.summary()  # SIPp got our CANCEL
    await _settled(stack)
    record = stack.store.get_call(call_id)
    assert record is not None and record.end_reason == "no-answer"


@pytest.mark.parametrize(
    "stack_options",
    [
        {
            "profile": {"greeting": "Hello"},
            "sip": {"bind_host": "::1", "tcp_port": 0},
            "calls": {"rtp_host": "::1", "rtp_advertise": "::1"},
        }
    ],
)
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_a_call_over_ipv6_sip_and_rtp(stack: Stack, tmp_path: Path, tcp: bool) -> None:
    xml = _scenario(
        "ipv6", _invite(), _request("ACK", 1, dialog=True, retrans=False), _pause(2500), _bye(2)
    )
    port = stack.sip.ports["tcp" if tcp else "udp"]
    transport = ("-t", "t1") if tcp else ()
    caller = asyncio.create_task(
        sipp_caller(
            port,
            tmp_path,
            xml,
            extra=(*transport, "-rtp_echo"),
            host="[::1]",
            local_ip="::1",
        )
    )
    await _agent_hears_its_greeting(stack)  # sent over IPv6, echoed back by SIPp
    res = await caller
    assert res.returncode == 0, res.summary()
    await _settled(stack)
    (record,) = stack.store.list_calls()
    assert record.end_reason == "remote-bye"
    assert record.extra["source"].startswith("::1:")


@pytest.mark.parametrize(
    "stack_options",
    [
        {
            "profile": {
                "instructions": "Caller {asserted_identity}, dialled for {diversion}, "
                "account {x_account_id}.",
                "sip_headers": ["X-Account-Id"],
            }
        }
    ],
)
async def test_inbound_identity_headers_reach_the_agents_instructions(
    stack: Stack, tmp_path: Path
) -> None:
    headers = (
        "P-Asserted-Identity: <sip:+14155550123@[local_ip]>\n"
        "      Diversion: <sip:+15550199@[local_ip]>;reason=unconditional\n"
        "      X-Account-Id: A-42"
    )
    xml = _scenario(
        "identity",
        _invite(headers),
        _request("ACK", 1, dialog=True, retrans=False),
        _pause(500),
        _bye(2),
    )
    await _caller(stack, tmp_path, xml)
    await _settled(stack)
    (session,) = stack.agent.sessions
    assert session.instructions == "Caller +14155550123, dialled for +15550199, account A-42."
    (record,) = stack.store.list_calls()
    assert record.extra["identity"]["x_account_id"] == "A-42"


@pytest.mark.parametrize("stack_options", [_GREETING])
async def test_a_reinvite_to_pcma_and_a_new_port_is_followed_both_ways(
    stack: Stack, tmp_path: Path
) -> None:
    """The carrier moves the call to A-law at another port: the agent (a u-law session) goes on
    speaking there in A-law on the same stream, and the caller's A-law reaches it."""
    new = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    new.bind(("127.0.0.1", 0))
    new.setblocking(False)
    pcma = (
        _SDP.format(version=2, port=new.getsockname()[1])
        .replace("RTP/AVP 0 101", "RTP/AVP 8 101")
        .replace("rtpmap:0 PCMU", "rtpmap:8 PCMA")
    )
    xml = _reoffer("codec change", pcma, 200, pause_ms=4000, before_ms=200)
    caller = asyncio.create_task(_caller(stack, tmp_path, xml))
    loop = asyncio.get_running_loop()
    packets: list[RtpPacket] = []
    voice = voiced_signal(1.0, rate=8000)
    try:
        async with asyncio.timeout(20):
            while len(packets) < 25:
                packets.append(RtpPacket.parse(await loop.sock_recv(new, 2048)))
        (call,) = stack.manager.calls.values()
        rtbridge = ("127.0.0.1", call.endpoint.port)  # type: ignore[attr-defined]
        session = stack.agent.sessions[0]
        heard_before = session.decoded_samples
        for n in range(50):  # one second of the caller, as A-law from the new address
            payload = g711.alaw_encode(voice[n * 160 : (n + 1) * 160])
            new.sendto(bytes(RtpPacket(8, 100 + n, n * 160, 0x5EED, payload)), rtbridge)
            await asyncio.sleep(0.02)
        async with asyncio.timeout(10):
            while session.decoded_samples - heard_before < 20000:
                await asyncio.sleep(0.05)
        heard = session.decoded_pcm[heard_before:]
    finally:
        new.close()
    await caller
    await _settled(stack)
    assert {p.payload_type for p in packets} == {8}  # the greeting, now A-law at the new port
    assert any(abs(int(s)) > 500 for p in packets for s in g711.alaw_decode(p.payload))
    assert len({p.ssrc for p in packets}) == 1
    reference = Resampler(8000, 24000).process(g711.alaw_decode(g711.alaw_encode(voice)))
    # A-law read as if it were u-law still correlates about 0.8: only the translation passes
    assert best_correlation(reference[2000:20000].astype(np.float64), heard) > 0.99
    (record,) = stack.store.list_calls()
    assert (record.codec, record.end_reason) == ("PCMA", "remote-bye")
    changed = [e for e in stack.store.events(record.call_id) if e.kind == "media.codec_changed"]
    assert [(e.data["from"], e.data["to"]) for e in changed] == [("PCMU", "PCMA")]


@pytest.mark.parametrize("stack_options", [{"sip": {"codecs": ["PCMU", "PCMA", "G722"]}}])
async def test_a_reinvite_to_a_codec_the_ulaw_session_cannot_carry_is_refused_and_the_call_goes_on(
    stack: Stack, tmp_path: Path
) -> None:
    g722 = (
        _SDP.format(version=2, port="[media_port]")
        .replace("RTP/AVP 0 101", "RTP/AVP 9 101")
        .replace("rtpmap:0 PCMU/8000", "rtpmap:9 G722/8000")
    )
    xml = _reoffer("codec change refused", g722, 488, pause_ms=500)
    await _caller(stack, tmp_path, xml)
    await _settled(stack)
    (record,) = stack.store.list_calls()
    assert (record.codec, record.session_format) == ("PCMU", "g711_ulaw")
    assert record.end_reason == "remote-bye"


_OFFERING_UAS = _scenario(
    "callee offers in its 200",
    '  <recv request="INVITE">\n    <action><ereg regexp="Content-Length: *0" search_in="msg"'
    ' check_it="true" assign_to="empty"/></action>\n  </recv>\n'
    '  <Reference variables="empty"/>\n',
    """  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:callee@[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      """
    + _SDP.format(version=1, port="[media_port]")
    + """
    ]]>
  </send>
""",
    '  <recv request="ACK">\n    <action><ereg regexp="m=audio [0-9]+ RTP/AVP 0"'
    ' search_in="body" check_it="true" assign_to="answer"/></action>\n  </recv>\n'
    '  <Reference variables="answer"/>\n',
    '  <recv request="BYE" timeout="20000"/>\n' + _ok(),
)

_CALLEE = free_port()


@pytest.mark.parametrize(
    "stack_options",
    [
        {
            "profile": {"greeting": "Hello", "dial_targets": ["sip:*@127.0.0.1:*"]},
            "sip": {
                "trunks": [
                    {"name": "cube", "host": "127.0.0.1", "port": _CALLEE, "delayed_offer": True}
                ]
            },
        }
    ],
)
async def test_an_outbound_delayed_offer_answers_the_callees_offer_in_the_ack(
    stack: Stack, tmp_path: Path
) -> None:
    path = tmp_path / "offering.xml"
    path.write_text(_OFFERING_UAS)
    callee = asyncio.create_task(
        run_sipp(
            require_peer("sipp"),
            "-sf",
            str(path),
            "-m",
            "1",
            "-p",
            str(_CALLEE),
            "-mp",
            str(free_port()),
            "-rtp_echo",
            cwd=tmp_path,
            timeout=60,
        )
    )
    await asyncio.sleep(0.5)  # let SIPp bind
    call_id = await stack.sip_leg.originate(f"sip:cube@127.0.0.1:{_CALLEE}", trunk="cube")
    result = await asyncio.wait_for(stack.sip_leg.outcomes[call_id], 20)
    assert result.outcome == "answered"
    await _agent_hears_its_greeting(stack)
    assert stack.manager.hangup(call_id)
    res = await callee
    assert res.returncode == 0, res.summary()  # no SDP in the INVITE, our answer in the ACK
    await _settled(stack)
    record = stack.store.get_call(call_id)
    assert record is not None and record.codec == "PCMU"


# -- hold by us (issue 14 point 8): the API holds the caller with a sendonly re-INVITE ---------


def _answer_reinvite(check: str, status: str = "200 OK", sdp: str = "") -> str:
    """SIPp takes rtbridge's re-INVITE (its SDP must match ``check``), answers ``status`` with
    ``sdp`` and takes the ACK."""
    var = re.sub(r"\W", "_", check)
    return f"""  <recv request="INVITE" timeout="30000">
    <action><ereg regexp="{check}" search_in="body" check_it="true" assign_to="{var}"/></action>
  </recv>
  <Reference variables="{var}"/>
{_response(status, sdp=sdp, retrans=True)}  <recv request="ACK"/>
"""


_HANGS_UP = '  <recv request="BYE" timeout="30000"/>\n' + _ok()


async def _answered(stack: Stack) -> LiveCall:
    async with asyncio.timeout(20):
        while not stack.manager.calls:
            await asyncio.sleep(0.02)
        (call,) = stack.manager.calls.values()
        assert await call.sip.confirmed(10)  # type: ignore[attr-defined]
    return call


async def _packets(media: socket.socket, count: int, *, loud: bool = False) -> list[RtpPacket]:
    """The next ``count`` RTP packets at the caller (with ``loud``: until one of them is the
    agent's voice, not silence)."""
    loop = asyncio.get_running_loop()
    got: list[RtpPacket] = []
    async with asyncio.timeout(30):
        while len(got) < count or (
            loud and not loud_frames(_pcmu(got).astype(np.int16), 160).any()
        ):
            got.append(RtpPacket.parse(await loop.sock_recv(media, 2048)))
    return got


async def _silent(media: socket.socket, seconds: float) -> None:
    """Nothing reaches the caller for ``seconds`` (after what was already on its way)."""
    await asyncio.sleep(0.1)
    with contextlib.suppress(BlockingIOError):
        while True:
            media.recv(2048)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(seconds):
            await asyncio.get_running_loop().sock_recv(media, 2048)


_SPEAK = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}


async def _hang_up(
    stack: Stack, call: LiveCall, caller: asyncio.Task[None]
) -> list[tuple[str, dict[str, object]]]:
    """We end the call (SIPp expects our BYE); its hold events, from its record."""
    call.end(EndReason.API_HANGUP)
    await caller
    await _settled(stack)
    (record,) = stack.store.list_calls()
    assert record.end_reason == "api-hangup"
    holds = ("hold", "unhold", "hold.failed")
    return [(e.kind, e.data) for e in stack.store.events(record.call_id) if e.kind in holds]


@pytest.mark.parametrize("stack_options", [_GREETING])
async def test_we_hold_the_caller_by_sendonly_reinvite_and_resume_it(
    stack: Stack, tmp_path: Path
) -> None:
    """The caller hears the agent, is put on hold (SIPp checks the re-INVITE's sendonly and
    answers recvonly): no RTP reaches it, even while the agent answers; resumed (sendrecv),
    the agent's answer held back meanwhile arrives."""
    media = _media_socket()
    port = media.getsockname()[1]
    held = _SDP.format(version=2, port=port) + "\n      a=recvonly"
    xml = _scenario(
        "held by rtbridge",
        _request("INVITE", 1, dialog=False, sdp=_caller_sdp(port, None)) + _SETUP,
        _request("ACK", 1, dialog=True, retrans=False),
        _answer_reinvite("a=sendonly", sdp=held),
        _answer_reinvite("a=sendrecv", sdp=_SDP.format(version=3, port=port)),
        _HANGS_UP,
    )
    caller = asyncio.create_task(_caller(stack, tmp_path, xml))
    try:
        call = await _answered(stack)
        await _packets(media, 10)  # the agent's audio flows
        call.hold(True)
        assert (call.info.on_hold, call.info.held_by) == (True, "us")
        view = live_view(call, 0.0)  # what GET /v1/calls/{id} answers
        assert (view["state"], view["held_by"]) == ("on_hold", "us")
        call.hold(True)  # idempotent: no second re-INVITE (SIPp would refuse its sendonly)
        call.say(_SPEAK, respond=True)  # the agent answers while the caller is held
        await _silent(media, 1.5)
        call.hold(False)
        assert (call.info.on_hold, call.info.held_by) == (False, None)
        await _packets(media, 1, loud=True)  # the held-back answer plays now
        events = await _hang_up(stack, call, caller)
    finally:
        media.close()
    assert events == [("hold", {"by": "us"}), ("unhold", {"by": "us"})]


@pytest.mark.parametrize("stack_options", [_GREETING])
async def test_a_hold_the_caller_refuses_leaves_the_call_as_it_was(
    stack: Stack, tmp_path: Path
) -> None:
    media = _media_socket()
    port = media.getsockname()[1]
    xml = _scenario(
        "refuses the hold",
        _request("INVITE", 1, dialog=False, sdp=_caller_sdp(port, None)) + _SETUP,
        _request("ACK", 1, dialog=True, retrans=False),
        _answer_reinvite("a=sendonly", "488 Not Acceptable Here"),
        _HANGS_UP,
    )
    caller = asyncio.create_task(_caller(stack, tmp_path, xml))
    try:
        call = await _answered(stack)
        call.hold(True)
        async with asyncio.timeout(10):
            while call.info.on_hold:
                await asyncio.sleep(0.02)
        assert call.info.held_by is None
        await _packets(media, 10)  # the agent's audio flows again
        events = await _hang_up(stack, call, caller)
    finally:
        media.close()
    assert events == [
        ("hold", {"by": "us"}),
        ("hold.failed", {"on": True, "status": 488, "reason": "Not Acceptable Here"}),
        ("unhold", {"by": "us"}),
    ]


@pytest.mark.parametrize("stack_options", [_GREETING])
async def test_our_resume_keeps_the_call_held_while_the_caller_still_holds_it(
    stack: Stack, tmp_path: Path
) -> None:
    """The caller holds first (sendonly), we hold too (it answers inactive), we resume (it
    answers sendonly: it still holds): the call stays on hold, held by the peer."""
    media = _media_socket()
    port = media.getsockname()[1]
    sdp = _SDP.format(version="{version}", port=port) + "\n      a={direction}"
    xml = _scenario(
        "held both ways",
        _request("INVITE", 1, dialog=False, sdp=_caller_sdp(port, None)) + _SETUP,
        _request("ACK", 1, dialog=True, retrans=False),
        _request("INVITE", 2, dialog=True, sdp=sdp.format(version=2, direction="sendonly"))
        + '  <recv response="100" optional="true"/>\n  <recv response="200"/>\n'
        + _request("ACK", 2, dialog=True, retrans=False),
        _answer_reinvite("a=sendonly", sdp=sdp.format(version=3, direction="inactive")),
        _answer_reinvite("a=sendrecv", sdp=sdp.format(version=4, direction="sendonly")),
        _HANGS_UP,
    )
    caller = asyncio.create_task(_caller(stack, tmp_path, xml))
    try:
        call = await _answered(stack)
        async with asyncio.timeout(20):
            while call.info.held_by != "peer":
                await asyncio.sleep(0.02)
        call.hold(True)
        assert (call.info.on_hold, call.info.held_by) == (True, "both")
        await asyncio.sleep(0.5)  # the inactive answer (about the peer's wish: nothing)
        assert call.info.held_by == "both"
        call.hold(False)
        assert (call.info.on_hold, call.info.held_by) == (True, "peer")
        await _silent(media, 1.0)
        assert (call.info.on_hold, call.info.held_by) == (True, "peer")
        events = await _hang_up(stack, call, caller)
    finally:
        media.close()
    assert events == [
        ("hold", {"by": "peer"}),
        ("hold", {"by": "us"}),
        ("unhold", {"by": "us"}),
    ]
