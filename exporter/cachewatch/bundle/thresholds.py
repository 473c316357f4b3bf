"""The one place alert thresholds and durations come from (``cachewatch bundle --hit-rate ...``).

Defaults are the contract's targets: hit rate 85 %, P99 50 ms. A user regenerates the whole
bundle (rules, their unit tests, dashboards' threshold lines) with their own numbers.

A threshold is defined once, as a field of a frozen dataclass made with ``threshold()``: its
default, how it is checked and, if users set it, its ``Flag``. The core's fields are
``Thresholds``; a source's own are its bundle part's model (``BundlePart.thresholds``), which
``Thresholds.parts`` carries and ``Thresholds.of`` hands back. ``cachewatch bundle``'s options
are derived from these fields (``options()``), the way ``serve``'s are from the settings models.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..defaults import DOCS_URL
from ..fields import parse_duration, safe_yaml, yaml_error
from ..metrics import contract

_DURATION = re.compile(r"^(\d+)(s|m|h)$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_EQUALS = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"\\]*)"\s*$')
# Labels the rules set or aggregate themselves: an identity label by one of these names would
# collide with them.
_RESERVED = frozenset({"layer", "cache", "result", "le", "command", "image", "reason",
                       "endpoint", "collector", "target", "severity", "alertname", "quantile"})


def seconds(duration: str) -> int:
    """``10m`` -> 600: Prometheus durations, the units the rules use."""
    match = _DURATION.match(duration)
    if not match:
        raise ValueError(f"{duration!r} is not a duration like 30s, 10m or 1h")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]


# A field's check: raises ValueError naming the field when its value is not acceptable.
Check = Callable[[str, Any], None]
Model = TypeVar("Model")


def ratio(name: str, value: float) -> None:
    """A hit ratio is a fraction strictly between 0 and 1."""
    if not 0 < value < 1:
        raise ValueError(f"{name} must be between 0 and 1 (a ratio), not {value}")


def duration(name: str, value: str) -> None:
    """A ``for`` or a window is a Prometheus duration the rules can use as is."""
    seconds(value)


def positive(what: str) -> Check:
    """A size or a latency above zero; ``what`` names it in the error."""
    def check(name: str, value: float) -> None:
        if value <= 0:
            raise ValueError(f"{what} must be positive")
    return check


@dataclass(frozen=True)
class Flag:
    """How users set a threshold on ``cachewatch bundle``'s command line."""

    help: str
    # The long flag; ``--<the field's name, dashed>`` when empty.
    name: str = ""
    # The flag's value -> the field's (``20GiB`` -> bytes); the value as is when None.
    parse: Callable[[Any], Any] | None = None
    # The field's default -> the flag's default, whose type is the flag's (bytes -> ``20GiB``).
    text: Callable[[Any], Any] | None = None
    # False: the default is written into the help text instead of typer's default column.
    show_default: bool = True
    # How the value is written in ``--help`` (``URL``); derived from the check when empty.
    metavar: str = ""


def threshold(default: Any, *, check: Check | None = None, flag: Flag | None = None) -> Any:
    """A field of a thresholds model: its default, its check and, if users set it, its flag."""
    return dataclasses.field(default=default, metadata={"check": check, "flag": flag})


def checked(model: object) -> None:
    """Run every field's check (a thresholds model's ``__post_init__``)."""
    for field in dataclasses.fields(model):  # type: ignore[arg-type]
        check = field.metadata.get("check")
        if check is not None:
            check(field.name, getattr(model, field.name))


@dataclass(frozen=True)
class Option:
    """One option of ``cachewatch bundle``: a thresholds model's field that has a flag."""

    model: type
    field: str
    flag: Flag
    default: Any  # as the flag takes it

    @property
    def name(self) -> str:
        """The long flag, ``--build-cache-budget``."""
        return self.flag.name or "--" + self.field.replace("_", "-")

    @property
    def param(self) -> str:
        """The command's parameter, named after the flag (``build_cache_budget``)."""
        return self.name.removeprefix("--").replace("-", "_")

    @property
    def help(self) -> str:
        """The help text, with the default in it when typer's column does not show it."""
        return self.flag.help if self.flag.show_default else \
            f"{self.flag.help} [default: {self.default}]"

    @property
    def metavar(self) -> str:
        """How the value is written in ``--help``: ``DURATION``, ``RATIO`` or the flag's own."""
        check = next(f.metadata.get("check") for f in dataclasses.fields(self.model)
                     if f.name == self.field)
        if self.flag.metavar:
            return self.flag.metavar
        if check is duration or self.flag.parse is parse_duration:
            return "DURATION"
        return "RATIO" if check is ratio else "TEXT"

    def value(self, given: Any) -> Any:
        """The field's value for the flag's value ``given``."""
        return given if self.flag.parse is None else self.flag.parse(given)


