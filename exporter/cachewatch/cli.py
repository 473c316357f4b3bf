"""The ``cachewatch`` command.

Every ``serve`` flag has a ``CACHEWATCH_*`` env var and a YAML key (``--config``); flags win,
then env vars, then the file. A flag that is not given leaves the lower sources in charge.
"""

from __future__ import annotations

import errno
import importlib
import inspect
import logging
import socket
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from . import __version__
from .defaults import ENV_PREFIX
from .failing import fail

if TYPE_CHECKING:
    from .config import Settings
    from .source import Doctor

# Plain help (click's formatter, rich_markup_mode=None): it rewraps every paragraph to the
# terminal, at most 80 columns, where rich's boxed table cuts flags and env vars with "…".
HELP = {"help_option_names": ["-h", "--help"], "max_content_width": 80}
log = logging.getLogger("cachewatch")


def _print_version(given: bool) -> None:
    if given:
        typer.echo(f"cachewatch {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[bool, typer.Option(
        "--version", "-V", is_eager=True, callback=_print_version,
        help="Print the version and exit.")] = False,
) -> None:
    """Options that come before a command (``cachewatch --version``)."""


def _command_line() -> typer.Typer:
    """``cachewatch`` with its root options and no command yet."""
    app = typer.Typer(name="cachewatch", no_args_is_help=True, add_completion=False,
                      pretty_exceptions_enable=False, rich_markup_mode=None,
                      context_settings=HELP)
    app.callback()(_root)
    return app


cli = _command_line()


def _env(name: str) -> str:
    return f"(env {ENV_PREFIX}{name})"


def _serve(config: Path | None, enable_collector: list[str] | None,
           disable_collector: list[str] | None, **options: str | list[str] | None) -> None:
    """Serve /metrics, /probe, /healthz, /readyz and a status page."""
    from . import logs
    from .config import ConfigError, load_settings
    from .sources import packages, sections

    flags: dict[str, object] = {key.replace("__", "."): value or None
                                for key, value in options.items()}
    for names, value in ((enable_collector, True), (disable_collector, False)):
        for name in names or ():
            if name not in sections():
                fail(f"unknown collector {name!r} in --enable/--disable-collector; "
                     f"known: {', '.join(sections())}")
            flags[f"{name}.enabled"] = value
    try:
        settings = load_settings(config, **flags)
    except ConfigError as exc:
        fail(str(exc))
    logs.setup(settings.log_level, settings.log_format,
               [name for source in packages() for name in source.chatty_loggers])
    _run(settings)


def _serve_command() -> Callable[..., None]:
    """``serve`` with one option per setting that has a flag, derived from the settings models
    (``config.setting_rows``): a flag, its env var and its YAML key are defined once."""
    from .config import setting_rows

    params = [
        _param("config", Path | None, typer.Option(
            "--config", "-c", envvar=f"{ENV_PREFIX}CONFIG", show_envvar=False, metavar="FILE",
            help=f"YAML file with any of the settings below {_env('CONFIG')}")),
    ]
    for row in setting_rows():
        if row.flag is None or not row.flag.startswith("--") or " " in row.flag:
            continue
        kind = list[str] | None if row.repeatable else str | None
        repeat = "; repeat for several" if row.repeatable else ""
        json_list = " (JSON list)" if row.repeatable else ""
        default = row.default.replace("`", "").strip("[]").strip() or "none"
        params.append(_param(row.key.replace(".", "__"), kind, typer.Option(
            row.flag, metavar=row.shape,
            show_default=False,
            help=f"{row.help}{repeat}; default {default}; env {row.env}{json_list}")))
    params += [
        _param("enable_collector", list[str] | None, typer.Option(
            metavar="NAME",
            help="Turn a collector on; repeatable (env CACHEWATCH_<NAME>__ENABLED=true)")),
        _param("disable_collector", list[str] | None, typer.Option(
            metavar="NAME",
            help="Turn a collector off; repeatable (env CACHEWATCH_<NAME>__ENABLED=false)")),
    ]

    def serve(**kwargs: Any) -> None:
        _serve(**kwargs)

    serve.__doc__ = _serve.__doc__
    serve.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    serve.__annotations__ = {p.name: p.annotation for p in params}
    return serve


def _param(name: str, kind: Any, option: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[kind, option])


