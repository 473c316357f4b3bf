"""The CI source's command: ``ingest-job`` (a finished job's whole log in, its builds and CI
caches out). Heavy imports wait until it runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ...failing import fail
from ..docker.commands import EXPORTER_URL, ImageOption, TargetOption, TokenOption, UrlOption


def ingest_job(
    log: Annotated[str, typer.Argument(metavar="LOG", hidden=True)] = "-",
    image: ImageOption = "",
    target: TargetOption = "",
    url: UrlOption = EXPORTER_URL,
    token: TokenOption = None,
    json_output: Annotated[bool, typer.Option(
        "--json", help="Print the job as JSON alone on stdout: builds, ci_caches, "
        "ci_cache_saves.")] = False,
) -> None:
    """Read a finished CI job's log: every Docker build in it and the CI's own cache restores
    and saves; send them to the exporter (the same log sent again counts nothing twice).
    Exits 3 when the log shows neither. LOG is the job's log file; - (the default) reads stdin.

    gh run view RUN_ID --log | cachewatch ingest-job
    """
    from . import job

    if log == "-":
        found = job.read(sys.stdin.buffer, image, target)
    else:
        path = Path(log)
        if not path.is_file():
            fail(f"no such job log: {log}")
        with path.open("rb") as stream:
            found = job.read(stream, image, target)
    if not job.deliver(found, url, token, json_output):
        raise typer.Exit(3)


def register(cli: typer.Typer) -> None:
    """Add this source's command to the ``cachewatch`` command."""
    cli.command("ingest-job")(ingest_job)
