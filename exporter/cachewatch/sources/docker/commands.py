"""The Docker source's commands: ``ingest-build`` (pipe a log in) and ``build`` (wrap a build).

Both parse the log as it streams through, then send the summary to the exporter's build API.
Heavy imports wait until a command runs, so ``cachewatch ingest-build`` starts fast in CI.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ...defaults import DEFAULT_PORT, ENV_PREFIX
from ...failing import fail

ImageOption = Annotated[str, typer.Option(
    metavar="NAME", help="The `image` label of a log's lone build; in a log of several builds,"
    " of those that name no image of their own (each is counted under its compose service,"
    " else the image its log names: `naming to`, `Successfully tagged`, `-t`). Default: the"
    " log's name, else `unnamed`.")]
TargetOption = Annotated[str, typer.Option(metavar="STAGE", help="Dockerfile --target, if any.")]
UrlOption = Annotated[str, typer.Option(
    envvar="CACHEWATCH_URL", show_envvar=False, metavar="URL",
    help="Exporter to send the summary to; empty to only print it (env CACHEWATCH_URL)")]
TokenOption = Annotated[str | None, typer.Option(
    envvar=f"{ENV_PREFIX}BUILDS__TOKEN", show_envvar=False, show_default=False, metavar="TOKEN",
    help="Bearer token of the exporter's builds.token (env CACHEWATCH_BUILDS__TOKEN)")]
JsonOption = Annotated[bool, typer.Option(
    "--json", help="Print the summary as JSON (on stderr) instead of the human one.")]
EXPORTER_URL = f"http://127.0.0.1:{DEFAULT_PORT}"


def ingest_build(
    image: ImageOption = "",
    target: TargetOption = "",
    url: UrlOption = EXPORTER_URL,
    token: TokenOption = None,
    exit_code: Annotated[int | None, typer.Option(
        metavar="CODE", help="The build's exit code, if known (a pipe hides it).")] = None,
    json_summary: JsonOption = False,
) -> None:
    """Read a build log on stdin, pass it through to stdout, then report its cache use: one
    report per build in it (a CI job, a compose/bake build of several services). A log that
    shows no build counts nothing and exits with code 3.

    docker build --progress=plain . 2>&1 | cachewatch ingest-build --image app
    """
    from . import ingest

    summaries = ingest.from_stream(sys.stdin.buffer, image, target, exit_code)
    if not ingest.deliver(summaries, url, token, json_summary):
        raise typer.Exit(ingest.NO_BUILD)


def build_command(
    ctx: typer.Context,
    image: ImageOption = "",
    target: TargetOption = "",
    url: UrlOption = EXPORTER_URL,
    token: TokenOption = None,
    json_summary: JsonOption = False,
) -> None:
    """Run a build command, stream its output, report its cache use; exit with its exit code
    (a failed command is a failed build, even one that failed before building).

    cachewatch build -- docker build --progress=plain -t app .
    """
    from . import ingest

    if not ctx.args:
        fail("give the build command after --, like: cachewatch build -- "
             "docker build -t app .")
    summaries, code = ingest.run(ctx.args, image or ingest.tag_of(ctx.args), target)
    ingest.deliver(summaries, url, token, json_summary)
    raise typer.Exit(code)


def doctor(
    dockerfile: Annotated[str, typer.Argument(
        metavar="DOCKERFILE", hidden=True)] = "Dockerfile",
    context: Annotated[Path | None, typer.Option(
        metavar="DIR",
        help="Build context, for .dockerignore and .git. Default: the Dockerfile's folder.",
        show_default=False)] = None,
    json_output: Annotated[bool, typer.Option(
        "--json", help="Print the findings as a JSON list, for tools.")] = False,
    url: Annotated[str | None, typer.Option(
        metavar="URL",
        help="A running exporter: rank the findings by the cache busts and build time its "
             "counters hold (totals since it started counting).", show_default=False)] = None,
    prometheus: Annotated[str | None, typer.Option(
        metavar="URL", help="Prometheus scraping the exporters: rank the findings over --window.",
        show_default=False)] = None,
    image: Annotated[str | None, typer.Option(
        metavar="NAME",
        help="The `image` label this Dockerfile's builds are counted under (ingest-build "
             "--image, or the repository of the engine's tag). Default: the build context "
             "folder's name, lower-cased.", show_default=False)] = None,
    window: Annotated[str | None, typer.Option(
        metavar="DURATION",
        help="With --prometheus, the window to count over, as a Prometheus duration. "
             "Default: 7d.", show_default=False)] = None,
    buildkit_target: Annotated[str | None, typer.Option(
        "--buildkit-target", metavar="[NAME=]ADDR",
        help="A BuildKit daemon (unix:///path or tcp://host:port): rank the findings by the "
             "builds its own history keeps (needs cachewatch[buildkit]).",
        show_default=False)] = None,
) -> None:
    """Find why a Dockerfile's build cache breaks, and what fixing it would save: a
    PATH:LINE: rule: message line per finding (DOCKERFILE: the Dockerfile or its folder, - reads
    stdin; ./Dockerfile by default), its fix below as an indented diff (--json gives each
    fix as a diff git apply takes; apply one, then run the doctor again).
    Exit code 1 when something was found, 0 when not, 2 on a usage error; --url,
    --prometheus and --buildkit-target rank the findings by what they cost, and never change
    the exit code."""
    from .doctor.command import Options, UsageError, run

    options = Options(dockerfile, context, json_output, url, prometheus, image, window,
                      buildkit_target)
    try:
        code = run(options)
    except UsageError as exc:
        fail(str(exc))
    raise typer.Exit(code)


def register(cli: typer.Typer) -> None:
    """Add this source's commands to the ``cachewatch`` command."""
    cli.command("ingest-build")(ingest_build)
    cli.command("build", context_settings={"allow_extra_args": True,
                                           "ignore_unknown_options": True})(build_command)
