"""One BuildKit history record -> the ``BuildSummary`` a piped build log gives.

A record's ``logs`` blob is the build's own progress: the ``StatusResponse`` messages the client
saw, each preceded by its length (4 bytes, little-endian). They are the SolveStatus records of
``--progress=rawjson``, so they go through the log parser's own rawjson handler and its summary:
the counting rules are the log parser's, whatever the build's origin. Dockerfile steps only
(``[stage k/N] ...``), never internal vertices, metadata loads or FROM; every platform's steps in
a multi-platform build; the cache buster is the first executed step in Dockerfile order of a
build where something was cached.

The record's own fields give what the vertices cannot: the image (the first exporter's ``name``),
the target (``FrontendAttrs``), the status (its ``error``: gRPC code 1 is a cancelled build) and
the duration (``CreatedAt`` to ``CompletedAt``).
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from ..buildlog import BuildSummary
from ..buildlog.rawjson import apply
from ..buildlog.state import BuildState
from ..buildlog.summary import summarise
from ..history import repository
from ._proto import control_pb2

UNNAMED = "unnamed"  # the image label of a build that names no image, Dockerfile or context
CANCELLED = 1  # google.rpc.Code CANCELLED: the client went away or the build was stopped
MAX_LOGS_BYTES = 64 << 20  # a logs blob is read up to this size; steps past it are not seen
_LENGTH = struct.Struct("<I")


def image_of(record: control_pb2.BuildHistoryRecord) -> str:
    """The first exporter's image name (its repository), else the frontend's filename or
    context, else ``unnamed``."""
    for exporter in record.Exporters:
        names = exporter.Attrs.get("name", "")
        first = names.split(",")[0].strip()
        if first:
            return repository(first)
    attrs = record.FrontendAttrs
    return attrs.get("filename") or attrs.get("context") or UNNAMED


def exit_code(record: control_pb2.BuildHistoryRecord) -> int:
    """The build's exit code as the summary reads it: 0, 1 (failed) or 130 (cancelled)."""
    if not record.HasField("error") or record.error.code == 0:
        return 0
    if record.error.code == CANCELLED or "context canceled" in record.error.message:
        return 130
    return 1


def seconds(stamp: Timestamp) -> float:
    return stamp.seconds + stamp.nanos / 1e9


def duration(record: control_pb2.BuildHistoryRecord) -> float | None:
    """``CreatedAt`` to ``CompletedAt``; ``None`` when a time is missing."""
    if not (record.HasField("CreatedAt") and record.HasField("CompletedAt")):
        return None
    return max(0.0, seconds(record.CompletedAt) - seconds(record.CreatedAt))


def summary(record: control_pb2.BuildHistoryRecord, logs: bytes) -> BuildSummary:
    """The build's summary, counted by the log parser's rules."""
    build = BuildState()
    for status in statuses(logs):
        apply(build, _solve_status(status))
    span = duration(record)
    result = summarise(build, image_of(record), record.FrontendAttrs.get("target", ""),
                       exit_code(record), span)
    if span is not None:  # the record's own span, not its vertices'
        result.duration_seconds = round(span, 6)
    if result.error is None and exit_code(record):
        result.error = record.error.message[:2048] or None
    return result


def statuses(logs: bytes) -> list[control_pb2.StatusResponse]:
    """The length-prefixed ``StatusResponse`` messages of a logs blob; a cut-off tail is
    left out (a blob read up to ``MAX_LOGS_BYTES``)."""
    out = []
    offset, end = 0, len(logs)
    while offset + 4 <= end:
        (size,) = _LENGTH.unpack_from(logs, offset)
        offset += 4
        if offset + size > end:
            break
        out.append(control_pb2.StatusResponse.FromString(logs[offset:offset + size]))
        offset += size
    return out


def _solve_status(status: control_pb2.StatusResponse) -> dict[str, Any]:
    """A ``StatusResponse`` as the rawjson handler reads a SolveStatus line: only what it uses
    (vertices; layer-pull statuses; which vertices printed output)."""
    return {
        "vertexes": [_vertex(v) for v in status.vertexes],
        "statuses": [{"vertex": s.vertex, "id": s.ID} for s in status.statuses
                     if s.ID.startswith("extracting sha256:")],
        "logs": [{"vertex": digest} for digest in {log.vertex for log in status.logs}],
    }


def _vertex(vertex: control_pb2.Vertex) -> dict[str, Any]:
    return {
        "digest": vertex.digest, "name": vertex.name, "cached": vertex.cached,
        "error": vertex.error,
        "started": _rfc3339(vertex.started) if vertex.HasField("started") else None,
        "completed": _rfc3339(vertex.completed) if vertex.HasField("completed") else None,
    }


def _rfc3339(stamp: Timestamp) -> str:
    """Go's RFC 3339 with nanoseconds, the form rawjson carries times in."""
    whole = datetime.fromtimestamp(stamp.seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{stamp.nanos:09d}Z"
