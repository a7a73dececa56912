"""The one settings model: defaults, TOML, environment overrides, precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bridge.config import Dialect, EarlyMedia, Settings, load_settings
from bridge.errors import ConfigError
from media.tones import RingbackTone


def test_defaults_run_the_local_agent() -> None:
    s = load_settings(environ={})
    assert s.upstream.url == ""  # empty: serve starts the local agent in-process
    assert s.server.host == "127.0.0.1"
    assert s.agent.formats == ["pcm16", "g711_ulaw", "g711_alaw"]


def test_toml_then_env_then_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "rtbridge.toml"
    cfg.write_text(
        '[server]\nhttp_port = 9000\n[upstream]\nurl = "wss://example.invalid/v1/realtime"\n'
        'dialect = "xai"\napi_key_env = "XAI_API_KEY"\n'
    )
    env = {"RTBRIDGE_SERVER__HTTP_PORT": "9001", "RTBRIDGE_AGENT__FORMATS": '["pcm16"]'}
    s = load_settings(cfg, environ=env, overrides={"server": {"host": "0.0.0.0"}})
    assert s.server.http_port == 9001
    assert s.server.host == "0.0.0.0"
    assert s.upstream.dialect is Dialect.XAI
    assert s.agent.formats == ["pcm16"]
    assert s.upstream.api_key({"XAI_API_KEY": "xai-secret"}) == "xai-secret"


def test_config_path_from_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[agent]\nport = 7000\n")
    assert load_settings(environ={"RTBRIDGE_CONFIG": str(cfg)}).agent.port == 7000


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[server]\nhttp_port = 70000\n", "server.http_port"),
        ('[upstream]\nurl = "http://x"\n', "upstream.url"),
        ("[server]\nbogus = 1\n", "server.bogus"),
        ('[agent]\nformats = ["opus"]\n', "agent.formats"),
        ("[server\n", "invalid TOML"),
    ],
)
def test_errors_name_the_field(tmp_path: Path, text: str, needle: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, environ={})
    assert needle in str(err.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_routes_pick_profiles_first_match_wins(tmp_path: Path) -> None:
    cfg = tmp_path / "routes.toml"
    cfg.write_text(
        """
[profiles.sales]
instructions = "You sell."
dial_targets = ["sip:*@pbx.example.com", "tel:+1555*"]
[profiles.sales.upstream]
url = "wss://api.x.ai/v1/realtime"
dialect = "xai"
api_key_env = "XAI_API_KEY"

