"""Zero-touch build history: cache reuse per image from the engine, with no log piping.

Docker keeps it in image history (``GET /images/{id}/history``): a step reused from the cache keeps
its original creation time, a rebuilt one gets the new build's time (1 s resolution; final stage
only). A fully cached build produces no new image, only the engine's ``image tag`` event (every
``docker build -t`` emits one, with both builders), so builds are counted from those events:

* a tag of an image id already known is a fully cached build: every step a hit;
* a new image id is read once (cached per id): each layer step whose (instruction, creation
  time) pair is already known from another image, or older than the watcher, was reused (hit);
  the others ran (miss); the first miss after a hit is the cache buster, as in a build log.

Only layer steps count (RUN, COPY, ADD): BuildKit stamps metadata entries (ENV, CMD, ...) with
the build's time whatever the cache did, so their times say nothing. The base image's steps (the
longest prefix that is another local image's whole history) are left out, as FROM is in a log.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from ...metrics.cardinality import LabelCap
from ...metrics.labels import safe_label
from . import contract
from .buildlog import normalise_instruction

SOURCE = "engine"
MAX_IMAGES = 2000  # image histories remembered; a host rarely keeps more
_LEGACY_NOP = re.compile(r"^/bin/sh -c #\(nop\)\s+")
_LAYER_INSTRUCTIONS = ("RUN ", "COPY ", "ADD ")
_METADATA = re.compile(r"^(ARG|CMD|ENTRYPOINT|ENV|EXPOSE|HEALTHCHECK|LABEL|MAINTAINER|ONBUILD|"
                       r"SHELL|STOPSIGNAL|USER|VOLUME|WORKDIR)\b")


@dataclass(frozen=True)
class LayerStep:
    """One layer-producing step of an image's history, oldest first."""

    instruction: str
    created: int

    @property
    def key(self) -> tuple[str, int]:
        """What a reused step shares with the build that first made it."""
        return (self.instruction, self.created)


@dataclass(frozen=True)
class EngineBuild:
    """One build as the engine's history tells it."""

    image: str
    hits: int
    misses: int
    cache_buster: str | None

    @property
    def lookups(self) -> int:
        return self.hits + self.misses


def instruction(created_by: str) -> str | None:
    """The Dockerfile instruction of a history entry if it produced a layer, else ``None``.

    BuildKit writes ``COPY app.txt /app # buildkit`` for layers and ``ENV A=1`` for metadata;
    the legacy builder writes ``/bin/sh -c #(nop) COPY file:<sha> in /app`` for COPY/ADD,
    ``/bin/sh -c #(nop)  ENV A=1`` for metadata and the bare command for RUN.
    """
    text = created_by.strip()
    if text.endswith("# buildkit"):
        text = text.removesuffix("# buildkit").strip()
        return text if text.startswith(_LAYER_INSTRUCTIONS) else None
    if _LEGACY_NOP.match(text):
        text = _LEGACY_NOP.sub("", text)
        return text if text.startswith(("COPY ", "ADD ")) else None
    if not text or _METADATA.match(text):
        return None  # BuildKit metadata, or an imported image's empty entry
    return "RUN " + text.removeprefix("/bin/sh -c ")


def layer_steps(history: Iterable[dict]) -> list[LayerStep]:
    """Layer steps of a ``/images/{id}/history`` answer (newest first), oldest first."""
    steps = []
    for entry in reversed(list(history)):
        found = instruction(str(entry.get("CreatedBy") or ""))
        if found is not None:
            steps.append(LayerStep(found, int(entry.get("Created") or 0)))
    return steps


def repository(tag: str) -> str:
    """``registry:5000/team/app:v1`` -> ``registry:5000/team/app`` (the ``image`` label)."""
    name = tag.partition("@")[0]
    colon = name.rfind(":")
    return name[:colon] if colon > name.rfind("/") else name


