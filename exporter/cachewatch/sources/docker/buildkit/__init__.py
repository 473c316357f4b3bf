"""BuildKit's own build history: every build a BuildKit daemon ran, with each step's cache flag.

Since v0.11 a daemon keeps a record of each build (``Control/ListenBuildHistory``). The
collector follows that stream live, reads each finished build's logs blob for its steps, and
counts the build once, through the same summary and counters as an ingested build log, with
``source="buildkit"``. ``address`` and ``settings`` need no dependency; ``client``, ``record``,
``follower`` and ``collector`` need the ``cachewatch[buildkit]`` extra (grpcio, protobuf) and
are imported only when the collector is enabled.
"""
