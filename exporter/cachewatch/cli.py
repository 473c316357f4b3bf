"""The ``cachewatch`` command.

Every ``serve`` flag has a ``CACHEWATCH_*`` env var and a YAML key (``--config``); flags win,
then env vars, then the file. A flag that is not given leaves the lower sources in charge.
"""

from __future__ import annotations

import errno
import logging
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from . import __version__
from .defaults import DEFAULT_PORT, ENV_PREFIX

if TYPE_CHECKING:
    from .config import Settings

cli = typer.Typer(
    name="cachewatch",
    help="Cache hit rate and latency exporter for Prometheus: Docker build cache, registry, "
    "Redis and in-process caches, under one metric contract.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
log = logging.getLogger("cachewatch")


def _env(name: str) -> str:
    return f"(env {ENV_PREFIX}{name})"


@cli.command()
def serve(
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", envvar=f"{ENV_PREFIX}CONFIG",
        help=f"YAML file with any of the settings below {_env('CONFIG')}")] = None,
    listen_address: Annotated[str | None, typer.Option(
        help=f"Address to listen on; default 0.0.0.0 {_env('LISTEN_ADDRESS')}")] = None,
    port: Annotated[int | None, typer.Option(
        help=f"Port to listen on; default {DEFAULT_PORT} {_env('PORT')}")] = None,
    log_level: Annotated[str | None, typer.Option(
        help=f"debug, info, warning or error; default info {_env('LOG_LEVEL')}")] = None,
    log_format: Annotated[str | None, typer.Option(
        help=f"logfmt or json; default logfmt {_env('LOG_FORMAT')}")] = None,
    redis_target: Annotated[list[str] | None, typer.Option(
        help="Redis to read, [NAME=]URL (redis://, rediss://, unix://); repeat for several;"
        f" default redis://127.0.0.1:6379 {_env('REDIS__TARGETS')} (JSON list)")] = None,
    redis_timeout: Annotated[str | None, typer.Option(
        help=f"Per-target deadline, like 2s or 500ms; default 2s {_env('REDIS__TIMEOUT')}")] = None,
    redis_probe_interval: Annotated[str | None, typer.Option(
        help="Time between latency probes (PING) per target; 0 turns them off; default 1s"
        f" {_env('REDIS__PROBE_INTERVAL')}")] = None,
    redis_secrets_file: Annotated[Path | None, typer.Option(
        help="YAML/JSON map of target name or address to password or {username, password}"
        f" {_env('REDIS__SECRETS_FILE')}")] = None,
    builds_token: Annotated[str | None, typer.Option(
        help="Bearer token POST /api/v1/builds requires; prefer the env var"
        f" {_env('BUILDS__TOKEN')}", show_default=False)] = None,
    docker_host: Annotated[str | None, typer.Option(
        help="Docker Engine for the docker collector (--enable-collector docker); default"
        f" $DOCKER_HOST or unix:///var/run/docker.sock {_env('DOCKER__HOST')}")] = None,
    enable_collector: Annotated[list[str] | None, typer.Option(
        help="Turn a collector on; repeatable (env CACHEWATCH_<NAME>__ENABLED=true)")] = None,
    disable_collector: Annotated[list[str] | None, typer.Option(
        help="Turn a collector off; repeatable (env CACHEWATCH_<NAME>__ENABLED=false)")] = None,
) -> None:
    """Serve /metrics, /probe, /healthz, /readyz and a status page."""
    from . import logs
    from .collectors import FACTORIES
    from .config import ConfigError, load_settings

    flags: dict[str, object] = {
        "listen_address": listen_address,
        "port": port,
        "log_level": log_level,
        "log_format": log_format,
        "redis.targets": redis_target or None,
        "redis.timeout": redis_timeout,
        "redis.probe_interval": redis_probe_interval,
        "redis.secrets_file": redis_secrets_file,
        "builds.token": builds_token,
        "docker.host": docker_host,
    }
    for names, value in ((enable_collector, True), (disable_collector, False)):
        for name in names or ():
            if name not in FACTORIES:
                _fail(f"unknown collector {name!r} in --enable/--disable-collector; "
                      f"known: {', '.join(FACTORIES)}")
            flags[f"{name}.enabled"] = value
    try:
        settings = load_settings(config, **flags)
    except ConfigError as exc:
        _fail(str(exc))
    logs.setup(settings.log_level, settings.log_format)
    _run(settings)


def _run(settings: Settings) -> None:
    import uvicorn

    from . import collectors
    from .app import create_app
    from .config import ConfigError
    from .health import Health

    _check_port_free(settings.listen_address, settings.port)
    health = Health()
    try:
        built = collectors.build(settings, health)
    except ConfigError as exc:
        _fail(str(exc))
    log.info("cachewatch starting", extra={
        "version": __version__,
        "listen": f"{settings.listen_address}:{settings.port}",
        "collectors": ",".join(c.name for c in built) or "none",
        "redis_targets": ",".join(f"{t.name}={t.url}" for t in settings.redis.targets)
        if settings.redis.enabled else "-",
    })
    app = create_app(built, health)
    server = uvicorn.Server(uvicorn.Config(
        app, host=settings.listen_address, port=settings.port, log_config=None,
        access_log=False, server_header=False, lifespan="on",
    ))
    server.run()


