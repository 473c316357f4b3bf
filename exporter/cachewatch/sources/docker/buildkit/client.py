"""A read-only client of one BuildKit daemon: its build history and the blobs records point to.

Three calls, all reads, on one gRPC channel: ``Control/ListenBuildHistory`` (the backlog with
``EarlyExit``, or the live stream), and the content service's ``Read`` for a record's logs blob
(BuildKit serves containerd's content API on the same socket; no namespace header is needed).
The methods are called by path through the channel: no generated service stubs, so the extra
pins only the protobuf runtime its message modules were generated for.

Imports grpc: only the buildkit collector imports this module, only when it is enabled.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from ._proto import content_pb2, control_pb2

if TYPE_CHECKING:
    from .settings import BuildkitTarget

HISTORY = "/moby.buildkit.v1.Control/ListenBuildHistory"
READ = "/containerd.services.content.v1.Content/Read"
MAX_MESSAGE_BYTES = 64 << 20  # a record with its exporter response (image config) is small
# History records arrive as the daemon sends them; keepalives find a dead TCP peer without a
# build to wait for (a unix socket's peer closing is seen at once).
_OPTIONS = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.keepalive_time_ms", 60_000), ("grpc.keepalive_timeout_ms", 20_000),
            ("grpc.keepalive_permit_without_calls", 0)]


def open_channel(target: BuildkitTarget) -> grpc.Channel:
    """A channel to ``target``: the one place that knows how each address kind is reached
    (a later kind, such as Docker Engine's ``/grpc`` upgrade, is a branch here)."""
    address = target.parsed
    if not target.tls:
        return grpc.insecure_channel(address.grpc_target, options=_OPTIONS)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(target.tls_ca_file),
        private_key=_read(target.tls_key_file),
        certificate_chain=_read(target.tls_cert_file))
    options = list(_OPTIONS)
    if target.tls_server_name:
        options.append(("grpc.ssl_target_name_override", target.tls_server_name))
    return grpc.secure_channel(address.grpc_target, credentials, options=options)


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None


class HistoryClient:
    """The daemon's history and content reads, on one channel."""

    def __init__(self, channel: grpc.Channel, timeout: float) -> None:
        self.channel = channel
        self.timeout = timeout
        self._listen = channel.unary_stream(
            HISTORY, request_serializer=control_pb2.BuildHistoryRequest.SerializeToString,
            response_deserializer=control_pb2.BuildHistoryEvent.FromString)
        self._read = channel.unary_stream(
            READ, request_serializer=content_pb2.ReadContentRequest.SerializeToString,
            response_deserializer=content_pb2.ReadContentResponse.FromString)

    def backlog(self) -> list[control_pb2.BuildHistoryRecord]:
        """Every finished build the daemon keeps, oldest first (``EarlyExit``)."""
        events = self._listen(control_pb2.BuildHistoryRequest(EarlyExit=True),
                              timeout=self.timeout)
        records = [event.record for event in events
                   if event.type == control_pb2.COMPLETE and event.record.Ref]
        records.sort(key=lambda r: (r.CompletedAt.seconds, r.CompletedAt.nanos))
        return records

    def live(self) -> grpc.Call:
        """The history stream, without end: the backlog again, then STARTED, COMPLETE and
        DELETED events as they happen. Iterate it; ``cancel()`` it to stop."""
        return self._listen(control_pb2.BuildHistoryRequest())

    def blob(self, digest: str, limit: int) -> bytes:
        """A content blob (a record's logs), at most ``limit`` bytes of it."""
        chunks: list[bytes] = []
        size = 0
        for part in self._read(content_pb2.ReadContentRequest(digest=digest, size=limit),
                               timeout=self.timeout):
            chunks.append(part.data)
            size += len(part.data)
            if size >= limit:
                break
        return b"".join(chunks)[:limit]

    def close(self) -> None:
        self.channel.close()

