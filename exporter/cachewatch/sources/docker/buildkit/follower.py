"""One daemon's history, followed live on a thread of its own, reconnecting with backoff.

Each connection starts with the backlog (``EarlyExit``: every finished build the daemon keeps)
and counts the refs not counted yet, then follows the live stream, which replays that backlog
(already counted: skipped without reading a blob) and then sends each build as it completes.
A build that was running when a stream broke completes into the daemon's records, so the next
connection's backlog counts it. Nothing is polled: between builds the stream is idle.

What is counted, and whether a ref already was, lives in the state store (``Ledger``), reached
through a ``Counter``; the follower only remembers which refs it need not look at again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol

import grpc

from ....state import StateError
from ..buildlog import BuildSummary
from ._proto import control_pb2
from .client import HistoryClient
from .record import MAX_LOGS_BYTES, summary
from .settings import BuildkitTarget

log = logging.getLogger("cachewatch.buildkit")

FIRST_DELAY = 0.5  # seconds before the first reconnect; doubled up to reconnect_max
REASONS = ("connection", "timeout", "tls", "unsupported", "logs", "state", "other")


class Counter(Protocol):
    """Where builds are counted, once per (target, ref); blocking calls, from this thread."""

    def counted(self, target: str, present: Iterable[str]) -> set[str]:
        """The refs of ``present`` already counted; forget counted refs the daemon dropped."""

    def count(self, target: str, ref: str, build: BuildSummary) -> bool:
        """Count one build unless its ref was; ``False`` if it was."""


Report = Callable[[bool, str | None, str | None], None]  # (up, reason, message)


class Follower:
    """Follows one target until ``stop()``; ``up`` says whether its stream is open now."""

    def __init__(self, target: BuildkitTarget, counter: Counter, report: Report,
                 timeout: float, reconnect_max: float) -> None:
        self.target = target
        self.name = target.label
        self.counter = counter
        self.report = report
        self.timeout = timeout
        self.reconnect_max = reconnect_max
        self.up = False
        self.connections = 0  # sessions that read a backlog: tests and the benchmark wait on it
        self._known: set[str] = set()  # refs counted (here or before): never read again
        self._stop = threading.Event()
        self._call: grpc.Call | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"cachewatch-buildkit-{self.name}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, wait: float = 5.0) -> None:
        """End the stream and the thread (a call in flight is cancelled)."""
        self._stop.set()
        with self._lock:
            if self._call is not None:
                self._call.cancel()
        self._thread.join(timeout=wait)

    def _run(self) -> None:
        delay = FIRST_DELAY
        while not self._stop.is_set():
            client = HistoryClient(self.target, self.timeout)
            try:
                self._session(client)
            except Exception as exc:  # every failure is reported, then retried
                if self._stop.is_set():
                    break
                if self.up:
                    delay = FIRST_DELAY  # it was working: reconnect soon
                self.up = False
                self.report(False, *classify(exc, client.tls_error))
            finally:
                with self._lock:
                    self._call = None
                client.close()
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, self.reconnect_max)
        self.up = False

    def _session(self, client: HistoryClient) -> None:
        records = client.backlog()
        self._known = self.counter.counted(self.name, [r.Ref for r in records])
        for record in records:
            self._count(client, record)
        self.connections += 1
        self.up = True
        self.report(True, None, None)
        call = client.live()
        with self._lock:
            self._call = call
        if self._stop.is_set():
            call.cancel()
        try:
            for event in call:
                if event.type == control_pb2.COMPLETE:
                    self._count(client, event.record)
        except grpc.RpcError:
            if client.going_away and not self._stop.is_set():
                raise ConnectionError("the daemon closed the connection (GOAWAY: it is"
                                      " stopping or restarting)") from None
            raise
        raise ConnectionError("the daemon ended the history stream")

    def _count(self, client: HistoryClient, record: control_pb2.BuildHistoryRecord) -> None:
        """Count a finished build, unless known; its logs blob is read only if it is not."""
        ref = record.Ref
        if not ref or ref in self._known or not record.HasField("CompletedAt"):
            return
        started = time.perf_counter()
        build = summary(record, self._logs(client, record))
        counted = self.counter.count(self.name, ref, build)
        self._known.add(ref)
        if counted:
            log.info("build counted from BuildKit's history", extra={
                "target": self.name, "ref": ref, "image": build.image, "status": build.status,
                "hits": build.hits, "lookups": build.lookups, "cache_buster": build.cache_buster,
                "seconds": round(time.perf_counter() - started, 4)})

    def _logs(self, client: HistoryClient, record: control_pb2.BuildHistoryRecord) -> bytes:
        """The record's logs blob; empty (the build counted without its steps) if the daemon
        does not have it. Any other failure ends the session: the next one reads it again."""
        logs = client.logs(record, MAX_LOGS_BYTES, self._stop)
        if logs is None:
            self.report(True, "logs", f"logs of build {record.Ref} are gone: counted without"
                        " its steps")
        return logs or b""


def classify(exc: BaseException, tls_error: str | None = None) -> tuple[str, str]:
    """``(reason, message)`` for a failed session; never holds a secret (no URL credentials
    exist here: addresses are paths or host:port). ``tls_error``: why the TLS tunnel's last
    connection failed, the cause behind gRPC's "unavailable"."""
    if tls_error is not None and isinstance(exc, grpc.RpcError):
        return ("tls" if "SSL" in tls_error or "certificate" in tls_error else "connection",
                tls_error)
    if isinstance(exc, StateError):
        return "state", f"builds not stored, retried on reconnect: {exc}"
    if isinstance(exc, grpc.RpcError):
        code, details = exc.code(), exc.details()  # type: ignore[attr-defined]
        text = f"{code.name}: {details}"
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return "timeout", text
        if code == grpc.StatusCode.UNIMPLEMENTED:
            return "unsupported", text + " (the build history API needs BuildKit v0.11+)"
        if code == grpc.StatusCode.UNAVAILABLE:
            return "connection", text
        return "other", text
    if isinstance(exc, ConnectionError | OSError):
        return "connection", f"{type(exc).__name__}: {exc}"
    return "other", f"{type(exc).__name__}: {exc}"
