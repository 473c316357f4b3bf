"""BuildKit history records -> build summaries, and the addresses and settings that reach a daemon.

The records here are built with BuildKit's own messages (the generated modules), shaped as a
v0.11.6 daemon writes them (vertex names, internal vertices, a vertex repeated as it progresses,
the 4-byte little-endian length before each message of a logs blob); the e2e tests check the
same conversion against a real daemon.
"""

from __future__ import annotations

import struct

import pytest
from pydantic import ValidationError

from cachewatch.sources.docker.buildkit._proto import control_pb2, status_pb2
from cachewatch.sources.docker.buildkit.address import AddressError, parse_address
from cachewatch.sources.docker.buildkit.record import image_of, statuses, summary
from cachewatch.sources.docker.buildkit.settings import BuildkitSettings, BuildkitTarget

T0 = 1_700_000_000


def vertex(digest: str, name: str, start: float | None = None, end: float | None = None,
           cached: bool = False, error: str = "") -> control_pb2.Vertex:
    out = control_pb2.Vertex(digest=digest, name=name, cached=cached, error=error)
    if start is not None:
        out.started.FromNanoseconds(int((T0 + start) * 1e9))
    if end is not None:
        out.completed.FromNanoseconds(int((T0 + end) * 1e9))
    return out


def blob(*messages: list[control_pb2.Vertex]) -> bytes:
    out = b""
    for vertices in messages:
        data = control_pb2.StatusResponse(vertexes=vertices).SerializeToString()
        out += struct.pack("<I", len(data)) + data
    return out


def record(name: str | None = "registry.test/app:1", code: int = 0, message: str = "",
           **attrs: str) -> control_pb2.BuildHistoryRecord:
    out = control_pb2.BuildHistoryRecord(Ref="ref1", FrontendAttrs=attrs)
    if name is not None:
        out.Exporters.add(Type="image", Attrs={"name": name})
    out.CreatedAt.FromSeconds(T0)
    out.CompletedAt.FromNanoseconds(int((T0 + 12.5) * 1e9))
    if code:
        out.error.CopyFrom(status_pb2.Status(code=code, message=message))
    return out


def test_a_multi_platform_build_counts_each_platforms_steps_and_no_internal_vertex():
    logs = blob(
        [vertex("a", "[internal] load build definition from Dockerfile", 0, 0.1),
         vertex("b", "[linux/amd64 1/2] COPY busybox /bin/busybox"),
         vertex("c", "[linux/arm64 1/2] COPY busybox /bin/busybox")],
        [vertex("b", "[linux/amd64 1/2] COPY busybox /bin/busybox", 1, 1, cached=True),
         vertex("c", "[linux/arm64 1/2] COPY busybox /bin/busybox", 1, 1, cached=True),
         vertex("d", "[linux/amd64 2/2] RUN make", 1, 4),
         vertex("e", "[linux/arm64 2/2] RUN make", 1, 6),
         vertex("f", "exporting to image", 6, 7)])
    built = summary(record(target="prod"), logs)
    assert (built.image, built.target, built.status) == ("registry.test/app", "prod", "success")
    assert (built.lookups, built.hits, built.misses) == (4, 2, 2)
    assert built.cache_buster == "RUN make"
    assert built.executed_seconds == pytest.approx(8.0)
    assert built.rebuild_seconds == pytest.approx(8.0)
    assert built.duration_seconds == 12.5  # the record's span, not its vertices'


def test_failed_and_cancelled_builds():
    logs = blob([vertex("b", "[1/2] COPY . /src", 0, 1),
                 vertex("c", "[2/2] RUN make", 1, 2, error="process did not complete: 2")])
    failed = summary(record(code=2, message="process did not complete: 2"), logs)
    assert (failed.status, failed.misses, failed.error) == (
        "failed", 2, "process did not complete: 2")
    cancelled = summary(record(code=1, message="context canceled"),
                        blob([vertex("b", "[1/2] COPY . /src", 0, 1),
                              vertex("c", "[2/2] RUN make", 1, None)]))
    assert cancelled.status == "cancelled"


def test_a_record_with_no_logs_is_a_build_with_no_steps():
    built = summary(record(), b"")
    assert (built.status, built.lookups, built.duration_seconds) == ("success", 0, 12.5)


def test_a_cut_off_logs_blob_keeps_its_whole_messages():
    logs = blob([vertex("b", "[1/1] RUN make", 0, 1)], [vertex("c", "[1/1] RUN x", 0, 1)])
    assert len(statuses(logs[:-3])) == 1


@pytest.mark.parametrize(("name", "attrs", "label"), [
    ("registry.test/app:1,registry.test/app:latest", {}, "registry.test/app"),
    ("localhost:5000/team/app@sha256:abc", {}, "localhost:5000/team/app"),
    (None, {"filename": "api.Dockerfile"}, "api.Dockerfile"),
    (None, {"context": "https://git.test/app.git"}, "https://git.test/app.git"),
    (None, {}, "unnamed"),
])
def test_the_image_label(name, attrs, label):
    assert image_of(record(name, **attrs)) == label


def test_addresses():
    assert parse_address("unix:///run/buildkit/buildkitd.sock").grpc_target == \
        "unix:/run/buildkit/buildkitd.sock"
    assert parse_address("tcp://buildkitd:1234").grpc_target == "buildkitd:1234"
    assert parse_address("tcp://[::1]:1234").where == "[::1]:1234"
    for bad in ("unix://relative.sock", "tcp://host", "docker-container://builder",
                "host:1234", "tcp://host:1234/path"):
        with pytest.raises(AddressError):
            parse_address(bad)
    with pytest.raises(AddressError, match="not supported yet"):
        parse_address("docker://")


def test_settings():
    target = BuildkitTarget.model_validate("ci=tcp://10.0.0.5:1234")
    assert (target.name, target.address, target.tls) == ("ci", "tcp://10.0.0.5:1234", False)
    assert BuildkitTarget.model_validate("unix:///run/b.sock").label == "/run/b.sock"
    with pytest.raises(ValidationError, match="needs a daemon"):
        BuildkitSettings(enabled=True)
    with pytest.raises(ValidationError, match="same name"):
        BuildkitSettings(targets=["a=tcp://h:1", "a=tcp://h:2"])
    with pytest.raises(ValidationError, match="go together"):
        BuildkitTarget(address="tcp://h:1", tls_key_file=__file__)
