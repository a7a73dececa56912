"""Tier 1: the four RFC 3261 §17 machines (with RFC 6026) on virtual time."""

from __future__ import annotations

import pytest

from sip.dialog import make_response
from sip.errors import SipStateError
from sip.message import Request, Response, parse_message
from sip.transaction import (
    Peer,
    Send,
    TimerValues,
    TransactionLayer,
    TxAckReceived,
    TxResponse,
    TxTimeout,
)

UDP = Peer("udp", "127.0.0.1", 5070)
TCP = Peer("tcp", "127.0.0.1", 5070)


def _req(method: str = "INVITE", branch: str = "z9hG4bKt1", cseq: int = 1) -> Request:
    raw = (
        f"{method} sip:bob@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\n"
        f"From: <sip:a@h>;tag=f\r\nTo: <sip:b@h>\r\nCall-ID: c1\r\n"
        f"CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    msg = parse_message(raw)
    assert isinstance(msg, Request)
    return msg


def _resp(req: Request, status: int) -> Response:
    return make_response(req, status, to_tag="t" if status > 100 else None)


def _sends(layer: TransactionLayer) -> list[Request | Response]:
    return [o.message for o in layer.drain() if isinstance(o, Send)]


def _send_times(layer: TransactionLayer, until: float, step: float = 0.01) -> list[float]:
    times, now = [], 0.0
    while now < until:
        now = round(now + step, 4)
        layer.tick(now)
        times += [now] * len(_sends(layer))
    return times


def test_invite_client_timer_a_doubles_and_b_times_out() -> None:
    layer = TransactionLayer()
    layer.send_request(_req(), UDP, 0.0)
    assert len(_sends(layer)) == 1
    times = []
    now = 0.0
    outs: list[object] = []
    while now < 33:
        now = round(now + 0.01, 4)
        layer.tick(now)
        for o in layer.drain():
            if isinstance(o, Send):
                times.append(now)
            else:
                outs.append(o)
    assert times == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert len(outs) == 1 and isinstance(outs[0], TxTimeout)
    assert not layer.clients


def test_non_invite_client_timer_e_caps_at_t2() -> None:
    layer = TransactionLayer(TimerValues(t1=0.5, t2=4.0))
    layer.send_request(_req("OPTIONS"), UDP, 0.0)
    _sends(layer)
    times = _send_times(layer, 20)
    assert times[:6] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]


def test_reliable_transport_has_no_retransmissions() -> None:
    layer = TransactionLayer()
    layer.send_request(_req(), TCP, 0.0)
    _sends(layer)
    assert _send_times(layer, 40) == []


def test_invite_client_acks_non_2xx_inside_and_absorbs_retransmissions() -> None:
    layer = TransactionLayer()
    req = _req()
    layer.send_request(req, UDP, 0.0)
    _sends(layer)
    busy = _resp(req, 486)
    assert layer.receive_response(busy, 0.1)
    out = layer.drain()
    acks = [o.message for o in out if isinstance(o, Send)]
    assert len(acks) == 1 and isinstance(acks[0], Request) and acks[0].method == "ACK"
    assert acks[0].top_via.branch == req.top_via.branch and acks[0].cseq.seq == 1
    assert acks[0].to.tag == "t"
    assert [type(o) for o in out if not isinstance(o, Send)] == [TxResponse]
    layer.receive_response(busy, 0.2)  # retransmitted 486: ACK again, not passed up
    out = layer.drain()
    assert [type(o) for o in out] == [Send]
    layer.tick(40)
    assert not layer.clients


def test_invite_client_accepted_passes_2xx_retransmissions_up() -> None:
    layer = TransactionLayer()
    req = _req()
    layer.send_request(req, UDP, 0.0)
    _sends(layer)
    ok = _resp(req, 200)
    for t in (0.1, 0.6):
        layer.receive_response(ok, t)
        assert [type(o) for o in layer.drain()] == [TxResponse]  # the TU ACKs each one
    layer.tick(33)
    assert not layer.clients


def test_invite_server_accepted_absorbs_retransmitted_invite() -> None:
    """RFC 6026 §7.1: after the 2xx an INVITE retransmission is absorbed, not a new call."""
    layer = TransactionLayer()
    req = _req()
    tx = layer.receive_request(req, UDP, 0.0)
    assert tx is not None
    tx.respond(_resp(req, 100), 0.0)
    tx.respond(_resp(req, 200), 0.1)
    assert len(_sends(layer)) == 2
    assert layer.receive_request(_req(), UDP, 0.6) is None
    assert _sends(layer) == []  # absorbed: the TU retransmits the 2xx itself
    tx.respond(_resp(req, 200), 0.6)
    assert len(_sends(layer)) == 1
    ack = _req("ACK", cseq=1)
    layer.receive_request(ack, UDP, 0.7)
    assert [type(o) for o in layer.drain()] == [TxAckReceived]
    layer.tick(33)
    assert not layer.servers