def options(models: Iterable[type]) -> list[Option]:
    """The flags of the models' fields, model by model, field by field."""
    found = []
    for model in models:
        for field in dataclasses.fields(model):
            flag = field.metadata.get("flag")
            if flag is not None:
                default = field.default if flag.text is None else flag.text(field.default)
                found.append(Option(model, field.name, flag, default))
    return found


def from_options(values: Mapping[str, Any], parts: Iterable[type]) -> Thresholds:
    """The thresholds that ``cachewatch bundle``'s option values (by parameter) give: the core's
    and those of the parts' models ``parts``; ValueError names what is wrong."""
    def model(cls: type) -> Any:
        return cls(**{o.field: o.value(values[o.param]) for o in options([cls])})

    return Thresholds(**{o.field: o.value(values[o.param]) for o in options([Thresholds])},
                      parts=tuple(model(cls) for cls in parts))


def from_file(path: Path, parts: Iterable[type]) -> dict[str, Any]:
    """The option values (by parameter) a thresholds file sets: a YAML mapping whose keys are
    ``cachewatch bundle``'s flags without the dashes (``hit-rate: 0.9``, ``p99: 25ms``), written
    as on the command line. One file that ``bundle --thresholds`` and ``serve --thresholds``
    both read, so the status page turns red where the alerts fire. ValueError names the file,
    the key and what to write instead."""
    import yaml

    try:
        data = safe_yaml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: {yaml_error(exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: write a mapping of thresholds, like `hit-rate: 0.9`")
    known = {o.param: o for o in options([Thresholds, *parts])}
    values = {}
    for key, value in data.items():
        param = str(key).removeprefix("--").replace("-", "_")
        if param not in known:
            raise ValueError(f"{path}: unknown threshold {key!r}; the keys are "
                             + ", ".join(o.name.removeprefix("--") for o in known.values()))
        kind = type(known[param].default)
        try:
            values[param] = value if isinstance(value, kind) else kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"{path}: {key!r} takes a value like "
                             f"{known[param].default!r}, not {value!r}") from None
    return values


def load(path: Path, parts: Iterable[type]) -> Thresholds:
    """The thresholds a thresholds file gives, the defaults for what it leaves out (what
    ``serve --thresholds`` holds the status page to)."""
    parts = list(parts)
    values = {o.param: o.default for o in options([Thresholds, *parts])}
    values.update(from_file(path, parts))
    try:
        return from_options(values, parts)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _items(text: str) -> tuple[str, ...]:
    """``"a, b,"`` -> ``("a", "b")``: a comma-separated flag value."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _pair(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"{item!r} is not key=value")
    return key.strip(), value.strip()


def _milliseconds(value: float) -> str:
    """0.05 -> ``50ms``: how a latency threshold reads on the command line."""
    return f"{round(value * 1000, 6):g}ms"


# The runbooks page of the docs; each alert links to its section, `#` + its name in lower case.
_RUNBOOKS = DOCS_URL + "alerts.md"


@dataclass(frozen=True)
class Thresholds:
    """Everything the rules and dashboards are drawn at: the core's thresholds, and each
    source's own model in ``parts`` (``of()``)."""

    hit_rate: float = threshold(contract.HIT_RATE_TARGET, check=ratio, flag=Flag(
        "Alert below this hit ratio."))
    hit_rate_for: str = threshold("10m", check=duration, flag=Flag(
        "How long the hit ratio must stay below --hit-rate before CacheHitRateLow fires."))
    p99_seconds: float = threshold(contract.LATENCY_P99_TARGET_SECONDS, check=positive("p99"),
                                   flag=Flag("Alert when P99 latency is above this.", "--p99",
                                             parse_duration, _milliseconds))
    p99_for: str = threshold("5m", check=duration, flag=Flag(
        "How long P99 must stay above --p99 before the latency alerts fire."))
    # Fewer lookups a second than this and a hit rate says little: no alert (low traffic).
    min_lookups_per_second: float = 1.0
    min_latency_observations_per_second: float = 0.1
    down_for: str = threshold("5m", check=duration)
    errors_window: str = threshold("10m", check=duration)
    max_errors: int = 3
    runbook_url: str = threshold(_RUNBOOKS, flag=Flag(
        "The runbooks page (docs/alerts.md, or where your docs site serves it); each alert "
        "links to its section, URL#alertname", show_default=False,
        metavar="URL"))
    grafana_url: str = threshold("http://localhost:3000", flag=Flag(
        "Grafana, for alerts' dashboard links.", parse=lambda url: url.rstrip("/"),
        metavar="URL"))
    # Which cache a series is in a fleet: every aggregation keeps these labels, alerts carry
    # them and inhibitions match on them (the mixins' clusterLabel, generalised). Labels a
    # Prometheus does not have (no `cluster` in a single cluster) simply stay empty.
    identity_labels: tuple[str, ...] = threshold(("cluster", "namespace", "job"), flag=Flag(
        "Labels that tell the fleet's caches apart (comma-separated): every rule keeps them, "
        "alerts carry them, inhibitions match on them, dashboards get a variable for each; "
        "empty for one Prometheus with one cachewatch.", parse=_items, text=",".join,
        metavar="LABELS"))
    # The label matchers that select cachewatch's own scrape targets in `up`: equality matchers
    # only, the labels absent() can give its alert.
    cachewatch_selector: str = threshold('job="cachewatch"', flag=Flag(
        'Matchers of cachewatch\'s own scrape targets in `up` (label="value", comma-separated), '
        "for CachewatchDown and CachewatchAbsent; the PodMonitor sets them.",
        metavar="MATCHERS"))
    # Labels on the PrometheusRule and PodMonitor that the Prometheus Operator selects them by
    # (kube-prometheus-stack: `release: <its release name>`).
    operator_selector: tuple[tuple[str, str], ...] = threshold(
        (("release", "kube-prometheus-stack"),), flag=Flag(
            "Labels (key=value, comma-separated) on the PrometheusRule and PodMonitor that the "
            "Prometheus Operator selects them by; kube-prometheus-stack wants release=<its "
            "release name>; empty for none.",
            parse=lambda text: tuple(_pair(item) for item in _items(text)),
            text=lambda pairs: ",".join(f"{key}={value}" for key, value in pairs),
            metavar="KEY=VALUE[,KEY=VALUE]"))
    # `for` of the alerts on windows: held longer than the window, so that one burst (which
    # stays in a window for exactly its length) never fires, and a lasting fault does.
    absent_for: str = threshold("15m", check=duration)
    errors_for: str = threshold("15m", check=duration)
    rejected_window: str = threshold("5m", check=duration)
    rejected_for: str = threshold("10m", check=duration)
    # The sources' own thresholds: one instance of a bundle part's model each.
    parts: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        checked(self)
        labels = [*self.identity_labels, *(key for key, _ in self.operator_selector)]
        for label in labels:
            if not _LABEL.match(label):
                raise ValueError(f"{label!r} is not a Prometheus label name")
        clash = _RESERVED.intersection(self.identity_labels)
        if clash:
            raise ValueError(f"identity labels cannot be {', '.join(sorted(clash))}: the rules "
                             "use those names themselves")
        if len(set(self.identity_labels)) != len(self.identity_labels):
            raise ValueError("identity labels must not repeat")
        if len({type(part) for part in self.parts}) != len(self.parts):
            raise ValueError("one thresholds model per part")
        self.cachewatch_labels  # noqa: B018 - validates the selector

    def of(self, model: type[Model]) -> Model:
        """A source's thresholds: its model's instance in ``parts``, else its defaults."""
        return next((part for part in self.parts if type(part) is model), None) or model()

    @property
    def cachewatch_labels(self) -> dict[str, str]:
        """``job="cachewatch"`` -> ``{"job": "cachewatch"}``: the labels of cachewatch's ``up``."""
        found = {}
        for matcher in self.cachewatch_selector.split(","):
            match = _EQUALS.match(matcher)
            if not match:
                raise ValueError(f"the cachewatch selector takes label=\"value\" matchers "
                                 f"separated by commas (absent() needs them), not "
                                 f"{self.cachewatch_selector!r}")
            found[match.group(1)] = match.group(2)
        return found

    def by(self, *labels: str) -> str:
        """``cluster, namespace, job, <labels>``: the grouping of every aggregation and vector
        match, so two namespaces' caches of the same name stay two series."""
        return ", ".join((*self.identity_labels, *labels))

    @property
    def p99_is_bucket_edge(self) -> bool:
        """histogram_quantile is exact only at a bucket edge; elsewhere it interpolates."""
        return self.p99_seconds in contract.LATENCY_BUCKETS
