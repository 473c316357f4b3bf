"""What ``-h`` prints: value shapes rather than Python types, each env var named once, and
lines that fit an 80-column terminal without a flag or an env var cut in two."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from cachewatch.cli import build_cli, serve_cli
from cachewatch.config import setting_rows

COMMANDS = [(), ("serve",), ("bundle",), ("ingest-build",), ("build",), ("ingest-job",),
            ("doctor",), ("doctor", "redis://127.0.0.1:6379"), ("metrics",), ("version",)]


def help_of(*command: str, columns: int = 80) -> str:
    result = CliRunner().invoke(build_cli(), [*command, "-h"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_fits_80_columns_and_shows_no_python_type(command):
    text = help_of(*command)
    assert "Usage:" in text
    too_long = [line for line in text.splitlines() if len(line) > 80]
    assert too_long == []
    for python_type in ("<str>", "<int>", "<float>", "<bool>", "<path>", "TEXT", "INTEGER",
                        "FLOAT", "│", "…"):
        assert python_type not in text, python_type


def test_serve_help_shows_each_value_shape():
    text = help_of("serve")
    for option, shape in (("--config", "FILE"), ("--port", "PORT"),
                          ("--log-level", "debug|info|warning|error"),
                          ("--redis-timeout", "DURATION"), ("--redis-probe-interval", "DURATION"),
                          ("--redis-target", "[NAME=]URL"), ("--state-url", "URL"),
                          ("--redis-latency-histogram-commands", "N"),
                          ("--enable-collector", "NAME")):
        assert re.search(rf"^\s+(-c, )?{re.escape(option)} {re.escape(shape)}\b", text, re.M), \
            option


def test_every_env_var_is_named_once_and_never_cut():
    text = help_of("serve")
    words = text.split()
    assert text.count("CACHEWATCH_CONFIG") == 1
    assert "[env var:" not in text
    for row in setting_rows():
        if row.flag and row.flag.startswith("--") and " " not in row.flag:
            assert sum(word.strip("();,") == row.env for word in words) == 1, row.env
    for command in (("ingest-build",), ("ingest-job",)):
        other = help_of(*command)
        assert other.count("CACHEWATCH_URL") == 1
        assert other.count("CACHEWATCH_BUILDS__TOKEN") == 1


def test_bundle_and_doctor_help_show_value_shapes():
    bundle = help_of("bundle")
    for option, shape in (("--hit-rate", "RATIO"), ("--hit-rate-for", "DURATION"),
                          ("--p99", "DURATION"), ("--grafana-url", "URL"),
                          ("--build-cache-budget", "SIZE"), ("--out", "DIR")):
        assert re.search(rf"^\s+{re.escape(option)} {shape}\b", bundle, re.M), option
    doctor = help_of("doctor")
    assert "cachewatch doctor [OPTIONS] [DOCKERFILE]" in doctor
    assert re.search(r"^\s+--window DURATION\b", doctor, re.M)
    assert "Usage: cachewatch doctor [OPTIONS] {URL}" in help_of("doctor", "redis://h:1")


@pytest.mark.parametrize(("args", "says"), [
    (("serve", "-h"), "--redis-target"), (("serve", "--help"), "--state-url"),
    (("serve", "--bogus"), "No such option: --bogus"),
    (("serve", "--port", "x"), "port: must be a whole number"),
    (("serve", "--redis-timeout"), "'--redis-timeout' requires an argument"),
], ids=lambda value: " ".join(value) if isinstance(value, tuple) else "")
def test_serve_alone_answers_as_the_whole_command(args, says):
    """``cachewatch serve`` runs a command line holding ``serve`` alone (``main``): its help,
    usage errors and configuration errors are the whole command's, byte for byte."""
    whole = CliRunner().invoke(build_cli(), list(args), env={"COLUMNS": "80"})
    alone = CliRunner().invoke(serve_cli(), list(args), env={"COLUMNS": "80"})
    assert (alone.exit_code, alone.stdout, alone.stderr) == \
        (whole.exit_code, whole.stdout, whole.stderr)
    assert whole.exit_code == (0 if "-h" in args or "--help" in args else 2)
    assert says in whole.stdout + whole.stderr