def test_invite_server_timer_g_until_ack_then_i() -> None:
    layer = TransactionLayer()
    req = _req()
    tx = layer.receive_request(req, UDP, 0.0)
    assert tx is not None
    tx.respond(_resp(req, 486), 0.0)
    _sends(layer)
    times, now = [], 0.0
    while now < 5:
        now = round(now + 0.01, 4)
        layer.tick(now)
        times += [now] * len(_sends(layer))
    assert times == [0.5, 1.5, 3.5]
    layer.receive_request(_req("ACK"), UDP, 5.0)
    layer.tick(9.0)
    assert _sends(layer) == []
    assert tx.state.value == "Confirmed"
    layer.tick(10.1)  # timer I = T4
    assert not layer.servers


def test_invite_server_timer_h_reports_missing_ack() -> None:
    layer = TransactionLayer()
    req = _req()
    tx = layer.receive_request(req, UDP, 0.0)
    assert tx is not None
    tx.respond(_resp(req, 603), 0.0)
    layer.drain()
    layer.tick(32.0)
    assert [type(o) for o in layer.drain() if not isinstance(o, Send)] == [TxTimeout]


def test_non_invite_server_resends_final_on_retransmission_and_j() -> None:
    layer = TransactionLayer()
    req = _req("BYE", cseq=2)
    tx = layer.receive_request(req, UDP, 0.0)
    assert tx is not None
    assert layer.receive_request(_req("BYE", cseq=2), UDP, 0.1) is None  # Trying: absorbed
    assert _sends(layer) == []
    tx.respond(_resp(req, 200), 0.2)
    assert len(_sends(layer)) == 1
    layer.receive_request(_req("BYE", cseq=2), UDP, 0.3)
    assert len(_sends(layer)) == 1
    layer.tick(32.3)
    assert not layer.servers


def test_cancel_matches_the_invite_server_transaction() -> None:
    layer = TransactionLayer()
    inv = layer.receive_request(_req(), UDP, 0.0)
    cancel = _req("CANCEL")
    ctx = layer.receive_request(cancel, UDP, 0.1)
    assert ctx is not None and ctx is not inv
    assert layer.invite_for_cancel(cancel) is inv
    assert layer.invite_for_cancel(_req("CANCEL", branch="z9hG4bKother")) is None


def test_illegal_tu_moves_name_state_and_event() -> None:
    layer = TransactionLayer()
    req = _req()
    tx = layer.receive_request(req, UDP, 0.0)
    assert tx is not None
    tx.respond(_resp(req, 486), 0.0)
    with pytest.raises(SipStateError) as info:
        tx.respond(_resp(req, 200), 0.1)
    assert "INVITE server transaction" in str(info.value)
    assert info.value.state == "Completed" and info.value.event == "tu-2xx"


def test_timer_heap_drops_cancelled_entries_lazily() -> None:
    from sip.timers import TimerHeap

    live: dict[str, set[float]] = {"a": {1.0, 3.0}, "b": {2.0}}
    heap: TimerHeap[str] = TimerHeap(lambda owner, when: when in live[owner])
    for owner, whens in live.items():
        for when in whens:
            heap.push(when, owner)
    heap.push(0.5, "b")  # cancelled before it was due
    assert heap.next_deadline() == 1.0
    assert heap.pop_due(2.5) == ["a", "b"]
    live["a"].discard(3.0)
    assert heap.next_deadline() is None and len(heap) == 0


def test_thousands_of_lingering_transactions_keep_one_deadline() -> None:
    """Completed transactions wait out timer J; the layer still finds the earliest at once."""
    layer = TransactionLayer()
    for i in range(3000):
        req = _req("OPTIONS", branch=f"z9hG4bKmany{i}")
        tx = layer.receive_request(req, UDP, i * 0.001)
        assert tx is not None
        tx.respond(_resp(req, 200), i * 0.001)
    layer.drain()
    assert layer.next_deadline() == pytest.approx(32.0)
    layer.tick(40.0)
    assert not layer.servers and layer.next_deadline() is None
