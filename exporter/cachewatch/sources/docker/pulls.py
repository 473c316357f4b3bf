"""Pull-side layer reuse, from the engine alone: how much of each pulled image the node had.

The engine emits an ``image pull`` event once a pull has finished (on 20.10 also for an image
that was already present: a second ``docker pull`` of the same tag emits one too). Its ``id`` is
the reference pulled (``host:5000/team/app:v1``); inspecting it gives the image's layers
(``RootFS.Layers``, diff ids) and its history the uncompressed size of each (``Size``, the
bytes the layer holds unpacked, as ``docker history`` shows them; the engine keeps no
compressed sizes of pulled layers).

Each layer is ``reused`` if the node held it just before the pull, else ``fetched``. What the
node holds is an inventory (image id -> diff ids, and how many images hold each diff id) read
once when the watcher connects and kept current from image events: a pull, tag (a build), load
or import adds the image, a delete removes it, a prune re-reads the image list. Nothing is read
on a scrape. Events come in order on one thread, so two pulls at once are judged one after the
other: a base layer both need counts as fetched once (the engine downloads it once) and reused
once.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ...metrics.cardinality import LabelCap
from ...metrics.contract import Families
from . import contract
from .history import instruction, repository

LAYER = "image_pull"
ADDS = frozenset({"pull", "tag", "load", "import"})


@dataclass(frozen=True)
class Pull:
    """One pull judged against the inventory: layers and bytes reused and fetched."""

    image: str
    reused: int
    fetched: int
    reused_bytes: float
    fetched_bytes: float


def layer_sizes(history: Sequence[dict[str, Any]], layers: int) -> list[float]:
    """The size of each of ``layers`` layers, oldest first, from a ``/images/{id}/history``
    answer (newest entry first).

    History entries are steps: some made a layer, some only metadata (``ENV``), and the API
    does not say which. Entries with bytes made one; a step that made an empty layer (a
    ``RUN mkdir``) has 0 bytes like metadata, so those are placed on layer-making instructions
    while layers are still missing, else as the oldest layers. Bytes are never lost: at worst a
    zero-byte layer is placed at the wrong step, which moves no bytes between reused and
    fetched unless a layer's place in the image is mistaken.
    """
    entries = list(reversed(history))
    positive = sum(1 for entry in entries if float(entry.get("Size") or 0) > 0)
    empty = max(0, layers - positive)
    sizes: list[float] = []
    for entry in entries:
        size = float(entry.get("Size") or 0)
        if size > 0:
            sizes.append(size)
        elif empty and instruction(str(entry.get("CreatedBy") or "")) is not None:
            sizes.append(0.0)
            empty -= 1
    if len(sizes) < layers:
        sizes[:0] = [0.0] * (layers - len(sizes))
    return sizes[-layers:] if layers else []


class PullTracker:
    """The node's layer inventory and the pulls judged against it, fed by the event watcher."""

    def __init__(self, inspect: Callable[[str], dict[str, Any]],
                 history: Callable[[str], list[dict[str, Any]]],
                 list_ids: Callable[[], list[str]], host: str, max_images: int) -> None:
        self._inspect = inspect
        self._history = history
        self._list_ids = list_ids
        self._host = host
        self._images: dict[str, tuple[str, ...]] = {}  # image id -> diff ids
        self._holders: dict[str, int] = defaultdict(int)  # diff id -> images holding it
        self._names = LabelCap(max_images)
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])

    def sync(self) -> None:
        """Re-read the image list: on connecting (events may have been missed) and after a
        prune. Images already known are not inspected again."""
        present = set(self._list_ids())
        for image_id in [i for i in self._images if i not in present]:
            self._forget(image_id)
        for image_id in present - self._images.keys():
            try:
                image = self._inspect(image_id)
            except Exception:  # deleted since the list was read: its delete event follows
                continue
            self._add(image)

    def on_event(self, event: dict[str, Any]) -> Pull | None:
        """Keep the inventory current; judge a pull. Returns the pull, if this was one."""
        action = str(event.get("Action") or "")
        ref = str(event.get("id") or (event.get("Actor") or {}).get("ID") or "")
        if action == "delete":
            self._forget(ref)
        elif action == "prune":
            self.sync()
        elif action in ADDS and ref:
            image = self._inspect(ref)
            pull = self._judge(ref, image) if action == "pull" else None
            self._add(image)
            return pull
        return None

    def _judge(self, ref: str, image: dict[str, Any]) -> Pull:
        layers = _diff_ids(image)
        sizes = layer_sizes(self._history(str(image["Id"])), len(layers))
        had = [self._holders.get(layer, 0) > 0 for layer in layers]
        pull = Pull(repository(ref),
                    reused=sum(had), fetched=len(had) - sum(had),
                    reused_bytes=sum(s for s, h in zip(sizes, had, strict=True) if h),
                    fetched_bytes=sum(s for s, h in zip(sizes, had, strict=True) if not h))
        self.count(pull)
        return pull

    def count(self, pull: Pull) -> None:
        """Add one pull's layers and bytes to the counters."""
        name = self._names(pull.image)
        with self._lock:
            for result, layers, size in (("reused", pull.reused, pull.reused_bytes),
                                         ("fetched", pull.fetched, pull.fetched_bytes)):
                counts = self._counts[(name, result)]
                counts[0] += layers
                counts[1] += size

    def _add(self, image: dict[str, Any]) -> None:
        image_id = str(image["Id"])
        if image_id in self._images:
            return
        layers = self._images[image_id] = tuple(dict.fromkeys(_diff_ids(image)))
        for layer in layers:
            self._holders[layer] += 1

    def _forget(self, image_id: str) -> None:
        for layer in self._images.pop(image_id, ()):
            self._holders[layer] -= 1
            if self._holders[layer] <= 0:
                del self._holders[layer]

    def families(self) -> Families:
        """Layers and bytes per image and result, and the lookups of the ``image_pull`` layer
        (a reused layer is a hit)."""
        out = Families()
        with self._lock:
            counts = sorted((key, list(value)) for key, value in self._counts.items())
        for (image, result), (layers, size) in counts:
            labels = {"host": self._host, "image": image, "result": result}
            out.add(contract.DOCKER_PULL_LAYERS, labels, layers)
            out.add(contract.DOCKER_PULL_LAYER_BYTES, labels, size)
            out.add(contract.CACHE_LOOKUPS, {
                "layer": LAYER, "cache": image,
                "result": "hit" if result == "reused" else "miss"}, layers)
        return out


def _diff_ids(image: dict[str, Any]) -> list[str]:
    return [str(layer) for layer in (image.get("RootFS") or {}).get("Layers") or []]
