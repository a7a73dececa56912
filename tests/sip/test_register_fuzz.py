"""Property test: any sequence of owner commands, responses, timeouts and ticks keeps the REGISTER
machine consistent (RFC 3261 section 10.2: one REGISTER in flight at a time) and never raises."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sip.message import Request
from sip.registration import (
    Registered,
    Registration,
    RegistrationFailed,
    State,
    Unregistered,
)
from tests.sip.test_register import config, respond

CHALLENGE = 'Digest realm="r", nonce="{nonce}", qop="auth"{stale}'
RESPONSES = [100, 200, 200, 200, 401, 401, 407, 403, 423, 480, 503, 606]

responses = st.tuples(
    st.just("respond"),
    st.sampled_from(RESPONSES),
    st.booleans(),
    st.sampled_from(["n1", "n2", "n3"]),
    st.sampled_from(["", "600", "0", "junk", "99999999999"]),
)
actions = st.lists(
    st.one_of(
        responses,
        responses,
        responses,
        st.just(("start",)),
        st.just(("stop",)),
        st.just(("timeout",)),
        st.tuples(
            st.just("tick"),
            st.sampled_from([0.5, 5.0, 45.0, 100.0, 3000.0]) | st.floats(0, 5000),
        ),
    ),
    min_size=3,
    max_size=60,
)


@settings(max_examples=500, deadline=None)
@given(actions)
def test_random_sequences_keep_the_machine_consistent(steps: list[tuple[object, ...]]) -> None:
    reg = Registration(config(expires=60, retry_base=5.0))
    pending: Request | None = None
    now = 0.0
    for step in [("start",), *steps]:
        kind = step[0]
        if kind == "start":
            reg.start(now)
        elif kind == "stop":
            reg.stop(now)
        elif kind == "timeout":
            reg.transaction_failed(now)
            pending = None
        elif kind == "tick":
            now += float(step[1])  # type: ignore[arg-type]
            reg.tick(now)
        elif pending is not None:
            status, stale, nonce, number = step[1], step[2], step[3], step[4]
            assert isinstance(status, int) and isinstance(number, str)
            extra: list[tuple[str, str]] = []
            if status in (401, 407):
                name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
                value = CHALLENGE.format(nonce=nonce, stale=", stale=true" if stale else "")
                extra.append((name, value))
            if number:
                extra += [("Min-Expires", number), ("Retry-After", number), ("Expires", number)]
            reg.receive_response(respond(pending, status, *extra), now)
            if status >= 200:
                pending = None
        for output in reg.drain():
            if isinstance(output, Request):
                assert pending is None, "a second REGISTER while one is in flight"
                pending = output
            else:
                assert isinstance(output, Registered | RegistrationFailed | Unregistered)
        in_flight = reg.state in (State.REGISTERING, State.UNREGISTERING, State.STOP_PENDING)
        assert in_flight == (pending is not None), (reg.state, pending)
        if reg.state in (State.REGISTERED, State.RETRY_WAIT):
            assert reg.next_deadline() is not None
        if reg.state in (State.IDLE, State.FAILED):
            assert reg.next_deadline() is None
