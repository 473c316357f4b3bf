"""Deploy files: the image built for real (and measured with cachewatch's own build ingestion),
the Compose stack's files validated by their own tools, the Kubernetes manifests checked
against the app and the bundle."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from cachewatch.bundle import rules
from cachewatch.bundle.thresholds import Thresholds

from support import DOCKER_CLI, IN_CI, ROOT, free_port, require, wait_until

pytestmark = pytest.mark.e2e  # every test here drives real services

DEPLOY = ROOT / "deploy"
CW = [sys.executable, "-m", "cachewatch"]


@pytest.fixture(scope="session")
def local_base(docker_engine) -> str:
    """A Debian bookworm base with Python, made here (no registry to pull one from) by the
    recipe users get, ``deploy/base-image.sh``. This machine reaches PyPI through a proxy with
    its own CA: the CAs the host added go in with ``--ca``, as the README says, so pip inside
    the build trusts what the host trusts."""
    require("debootstrap", "debootstrap")
    cas = [arg for path in sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
           for arg in ("--ca", str(path))]
    made = subprocess.run(["bash", str(DEPLOY / "base-image.sh"), *cas, "--tag",
                           "local/bookworm-python"], capture_output=True, text=True,
                          timeout=900, check=False, env=docker_engine.env())
    if made.returncode != 0:
        message = f"deploy/base-image.sh failed: {made.stderr[-800:]}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    assert made.stdout.strip() == "local/bookworm-python"
    return "local/bookworm-python"


def _context(tmp_path: Path) -> Path:
    """The build context as a user's checkout has it (what .dockerignore lets through)."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    for name in ("pyproject.toml", "README.md", ".dockerignore"):
        shutil.copy(ROOT / name, ctx / name)
    shutil.copytree(ROOT / "exporter", ctx / "exporter",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(DEPLOY, ctx / "deploy")
    return ctx


def _build(docker_engine, ctx: Path, base: str) -> dict:
    """`cachewatch build --json -- docker build ...`: the image build, ingested by cachewatch."""
    run = subprocess.run(
        [*CW, "build", "--image", "cachewatch", "--url", "", "--json", "--", DOCKER_CLI,
         "build", "--network=host", "--progress=plain", "-f", str(ctx / "deploy/Dockerfile"),
         "--build-arg", f"BASE_IMAGE={base}", "-t", "cachewatch:test", str(ctx)],
        capture_output=True, env=docker_engine.env(), timeout=900, check=False)
    stderr = run.stderr.decode()
    assert run.returncode == 0, run.stdout.decode()[-3000:]
    return json.loads(stderr[stderr.index("{"):])


def test_image_builds_runs_as_non_root_and_a_code_change_reuses_the_dependencies(
    docker_engine, local_base, tmp_path
):
    ctx = _context(tmp_path)
    first = _build(docker_engine, ctx, local_base)
    assert first["status"] == "success"

    port = free_port()
    name = f"cw-{port}"
    started = docker_engine.cli("run", "-d", "--name", name, "--network=host", "-e",
                                f"CACHEWATCH_PORT={port}", "-e",
                                "CACHEWATCH_REDIS__ENABLED=false", "cachewatch:test")
    assert started.returncode == 0, started.stderr
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(url + "/healthz", timeout=2).text == "ok\n", timeout=30)
        assert "cachewatch_build_info{" in httpx.get(url + "/metrics").text
        assert docker_engine.cli("exec", name, "id", "-u").stdout.strip() == "10150"
        # its state is a file in the volume, written by the non-root user
        assert 'cachewatch_state_info{backend="sqlite"' in httpx.get(url + "/metrics").text
        owner = docker_engine.cli("exec", name, "stat", "-c", "%u",
                                  "/var/lib/cachewatch/state.db")
        assert owner.stdout.strip() == "10150", owner.stderr
        tools = docker_engine.cli("exec", name, "sh", "-c",
                                  "command -v gcc cc pip pip3; ls /root/.cache /opt/venv/bin/pip*")
        assert tools.stdout.strip() == "", tools.stdout  # no compiler, no pip, no pip cache
        inspected = json.loads(docker_engine.cli("inspect", "cachewatch:test").stdout)[0]
        config = inspected["Config"]
        assert config["User"] == "10150:10150"
        assert "/var/lib/cachewatch" in config["Volumes"]
        assert "/healthz" in " ".join(config["Healthcheck"]["Test"])
        assert config["Labels"]["org.opencontainers.image.title"] == "cachewatch"
        size_mb = inspected["Size"] / 1e6
    finally:
        docker_engine.cli("rm", "-f", name)

    cli = ctx / "exporter" / "cachewatch" / "cli.py"
    cli.write_text(cli.read_text() + "# a one-line change\n")
    started_at = time.monotonic()
    second = _build(docker_engine, ctx, local_base)
    rebuild_seconds = time.monotonic() - started_at
    records = [r for r in second["records"] if r["kind"] == "step"]
    executed = [r["name"] for r in records if not r["cached"]]
    # Only the source layer and what follows it in the `app` stage ran again; every
    # dependency step (the venv, pip install of the dependencies) came from the cache.
    assert second["cache_buster"] == "COPY exporter ./exporter"
    assert all("app" in name for name in executed), executed
    assert all(r["cached"] for r in records if r["stage"] == "deps")
    # A README edit (the project's metadata, not its dependencies) reinstalls nothing either:
    # the dependency layer is made from pyproject.toml's dependency list alone.
    readme = ctx / "README.md"
    readme.write_text(readme.read_text() + "\nA one-line edit.\n")
    third = _build(docker_engine, ctx, local_base)
    assert third["cache_buster"] == "COPY README.md ./"
    assert all(r["cached"] for r in third["records"] if r["kind"] == "step"
               and r["stage"] == "deps")
    print(f"\nimage size {size_mb:.0f} MB; rebuild after a one-line change: "
          f"{rebuild_seconds:.1f}s, {second['hits']}/{second['lookups']} steps cached "
          f"({second['hits'] / second['lookups']:.0%}), cache buster "
          f"{second['cache_buster_step']}")