[[routes]]
trunk = "carrier"
to = "*+15550100*"
profile = "sales"
"""
    )
    s = load_settings(cfg, environ={})
    name, prof = s.route(trunk="carrier", to_uri="sip:+15550100@1.2.3.4", from_uri="sip:x@y")
    assert name == "sales" and prof.upstream.dialect is Dialect.XAI
    assert s.route(trunk="other", to_uri="sip:+15550100@h", from_uri="sip:x@y")[0] == "default"
    assert prof.may_dial("tel:+15551234") and prof.may_dial("sip:42@pbx.example.com")
    assert not prof.may_dial("tel:+4420") and not prof.may_transfer_to("sip:anyone@evil")


def test_route_to_unknown_profile_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "r.toml"
    cfg.write_text('[[routes]]\nprofile = "nope"\n')
    with pytest.raises(ConfigError, match="unknown profile 'nope'"):
        load_settings(cfg, environ={})


def test_record_per_profile_is_overridden_per_route() -> None:
    from media.recording import RecordingMode

    settings = Settings.model_validate(
        {
            "profiles": {"default": {}, "sales": {"record": "mixed"}},
            "routes": [
                {"to": "*+1555*", "profile": "sales", "record": "stereo"},
                {"to": "*+1666*", "profile": "sales"},
            ],
        }
    )
    assert settings.route(trunk=None, to_uri="sip:+1555@x", from_uri="a")[1].record is (
        RecordingMode.STEREO
    )
    assert settings.route(trunk=None, to_uri="sip:+1666@x", from_uri="a")[1].record is (
        RecordingMode.MIXED
    )
    assert settings.route(trunk=None, to_uri="sip:+1777@x", from_uri="a")[1].record is (
        RecordingMode.OFF
    )
    with pytest.raises(ValidationError):
        Settings.model_validate({"profiles": {"default": {"record": "always"}}})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", EarlyMedia.GREETING),  # the booleans of config files from before ringback
        ("false", EarlyMedia.OFF),
        ('"greeting"', EarlyMedia.GREETING),
        ('"ringback"', EarlyMedia.RINGBACK),
        ('"off"', EarlyMedia.OFF),
    ],
)
def test_early_media_is_a_choice_and_old_booleans_still_load(
    tmp_path: Path, value: str, expected: EarlyMedia
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[profiles.support]\nearly_media = {value}\nringback_tone = "uk"\n')
    profile = load_settings(cfg, environ={}).profiles["support"]
    assert (profile.early_media, profile.ringback_tone) == (expected, RingbackTone.UK)
    env = {"RTBRIDGE_PROFILES__SUPPORT__EARLY_MEDIA": value.strip('"')}  # text from the env
    assert load_settings(environ=env).profiles["support"].early_media is expected


def test_early_media_and_ringback_tone_refuse_other_values(tmp_path: Path) -> None:
    assert load_settings(environ={}).profiles["default"].early_media is EarlyMedia.OFF
    for line in ('early_media = "loud"', "early_media = 1", 'ringback_tone = "fr"'):
        cfg = tmp_path / "c.toml"
        cfg.write_text(f"[profiles.support]\n{line}\n")
        with pytest.raises(ConfigError, match=line.split(" ")[0]):
            load_settings(cfg, environ={})


def test_profiles_without_an_upstream_url_use_the_shared_upstream(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[upstream]\nurl = "wss://api.openai.com/v1/realtime"\napi_key_env = "OPENAI_API_KEY"\n'
        "[profiles.support]\ninstructions = 'Support.'\n"
        '[profiles.mini.upstream]\nmodel = "gpt-realtime-mini"\n'
        '[profiles.grok.upstream]\nurl = "wss://api.x.ai/v1/realtime"\ndialect = "xai"\n'
        '[profiles.lab.upstream]\nurl = ""\n'
    )
    s = load_settings(cfg, environ={})
    for name in ("default", "support"):  # phone calls go where the relay goes
        up = s.profiles[name].upstream
        assert (up.url, up.api_key_env, up.model) == (
            "wss://api.openai.com/v1/realtime",
            "OPENAI_API_KEY",
            "gpt-realtime",
        )
    mini = s.profiles["mini"].upstream  # its own model over the shared upstream
    assert (mini.url, mini.api_key_env, mini.model) == (
        "wss://api.openai.com/v1/realtime",
        "OPENAI_API_KEY",
        "gpt-realtime-mini",
    )
    grok = s.profiles["grok"].upstream  # its own upstream: never OpenAI's key
    assert (grok.url, grok.dialect, grok.api_key_env) == (
        "wss://api.x.ai/v1/realtime",
        Dialect.XAI,
        None,
    )
    assert s.profiles["lab"].upstream.url == ""  # the local agent, by choice
    # as the cluster's workers load it: the resolved profiles survive a round trip
    again = Settings.model_validate(s.model_dump(mode="json"))
    assert again.profiles == s.profiles
    # `serve --upstream URL` does the same for a file that names no upstream
    flag = load_settings(environ={}, overrides={"upstream": {"url": "ws://127.0.0.1:9/v1"}})
    assert flag.profiles["default"].upstream.url == "ws://127.0.0.1:9/v1"
    assert load_settings(environ={}).profiles["default"].upstream.url == ""


def test_a_profile_naming_another_dialect_without_its_url_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[upstream]\nurl = "wss://api.openai.com/v1/realtime"\n'
        '[profiles.grok.upstream]\ndialect = "xai"\napi_key_env = "XAI_API_KEY"\n'
    )
    refused = r"profiles\.grok\.upstream sets dialect 'xai' but no url"
    with pytest.raises(ConfigError, match=refused):
        load_settings(cfg, environ={})


def test_trusted_proxies_are_ip_addresses() -> None:
    settings = Settings.model_validate({"server": {"trusted_proxies": ["192.0.2.10", "::1"]}})
    assert settings.server.trusted_proxies == ["192.0.2.10", "::1"]
    with pytest.raises(ValidationError, match=r"'proxy\.example' is not an IP address"):
        Settings.model_validate({"server": {"trusted_proxies": ["proxy.example"]}})
