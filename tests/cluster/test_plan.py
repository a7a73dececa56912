"""How a host's workers share its ports, and the Kamailio configuration written in front of
them (checked by Kamailio itself, ``kamailio -c``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.cluster.commands import Command, Op, Reply, parse_message
from bridge.cluster.kamailio import dispatcher_list, kamailio_config
from bridge.cluster.plan import plan_workers, worker_count
from bridge.cluster.worker import worker_settings
from bridge.config import Settings
from bridge.errors import CommandMalformed, ConfigError
from tests.support.peers import require_peer


def settings(**cluster: object) -> Settings:
    return Settings.model_validate(
        {
            "calls": {"rtp_port_min": 20001, "rtp_port_max": 20100},
            "server": {"sip_port": 5060},
            "cluster": {"worker_sip_port_min": 5070, "worker_http_port_min": 8090, **cluster},
        }
    )


def test_workers_get_their_own_ports_and_disjoint_even_rtp_slices() -> None:
    plans = plan_workers(settings(), 3)
    assert [(p.name, p.sip_port, p.http_port) for p in plans] == [
        ("w0", 5070, 8090),
        ("w1", 5071, 8091),
        ("w2", 5072, 8092),
    ]
    ports = [set(range(p.rtp_port_min, p.rtp_port_max + 1)) for p in plans]
    assert all(p.rtp_port_min % 2 == 0 and p.rtp_port_max % 2 == 1 for p in plans)
    assert not (ports[0] & ports[1]) and not (ports[1] & ports[2]) and not (ports[0] & ports[2])
    assert all(min(s) >= 20002 and max(s) <= 20100 for s in ports)
    public = settings(node_name="edge")
    public = public.model_copy(
        update={"sip": public.sip.model_copy(update={"advertised_host": "203.0.113.5"})}
    )
    w1 = worker_settings(public, plans[1])
    assert (w1.server.sip_port, w1.calls.rtp_port_min) == (5071, plans[1].rtp_port_min)
    # behind the front: SIP on the worker's own address, named in its Contact
    assert (w1.sip.bind_host, w1.sip.advertised) == ("127.0.0.1", "127.0.0.1")
    assert w1.cluster.node_name == "edge-w1"


def test_impossible_plans_are_refused() -> None:
    with pytest.raises(ConfigError, match="too few"):
        plan_workers(settings(), 40)
    with pytest.raises(ConfigError, match="collide"):
        plan_workers(settings(worker_http_port_min=5071), 2)
    with pytest.raises(ConfigError, match="at least one"):
        plan_workers(settings(), 0)
    assert worker_count(settings(), 2) == 2
    assert worker_count(settings(workers=0)) >= 1  # one per core


def test_command_channel_messages_round_trip_and_garbage_is_refused() -> None:
    cmd = Command(Op.TRANSFER, "call_1", "n1", {"target": "sip:x@127.0.0.1"})
    assert parse_message(cmd.dumps()) == cmd
    reply = Reply(cmd.id, error={"status": 409, "code": "call_ended", "message": "ended"})
    assert parse_message(reply.dumps()) == reply
    for bad in (b"not json", b"[]", b'{"kind": "command", "op": "rm -rf"}', b'{"kind": "x"}'):
        with pytest.raises(CommandMalformed):
            parse_message(bad)


@pytest.mark.peer("kamailio")
def test_kamailio_accepts_the_configuration_it_is_given(tmp_path: Path) -> None:
    kamailio = require_peer("kamailio")
    s = settings()
    plans = plan_workers(s, 2)
    listing = tmp_path / "dispatcher.list"
    listing.write_text(dispatcher_list(plans))
    assert listing.read_text().splitlines()[1:] == [
        "1 sip:127.0.0.1:5070 0 0 duid=w0;maxload=0",
        "1 sip:127.0.0.1:5071 0 0 duid=w1;maxload=0",
    ]
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(kamailio_config(s, list_file=listing, ctl_socket=tmp_path / "ctl"))
    check = subprocess.run([kamailio, "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr[-2000:]


def test_kamailio_config_command_prints_the_front(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kamailio-config", "--workers", "2", "--list-file", "/etc/ds.list"]) == 0
    out = capsys.readouterr().out
    assert 'modparam("dispatcher", "list_file", "/etc/ds.list")' in out
    assert 'ds_select_dst("1", "$var(alg)")' in out
    assert main(["kamailio-config", "--workers", "2", "--dispatcher-list"]) == 0
    assert "duid=w1" in capsys.readouterr().out


def test_worker_command_refuses_a_worker_that_does_not_exist(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["worker", "5", "--workers", "2"]) == 2
    assert "worker 5 of 2 does not exist" in capsys.readouterr().err
