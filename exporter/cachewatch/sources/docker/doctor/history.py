"""Reading an image's cache busters for ``cachewatch doctor --url`` / ``--prometheus``.

Two places hold them. The exporter's ``/metrics`` has counters since it started counting (a
plain GET, parsed here: doctor stays free of HTTP client libraries). Prometheus has them over
any window, as ``increase(...[7d])``. Builds counted from BuildKit's history
(``source="buildkit"``), ingested logs (``source="log"``) and the engine's history
(``source="engine"``) may be the same builds seen twice, so one source is used per image:
BuildKit's when there are any (exact, with step times), else the logs, else the engine's.

Anything that goes wrong (refused connection, an HTTP error, a body that is not what was asked
for) is a :class:`HistoryError` whose message is one line for the user.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict

from .. import contract
from .cost import Buster, History

__all__ = ["HistoryError", "from_exporter", "from_prometheus", "parse_exposition",
           "valid_window"]

TIMEOUT = 10.0
SINCE_START = "since the exporter started counting"
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_WINDOW = re.compile(r"^(?:\d+(?:ms|[smhdwy]))+$")
BUILDS = contract.DOCKER_BUILDS.name
BUSTERS = contract.DOCKER_BUILD_CACHE_BUSTERS.name
BUSTER_SECONDS = contract.DOCKER_BUILD_CACHE_BUSTER_SECONDS.name
_FAMILIES = (BUILDS, BUSTERS, BUSTER_SECONDS)

Samples = list[tuple[str, dict[str, str], float]]


class HistoryError(Exception):
    """The build history could not be read; the message says why, in one line."""


def valid_window(window: str) -> bool:
    """A Prometheus duration such as ``7d``, ``24h`` or ``1h30m``."""
    return bool(_WINDOW.match(window))


def _get(url: str, what: str, timeout: float) -> bytes:
    """GET ``url``; a HistoryError naming ``what`` on any failure."""
    request = urllib.request.Request(url, headers={"Accept": "text/plain, application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read(64 * 1024 * 1024)
    except urllib.error.HTTPError as exc:
        raise HistoryError(f"{what} at {url} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise HistoryError(f"cannot reach {what} at {url}: {reason}") from None


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def parse_exposition(text: str, names: tuple[str, ...] = _FAMILIES) -> Samples:
    """``(name, labels, value)`` of the samples of ``names`` in a text exposition."""
    samples: Samples = []
    for line in text.splitlines():
        if not line.startswith(names):
            continue
        match = _SAMPLE.match(line)
        if match is None or match.group(1) not in names:
            continue
        labels = {m.group(1): _unescape(m.group(2))
                  for m in _LABEL.finditer(match.group(2) or "")}
        try:
            samples.append((match.group(1), labels, float(match.group(3))))
        except ValueError:
            continue
    return samples


def _history(samples: Samples, image: str, window: str) -> History:
    """One image's history from samples of the three families (any other labels summed)."""
    builds: dict[str, float] = defaultdict(float)
    images: set[str] = set()
    for name, labels, value in samples:
        if name == BUILDS:
            images.add(labels.get("image", ""))
            if labels.get("image") == image:
                builds[labels.get("source", "log")] += value
    source = next((s for s in ("buildkit", "log", "engine") if builds.get(s)), "log")
    busts: dict[str, float] = defaultdict(float)
    seconds: dict[str, float] = defaultdict(float)
    for name, labels, value in samples:
        if labels.get("image") != image or labels.get("source", "log") != source:
            continue
        if name == BUSTERS:
            busts[labels.get("instruction", "")] += value
        elif name == BUSTER_SECONDS:
            seconds[labels.get("instruction", "")] += value
    timed = source != "engine"
    busters = tuple(Buster(label, count, seconds.get(label, 0.0) if timed else None)
                    for label, count in sorted(busts.items()))
    return History(image, builds.get(source, 0.0), busters, window, timed,
                   tuple(sorted(images - {""})))


def metrics_url(url: str) -> str:
    """The exporter's ``/metrics`` from its base URL (or the metrics URL itself)."""
    if "://" not in url:
        url = "http://" + url
    parts = urllib.parse.urlsplit(url)
    if parts.path.rstrip("/") in ("", "/"):
        parts = parts._replace(path="/metrics")
    return urllib.parse.urlunsplit(parts)


def from_exporter(url: str, image: str, timeout: float = TIMEOUT) -> History:
    """The image's busters from a running exporter's counters (totals since it started)."""
    target = metrics_url(url)
    body = _get(target, "the exporter", timeout).decode("utf-8", "replace")
    if "cachewatch_" not in body:
        raise HistoryError(f"{target} is not a cachewatch exporter's /metrics")
    return _history(parse_exposition(body), image, SINCE_START)


def _query(base: str, promql: str, timeout: float) -> list[dict]:
    """An instant query's vector result."""
    url = base.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        answer = json.loads(_get(url, "Prometheus", timeout))
    except ValueError:
        raise HistoryError(f"Prometheus at {base} did not answer with JSON") from None
    if not isinstance(answer, dict) or answer.get("status") != "success":
        error = answer.get("error") if isinstance(answer, dict) else None
        raise HistoryError(f"Prometheus at {base} refused the query: {error or answer!r}")
    result = answer.get("data", {}).get("result", [])
    return result if isinstance(result, list) else []


def from_prometheus(url: str, image: str, window: str, timeout: float = TIMEOUT) -> History:
    """The image's busters over ``window`` from Prometheus: ``increase()`` of the counters,
    summed over the fleet's labels (replicas, clusters)."""
    if "://" not in url:
        url = "http://" + url
    selector = "{image=" + json.dumps(image) + "}"
    samples: Samples = []
    for name, by in ((BUILDS, "source"),
                     (BUSTERS, "source, instruction"),
                     (BUSTER_SECONDS, "source, instruction")):
        for row in _query(url, f"sum by ({by}) (increase({name}{selector}[{window}]))", timeout):
            labels = {**row.get("metric", {}), "image": image}
            samples.append((name, labels, float(row.get("value", [0, "0"])[1])))
    if not any(name == BUILDS and value > 0 for name, _, value in samples):
        known = _query(url, f"group by (image) (increase({BUILDS}[{window}]) > 0)", timeout)
        samples += [(BUILDS, {"image": row.get("metric", {}).get("image", "")}, 0.0)
                    for row in known]
    return _history(samples, image, f"in the last {window}")
