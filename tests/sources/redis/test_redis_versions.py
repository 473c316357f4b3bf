"""LATENCY HISTOGRAM goes only to servers that have it (7.0+), decided once per connection from
INFO server: an older server is never sent the command and answers no error on any scrape.

Debian ships only Redis 7, so the older server is a stand-in on a loopback port that replays a
real Redis 6.0.9 ``INFO`` (``tests/fixtures/redis/info-default-6.0.9.txt``: the ``info`` of the
official ``redis:6.0.9`` Docker image, redis_build_id 12c354e6793cb936, as printed by redis-cli
in a public tutorial, "Docker里安装使用Redis", 2020-11-30) and answers the other commands the
way Redis 6.0 does: an unknown INFO section is an empty reply, ``LATENCY HISTOGRAM`` an error.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import redis

from support import FIXTURES, settings

pytestmark = pytest.mark.e2e  # real exporters, a stand-in server and a real redis-server

INFO_6 = (FIXTURES / "redis" / "info-default-6.0.9.txt").read_bytes().replace(b"\n", b"\r\n")
# Redis 6.0's answer to a subcommand it does not know (addReplySubcommandSyntaxError).
UNKNOWN = (b"-ERR Unknown subcommand or wrong number of arguments for 'HISTOGRAM'."
           b" Try LATENCY HELP.\r\n")


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


class Redis6:
    """Answers RESP2 arrays of bulk strings as a Redis 6.0.9 would; remembers every command."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.commands: list[tuple[str, ...]] = []
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as stream:
            while (header := stream.readline()).startswith(b"*"):
                words = []
                for _ in range(int(header[1:])):
                    length = int(stream.readline()[1:])
                    words.append(stream.read(length + 2)[:-2].decode())
                self.commands.append(tuple(w.upper() for w in words))
                conn.sendall(self._answer(self.commands[-1]))

    @staticmethod
    def _answer(command: tuple[str, ...]) -> bytes:
        if command[0] == "INFO":
            section = command[1] if len(command) > 1 else "DEFAULT"
            if section == "DEFAULT":
                return _bulk(INFO_6)
            return _bulk(b"# Commandstats\r\n" if section == "COMMANDSTATS" else b"")
        if command[:2] == ("LATENCY", "HISTOGRAM"):
            return UNKNOWN
        return b"+PONG\r\n" if command[0] == "PING" else b"-ERR unknown command\r\n"

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def redis6() -> Iterator[Redis6]:
    server = Redis6()
    yield server
    server.close()


def test_an_older_server_is_never_sent_latency_histogram_and_reports_no_error(
        redis6, exporter_factory, caplog):
    exporter = exporter_factory(settings([f"old=redis://127.0.0.1:{redis6.port}"]))
    for _ in range(3):
        metrics = exporter.scrape()
        assert metrics.value("cachewatch_collector_up", collector="redis", target="old") == 1
    assert ("LATENCY", "HISTOGRAM") not in redis6.commands
    assert redis6.commands.count(("INFO", "DEFAULT")) == 4  # the warm-up round and 3 scrapes
    assert not metrics.find("cachewatch_redis_command_latency_seconds_count")
    assert not [v for v in metrics.find("cachewatch_collector_errors_total", target="old") if v]
    assert metrics.value("cachewatch_redis_info", cache="old", version="6.0.9", role="master",
                         mode="standalone") == 1
    assert metrics.value("cachewatch_redis_maxmemory_bytes", cache="old") == 0
    assert "LATENCY HISTOGRAM" not in caplog.text


def test_a_7_server_is_asked_for_its_histogram_on_every_scrape_of_one_connection(
        redis_plain, exporter_factory):
    exporter = exporter_factory(settings([f"new={redis_plain.url}"]))
    client = redis_plain.client()
    exporter.scrape()
    before = client.info("commandstats").get("cmdstat_latency|histogram", {}).get("calls", 0)
    for _ in range(3):
        metrics = exporter.scrape()
        assert metrics.find("cachewatch_redis_command_latency_seconds_count", cache="new")
    after = client.info("commandstats")["cmdstat_latency|histogram"]["calls"]
    assert after - before == 3
    # one connection for the scrapes (and redis-py's own): the version was read once
    assert client.info("stats")["total_connections_received"] <= 3


def test_redis6_stand_in_answers_like_redis_6(redis6):
    client = redis.Redis(port=redis6.port)
    assert client.info()["redis_version"] == "6.0.9"
    with pytest.raises(redis.ResponseError, match="HISTOGRAM"):
        client.execute_command("LATENCY", "HISTOGRAM")