def _run(settings: Settings) -> None:
    from .collectors.enabled import build
    from .config import ConfigError
    from .http import webconfig
    from .http.guard import LiveWebConfig
    from .http.server import create_app
    from .http.serving import make_server
    from .runtime import Runtime
    from .state import StateError, open_state

    _check_port_free(settings.listen_address, settings.port)
    try:
        web = LiveWebConfig(webconfig.load(settings.web.config_file))
    except webconfig.WebConfigError as exc:
        fail(str(exc))
    try:
        state = open_state(settings.state, settings.port)
    except StateError as exc:
        fail(f"{exc} (state.url: --state-url / {ENV_PREFIX}STATE__URL)")
    runtime = Runtime(state=state, body_budget=settings.web.max_inflight_body_bytes)
    try:
        built = build(settings, runtime)
    except ConfigError as exc:
        fail(str(exc))
    app = create_app(built, runtime, probe_allow=settings.probe.allow_list(), web=web,
                     goals=_goals(settings))
    server = make_server(app, settings.listen_address, settings.port, settings.web, web,
                         runtime.refusals)
    log.info("cachewatch starting", extra={
        "version": __version__,
        "listen": f"{'https' if web.current.tls else 'http'}://"
                  f"{settings.listen_address}:{settings.port}",
        "basic_auth_users": len(web.current.users),
        "probe_allow": settings.probe.allow_list().describe(),
        "max_connections": server.config.limits.max_connections,
        "collectors": ",".join(c.name for c in built) or "none",
        "state": f"{state.store.backend}:{state.store.where}", "replica": state.replica,
    })
    _say_closed_receivers(settings, bool(web.current.users))
    server.run()


def _goals(settings: Settings) -> tuple[Any, int]:
    """The thresholds the status page holds caches to (the file ``bundle --thresholds`` reads,
    or None for the bundle's defaults) and its lookup floor; a bad file stops start-up."""
    path = settings.status.thresholds_file
    if path is None:
        return None, settings.status.min_lookups
    from .bundle.thresholds import load

    try:
        return load(path, _source_thresholds()), settings.status.min_lookups
    except ValueError as exc:
        fail(f"{exc} (status.thresholds_file: --thresholds / "
             f"{ENV_PREFIX}STATUS__THRESHOLDS_FILE)")


def _say_closed_receivers(settings: Settings, basic_auth: bool) -> None:
    """Writes are closed by default: name the receivers that take them from loopback only,
    and how to open them (a token, or basic auth in the web config)."""
    from .sources import sections

    if basic_auth:
        return
    closed = [name for name, section in sections().items()
              if "token" in section.settings.model_fields
              and getattr(getattr(settings, name), "enabled", True)
              and getattr(settings, name).token is None]
    if closed:
        log.warning("receivers without a token take writes from loopback only; other hosts "
                    "get 403", extra={
                        "receivers": ",".join(closed),
                        "fix": " or ".join(f"{ENV_PREFIX}{name.upper()}__TOKEN" for name in closed)
                        + " (a bearer token), or basic_auth_users in --web.config.file"})


def _check_port_free(host: str, port: int) -> None:
    """Fail with the fix spelled out instead of uvicorn's bare errno."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            why = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc})"
            fail(f"{host}:{port} {why}: choose another with --port / {ENV_PREFIX}PORT"
                  f" or --listen-address / {ENV_PREFIX}LISTEN_ADDRESS")


def _bundle(ctx: typer.Context, out: Path, check: bool, thresholds: Path | None,
            **options: Any) -> None:
    """Generate the alerting and dashboard bundle from the metric contract.

    Under --out: alerts/ (Prometheus rules, their promtool tests, an Alertmanager example,
    Grafana-managed alerts), dashboards/ (Grafana dashboards and provisioning) and
    deploy/kubernetes/ (PrometheusRule, PodMonitor). Durations are like 30s, 10m or 1h; ratios
    are fractions (0.85 = 85 %). Example: cachewatch bundle --out . --hit-rate 0.9 --p99 25ms
    """
    from . import bundle as generator
    from .bundle.thresholds import from_file, from_options

    try:
        if thresholds is not None:
            # A flag given on the command line beats the file; the file beats the defaults.
            options.update({param: value for param, value in
                            from_file(thresholds, _source_thresholds()).items()
                            if _defaulted(ctx, param)})
        chosen = from_options(options, _source_thresholds())
    except ValueError as exc:
        fail(str(exc))
    if not chosen.p99_is_bucket_edge:
        typer.echo(f"cachewatch: note: {options['p99']} is not a latency bucket edge; "
                   "histogram_quantile interpolates there, so the P99 alert is approximate",
                   err=True)
    if check:
        stale = [rel for rel, content in generator.files(chosen).items()
                 if not (out / rel).is_file() or (out / rel).read_text() != content]
        if stale:
            fail("out of date (run `cachewatch bundle`): " + ", ".join(stale))
        typer.echo("bundle is up to date")
        return
    for path in generator.write(out, chosen):
        typer.echo(f"wrote {path}")


def _defaulted(ctx: typer.Context, param: str) -> bool:
    """Whether ``param`` took its default (was given neither on the command line nor by env)."""
    source = ctx.get_parameter_source(param)
    return source is None or source.name == "DEFAULT"


def _source_thresholds() -> list[type]:
    """The sources' thresholds models, in registration order (their own light modules: the
    CLI is built for ``serve`` too, which must not load the bundle's parts)."""
    from .sources import packages

    return [model for source in packages() if (model := source.thresholds_model())]


