"""SIP listens on ``server.sip_port`` (``--sip-port``), UDP and TCP. ``[sip] udp_port`` and
``tcp_port`` do not choose it: set, they are said to be ignored (they were silently)."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import pytest

from bridge.config import Settings
from bridge.runtime import start_runtime


@pytest.mark.parametrize(("sip", "warned"), [({"udp_port": 5070}, True), ({}, False)])
async def test_sip_ports_in_the_sip_section_are_said_to_be_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, sip: dict[str, int], warned: bool
) -> None:
    settings = Settings.model_validate({"server": {"data_dir": str(tmp_path)}, "sip": sip})
    caplog.set_level(logging.WARNING, logger="bridge.runtime")
    async with contextlib.AsyncExitStack() as stack:
        runtime = await start_runtime(settings, stack, sip_port=None)
        assert runtime.sip_label.startswith("off")
    assert ("[sip] udp_port ignored" in caplog.text) is warned
    assert ("server.sip_port" in caplog.text) is warned
