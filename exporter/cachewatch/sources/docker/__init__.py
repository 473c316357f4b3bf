"""Docker builds: the build log parser and ingestion (CLI and HTTP), the Engine collector.

Two sections: ``builds`` (logs pushed by ``cachewatch ingest-build`` / ``cachewatch build`` or any
client of ``POST /api/v1/builds``) and ``docker`` (the Engine API: build cache disk usage,
images, events), off by default because it needs the Docker socket.
"""

from ...source import Section, SourcePackage
from .settings import BuildSettings, DockerSettings

SOURCE = SourcePackage(
    name="docker",
    sections=(
        Section("builds", BuildSettings, "cachewatch.sources.docker.builds:build"),
        Section("docker", DockerSettings, "cachewatch.sources.docker.engine:build"),
    ),
    commands="cachewatch.sources.docker.commands:register",
    bundle="cachewatch.sources.docker.bundle",
)
