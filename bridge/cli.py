"""The ``rtbridge`` command line: ``serve``, ``worker``, ``kamailio-config``, ``agent``, ``call``,
``bench``.

Each subcommand builds :class:`bridge.config.Settings` (defaults < TOML < environment < flags)
and hands it to the module that owns that job; this file only parses arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from bridge.config import Dialect, Settings, load_settings
from bridge.errors import ConfigError

__all__ = ["build_parser", "main"]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML config file (default: $RTBRIDGE_CONFIG)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtbridge",
        description="Telephony bridge for Realtime voice agents (SIP and WebRTC in, "
        "Realtime WebSocket upstreams out).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser("serve", help="run the service (relay; local agent by default)")
    _common(serve)
    serve.add_argument("--host", help="address to bind HTTP/WebSocket (default 127.0.0.1)")
    serve.add_argument("--http-port", type=int, help="HTTP/WebSocket port (default 8080)")
    serve.add_argument("--sip-port", type=int, help="SIP port (UDP and TCP); off when unset")
    serve.add_argument("--upstream", metavar="URL", help="Realtime upstream ws:// or wss:// URL")
    serve.add_argument(
        "--upstream-dialect", choices=[d.value for d in Dialect], help="dialect of --upstream"
    )
    serve.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS/WSS with this certificate")
    serve.add_argument("--tls-key", metavar="FILE", help="private key for --tls-cert")
    serve.add_argument(
        "--ice-host",
        action="append",
        metavar="ADDR",
        help="host address offered in WebRTC ICE candidates (repeatable)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        nargs="?",
        const=0,
        metavar="N",
        help="run N worker processes under one supervisor (no N: one per core); see [cluster]",
    )

    worker = sub.add_parser(
        "worker",
        help="run worker INDEX of a host's workers alone (for systemd's rtbridge-worker@.service)",
    )
    _common(worker)
    worker.add_argument("index", type=int, help="which worker (0-based): its ports and RTP slice")
    worker.add_argument("--workers", type=int, metavar="N", help="workers (default: [cluster])")
    worker.add_argument("--ice-host", action="append", metavar="ADDR", help="as for serve")

    kam = sub.add_parser(
        "kamailio-config", help="print the Kamailio configuration that fronts the workers"
    )
    _common(kam)
    kam.add_argument("--workers", type=int, metavar="N", help="workers (default: [cluster])")
    kam.add_argument(
        "--list-file",
        metavar="FILE",
        help="where the dispatcher list will be (default <data_dir>/cluster/dispatcher.list)",
    )
    kam.add_argument(
        "--dispatcher-list", action="store_true", help="print the dispatcher list instead"
    )

    agent = sub.add_parser("agent", help="run the local reference Realtime agent alone")
    _common(agent)
    agent.add_argument("--host", help="address to bind (default 127.0.0.1)")
    agent.add_argument("--port", type=int, help="port (default 8765)")
    agent.add_argument("--dialect", choices=[d.value for d in Dialect], help="wire dialect")
    agent.add_argument(
        "--formats",
        help="comma-separated audio formats it accepts (pcm16,g711_ulaw,g711_alaw); "
        "'pcm16' forces callers to transcode",
    )
    agent.add_argument(
        "--session-max-s",
        type=float,
        metavar="S",
        help="end each session after S seconds, the way its dialect ends sessions",
    )

    call = sub.add_parser("call", help="place one outbound SIP call to TARGET")
    _common(call)
    call.add_argument("target", help="SIP URI to call, e.g. sip:+15550100@pbx.example.com")
    call.add_argument("--profile", default="default", help="agent profile (default: default)")
    call.add_argument("--trunk", help="trunk to call through (its credentials are used)")
    call.add_argument("--caller", help="caller id (user part of From)")
    call.add_argument("--sip-port", type=int, help="local SIP port (default: an ephemeral one)")
    call.add_argument("--duration", type=float, help="hang up after this many seconds")

    from bridge.bench import available_benchmarks

    bench = sub.add_parser("bench", help="run a benchmark and print its figures")
    _common(bench)
    bench.add_argument("name", choices=available_benchmarks(), help="which benchmark")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--calls", type=int, help="concurrent calls (where it applies)")
    bench.add_argument("--seconds", type=float, help="duration (where it applies)")
    bench.add_argument("--rate", type=float, help="flood: attack INVITEs a second (1000)")
    bench.add_argument("--minutes", type=float, help="duration in minutes (soak)")
    bench.add_argument("--warmup", type=float, metavar="S", help="warm-up seconds (soak)")
    bench.add_argument("--trace", action="store_true", help="which object types grow (soak)")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    o: dict[str, dict[str, Any]] = {"server": {}, "upstream": {}, "agent": {}}
    if args.command == "serve":
        for flag, key in [
            ("host", "host"),
            ("http_port", "http_port"),
            ("sip_port", "sip_port"),
            ("tls_cert", "tls_cert"),
            ("tls_key", "tls_key"),
        ]:
            if getattr(args, flag) is not None:
                o["server"][key] = getattr(args, flag)
        if args.upstream is not None:
            o["upstream"]["url"] = args.upstream
        if args.upstream_dialect is not None:
            o["upstream"]["dialect"] = args.upstream_dialect
    elif args.command == "agent":
        for flag in ("host", "port", "dialect", "session_max_s"):
            if getattr(args, flag) is not None:
                o["agent"][flag] = getattr(args, flag)
        if args.formats:
            o["agent"]["formats"] = [f.strip() for f in args.formats.split(",") if f.strip()]
    return {k: v for k, v in o.items() if v}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings: Settings = load_settings(args.config, overrides=_overrides(args))
    except ConfigError as exc:
        print(f"rtbridge: {exc}", file=sys.stderr)
        return 2

    if args.command == "serve":
        if args.workers is not None or settings.cluster.workers is not None:
            from bridge.cluster.plan import worker_count
            from bridge.cluster.supervisor import supervise

            n = worker_count(settings, args.workers)
            return supervise(settings, n, ice_hosts=args.ice_host or [])
        from bridge.serve import serve

        return serve(settings, ice_hosts=args.ice_host or [])
    if args.command == "worker":
        from bridge.cluster.plan import worker_count
        from bridge.cluster.worker import run_worker

        n = worker_count(settings, args.workers)
        return run_worker(settings, args.index, n, ice_hosts=args.ice_host or [])
    if args.command == "kamailio-config":
        return _kamailio_config(settings, args)
    if args.command == "agent":
        from bridge.agent import run_agent_forever

        return run_agent_forever(settings.agent)
    if args.command == "call":
        from bridge.dial import dial

        return dial(
            settings,
            args.target,
            profile=args.profile,
            trunk=args.trunk,
            caller=args.caller,
            sip_port=args.sip_port,
            duration=args.duration,
        )
    if args.command == "bench":
        from bridge.bench import run_benchmark

        result = run_benchmark(args.name, settings, args)
        if args.json:
            print(json.dumps(result, sort_keys=True))
        else:
            print(json.dumps(result, indent=2, sort_keys=True))
        return 0
    raise AssertionError(args.command)


def _kamailio_config(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from bridge.cluster.kamailio import dispatcher_list, kamailio_config
    from bridge.cluster.plan import plan_workers, worker_count

    try:
        plans = plan_workers(settings, worker_count(settings, args.workers))
    except ConfigError as exc:
        print(f"rtbridge: {exc}", file=sys.stderr)
        return 2
    if args.dispatcher_list:
        print(dispatcher_list(plans), end="")
        return 0
    listing = Path(args.list_file or settings.server.data_dir / "cluster" / "dispatcher.list")
    print(kamailio_config(settings, list_file=listing), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
