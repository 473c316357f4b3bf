"""Settings: flags > env vars > YAML file > defaults, and errors that name the setting and fix."""

from __future__ import annotations

import pytest

from cachewatch.config import DEFAULT_PORT, ConfigError, load_settings
from cachewatch.sources.redis.settings import RedisTarget


def test_defaults_work_without_any_source():
    settings = load_settings()
    assert settings.port == DEFAULT_PORT
    assert settings.listen_address == "0.0.0.0"
    assert [t.url for t in settings.redis.targets] == ["redis://127.0.0.1:6379"]
    assert settings.redis.targets[0].name == "127.0.0.1:6379"
    assert settings.redis.timeout == 2.0
    assert settings.redis.enabled


def test_flags_beat_env_which_beats_the_file(tmp_path, monkeypatch):
    config = tmp_path / "cachewatch.yml"
    config.write_text("port: 1001\nlog_level: debug\nredis:\n  timeout: 5s\n  probe_interval: 3\n"
                      "  targets: [redis://file:6379]\n")
    monkeypatch.setenv("CACHEWATCH_PORT", "1002")
    monkeypatch.setenv("CACHEWATCH_REDIS__TIMEOUT", "750ms")
    settings = load_settings(config, port=1003)
    assert settings.port == 1003  # flag
    assert settings.redis.timeout == 0.75  # env over file
    assert settings.redis.probe_interval == 3  # file, nothing above it
    assert settings.log_level == "debug"  # file
    assert [t.url for t in settings.redis.targets] == ["redis://file:6379"]
    # a flag for one nested key leaves the file's other keys of that section alone
    settings = load_settings(config, **{"redis.timeout": "1s"})
    assert settings.redis.timeout == 1.0
    assert settings.redis.probe_interval == 3


def test_targets_from_env_as_json(monkeypatch):
    monkeypatch.setenv("CACHEWATCH_REDIS__TARGETS",
                       '[{"name": "sessions", "url": "rediss://cache.internal:6380/2"}, "a:1"]')
    targets = load_settings().redis.targets
    assert [(t.name, t.url, t.tls) for t in targets] == [
        ("sessions", "rediss://cache.internal:6380/2", True), ("a:1", "redis://a:1", False)]


@pytest.mark.parametrize(("raw", "url", "name"), [
    ("127.0.0.1:6379", "redis://127.0.0.1:6379", "127.0.0.1:6379"),
    ("redis://h", "redis://h:6379", "h:6379"),
    ("redis://h:1/0", "redis://h:1", "h:1"),
    ("main=redis://h:1/3", "redis://h:1/3", "main"),
    ("redis://[::1]:7000", "redis://[::1]:7000", "[::1]:7000"),
    ("unix:///run/redis.sock", "unix:///run/redis.sock", "/run/redis.sock"),
])
def test_target_addresses_are_normalised(raw, url, name):
    target = RedisTarget.model_validate(raw)
    assert (target.url, target.name) == (url, name)


def test_credentials_in_a_configured_url_move_out_of_url_and_name():
    target = RedisTarget.model_validate("redis://app:pa55@h:1")
    assert target.url == "redis://h:1"
    assert target.name == "h:1"
    assert target.username == "app"
    assert target.password is not None
    assert target.password.get_secret_value() == "pa55"
    assert "pa55" not in repr(target)


@pytest.mark.parametrize(("flags", "env", "expected"), [
    ({"port": 70000}, {}, ["port: must be at most 65535",
                           "flag --port", "env CACHEWATCH_PORT"]),
    ({}, {"CACHEWATCH_REDIS__TIMEOUT": "soon"}, [
        "redis.timeout: 'soon' is not a duration; write it like 2s, 500ms or 1.5",
        "flag --redis-timeout", "env CACHEWATCH_REDIS__TIMEOUT"]),
    ({"redis.targets": ["http://h:1"]}, {}, [
        "redis.targets.0", "use redis://, rediss:// (TLS) or unix://", "flag --redis-target"]),
    ({"log_level": "loud"}, {}, ["log_level: must be 'debug', 'info', 'warning' or 'error'"]),
    ({"port": "abc"}, {}, ["port: must be a whole number (got 'abc')"]),
    ({"redis.targets": ["a=redis://h:1", "a=redis://h:2"]}, {}, [
        "two targets are named 'a'; give each a unique name"]),
    ({"redis.targets": [{"url": "redis://h:1", "password": "x", "password_file": "/etc/hostname"}]},
     {}, ["set password or password_file, not both"]),
    ({"redis.targets": [{"url": "redis://h:1", "tls_ca_file": "/nonexistent/ca.pem"}]}, {}, [
        "redis.targets.0.tls_ca_file", "'/nonexistent/ca.pem' does not exist"]),
])
def test_wrong_values_name_the_setting_and_the_fix(monkeypatch, flags, env, expected):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(**flags)
    for part in expected:
        assert part in str(caught.value)


def test_a_typo_in_the_file_is_an_unknown_setting(tmp_path):
    config = tmp_path / "c.yml"
    config.write_text("redis:\n  timout: 2s\n")
    with pytest.raises(ConfigError, match=r"redis.timout: unknown setting \(a typo\?\)"):
        load_settings(config)


@pytest.mark.parametrize(("content", "message"), [
    ("port: [1\n", "is not valid YAML"),
    ("- a\n- b\n", "must hold a mapping of settings at the top"),
])
def test_a_broken_file_says_so(tmp_path, content, message):
    config = tmp_path / "c.yml"
    config.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings(config)


def test_a_missing_file_names_the_flag(tmp_path):
    with pytest.raises(ConfigError, match="not found: fix --config / CACHEWATCH_CONFIG"):
        load_settings(tmp_path / "nope.yml")


@pytest.mark.parametrize("target", [
    "http://u:topsecretpw@h:1",
    "redis://u:top/secretpw@h:1",
    "redis://u:top@secretpw@h:1/x",
    "redis://u:topsecretpw@h:notaport",
])
def test_a_password_in_a_bad_target_is_not_echoed(target):
    with pytest.raises(ConfigError) as caught:
        load_settings(**{"redis.targets": [target]})
    assert "secretpw" not in str(caught.value)
    assert "***@" in str(caught.value)


def test_a_non_json_list_in_an_env_var_says_what_to_write(monkeypatch):
    monkeypatch.setenv("CACHEWATCH_REDIS__TARGETS", "redis://h:1")
    with pytest.raises(ConfigError, match=r"take JSON, like CACHEWATCH_REDIS__TARGETS="):
        load_settings()


def test_other_is_a_reserved_target_name():
    with pytest.raises(ConfigError, match="'other' is reserved"):
        load_settings(**{"redis.targets": ["other=redis://h:1"]})


@pytest.mark.parametrize(("text", "excludes", "expected"), [
    ("cache=redis://h:6379", "/", {"name": "cache", "url": "redis://h:6379"}),
    ("redis://h:6379/0?x=1", "/", {"url": "redis://h:6379/0?x=1"}),
    ("sessions=10.0.0.5:11211", "/:", {"name": "sessions", "url": "10.0.0.5:11211"}),
    ("h:1=2", "/:", {"url": "h:1=2"}),
    ("unix:///run/a=b.sock", "/", {"url": "unix:///run/a=b.sock"}),
])
def test_a_bare_target_string_splits_its_name_only_before_the_address(text, excludes, expected):
    from cachewatch.fields import named_target

    assert named_target(text, "url", excludes) == expected
    assert named_target({"url": "kept"}, "url") == {"url": "kept"}
