"""Docker builds: the build log parser and ingestion (CLI and HTTP), the Engine collector.

Three sections: ``builds`` (logs pushed by ``cachewatch ingest-build`` / ``cachewatch build`` or
any client of ``POST /api/v1/builds``), ``docker`` (the Engine API: build cache disk usage,
images, events) and ``buildkit`` (BuildKit daemons' build history), the last two off by default
because they need a socket.
"""

from ...source import Section, SourcePackage
from .buildkit.settings import BuildkitSettings
from .settings import BuildSettings, DockerSettings

SOURCE = SourcePackage(
    name="docker",
    sections=(
        Section("builds", BuildSettings, "cachewatch.sources.docker.builds:build"),
        Section("docker", DockerSettings, "cachewatch.sources.docker.engine:build"),
        Section("buildkit", BuildkitSettings,
                "cachewatch.sources.docker.buildkit.collector:build"),
    ),
    commands="cachewatch.sources.docker.commands:register",
    bundle="cachewatch.sources.docker.bundle",
)
