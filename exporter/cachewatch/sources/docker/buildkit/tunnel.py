"""TLS to a daemon made by Python's ``ssl``, behind a private unix socket gRPC connects to.

Why not grpc's own TLS: gRPC's C core refuses a TLS server that selects no ALPN protocol
("Cannot check peer: missing selected ALPN property"), and buildkitd before v0.17 selects none
(moby/buildkit#5413 added ``h2``). ``ssl`` offers ``h2`` and accepts a server that picks nothing,
so one path reaches every version. The socket lives in a folder only this user can open
(``mkdtemp``: mode 0700), and carries one gRPC connection (HTTP/2 multiplexes every call).
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import ssl
import tempfile
import threading
from pathlib import Path

CHUNK = 64 * 1024


def tls_context(ca: Path | None, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    """Verify the daemon against ``ca`` (else the system's CAs); present ``cert``/``key``, as
    buildkitd with ``--tlscacert`` requires of its clients."""
    context = ssl.create_default_context(cafile=str(ca) if ca else None)
    if cert is not None and key is not None:
        context.load_cert_chain(str(cert), str(key))
    context.set_alpn_protocols(["h2"])
    return context


class TlsTunnel:
    """Accepts on ``path`` and forwards each connection to ``host:port`` over TLS."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext, server_name: str,
                 timeout: float) -> None:
        self.host, self.port, self.context = host.strip("[]"), port, context
        self.server_name, self.timeout = server_name, timeout
        self._folder = tempfile.mkdtemp(prefix="cw-bk-tls.")
        self.path = os.path.join(self._folder, "s")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        self._listener.listen(8)
        self._closed = False
        self.error: str | None = None  # the last failed connection's cause, for the report
        threading.Thread(target=self._accept, name="cachewatch-buildkit-tls", daemon=True).start()

    @property
    def grpc_target(self) -> str:
        return f"unix:{self.path}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                local, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(local,), daemon=True,
                             name="cachewatch-buildkit-tls-conn").start()

    def _serve(self, local: socket.socket) -> None:
        try:
            raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
            remote = self.context.wrap_socket(raw, server_hostname=self.server_name)
        except OSError as exc:  # refused, unreachable, a bad certificate: gRPC sees a close
            self.error = f"{type(exc).__name__}: {exc}"
            local.close()
            return
        remote.settimeout(None)
        try:
            _pump(local, remote)
            self.error = None
        except OSError as exc:  # TLS 1.3 refuses a client certificate after the handshake
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            for sock in (local, remote):
                with contextlib.suppress(OSError):
                    sock.close()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        shutil.rmtree(self._folder, ignore_errors=True)


def _pump(local: socket.socket, remote: ssl.SSLSocket) -> None:
    """Copy both ways on one thread (an SSL socket is not read and written from two threads)
    until either side closes."""
    while True:
        readable = [remote] if remote.pending() else select.select([local, remote], [], [])[0]
        for sock in readable:
            data = sock.recv(CHUNK)
            if not data:
                return
            (local if sock is remote else remote).sendall(data)
