"""CI caches: what a CI job's own caches did (GitHub Actions ``actions/cache`` and the
``setup-*`` actions, GitLab CI ``cache:``, CircleCI ``restore_cache``, Azure Pipelines
``Cache@2``), read from the job's log by ``cachewatch ingest-job`` and posted to
``POST /api/v1/ci/caches``.

Its own package rather than part of the Docker source: a CI cache is no Docker cache (a job
restores ``~/.npm`` whether or not it builds an image), it has its own layer, receiver, token
and cardinality cap, and the generic 85 % hit-rate rule covers it where the build cache has
rules of its own. ``ingest-job`` reads the job's Docker builds too, with the Docker source's
parser, and sends them to the builds API.
"""

from ...source import Layer, Section, SourcePackage
from .settings import CiSettings

SOURCE = SourcePackage(
    name="ci",
    title="CI caches",
    layers=(Layer("ci", "CI caches", receiver="ci-team", relay_path="ci", latency=False),),
    docs="sources/ci-caches.md",
    first_step="send a finished job's log to <code>cachewatch ingest-job</code>",
    sections=(Section("ci", CiSettings, "cachewatch.sources.ci.receiver:build"),),
    commands="cachewatch.sources.ci.commands:register",
    bundle="cachewatch.sources.ci.bundle",
    contract="cachewatch.sources.ci.contract",
)
