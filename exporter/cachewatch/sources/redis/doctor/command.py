"""``cachewatch doctor redis://host:port``: measure, diagnose, print; the exit code.

Findings go to stdout as ``ADDRESS: rule: message`` with the fix indented below (or a JSON list
with the evidence), like the Dockerfile doctor's; a summary or an error goes to stderr. Exit
code 1 with findings, 0 without, 2 when the server cannot be read or the arguments are wrong.
Credentials and TLS take the same options as a configured target, and never show in output.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import IO, Annotated

import typer
from pydantic import ValidationError

from ....failing import fail
from ..client import classify
from ..settings import DEFAULT_MAX_REPLY_BYTES, RedisTarget, address_label
from .rules import Finding, Options, diagnose
from .signals import gather

DEFAULT_SAMPLE = 1000


def render(findings: list[Finding], address: str, as_json: bool) -> str:
    """The findings as text lines (fix indented below) or as a JSON list."""
    if as_json:
        return json.dumps([{"target": address, **asdict(f)} for f in findings], indent=2) + "\n"
    return "".join(f"{address}: {f.rule}: {f.message}\n    fix: {f.fix}\n" for f in findings)


def _target(url: str, username: str | None, password_file: Path | None,
            tls: tuple[Path | None, Path | None, Path | None, bool]) -> RedisTarget:
    ca, cert, key, insecure = tls
    try:
        return RedisTarget(url=url, username=username, password_file=password_file,
                           tls_ca_file=ca, tls_cert_file=cert, tls_key_file=key,
                           tls_insecure_skip_verify=insecure)
    except ValidationError as exc:
        fail(f"{url.split('@')[-1]}: {exc.errors()[0]['msg']}")


def doctor(
    target: Annotated[str, typer.Argument(metavar="URL", hidden=True)],
    username: Annotated[str | None, typer.Option(metavar="NAME",
                                                          help="ACL user (Redis 6+).")] = None,
    password_file: Annotated[Path | None, typer.Option(
        metavar="FILE", help="File holding the password (trailing newline ignored).")] = None,
    tls_ca_file: Annotated[Path | None, typer.Option(
        metavar="FILE", help="CA bundle to verify the server.")]
    = None,
    tls_cert_file: Annotated[Path | None, typer.Option(
        metavar="FILE", help="Client certificate.")] = None,
    tls_key_file: Annotated[Path | None, typer.Option(
        metavar="FILE", help="Client key.")] = None,
    tls_insecure_skip_verify: Annotated[bool, typer.Option(
        help="Do not verify the server certificate (testing only).")] = False,
    replica: Annotated[str | None, typer.Option(
        metavar="URL",
        help="A replica to take the key sample from (same credentials), sparing the primary.",
        show_default=False)] = None,
    sample: Annotated[int, typer.Option(
        min=0, max=100_000, metavar="N", help="Keys sampled by SCAN (COUNT 100 a call) for "
        "MEMORY USAGE and OBJECT FREQ; never KEYS or MONITOR.")] = DEFAULT_SAMPLE,
    window: Annotated[float, typer.Option(
        min=0, max=300, metavar="SECONDS",
        help="Seconds between the two INFO reads that give rates.")] = 1.0,
    pings: Annotated[int, typer.Option(
        min=1, max=10_000, metavar="N", help="Timed PINGs for the client-observed P99.")] = 50,
    big_key_bytes: Annotated[int, typer.Option(
        min=1, metavar="BYTES", help="A sampled key this large or larger is a big key.")] = 1 << 20,
    json_output: Annotated[bool, typer.Option(
        "--json", help="Print the findings as a JSON list with their evidence.")] = False,
) -> None:
    """Say why the Redis at URL (redis://host:port, or rediss:// for TLS) has a low hit rate:
    an ADDRESS: rule: message line per finding, with its
    evidence and the fix below. Exit code 1 when something was found, 0 when not, 2 when the
    server cannot be read."""
    tls = (tls_ca_file, tls_cert_file, tls_key_file, tls_insecure_skip_verify)
    main = _target(target, username, password_file, tls)
    source = main
    if replica is not None:  # the primary's credentials and TLS, at the replica's address
        url = _target(replica, None, None, (None, None, None, False)).url
        source = main.model_copy(update={"url": url, "name": address_label(url)})
    raise typer.Exit(run(main, source, sample, window, pings, Options(big_key_bytes),
                         json_output))


def run(main: RedisTarget, source: RedisTarget, sample: int, window: float, pings: int,
        options: Options, as_json: bool, out: IO[str] | None = None,
        err: IO[str] | None = None) -> int:
    """Measure and diagnose ``main`` (sampling keys on ``source``); print; the exit code."""
    out, err = out or sys.stdout, err or sys.stderr
    address = address_label(main.url)
    try:
        signals = asyncio.run(gather(main, source, window=window, sample=sample, pings=pings,
                                     max_reply_bytes=DEFAULT_MAX_REPLY_BYTES))
    except Exception as exc:  # every failure of the read is one line and exit code 2
        reason, message = classify(exc)
        print(f"cachewatch: {address}: cannot read it ({reason}): {message}", file=err)
        return 2
    findings = diagnose(signals, options)
    out.write(render(findings, address, as_json))
    if "doctor_sample_error" in signals.info:
        print(f"cachewatch: note: no key sample ({signals.info['doctor_sample_error']}); "
              "hot and big keys were not looked for", file=err)
    if not findings:
        print(f"cachewatch: {address}: no cache problems found ({len(signals.memory)} keys "
              "sampled)", file=err)
    return 1 if findings else 0
