"""Docker builds: the build log parser and ingestion (CLI and HTTP), the Engine collector.

Three sections: ``builds`` (logs pushed by ``cachewatch ingest-build`` / ``cachewatch build`` or
any client of ``POST /api/v1/builds``), ``docker`` (the Engine API: build cache disk usage,
images, events, layer reuse of pulls) and ``buildkit`` (BuildKit daemons' build history), the
last two off by default because they need a socket.
"""

from ...source import Doctor, Layer, Section, SourcePackage
from .buildkit.settings import BuildkitSettings
from .settings import BuildSettings, DockerSettings

SOURCE = SourcePackage(
    name="docker",
    title="Docker build cache",
    layers=(Layer("docker_build", "Docker builds", generic_alerts=False, receiver="ci-team",
                  relay_path="ci", hit_rate_goal="build_hit_rate", latency=False,
                  fed_by=("builds", "docker", "buildkit")),
            # the engine's pulls: a layer already on the node is a hit (pulls.PullTracker)
            Layer("image_pull", "Node image pulls", receiver="platform-team",
                  relay_path="platform", latency=False, fed_by=("docker",))),
    docs="sources/docker-builds.md",
    first_step="pipe a build into <code>cachewatch ingest-build</code>",
    sections=(
        Section("builds", BuildSettings, "cachewatch.sources.docker.builds:build"),
        Section("docker", DockerSettings, "cachewatch.sources.docker.engine:build",
                layer="docker_build"),
        Section("buildkit", BuildkitSettings,
                "cachewatch.sources.docker.buildkit.collector:build", layer="docker_build"),
    ),
    commands="cachewatch.sources.docker.commands:register",
    doctor=Doctor("cachewatch.sources.docker.commands:doctor", "[DOCKERFILE] (a Dockerfile)"),
    bundle="cachewatch.sources.docker.bundle",
    thresholds="cachewatch.sources.docker.thresholds:DockerThresholds",
    contract="cachewatch.sources.docker.contract",
    chatty_loggers=("docker", "urllib3"),
    status="cachewatch.sources.docker.status:section",  # the Docker SDK's requests
)