class BuildHistory:
    """Turns ``image tag`` events into builds, reading each new image's history once."""

    def __init__(self, fetch_history: Callable[[str], list[dict]],
                 list_images: Callable[[], list[dict]], max_images: int,
                 clock: Callable[[], float] = time.time) -> None:
        self._fetch = fetch_history
        self._list = list_images
        self._since = int(clock())
        self._lock = threading.Lock()
        self._histories: OrderedDict[str, tuple[str, list[LayerStep]]] = OrderedDict()
        self._known: dict[tuple[str, int], int] = defaultdict(int)  # pair -> images holding it
        self._images = LabelCap(max_images)
        self._builds: dict[str, int] = defaultdict(int)
        self._steps: dict[tuple[str, str], int] = defaultdict(int)
        self._busters: dict[tuple[str, str], int] = defaultdict(int)
        self._primed = False
        # Builds are rare and scrapes frequent: the families are rebuilt only after a build.
        self._version = 0
        self._rendered: tuple[int, list[Metric]] = (-1, [])

    def prime(self) -> None:
        """Read the histories of the images already here: they are the baseline, not builds."""
        for image in self._list():
            tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
            self._remember(str(image["Id"]), repository(tags[0]) if tags else "",
                           layer_steps(self._fetch(str(image["Id"]))))
        self._primed = True

    def on_tag(self, image_id: str, tag: str) -> EngineBuild:
        """Count the build that an ``image tag`` event reports."""
        if not self._primed:
            self.prime()
        name = repository(tag)
        known = self._histories.get(image_id)
        if known is not None:
            self._histories.move_to_end(image_id)
            steps = known[1][self._base_length(known[1], name, image_id):]
            build = EngineBuild(name, hits=len(steps), misses=0, cache_buster=None)
        else:
            history = layer_steps(self._fetch(image_id))
            steps = history[self._base_length(history, name, image_id):]
            build = self._judge(name, steps)
            self._remember(image_id, name, history)
        self.count(build)
        return build

    def _judge(self, name: str, steps: Sequence[LayerStep]) -> EngineBuild:
        reused = [self._known.get(step.key, 0) > 0 or step.created < self._since
                  for step in steps]
        hits = sum(reused)
        buster = None
        if hits and not all(reused):
            buster = steps[reused.index(False)].instruction
        return EngineBuild(name, hits=hits, misses=len(steps) - hits, cache_buster=buster)

    def _base_length(self, steps: Sequence[LayerStep], name: str, image_id: str) -> int:
        """Steps that belong to the base image: the longest proper prefix that is the whole
        history of another local image (not an earlier build of the same repository)."""
        best = 0
        for other_id, (other_name, other) in self._histories.items():
            if other_id == image_id or other_name == name or not other:
                continue
            if best < len(other) < len(steps) and list(steps[:len(other)]) == other:
                best = len(other)
        return best

    def _remember(self, image_id: str, name: str, steps: list[LayerStep]) -> None:
        with self._lock:
            if image_id in self._histories:
                return
            self._histories[image_id] = (name, steps)
            for step in steps:
                self._known[step.key] += 1
            while len(self._histories) > MAX_IMAGES:
                _, (_, dropped) = self._histories.popitem(last=False)
                for step in dropped:
                    self._known[step.key] -= 1
                    if self._known[step.key] <= 0:
                        del self._known[step.key]

    def count(self, build: EngineBuild) -> None:
        """Count one build (BuildKit's own history is counted by ``buildkit``, exactly, with
        ``source="buildkit"``)."""
        image = self._images(build.image)  # made safe, or other past the cap
        with self._lock:
            self._builds[image] += 1
            self._steps[(image, "hit")] += build.hits
            self._steps[(image, "miss")] += build.misses
            if build.cache_buster:
                self._busters[(image, safe_label(normalise_instruction(build.cache_buster)))] += 1
            self._version += 1

    def families(self) -> list[Metric]:
        """The same build families as ingested logs, with ``source="engine"``; callers merge
        them into their own (``Families.extend`` copies), so the cached list is never changed."""
        with self._lock:
            version, rendered = self._rendered
            if version == self._version:
                return rendered
            per_image: dict[tuple[str, str], int] = defaultdict(int)
            steps, lookups = contract.family(contract.DOCKER_BUILD_STEPS), \
                contract.family(contract.CACHE_LOOKUPS)
            builds, busters = contract.family(contract.DOCKER_BUILDS), \
                contract.family(contract.DOCKER_BUILD_CACHE_BUSTERS)
            # Samples built directly: a few per image, re-rendered after every build.
            for (image, result), count in self._steps.items():
                steps.samples.append(Sample(contract.DOCKER_BUILD_STEPS.name, {
                    "image": image, "target": "", "result": result, "source": SOURCE}, count))
                per_image[(image, result)] += count
            for (image, result), count in per_image.items():
                lookups.samples.append(Sample(contract.CACHE_LOOKUPS.name, {
                    "layer": contract.LAYER, "cache": image, "result": result}, count))
            for image, count in self._builds.items():
                builds.samples.append(Sample(contract.DOCKER_BUILDS.name, {
                    "image": image, "target": "", "status": "success", "source": SOURCE}, count))
            for (image, instruction_), count in self._busters.items():
                busters.samples.append(Sample(contract.DOCKER_BUILD_CACHE_BUSTERS.name, {
                    "image": image, "instruction": instruction_, "source": SOURCE}, count))
            rendered = [f for f in (steps, lookups, builds, busters) if f.samples]
            self._rendered = (self._version, rendered)
        return rendered
