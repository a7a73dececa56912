"""SIPp caller scenarios built from steps, for ``rtbridge bench sip`` and the test suite.

``uac(steps)`` returns the XML of a caller that INVITEs (PCMU + telephone-event on SIPp's RTP
stream port), ACKs, then runs the steps: stream a u-law file, pause, send SIP INFO digits,
accept a REFER (202 + a final sipfrag NOTIFY), then hang up, wait for our BYE, or either
(whichever comes first), put rtbridge on hold. ``uac_rejected(status)`` is a caller that must
be refused. ``uac(..., routed=True)``: a caller behind a proxy that record-routes (Kamailio in
front of workers): it keeps the 200's Record-Route and Contact and sends its in-dialog
requests to that Contact through that route (RFC 3261 §12.2.1.1).
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = [
    "accept_refer",
    "bye_or_hang_up",
    "hold",
    "info",
    "pause",
    "send_bye",
    "stream",
    "uac",
    "uac_rejected",
    "wait_bye",
]

_HEAD = """      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:bot@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70"""


def _invite(cseq: int, direction: str, to: str) -> str:
    """An INVITE (PCMU + telephone-event on SIPp's RTP stream port) with CSeq ``cseq``."""
    return f"""  <send retrans="500">
    <![CDATA[
      INVITE sip:bot@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: {to}
      Call-ID: [call_id]
      CSeq: {cseq} INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 {2353687636 + cseq} IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [rtpstream_audio_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a={direction}
    ]]>
  </send>
"""


def _ack(cseq: int) -> str:
    return (
        """  <send>
    <![CDATA[
      ACK sip:bot@[remote_ip]:[remote_port] SIP/2.0
"""
        + _HEAD
        + f"""
      CSeq: {cseq} ACK
      Content-Length: 0

    ]]>
  </send>
"""
    )


_INVITE = (
    _invite(1, "sendrecv", "<sip:bot@[remote_ip]:[remote_port]>")
    + """  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
"""
    + _ack(1)
)

_OK = """  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>
"""


def stream(ulaw_file: Path, loops: int = 1) -> str:
    """Start streaming a raw u-law file ``loops`` times (-1: until the call ends), paced at
    20 ms; it runs beside the later steps."""
    return f'  <nop><action><exec rtp_stream="{ulaw_file},{loops},0"/></action></nop>\n'


def hold(cseq: int) -> str:
    """Put rtbridge on hold: a re-INVITE with ``a=sendonly`` (RFC 3264 §8.4), its 200, ACK."""
    to = "<sip:bot@[remote_ip]:[remote_port]>[peer_tag_param]"
    return _invite(cseq, "sendonly", to) + '  <recv response="200"/>\n' + _ack(cseq)


def pause(ms: int) -> str:
    return f'  <pause milliseconds="{ms}"/>\n'


def info(digit: str, cseq: int) -> str:
    """A SIP INFO digit (application/dtmf-relay), answered 200."""
    body = f"Signal={digit}\r\nDuration=160\r\n"
    return f"""  <send retrans="500">
    <![CDATA[
      INFO sip:bot@[remote_ip]:[remote_port] SIP/2.0
{_HEAD}
      CSeq: {cseq} INFO
      Content-Type: application/dtmf-relay
      Content-Length: [len]

      {body.strip()}
    ]]>
  </send>
  <recv response="200"/>
"""


def accept_refer(cseq: int) -> str:
    """Expect our REFER, answer 202, report the transfer target's 200 in a final NOTIFY."""
    return f"""  <recv request="REFER" timeout="30000"/>
  <send>
    <![CDATA[
      SIP/2.0 202 Accepted
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      NOTIFY sip:bot@[remote_ip]:[remote_port] SIP/2.0
{_HEAD}
      CSeq: {cseq} NOTIFY
      Event: refer
      Subscription-State: terminated;reason=noresource
      Content-Type: message/sipfrag
      Content-Length: [len]

      SIP/2.0 200 OK
    ]]>
  </send>
  <recv response="200"/>
"""


def wait_bye(timeout_ms: int = 60000) -> str:
    return f'  <recv request="BYE" timeout="{timeout_ms}"/>\n' + _OK


def bye_or_hang_up(timeout_ms: int, cseq: int) -> str:
    """Wait for our BYE (answer 200); if none comes within ``timeout_ms``, send BYE. Use once
    per scenario (it uses labels 1 and 2)."""
    return (
        f'  <recv request="BYE" timeout="{timeout_ms}" ontimeout="1"/>\n'
        + _OK.replace("  <send>", '  <send next="2">', 1)
        + '  <label id="1"/>\n'
        + send_bye(cseq)
        + '  <label id="2"/>\n'
    )


def send_bye(cseq: int) -> str:
    return f"""  <send retrans="500">
    <![CDATA[
      BYE sip:bot@[remote_ip]:[remote_port] SIP/2.0
{_HEAD}
      CSeq: {cseq} BYE
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
"""


def uac(*steps: str, routed: bool = False) -> str:
    xml = (
        '<?xml version="1.0" encoding="ISO-8859-1" ?>\n'
        '<!DOCTYPE scenario SYSTEM "sipp.dtd">\n<scenario name="rtbridge test caller">\n'
        + _INVITE
        + "".join(steps)
        + "</scenario>\n"
    )
    if routed:
        xml = xml.replace(
            '<recv response="200" rtd="true"/>', '<recv response="200" rtd="true" rrs="true"/>'
        )
        xml = _IN_DIALOG.sub(r"\1[next_url]\2      [routes]\n", xml)
    return xml


#: the request line of an in-dialog request the caller sends
_IN_DIALOG = re.compile(
    r"(      (?:ACK|BYE|INFO|NOTIFY) )sip:bot@\[remote_ip\]:\[remote_port\]( SIP/2\.0\n)"
)


def uac_rejected(status: int, header: str | None = None) -> str:
    """A caller whose INVITE must be refused with ``status`` (it ACKs the final response);
    ``header`` (e.g. ``Retry-After``) must be present in that response."""
    invite = _INVITE[: _INVITE.index('  <recv response="100"')]
    check = ""
    if header:
        check = (
            f'\n    <action><ereg regexp=".+" search_in="hdr" header="{header}:" '
            'check_it="true" assign_to="1"/></action>\n  '
        )
    recv = f'<recv response="{status}"/>'
    if check:  # SIPp insists an assigned variable is referenced
        recv = f'<recv response="{status}">{check}</recv>\n  <Reference variables="1"/>'
    ack = f"""  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  {recv}
  <send>
    <![CDATA[
      ACK sip:bot@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"""
    return (
        '<?xml version="1.0" encoding="ISO-8859-1" ?>\n'
        '<!DOCTYPE scenario SYSTEM "sipp.dtd">\n<scenario name="rtbridge rejected caller">\n'
        + invite
        + ack
        + "</scenario>\n"
    )
