"""Kamailio in front of the workers: its configuration, written from rtbridge's settings.

Kamailio's ``dispatcher`` module spreads new calls over the workers' SIP ports; rtbridge does
not balance SIP itself (``SO_REUSEPORT`` cannot: a carrier sends every datagram from one
address, so one worker would get them all, and in-dialog requests of a worker that exits would
reach one that does not know the call). What the configuration does, as measured on Kamailio
5.6 from Debian:

* ``ds_select_dst`` with algorithm 10: the worker with the fewest active calls, kept with
  ``ds_load_update()`` on each 2xx to an INVITE and on BYE/CANCEL (``duid`` per destination,
  ``ds_hash_size`` for the call table);
* ``record_route()`` on the INVITE and ``loose_route()`` for in-dialog requests, so BYEs from
  either side (a hang-up through the control plane on any node) go through Kamailio and keep
  its load table right;
* OPTIONS probing every ``cluster.probe_interval_s`` of every worker: a draining worker
  answers 503 (with Retry-After) and is taken out until it answers 200 again, a dead one too;
* ``fr_timer`` = ``cluster.failover_timeout_ms`` and a ``failure_route`` that marks a worker
  that answered 5xx or nothing as inactive-probing and tries the next one
  (``ds_next_dst``); ``ds_load_unset()`` only when no worker is left (called before
  ``ds_next_dst`` it breaks algorithm 10's failover).

Media never goes through Kamailio: SDP carries each worker's own RTP address.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bridge.cluster.plan import WorkerPlan
from bridge.config import Settings

__all__ = ["dispatcher_list", "kamailio_config"]

#: the dispatcher set that holds the workers
SET_ID = 1


def dispatcher_list(plans: Sequence[WorkerPlan]) -> str:
    """``dispatcher.list``: one line per worker, ``setid uri flags priority attrs``."""
    lines = ["# rtbridge workers (written by rtbridge; see `rtbridge kamailio-config`)"]
    for p in plans:
        lines.append(f"{SET_ID} {p.sip_uri} 0 0 duid={p.name};maxload=0")
    return "\n".join(lines) + "\n"


def kamailio_config(
    settings: Settings,
    *,
    list_file: Path,
    ctl_socket: Path | None = None,
    listen_host: str | None = None,
    port: int | None = None,
) -> str:
    """The whole ``kamailio.cfg``: listen on ``server.sip_port`` (UDP and TCP) of
    ``sip.bind_host``, dispatch to the workers in ``list_file``."""
    c = settings.cluster
    host = listen_host or settings.sip.bind_host
    sip_port = port if port is not None else (settings.server.sip_port or 5060)
    advertise = settings.sip.advertised_host
    adv = f" advertise {advertise}:{sip_port}" if advertise else ""
    ctl = (
        f'loadmodule "ctl.so"\nmodparam("ctl", "binrpc", "unix:{ctl_socket}")\n'
        if ctl_socket is not None
        else ""
    )
    return f"""#!KAMAILIO
# Written by rtbridge (`rtbridge kamailio-config`): Kamailio's dispatcher in front of the
# rtbridge workers listed in {list_file}. Media goes straight to the workers.

debug=2
log_stderror=yes
log_facility=LOG_LOCAL0
children=4
tcp_children=2
auto_aliases=no
listen=udp:{host}:{sip_port}{adv}
listen=tcp:{host}:{sip_port}{adv}
tcp_connection_lifetime=3605
dns=no
rev_dns=no
use_dns_cache=no

loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "sanity.so"
loadmodule "dispatcher.so"
{ctl}
# an INVITE that gets no answer from a worker within this long goes to the next one
modparam("tm", "fr_timer", {c.failover_timeout_ms})
modparam("tm", "fr_inv_timer", 120000)
modparam("rr", "enable_full_lr", 1)
modparam("rr", "append_fromtag", 1)

modparam("dispatcher", "list_file", "{list_file}")
# 2: failover (keep every destination in the XAVP, so ds_next_dst/ds_mark_dst work)
modparam("dispatcher", "flags", 2)
modparam("dispatcher", "xavp_dst", "_dsdst_")
modparam("dispatcher", "xavp_ctx", "_dsctx_")
modparam("dispatcher", "ds_hash_size", 9)
modparam("dispatcher", "ds_ping_interval", {c.probe_interval_s})
modparam("dispatcher", "ds_ping_method", "OPTIONS")
modparam("dispatcher", "ds_ping_from", "sip:rtbridge-front@{advertise or host}")
modparam("dispatcher", "ds_probing_mode", 1)
modparam("dispatcher", "ds_probing_threshold", 1)
modparam("dispatcher", "ds_inactive_threshold", 1)
modparam("dispatcher", "ds_ping_reply_codes", "class=2")

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (!sanity_check("17895", "7")) {{
        exit;
    }}
    if (has_totag()) {{
        route(WITHINDLG);
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            ds_load_update();
            route(RELAY);
        }}
        exit;
    }}
    if (is_method("ACK")) {{
        if (t_check_trans()) {{
            route(RELAY);
        }}
        exit;
    }}
    t_check_trans();
    if (is_method("OPTIONS") && uri == myself && $rU == $null) {{
        sl_send_reply("200", "OK");
        exit;
    }}
    remove_hf("Route");
    if (is_method("INVITE|SUBSCRIBE|REFER")) {{
        record_route();
    }}
    route(DISPATCH);
}}

route[WITHINDLG] {{
    if (loose_route()) {{
        if (is_method("BYE")) {{
            ds_load_update();
        }}
        route(RELAY);
        exit;
    }}
    if (is_method("ACK")) {{
        if (t_check_trans()) {{
            route(RELAY);
        }}
        exit;
    }}
    sl_send_reply("404", "Not here");
}}

route[DISPATCH] {{
    $var(alg) = 4;
    if (is_method("INVITE")) {{
        $var(alg) = 10;
    }}
    if (!ds_select_dst("{SET_ID}", "$var(alg)")) {{
        send_reply("503", "No Worker Available");
        exit;
    }}
    t_on_failure("WORKER_FAILED");
    t_on_reply("WORKER_REPLY");
    route(RELAY);
}}

route[RELAY] {{
    if (!t_relay()) {{
        sl_reply_error();
    }}
    exit;
}}

onreply_route[WORKER_REPLY] {{
    if (is_method("INVITE") && status =~ "^2[0-9][0-9]$") {{
        ds_load_update();
    }}
}}

failure_route[WORKER_FAILED] {{
    if (t_is_canceled()) {{
        exit;
    }}
    if (t_check_status("5[0-9][0-9]") || (t_branch_timeout() && !t_branch_replied())) {{
        xlog("L_NOTICE", "rtbridge front: worker $du failed ($T_reply_code): next\\n");
        ds_mark_dst("ip");
        if (ds_next_dst()) {{
            t_on_failure("WORKER_FAILED");
            t_on_reply("WORKER_REPLY");
            route(RELAY);
            exit;
        }}
    }}
    if (is_method("INVITE")) {{
        ds_load_unset();
    }}
}}
"""
