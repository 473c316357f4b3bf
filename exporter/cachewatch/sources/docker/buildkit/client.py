"""A read-only client of one BuildKit daemon: its build history and the blobs records point to.

Three calls, all reads, on one gRPC channel: ``Control/ListenBuildHistory`` (the backlog with
``EarlyExit``, or the live stream), and the content service's ``Read`` for a record's logs blob
(BuildKit serves containerd's content API on the same socket; no namespace header is needed).
The methods are called by path through the channel: no generated service stubs, so the extra
pins only the protobuf runtime its message modules were generated for.

Imports grpc: only the buildkit collector imports this module, only when it is enabled.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import grpc

from ._proto import content_pb2, control_pb2
from .tunnel import TlsTunnel, tls_context

if TYPE_CHECKING:
    from .settings import BuildkitTarget

HISTORY = "/moby.buildkit.v1.Control/ListenBuildHistory"
READ = "/containerd.services.content.v1.Content/Read"
LOGS_RETRIES = (0.1, 0.2, 0.4, 0.8, 1.6)  # seconds between reads of a logs blob not found yet
MAX_MESSAGE_BYTES = 64 << 20  # a record with its exporter response (image config) is small
# Keepalive pings find a dead TCP peer while the stream waits for builds (a unix socket's
# peer closing is seen at once). Not more often than every 5 minutes: buildkitd keeps grpc-go's
# default enforcement, which answers more frequent pings with GOAWAY ("too_many_pings").
_OPTIONS = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.keepalive_time_ms", 360_000), ("grpc.keepalive_timeout_ms", 20_000),
            ("grpc.keepalive_permit_without_calls", 0)]


def open_channel(target: BuildkitTarget, timeout: float) -> tuple[grpc.Channel, TlsTunnel | None]:
    """A channel to ``target``: the one place that knows how each address kind is reached (a
    later kind, such as Docker Engine's ``/grpc`` upgrade, is a branch here). TLS goes through
    a ``TlsTunnel`` (see there why not grpc's own)."""
    address = target.parsed
    if not target.tls:
        return grpc.insecure_channel(address.grpc_target, options=_OPTIONS), None
    host, _, port = address.where.rpartition(":")  # tcp: settings allow TLS on no other kind
    tunnel = TlsTunnel(host, int(port), tls_context(
        target.tls_ca_file, target.tls_cert_file, target.tls_key_file),
        target.tls_server_name or host.strip("[]"), timeout)
    return grpc.insecure_channel(tunnel.grpc_target, options=_OPTIONS), tunnel


class HistoryClient:
    """The daemon's history and content reads, on one channel."""

    def __init__(self, target: BuildkitTarget, timeout: float) -> None:
        self.channel, self.tunnel = open_channel(target, timeout)
        self.timeout = timeout
        self.going_away = False  # the connection stopped being ready under the live stream
        channel = self.channel
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
        DELETED events as they happen. Iterate it; ``cancel()`` it to stop.

        A daemon told to stop sends GOAWAY, then waits for its open calls to end before it
        exits (grpc-go's GracefulStop), and its history stream never ends by itself. So the
        call is cancelled as soon as the connection stops being ready (``going_away``): an
        exporter following a daemon never holds up its shutdown or restart.
        """
        call = self._listen(control_pb2.BuildHistoryRequest())
        ready = False

        def watch(state: grpc.ChannelConnectivity) -> None:
            nonlocal ready
            if state == grpc.ChannelConnectivity.READY:
                ready = True
            elif ready and not self.going_away:
                self.going_away = True
                call.cancel()

        self.channel.subscribe(watch, try_to_connect=False)
        return call

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

    def logs(self, record: control_pb2.BuildHistoryRecord, limit: int,
             stop: threading.Event | None = None) -> bytes | None:
        """A record's logs blob (empty if it has none); ``None`` if the daemon does not have it.

        Right after a build completes, v0.11 may answer NOT_FOUND for a moment (seen under
        load: the blob passes from the build's temporary lease to the record's), so that
        answer is retried for a few seconds first; ``stop`` cuts the waits short.
        """
        if not record.HasField("logs") or not record.logs.digest:
            return b""
        for delay in (*LOGS_RETRIES, None):
            try:
                return self.blob(record.logs.digest, limit)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:  # type: ignore[attr-defined]
                    raise
            if delay is None or (stop.wait(delay) if stop is not None else time.sleep(delay)):
                break
        return None

    @property
    def tls_error(self) -> str | None:
        """Why the last TLS connection failed, if it did (gRPC only sees the socket close)."""
        return self.tunnel.error if self.tunnel is not None else None

    def close(self) -> None:
        self.channel.close()
        if self.tunnel is not None:
            self.tunnel.close()

