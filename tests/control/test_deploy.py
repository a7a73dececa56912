"""deploy/ stays valid: the example config loads into the one settings model and describes a
carrier setup with OpenAI, xAI and local upstreams; the container and unit files run the same
command and install steps the README documents."""

from __future__ import annotations

from pathlib import Path

from bridge.config import Dialect, load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_example_config_loads_with_trunk_routes_and_three_upstreams() -> None:
    s = load_settings(DEPLOY / "rtbridge.example.toml", environ={})
    (trunk,) = s.sip.trunks
    assert trunk.password_env and trunk.inbound_allow  # secrets by name, an allowlist
    dialects = {p.upstream.dialect for p in s.profiles.values() if p.upstream.url}
    assert {Dialect.GA, Dialect.XAI} <= dialects
    assert any(not p.upstream.url for p in s.profiles.values())  # the local agent
    assert s.webhooks.url.startswith("https://") and s.webhooks.secret_env
    for route in s.routes:
        fb = route.fallback
        assert fb is None or fb.startswith("reject") or fb in s.profiles
    # routing picks the profile the carrier's numbers are meant for
    name, _ = s.route(trunk="carrier", to_uri="sip:+15550200@acme", from_uri="sip:x@y")
    assert name == "sales"
    text = (DEPLOY / "rtbridge.example.toml").read_text()
    assert "sk-" not in text and "whsec_" not in text.replace("whsec_...", "")


def test_container_and_unit_run_rtbridge_serve_the_readme_way() -> None:
    docker = (DEPLOY / "Dockerfile").read_text()
    assert "python3 -m venv" in docker and "-m pip install" in docker
    assert '"rtbridge", "serve"' in docker and "--sip-port" in docker
    compose = (DEPLOY / "compose.yaml").read_text()
    assert "deploy/Dockerfile" in compose and "rtbridge.example.toml" in compose
    unit = (DEPLOY / "rtbridge.service").read_text()
    assert "ExecStart=/opt/rtbridge/.venv/bin/rtbridge serve" in unit
    assert "KillSignal=SIGTERM" in unit and "TimeoutStopSec=" in unit


def test_cluster_compose_and_worker_unit_run_the_workers_behind_kamailio() -> None:
    import yaml

    compose = yaml.safe_load((DEPLOY / "cluster.compose.yaml").read_text())
    services = compose["services"]
    assert {"kamailio", "redis", "postgres", "front-config"} <= set(services)
    workers = sorted(name for name in services if name.startswith("worker"))
    env = services[workers[0]]["environment"]
    assert int(env["RTBRIDGE_CLUSTER__WORKERS"]) == len(workers) >= 2
    for i, name in enumerate(workers):
        assert services[name]["command"] == ["rtbridge", "worker", str(i)]
    assert env["RTBRIDGE_CLUSTER__REDIS_URL"].startswith("redis://")
    assert env["RTBRIDGE_CALLS__RECORDS_URL"].startswith("postgresql://")
    assert ":" not in env["RTBRIDGE_CALLS__RECORDS_URL"].split("@")[0].split("//")[1]  # no password
    assert "kamailio-config" in " ".join(services["front-config"]["command"])
    unit = (DEPLOY / "rtbridge-worker@.service").read_text()
    assert "ExecStart=/opt/rtbridge/.venv/bin/rtbridge worker %i" in unit
    assert "KillSignal=SIGTERM" in unit and "TimeoutStopSec=" in unit