def _bundle_command() -> Callable[..., None]:
    """``bundle`` with one option per threshold that has a flag, derived from the core's
    thresholds model and the sources' parts' models (``thresholds.options``), in registration
    order: a threshold's flag, help and default are defined once."""
    from .bundle.thresholds import Thresholds, options

    params = [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY,
                                annotation=typer.Context),
              inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, default=Path("."),
                                annotation=Annotated[Path, typer.Option(
                                    metavar="DIR",
                                    help="Folder to write alerts/ (and dashboards/) into.")])]
    for option in options([Thresholds, *_source_thresholds()]):
        params.append(inspect.Parameter(
            option.param, inspect.Parameter.KEYWORD_ONLY, default=option.default,
            annotation=Annotated[type(option.default), typer.Option(
                option.name, metavar=option.metavar, help=option.help,
                show_default=option.flag.show_default)]))
    params.append(inspect.Parameter(
        "thresholds", inspect.Parameter.KEYWORD_ONLY, default=None,
        annotation=Annotated[Path | None, typer.Option(
            "--thresholds", metavar="FILE", help="YAML file of thresholds, keyed by these "
            "flags without dashes (hit-rate: 0.9, p99: 25ms); the flags beat it. serve "
            "--thresholds reads the same file for the status page.")]))
    params.append(inspect.Parameter("check", inspect.Parameter.KEYWORD_ONLY, default=False,
                                    annotation=Annotated[bool, typer.Option(
                                        "--check", help="Write nothing; exit 1 if the files "
                                        "under --out differ from a fresh generation.")]))

    def bundle(**kwargs: Any) -> None:
        _bundle(**kwargs)

    bundle.__doc__ = _bundle.__doc__
    bundle.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    bundle.__annotations__ = {p.name: p.annotation for p in params}
    return bundle


@cli.command("metrics")
def metrics_reference() -> None:
    """Print the metric reference (Markdown) generated from the metric contract."""
    from .metrics.contract import markdown_table
    from .sources import specs

    sys.stdout.write(markdown_table(specs()))


@cli.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"cachewatch {__version__}")


def _doctor_command(doctors: list[Doctor]) -> Callable[..., None]:
    """``doctor``, handed to the source doctor its first argument is for (``Doctor.takes``),
    with every argument as given: each source's doctor keeps its own options and help."""
    default = next((d for d in doctors if not d.schemes), doctors[0])

    def doctor(ctx: typer.Context) -> None:
        first = next((arg for arg in ctx.args if not arg.startswith("-")), "")
        chosen = next((d for d in doctors if d.takes(first)), default)
        module, _, function = chosen.command.partition(":")
        one = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                          rich_markup_mode=None, context_settings=HELP)
        one.command()(getattr(importlib.import_module(module), function))
        typer.main.get_command(one).main(ctx.args, prog_name="cachewatch doctor")

    kinds = "; ".join(f"cachewatch doctor {d.usage}" for d in doctors)
    doctor.__doc__ = (f"Say why a cache misses, with evidence and a fix: {kinds}. Exit code 1 "
                      "with findings, 0 without, 2 on an error; --help after the argument "
                      "shows that doctor's options.")
    return doctor


def build_cli() -> typer.Typer:
    """The whole command: the core commands, then each source's own (once)."""
    from .sources import packages

    if not any(command.name == "serve" for command in cli.registered_commands):
        *others, last = [source.title for source in packages() if source.title]
        listed = f"{', '.join(others)} and {last}" if others else last
        cli.info.help = (f"Cache hit rate and latency exporter for Prometheus: {listed}, under "
                         "one metric contract.")
        cli.command("serve")(_serve_command())
        cli.command("bundle")(_bundle_command())
        for source in packages():
            source.add_commands(cli)
        doctors = [source.doctor for source in packages() if source.doctor]
        if doctors:
            cli.command("doctor", add_help_option=False, context_settings={
                "allow_extra_args": True, "ignore_unknown_options": True,
                "help_option_names": []})(_doctor_command(doctors))
    return cli


@cache
def serve_cli() -> typer.Typer:
    """``cachewatch`` with ``serve`` alone, which ``main`` runs for ``cachewatch serve ...``:
    ``serve`` parses, helps and fails exactly as in the whole command, and the exporter does
    not keep the other commands' options for its lifetime (``bundle``'s load every thresholds
    model; with the sources' commands about 0.4 MB of a sidecar's memory)."""
    app = _command_line()
    app.command("serve")(_serve_command())
    return app


def main() -> None:
    """Console-script entry point."""
    (serve_cli() if sys.argv[1:2] == ["serve"] else build_cli())()
