"""The test tiers, enforced.

1. unit and fixture tests: parsers, state machines, DSP, call logic on virtual time;
2. paired tests: two of rtbridge's own sans-IO cores (or rtbridge's in-process stack with its
   local agent) talking over loopback;
3. real-peer tests: programs nobody here wrote (SIPp, baresip, linphonec, Chromium, the openai
   SDKs, ...), marked ``@pytest.mark.peer(name)``.

``make test-fast`` runs tiers 1 and 2 (``-m "not peer"``): no peer, a couple of minutes.
``make test`` runs everything. A test that reaches for a peer (``require_peer``) without the
marker fails here, so the fast tier never quietly depends on one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import peers


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    peers.current_item = item
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    peers.current_item = item
    yield
    peers.current_item = None
