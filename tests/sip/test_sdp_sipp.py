"""Our offer against a real callee: make_offer -> `sipp -sn uas -rtp_echo` -> parse_answer.

The driver places the call with the SDP ``make_offer`` built; ``parse_answer`` reads SIPp's
answer (PCMU only, RFC 3264 section 7) into the codec and the RTP address to use; RTP sent
there in that payload type comes back from SIPp's echo, so the address and PT were right.
"""

from __future__ import annotations

import asyncio
import struct
import subprocess
from pathlib import Path

import pytest

from sip.driver import DefaultHandler, start_sip
from sip.events import CallAnswered, CallEnded
from sip.offer_answer import make_offer, parse_answer
from sip.sdp import Direction, SessionDescription
from sip.settings import SipSettings
from tests.sip.sipp_support import finish_sipp, free_port, unattended
from tests.support.peers import require_peer

pytestmark = pytest.mark.peer("sipp")


class Echoes(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.packets.append(data)


def rtp(seq: int, payload_type: int) -> bytes:
    header = struct.pack("!BBHII", 0x80, payload_type, seq, seq * 160, 0x1234ABCD)
    return header + bytes([0xFF]) * 160  # 20 ms of u-law silence


async def test_offer_to_sipp_uas_and_rtp_echo(tmp_path: Path) -> None:
    sipp = require_peer("sipp")
    sipp_port, media_port = free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        sipp,
        "-sn",
        "uas",
        "-rtp_echo",
        "-mp",
        str(media_port),
        "-p",
        str(sipp_port),
        "-m",
        "1",
        *unattended(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    loop = asyncio.get_running_loop()
    transport, echoes = await loop.create_datagram_endpoint(Echoes, local_addr=("127.0.0.1", 0))
    rtp_port = int(transport.get_extra_info("sockname")[1])
    endpoint = await start_sip(
        SipSettings(bind_host="127.0.0.1", udp_port=0, tcp_port=None), DefaultHandler()
    )
    try:
        await asyncio.sleep(0.5)  # SIPp binds its port (the INVITE would be retransmitted anyway)
        offer = make_offer("127.0.0.1", rtp_port, ["PCMA", "PCMU"])
        call = await endpoint.invite(f"sip:echo@127.0.0.1:{sipp_port}", bytes(offer))
        async with asyncio.timeout(20):
            answered = None
            while answered is None:
                event = await call.next_event()
                assert not isinstance(event, CallEnded), event
                if isinstance(event, CallAnswered):
                    answered = event
        media = parse_answer(offer, SessionDescription.parse(answered.sdp))
        assert (media.codec.name, media.codec.payload_type) == ("PCMU", 0)
        assert media.direction is Direction.SENDRECV and media.telephone_event is None
        assert media.remote is not None and media.remote.port == media_port
        for seq in range(25):
            transport.sendto(
                rtp(seq, media.codec.payload_type), (media.remote.address, media.remote.port)
            )
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        call.hangup()
        await asyncio.wait_for(call.wait_ended(), 10)
    finally:
        transport.close()
        await endpoint.close()
    rc, output = await finish_sipp(proc, tmp_path)
    assert rc == 0, output
    assert len(echoes.packets) >= 20, len(echoes.packets)
    assert {p[1] & 0x7F for p in echoes.packets} == {0}
    assert {struct.unpack("!H", p[2:4])[0] for p in echoes.packets} <= set(range(25))