def _check_port_free(host: str, port: int) -> None:
    """Fail with the fix spelled out instead of uvicorn's bare errno."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            why = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc})"
            _fail(f"{host}:{port} {why}: choose another with --port / {ENV_PREFIX}PORT"
                  f" or --listen-address / {ENV_PREFIX}LISTEN_ADDRESS")


def _fail(message: str) -> None:
    typer.echo(f"cachewatch: {message}", err=True)
    raise typer.Exit(2)


# Options shared by `ingest-build` and `build`.
ImageOption = Annotated[str, typer.Option(help="Image (or job) name: the `image` label.")]
TargetOption = Annotated[str, typer.Option(help="Dockerfile --target, if any.")]
UrlOption = Annotated[str, typer.Option(
    envvar="CACHEWATCH_URL",
    help="Exporter to send the summary to; empty to only print it (env CACHEWATCH_URL)")]
TokenOption = Annotated[str | None, typer.Option(
    envvar=f"{ENV_PREFIX}BUILDS__TOKEN", show_default=False,
    help="Bearer token of the exporter's builds.token (env CACHEWATCH_BUILDS__TOKEN)")]
JsonOption = Annotated[bool, typer.Option(
    "--json", help="Print the summary as JSON (on stderr) instead of the human one.")]
EXPORTER_URL = f"http://127.0.0.1:{DEFAULT_PORT}"


@cli.command("ingest-build")
def ingest_build(
    image: ImageOption,
    target: TargetOption = "",
    url: UrlOption = EXPORTER_URL,
    token: TokenOption = None,
    exit_code: Annotated[int | None, typer.Option(
        help="The build's exit code, if known (a pipe hides it).")] = None,
    json_summary: JsonOption = False,
) -> None:
    """Read a build log on stdin, pass it through to stdout, then report its cache use.

    docker build --progress=plain . 2>&1 | cachewatch ingest-build --image app
    """
    from . import build_ingest

    summary = build_ingest.from_stream(sys.stdin.buffer, image, target, exit_code)
    build_ingest.deliver(summary, url, token, json_summary)


@cli.command("build", context_settings={"allow_extra_args": True,
                                        "ignore_unknown_options": True})
def build_command(
    ctx: typer.Context,
    image: ImageOption,
    target: TargetOption = "",
    url: UrlOption = EXPORTER_URL,
    token: TokenOption = None,
    json_summary: JsonOption = False,
) -> None:
    """Run a build command, stream its output, report its cache use; exit with its exit code.

    cachewatch build --image app -- docker build --progress=plain -t app .
    """
    from . import build_ingest

    if not ctx.args:
        _fail("give the build command after --, like: cachewatch build --image app -- "
              "docker build -t app .")
    summary, code = build_ingest.run(ctx.args, image, target)
    build_ingest.deliver(summary, url, token, json_summary)
    raise typer.Exit(code)


@cli.command()
def bundle(
    out: Annotated[Path, typer.Option(help="Folder to write alerts/ (and dashboards/) into.")]
    = Path("."),
    hit_rate: Annotated[float, typer.Option(help="Alert below this hit ratio.")] = 0.85,
    hit_rate_for: Annotated[str, typer.Option(help="...for this long.")] = "10m",
    p99: Annotated[str, typer.Option(help="Alert when P99 latency is above this.")] = "50ms",
    p99_for: Annotated[str, typer.Option(help="...for this long.")] = "5m",
    build_hit_rate: Annotated[float, typer.Option(
        help="Alert when builds take fewer of their steps from cache.")] = 0.5,
    build_window: Annotated[str, typer.Option(help="Over this window of builds.")] = "1h",
    registry_hit_rate: Annotated[float, typer.Option(
        help="Alert below this pull-through cache hit ratio.")] = 0.85,
    runbook_url: Annotated[str, typer.Option(help="Where the runbooks (README) live.")]
    = "https://github.com/cachewatch/cachewatch/blob/main/README.md",
    grafana_url: Annotated[str, typer.Option(help="Grafana, for alerts' dashboard links.")]
    = "http://localhost:3000",
    check: Annotated[bool, typer.Option(
        help="Write nothing; exit 1 if the files under --out differ from a fresh generation.")]
    = False,
) -> None:
    """Generate the Prometheus rules (with their promtool tests) and Alertmanager example."""
    from . import bundle as generator
    from .bundle.thresholds import Thresholds
    from .config import parse_duration

    try:
        thresholds = Thresholds(
            hit_rate=hit_rate, hit_rate_for=hit_rate_for, p99_seconds=parse_duration(p99),
            p99_for=p99_for, build_hit_rate=build_hit_rate, build_window=build_window,
            registry_hit_rate=registry_hit_rate, runbook_url=runbook_url,
            grafana_url=grafana_url.rstrip("/"))
    except ValueError as exc:
        _fail(str(exc))
    if not thresholds.p99_is_bucket_edge:
        typer.echo(f"cachewatch: note: {p99} is not a latency bucket edge; histogram_quantile "
                   "interpolates there, so the P99 alert is approximate", err=True)
    if check:
        stale = [rel for rel, content in generator.files(thresholds).items()
                 if not (out / rel).is_file() or (out / rel).read_text() != content]
        if stale:
            _fail("out of date (run `cachewatch bundle`): " + ", ".join(stale))
        typer.echo("bundle is up to date")
        return
    for path in generator.write(out, thresholds):
        typer.echo(f"wrote {path}")


@cli.command("metrics")
def metrics_reference() -> None:
    """Print the metric reference (Markdown) generated from the metric contract."""
    from . import contract

    sys.stdout.write(contract.markdown_table())


@cli.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"cachewatch {__version__}")


def main() -> None:
    """Console-script entry point."""
    cli()
