"""A real memcached per test, on a free loopback port, always stopped."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable, Iterator

import pytest

from support import free_port, require, wait_until


class MemcachedServer:
    """One real memcached (Debian's package) on a loopback port."""

    def __init__(self, *args: str) -> None:
        self.binary = require("memcached", "memcached")
        self.args = list(args)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> MemcachedServer:
        self.proc = subprocess.Popen(
            [self.binary, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", "64",
             "-u", "root", *self.args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._listening, timeout=10)
        return self

    def _listening(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"memcached exited ({self.proc.returncode})")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def send(self, request: bytes, replies: int = 1) -> list[bytes]:
        """Send raw text-protocol ``request``; the first line of each of its ``replies``
        (``STORED``, ``END``, ``VALUE k 0 1``...), read to the reply's end."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(request)
            data = b""
            while data.count(b"END\r\n") + data.count(b"STORED\r\n") < replies:
                chunk = sock.recv(65536)
                assert chunk, f"memcached closed the connection after {data!r}"
                data += chunk
        return [line for line in data.split(b"\r\n") if line]

    def set(self, key: str, value: bytes = b"v", ttl: int = 0) -> None:
        assert self.send(b"set %s 0 %d %d\r\n%s\r\n" % (key.encode(), ttl, len(value), value)) \
            == [b"STORED"]

    def get(self, *keys: str) -> list[bytes]:
        """One ``get`` per key; the lines of every reply."""
        return self.send(b"".join(b"get %s\r\n" % k.encode() for k in keys), replies=len(keys))

    def stats(self) -> dict[str, str]:
        lines = self.send(b"stats\r\n")
        return {k.decode(): v.decode() for _, k, v in (line.split(b" ", 2)
                                                       for line in lines[:-1])}


@pytest.fixture
def memcached_factory() -> Iterator[Callable[..., MemcachedServer]]:
    """Start as many real memcached servers as a test needs; all are killed at the end."""
    started: list[MemcachedServer] = []

    def start(*args: str) -> MemcachedServer:
        server = MemcachedServer(*args).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def memcached(memcached_factory: Callable[..., MemcachedServer]) -> MemcachedServer:
    return memcached_factory()
