"""Dialogs (RFC 3261 §12) and building requests and responses from them (§8.1.1, §8.2.6).

A :class:`Dialog` holds the dialog state (Call-ID, tags, CSeq numbers, remote target and route
set) and builds in-dialog requests: Request-URI = remote target, Route = route set (loose
routing, §12.2.1.1), CSeq incremented except for ACK and CANCEL. UAS dialogs take the route set
from the INVITE's Record-Route in order (§12.1.1); UAC dialogs from the 2xx's Record-Route
reversed (§12.1.2). ``make_response`` copies Via, From, To, Call-ID, CSeq and Record-Route
(§8.2.6.2, §12.1.1).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from sip.headers import Headers, NameAddr
from sip.message import Request, Response, reason_phrase
from sip.transaction import MAGIC_COOKIE
from sip.uri import SipUri

__all__ = ["Dialog", "make_response", "new_branch", "new_tag"]


def new_tag() -> str:
    return secrets.token_hex(6)


def new_branch() -> str:
    return MAGIC_COOKIE + secrets.token_hex(8)


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    contact: NameAddr | None = None,
    body: bytes = b"",
    content_type: str | None = None,
    extra: Headers | None = None,
) -> Response:
    """A response to ``request`` (§8.2.6). ``to_tag`` is added unless the To has one (or 100)."""
    h = Headers()
    for via in request.headers.get_all("Via"):
        h.add("Via", via)
    if status > 100:  # §12.1.1: Record-Route is copied into dialog-creating responses
        for rr in request.headers.get_all("Record-Route"):
            h.add("Record-Route", rr)
    h.add("From", request.headers.get("From") or "")
    to = request.to
    if to_tag and to.tag is None and status != 100:
        to = to.with_tag(to_tag)
    h.add("To", str(to) if to != request.to else request.headers.get("To") or "")
    h.add("Call-ID", request.call_id)
    h.add("CSeq", request.headers.get("CSeq") or "")
    if contact is not None:
        h.add("Contact", str(contact))
    if extra is not None:
        for k, v in extra:
            h.add(k, v)
    if body:
        h.add("Content-Type", content_type or "application/sdp")
    return Response(status=status, reason=reason or reason_phrase(status), headers=h, body=body)


@dataclass(slots=True)
class Dialog:
    """Dialog state (§12). ``local``/``remote`` are the From/To values with their tags."""

    call_id: str
    local: NameAddr
    remote: NameAddr
    local_seq: int
    remote_seq: int | None
    remote_target: SipUri
    route_set: list[str] = field(default_factory=list)

    @property
    def local_tag(self) -> str:
        return self.local.tag or ""

    @property
    def remote_tag(self) -> str:
        return self.remote.tag or ""

    @classmethod
    def as_uas(cls, invite: Request, local_tag: str) -> Dialog:
        """§12.1.1: route set = Record-Route in order, remote target = Contact."""
        contact = invite.contact
        return cls(
            call_id=invite.call_id,
            local=invite.to.with_tag(local_tag),
            remote=invite.from_,
            local_seq=secrets.randbelow(2**16) + 1,
            remote_seq=invite.cseq.seq,
            remote_target=contact.sip_uri if contact else invite.from_.sip_uri,
            route_set=invite.headers.get_all("Record-Route"),
        )

    @classmethod
    def as_uac(cls, invite: Request, response: Response) -> Dialog:
        """§12.1.2: route set = Record-Route reversed, remote target = the response's Contact."""
        contact = response.contact
        return cls(
            call_id=invite.call_id,
            local=invite.from_,
            remote=response.to,
            local_seq=invite.cseq.seq,
            remote_seq=None,
            remote_target=contact.sip_uri if contact else invite.uri,
            route_set=list(reversed(response.headers.get_all("Record-Route"))),
        )

    def next_hop(self) -> SipUri:
        """Where in-dialog requests go: the first Route's URI, else the remote target (§8.1.2)."""
        if self.route_set:
            return NameAddr.parse(self.route_set[0]).sip_uri
        return self.remote_target

    def request(
        self,
        method: str,
        via: str,
        contact: NameAddr | None,
        *,
        cseq: int | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        extra: Headers | None = None,
    ) -> Request:
        """An in-dialog request (§12.2.1.1). ``via`` is the full Via value with its branch."""
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        h = Headers()
        h.add("Via", via)
        h.add("Max-Forwards", "70")
        for route in self.route_set:
            h.add("Route", route)
        h.add("From", str(self.local))
        h.add("To", str(self.remote))
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{cseq} {method}")
        if contact is not None and method not in ("ACK", "BYE", "CANCEL"):
            h.add("Contact", str(contact))
        if extra is not None:
            for k, v in extra:
                h.add(k, v)
        if body:
            h.add("Content-Type", content_type or "application/sdp")
        return Request(method=method, uri=self.remote_target, headers=h, body=body)
