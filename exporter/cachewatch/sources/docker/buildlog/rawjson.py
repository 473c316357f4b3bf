"""BuildKit ``--progress=rawjson``: one SolveStatus JSON object per line.

A vertex is repeated many times as it progresses, so steps are keyed by its ``digest`` and
the last state wins, as in the plain format. ``logs`` are a step's own output (it ran);
``statuses`` named ``extracting sha256:...`` are layer pulls (see ``Step.remote_hit``).
Field names are Go's JSON (``vertexes``) or, from older clients, Go's field names
(``Vertexes``, ``ID``).
"""

from __future__ import annotations

from typing import Any

from .model import classify
from .state import BuildState
from .times import rfc3339


def _get(record: dict[str, Any], name: str) -> Any:
    return record.get(name) or record.get(name.capitalize()) or record.get(name.upper())


def _records(record: dict[str, Any], name: str) -> list[dict[str, Any]]:
    value = _get(record, name)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def apply(build: BuildState, record: dict[str, Any]) -> None:
    """Apply one SolveStatus: its vertices' states, then their layer pulls and output."""
    for vertex in _records(record, "vertexes"):
        _vertex(build, vertex)
    for status in _records(record, "statuses"):
        step = build.steps.get(str(_get(status, "vertex") or ""))
        if step is not None and str(_get(status, "id") or "").startswith("extracting sha256:"):
            step.pulled = True
    for log in _records(record, "logs"):
        digest = str(_get(log, "vertex") or "")
        if digest:
            build.mark_ran(digest)


def _vertex(build: BuildState, vertex: dict[str, Any]) -> None:
    digest, name = str(_get(vertex, "digest") or ""), str(_get(vertex, "name") or "")
    if not digest:
        return
    step = build.steps.get(digest)
    if step is None:
        if not name:
            return
        step = build.add(digest, name, classify(name))
        if step is None:
            return
        build.claim("buildkit-rawjson")
    started, completed = rfc3339(_get(vertex, "started")), rfc3339(_get(vertex, "completed"))
    build.json_times(started, completed)
    span = max(0.0, completed - started) if started is not None and completed is not None \
        else None
    error = _get(vertex, "error")
    if _get(vertex, "cached"):
        step.status, step.error, step.duration = "cached", None, span or 0.0
    elif error:
        canceled = "context canceled" in str(error)
        step.status = "canceled" if canceled else "error"
        step.error = None if canceled else str(error)
    elif completed is not None:
        step.status, step.error, step.duration = "done", None, span
