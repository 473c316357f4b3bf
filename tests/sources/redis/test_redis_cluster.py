"""A real three-master Redis Cluster read through one node: every node's numbers, exactly, summed
by cache; a node killed, a replica added, a failover; the layout asked for only when it changed.

The cluster is real: redis-servers with ``--cluster-enabled yes`` on free loopback ports, joined by
``redis-cli --cluster create``, ready once every node says ``cluster_state:ok``."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from cachewatch.sources.redis.topology import MASTER, REPLICA, from_nodes, from_shards

from support import RedisServer, free_port, require, settings, wait_until

pytestmark = pytest.mark.e2e  # every test here drives real redis-servers

LOOKUPS = "cachewatch_cache_lookups_total"
NODE_UP = "cachewatch_redis_cluster_node_up"
PARTIAL = "cachewatch_redis_cluster_partial"
UP = "cachewatch_collector_up"

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


def _traffic(cluster) -> tuple[int, int]:
    """Hits and misses spread over every master through a cluster client; how many of each."""
    seed = cluster.nodes[0]
    client = redis.RedisCluster(host="127.0.0.1", port=seed.port)
    try:
        for i in range(60):
            client.set(f"key{i}", i)
        for i in range(60):
            assert client.get(f"key{i}") is not None
        for i in range(25):
            assert client.get(f"absent{i}") is None
    finally:
        client.close()
    return 60, 25


def _node_stats(server) -> dict[str, int]:
    return server.client().info("stats")


def _cluster_exporter(exporter_factory, cluster, **overrides):
    return exporter_factory(settings([f"shop={cluster.nodes[0].url}"], **overrides))


def test_every_node_is_read_and_sums_by_cache_match_each_nodes_info(redis_cluster,
                                                                    exporter_factory):
    cluster = redis_cluster(3)
    hits, misses = _traffic(cluster)
    exporter = _cluster_exporter(exporter_factory, cluster)
    metrics = exporter.scrape()
    stats = {server.address: _node_stats(server) for server in cluster.nodes}
    assert metrics.label_values(NODE_UP, "node") == set(stats)
    for address, node in stats.items():
        labels = {"cache": "shop", "node": address, "role": MASTER}
        assert metrics.value(NODE_UP, **labels) == 1
        # INFO does not touch the keyspace: the scrape's value is the node's counter, exactly
        assert metrics.value(LOOKUPS, layer="redis", result="hit", **labels) \
            == node["keyspace_hits"]
        assert metrics.value(LOOKUPS, layer="redis", result="miss", **labels) \
            == node["keyspace_misses"]
        assert metrics.value("cachewatch_redis_info", cache="shop", node=address,
                             version=metrics.label_values("cachewatch_redis_info",
                                                          "version").pop(),
                             role="master", mode="cluster") == 1
    assert sum(metrics.find(LOOKUPS, cache="shop", result="hit")) == hits \
        == sum(s["keyspace_hits"] for s in stats.values())
    assert sum(metrics.find(LOOKUPS, cache="shop", result="miss")) == misses
    assert all(s["keyspace_hits"] > 0 for s in stats.values())  # the keys really are spread
    assert sum(metrics.find("cachewatch_cache_entries", cache="shop")) == 60
    assert metrics.value(PARTIAL, cache="shop") == 0
    assert metrics.value(UP, collector="redis", target="shop") == 1
    histogram = metrics.label_values("cachewatch_redis_command_latency_seconds_count", "node")
    assert histogram == set(stats)  # Redis 7 nodes: each node's LATENCY HISTOGRAM


def test_a_killed_node_is_down_the_cluster_partial_and_the_rest_still_reported(
        redis_cluster, exporter_factory):
    cluster = redis_cluster(3)
    _traffic(cluster)
    exporter = _cluster_exporter(exporter_factory, cluster)
    assert exporter.scrape().value(PARTIAL, cache="shop") == 0
    killed = cluster.nodes[1]
    killed.stop()
    metrics = exporter.scrape()
    assert metrics.value(NODE_UP, cache="shop", node=killed.address, role=MASTER) == 0
    assert metrics.value(PARTIAL, cache="shop") == 1
    assert metrics.value(UP, collector="redis", target="shop") == 1
    assert not metrics.find(LOOKUPS, node=killed.address)
    for server in (cluster.nodes[0], cluster.nodes[2]):
        assert metrics.value(LOOKUPS, layer="redis", cache="shop", node=server.address,
                             role=MASTER, result="hit") == _node_stats(server)["keyspace_hits"]


def test_a_cluster_whose_seed_died_is_still_read_through_the_others(redis_cluster,
                                                                   exporter_factory):
    cluster = redis_cluster(3)
    exporter = _cluster_exporter(exporter_factory, cluster)
    exporter.scrape()
    cluster.nodes[0].stop()
    metrics = exporter.scrape()
    assert metrics.value(UP, collector="redis", target="shop") == 1
    assert metrics.value(NODE_UP, cache="shop", node=cluster.nodes[2].address,
                         role=MASTER) == 1


def test_an_added_replica_is_found_and_a_failover_followed(redis_cluster, exporter_factory):
    cluster = redis_cluster(3)
    _traffic(cluster)
    exporter = _cluster_exporter(exporter_factory, cluster, **{"redis.timeout": 2.0})
    collector = exporter.collectors[0]
    exporter.scrape()
    for _ in range(3):
        exporter.scrape()
    assert collector._clusters["shop"].discoveries == 1  # quiet scrapes ask for nothing

    master = cluster.nodes[0]
    replica = cluster.add_replica(master)
    metrics = wait_until(lambda: (m := exporter.scrape()).find(
        NODE_UP, node=replica.address, role=REPLICA) and m)
    assert metrics.value(NODE_UP, cache="shop", node=replica.address, role=REPLICA) == 1
    # a replica's copy is not more cache: entries are the masters' keys only
    assert sum(metrics.find("cachewatch_cache_entries", cache="shop")) == 60
    assert not metrics.find("cachewatch_cache_bytes", node=replica.address)
    assert metrics.find("cachewatch_redis_db_keys", node=replica.address, role=REPLICA) == [
        master.client().info("keyspace")["db0"]["keys"]]
    found = collector._clusters["shop"].discoveries

    master.stop()  # the replica takes over within the node timeout
    promoted = wait_until(lambda: (m := exporter.scrape()).find(
        NODE_UP, node=replica.address, role=MASTER) == [1] and m, timeout=30)
    assert promoted.value(NODE_UP, cache="shop", node=master.address, role=MASTER) == 0
    assert promoted.value(PARTIAL, cache="shop") == 1
    assert promoted.find("cachewatch_cache_bytes", node=replica.address)
    assert collector._clusters["shop"].discoveries > found


def test_cluster_nodes_and_cluster_shards_describe_the_same_nodes(redis_cluster):
    cluster = redis_cluster(3)
    client = cluster.nodes[0].client()
    shards = from_shards(client.execute_command("CLUSTER", "SHARDS"), "127.0.0.1", tls=False)
    nodes = from_nodes(client.execute_command("CLUSTER", "NODES"), "127.0.0.1")
    assert shards == nodes
    assert {n.address for n in nodes} == {s.address for s in cluster.nodes}
    assert {n.role for n in nodes} == {MASTER}


def test_a_single_server_gets_no_node_labels(redis_plain, exporter_factory):
    metrics = exporter_factory(settings([redis_plain.url])).scrape()
    assert not metrics.find(NODE_UP)
    assert not metrics.find(PARTIAL)
    assert not metrics.label_values(LOOKUPS, "node")
