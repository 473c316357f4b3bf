"""The Redis secrets file: read like every other file cachewatch takes, never a YAML bomb."""

from __future__ import annotations

import pytest

from cachewatch.config import ConfigError
from cachewatch.sources.redis.targets import load_secrets


def test_secrets_file_maps_targets_to_passwords(tmp_path):
    secrets = tmp_path / "secrets.yml"
    secrets.write_text("cache-a: s3cret\ncache-b: {username: app, password: pw}\n")
    assert load_secrets(secrets) == {"cache-a": {"password": "s3cret"},
                                     "cache-b": {"username": "app", "password": "pw"}}


def test_an_alias_bomb_in_the_secrets_file_is_refused_at_once(tmp_path):
    """Nine levels of nine aliases would expand to 9^9 values: refused, naming the line."""
    lines = ['a0: &a0 ["x"]'] + [
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    secrets = tmp_path / "secrets.yml"
    secrets.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="aliases"):
        load_secrets(secrets)