def test_compose_file_and_every_config_it_mounts_are_valid(tmp_path):
    """`config` on a fresh clone (no .env, no CACHEWATCH_TOKEN): the placeholder token."""
    stack = _compose_config({})
    assert stack["services"]["cachewatch"]["image"] == "cachewatch:0.1.0"  # what k8s runs

    def mounts(service: dict) -> list[tuple[str, str]]:
        """(source, target) of each volume, in either spelling compose prints."""
        return [(v["source"], v["target"]) if isinstance(v, dict) else tuple(v.split(":")[:2])
                for v in service.get("volumes", [])]

    named = set(stack.get("volumes") or {})
    for service in stack["services"].values():
        for source, _ in mounts(service):
            assert source in named or Path(source).exists(), \
                f"{source} is mounted but does not exist"
    # cachewatch's state (SQLite, the image's default) is in a named volume: kept on recreate
    assert ("cachewatch-state", "/var/lib/cachewatch") in mounts(stack["services"]["cachewatch"])
    # Prometheus: its config (with the rules path as mounted) passes promtool
    promtool = require("promtool", "prometheus")
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["rule_files"] = [str(ROOT / "alerts" / "cachewatch-rules.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    amtool = require("amtool", "prometheus-alertmanager")
    result = subprocess.run([amtool, "check-config", str(ROOT / "alerts" / "alertmanager.yml")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    # ports and URLs agree between services
    services = stack["services"]
    assert config["scrape_configs"][0]["static_configs"][0]["targets"] == ["cachewatch:10150"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == \
        ["alertmanager:9093"]
    assert any(str(p.get("target", p)).startswith("10150") or "10150" in str(p)
               for p in services["cachewatch"]["ports"])
    datasource = yaml.safe_load((ROOT / "dashboards/provisioning/datasources.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((ROOT / "dashboards/provisioning/dashboards.yml").read_text())
    grafana_mounts = [target for _, target in mounts(services["grafana"])]
    assert provider["providers"][0]["options"]["path"] in grafana_mounts
    assert services["cachewatch"]["environment"]["CACHEWATCH_REGISTRY__TOKEN"] == "change-me"
    redis = json.loads(services["cachewatch"]["environment"]["CACHEWATCH_REDIS__TARGETS"])
    assert redis == ["main=redis://redis:6379"]


def _compose_config(env: dict[str, str]) -> dict:
    """`docker-compose config` (Compose v1, as Debian ships it; v2 reads the same file)."""
    compose = require("docker-compose", "docker-compose")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CACHEWATCH_")}
    checked = subprocess.run([compose, "-f", str(DEPLOY / "compose.yaml"), "config"],
                             capture_output=True, text=True, check=False, env={**clean, **env})
    assert checked.returncode == 0, checked.stderr
    return yaml.safe_load(checked.stdout)


def test_the_compose_token_comes_from_the_environment_and_the_registry_sends_it(tmp_path):
    """The real registry reads the endpoint compose gives it, with the token from the
    environment (both sides of the stack get the same one)."""
    stack = _compose_config({"CACHEWATCH_TOKEN": "from-the-env-Tok3n"})
    assert stack["services"]["cachewatch"]["environment"]["CACHEWATCH_REGISTRY__TOKEN"] == \
        "from-the-env-Tok3n"
    registry = require("docker-registry", "docker-registry")
    config = yaml.safe_load((DEPLOY / "registry" / "config.yml").read_text())
    config["storage"]["filesystem"]["rootdirectory"] = str(tmp_path / "data")
    config["http"] = {"addr": f"127.0.0.1:{free_port()}"}
    (tmp_path / "config.yml").write_text(yaml.safe_dump(config))
    env = {**os.environ, **stack["services"]["registry"]["environment"]}
    log = tmp_path / "registry.log"
    with log.open("w") as out:
        proc = subprocess.Popen([registry, "serve", str(tmp_path / "config.yml")], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        line = wait_until(lambda: next((x for x in log.read_text().splitlines()
                                        if "configuring endpoint" in x), None), timeout=15)
    finally:
        proc.kill()
        proc.wait()
    assert "endpoint cachewatch (http://cachewatch:10150/webhooks/registry?registry=compose)" \
        in line
    assert "headers=map[Authorization:[Bearer from-the-env-Tok3n]]" in line


def test_make_stack_runs_compose_v2_or_v1(tmp_path):
    """scripts/compose.sh picks `docker compose` (v2) when the CLI has it, else docker-compose
    (v1): both are tried here with stand-ins on PATH that record how they were called."""
    bin_v2, bin_v1 = tmp_path / "v2", tmp_path / "v1"
    for folder, name, body in (
            (bin_v2, "docker", 'if [ "$1" = compose ]; then echo "v2 $*" > "$OUT"; fi'),
            (bin_v1, "docker", "exit 1"), (bin_v1, "docker-compose", 'echo "v1 $*" > "$OUT"')):
        folder.mkdir(exist_ok=True)
        (folder / name).write_text(f"#!/bin/sh\n{body}\n")
        (folder / name).chmod(0o755)
    for folder, expected in ((bin_v2, "v2 compose -f"), (bin_v1, "v1 -f")):
        out = tmp_path / f"{folder.name}.out"
        subprocess.run([str(ROOT / "scripts" / "compose.sh"), "config"], check=True,
                       env={"PATH": f"{folder}:/usr/bin:/bin", "OUT": str(out)})
        called = out.read_text()
        assert called.startswith(expected), called
        assert called.rstrip().endswith("deploy/compose.yaml config")


def test_image_healthcheck_follows_the_port_the_exporter_is_given(exporter_factory):
    """The Dockerfile's HEALTHCHECK command, run as Docker would, with CACHEWATCH_PORT set to
    where an exporter listens (and to where nothing does)."""
    from support import settings

    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    command = json.loads(re.search(r"HEALTHCHECK [^\[]*CMD (\[.*\])", text).group(1))
    assert command[:2] == ["/opt/venv/bin/python", "-c"]
    exporter = exporter_factory(settings([], **{"redis.enabled": False}))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CACHEWATCH_")}
    for env, healthy in (({"CACHEWATCH_PORT": str(exporter.port)}, True),
                         ({"CACHEWATCH_PORT": str(exporter.port),
                           "CACHEWATCH_LISTEN_ADDRESS": "0.0.0.0"}, True),
                         ({"CACHEWATCH_PORT": str(free_port())}, False)):
        run = subprocess.run([sys.executable, "-c", command[2]], env={**clean, **env},
                             capture_output=True, text=True, timeout=30, check=False)
        assert (run.returncode == 0) is healthy, (env, run.stderr[-300:])


def _documents() -> list[dict]:
    docs = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        if path.name != "kustomization.yaml":  # lists the others; not a resource itself
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def test_kubernetes_manifests_reference_real_ports_and_probe_paths(exporter_factory):
    from support import settings

    exporter = exporter_factory(settings([]))
    docs = _documents()
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "PodMonitor", "PrometheusRule"} <= kinds
    for doc in (d for d in docs if d["kind"] == "Deployment"):
        pod_labels = doc["spec"]["template"]["metadata"]["labels"]
        assert doc["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        for container in doc["spec"]["template"]["spec"]["containers"]:
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            for probe in ("livenessProbe", "readinessProbe"):
                if probe in container:
                    get = container[probe]["httpGet"]
                    assert exporter.get(get["path"]).status_code in (200, 503), get["path"]
                    assert get["port"] in ports
            if container["name"] == "cachewatch":
                assert ports["metrics"] == 10150
                assert container["securityContext"]["runAsUser"] == 10150
    for service in (d for d in docs if d["kind"] == "Service"):
        targets = [d for d in docs if d["kind"] == "Deployment" and
                   service["spec"]["selector"].items() <=
                   d["spec"]["template"]["metadata"]["labels"].items()]
        assert targets, service["metadata"]["name"]
        for port in service["spec"]["ports"]:
            names = {p["name"] for t in targets
                     for c in t["spec"]["template"]["spec"]["containers"]
                     for p in c.get("ports", [])}
            assert port["targetPort"] in names
    receiver = next(d for d in docs if d["metadata"]["name"] == "cachewatch-receiver"
                    and d["kind"] == "Deployment")
    assert receiver["spec"]["replicas"] == 2
    env = {e["name"]: e for e in receiver["spec"]["template"]["spec"]["containers"][0]["env"]}
    state = urlsplit(env["CACHEWATCH_STATE__URL"]["value"])
    assert state.scheme == "redis"  # replicas share de-duplication and records through Redis
    redis_service = next(d for d in docs if d["kind"] == "Service"
                         and d["metadata"]["name"] == state.hostname)
    assert state.port in [p["port"] for p in redis_service["spec"]["ports"]]
    assert env["CACHEWATCH_STATE__REPLICA_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.name"  # stable across a container's restarts
    monitor = next(d for d in docs if d["kind"] == "PodMonitor")
    selected = [d for d in docs if d["kind"] == "Deployment" and
                monitor["spec"]["selector"]["matchLabels"].items() <=
                d["spec"]["template"]["metadata"]["labels"].items()]
    assert len(selected) == 2


def test_prometheus_rule_holds_the_same_rules_as_alerts():
    rule = next(d for d in _documents() if d["kind"] == "PrometheusRule")
    committed = yaml.safe_load((ROOT / "alerts" / "cachewatch-rules.yml").read_text())
    assert rule["spec"] == committed == rules.rules_document(Thresholds())
