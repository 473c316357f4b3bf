"""A real Redis Cluster for the cluster tests: redis-servers with ``--cluster-enabled yes`` on free
loopback ports, joined by ``redis-cli --cluster create``, ready once every node says
``cluster_state:ok``."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support import RedisServer, free_port, require, wait_until

# Fail a silent node within a second (default 15 s), so a failover happens inside a test.
NODE_TIMEOUT_MS = "1000"


class RedisCluster:
    """Masters (and replicas added later) of one cluster, stopped together."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.nodes: list[RedisServer] = []
        self.cli = require("redis-cli", "redis-tools")

    def server(self) -> RedisServer:
        """A new cluster-enabled redis-server, not yet part of the cluster."""
        server = RedisServer(
            self.workdir / f"node{len(self.nodes)}", "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf", "--cluster-port", str(free_port()),
            "--cluster-node-timeout", NODE_TIMEOUT_MS).start()
        self.nodes.append(server)
        return server

    def create(self, masters: int) -> RedisCluster:
        servers = [self.server() for _ in range(masters)]
        self._cli("--cluster", "create", *(s.address for s in servers), "--cluster-yes")
        self.wait_ok(servers)
        return self

    def add_replica(self, of: RedisServer) -> RedisServer:
        """A new node, joined as a replica of ``of``."""
        server = self.server()
        self._cli("--cluster", "add-node", server.address, of.address, "--cluster-slave",
                  "--cluster-master-id", of.client().execute_command("CLUSTER", "MYID").decode())
        wait_until(lambda: server.client().info("replication").get("master_link_status") == "up",
                   timeout=20)
        self.wait_known(len(self.nodes))
        return server

    def wait_ok(self, servers: list[RedisServer] | None = None) -> None:
        for server in servers or self.running():
            wait_until(lambda s=server: s.client().cluster("info")["cluster_state"] == "ok",
                       timeout=20)

    def wait_known(self, count: int) -> None:
        """Until every running node knows ``count`` nodes (gossip has spread)."""
        for server in self.running():
            wait_until(lambda s=server: int(
                s.client().cluster("info")["cluster_known_nodes"]) == count, timeout=20)

    def running(self) -> list[RedisServer]:
        return [s for s in self.nodes if s.proc is not None and s.proc.poll() is None]

    def _cli(self, *args: str) -> None:
        done = subprocess.run([self.cli, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr

    def stop(self) -> None:
        for server in self.nodes:
            server.stop()


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[Callable[[int], RedisCluster]]:
    """``redis_cluster(3)``: a cluster of that many masters, slots spread by redis-cli."""
    made: list[RedisCluster] = []

    def make(masters: int) -> RedisCluster:
        cluster = RedisCluster(tmp_path / f"cluster{len(made)}")
        made.append(cluster)
        return cluster.create(masters)

    yield make
    for cluster in made:
        cluster.stop()
