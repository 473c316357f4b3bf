"""``cachewatch doctor --buildkit-target``: rank findings by what a daemon's own history holds.

The same reading as the collector's (the backlog, each build's logs blob, the log parser's
rules), for one image, without an exporter in between: every build the daemon keeps, its cache
buster and the seconds re-run after it. Only the image's records have their logs read.
"""

from __future__ import annotations

from collections import defaultdict

from pydantic import ValidationError

from ....metrics.labels import safe_label
from ..doctor.cost import Buster, History
from ..doctor.history import HistoryError
from .settings import BuildkitTarget

TIMEOUT = 10.0


def from_daemon(spec: str, image: str, timeout: float = TIMEOUT) -> History:
    """The image's busters in the history of the daemon at ``spec`` (``[NAME=]ADDR``)."""
    try:
        target = BuildkitTarget.model_validate(spec)
    except ValidationError as exc:
        raise HistoryError(f"--buildkit-target {spec!r}: "
                           f"{exc.errors(include_url=False)[0]['msg']}") from None
    try:
        import grpc

        from .client import HistoryClient
        from .record import MAX_LOGS_BYTES, image_of, summary
    except ImportError as exc:
        raise HistoryError(f"reading BuildKit's history needs grpcio and protobuf ({exc.name}"
                           " is missing): pip install 'cachewatch[buildkit]'") from None
    client = HistoryClient(target, timeout)
    try:
        records = client.backlog()
        images = sorted({image_of(record) for record in records})
        builds = [summary(record, client.logs(record, MAX_LOGS_BYTES) or b"")
                  for record in records if image_of(record) == image]
    except grpc.RpcError as exc:
        raise HistoryError(f"cannot read BuildKit's history at {target.address}: "
                           f"{exc.code().name}: {exc.details()}") from None
    finally:
        client.close()
    busts: dict[str, float] = defaultdict(float)
    seconds: dict[str, float] = defaultdict(float)
    for build in builds:
        if build.cache_buster:
            label = safe_label(build.cache_buster)
            busts[label] += 1
            seconds[label] += build.rebuild_seconds
    busters = tuple(Buster(label, count, seconds[label]) for label, count in sorted(busts.items()))
    return History(image, float(len(builds)), busters,
                   f"in {target.label}'s build history ({len(records)} builds kept)", True,
                   tuple(images))
