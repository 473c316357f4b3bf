"""A sample's name and labels as the exposition writes them, made once per series.

A scrape writes the same few hundred series every time (one child of a latency histogram is
26 of them); sorting, escaping and joining their labels on every scrape was most of the
encoder's cost. ``Families`` gives each sample a ``SeriesLabels``: the
label dict every reader of a sample expects, which also carries the text the OpenMetrics
encoder writes before the value (``name{a="x",b="y"} ``), rendered when the series was first
seen. The dicts are shared between scrapes: readers never change a sample's labels.
"""

from __future__ import annotations

# Bounded: label values come from outside; past this many series, start again.
LIMIT = 50_000

Items = tuple[tuple[str, str], ...]


def escape(text: str) -> str:
    """A label value or help text as OpenMetrics and the text format escape it."""
    if "\\" in text or "\n" in text or '"' in text:
        return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')
    return text


def render(name: str, labels: dict[str, str]) -> str:
    """``name{a="x",b="y"} ``: labels sorted by name, as prometheus_client writes them
    (``name `` without labels)."""
    if not labels:
        return name + " "
    pairs = ",".join([k + '="' + escape(v) + '"' for k, v in sorted(labels.items())])
    return f"{name}{{{pairs}}} "


class SeriesLabels(dict[str, str]):
    """A sample's labels, with the rendered series of the sample ``name`` they were made for."""

    __slots__ = ("name", "text")

    def __init__(self, name: str, items: Items) -> None:
        super().__init__((key, str(value)) for key, value in items)
        self.name = name
        self.text = render(name, self)


Child = tuple[list[SeriesLabels], SeriesLabels, SeriesLabels, str]
# Read directly by ``Families.add``, the hot path (a function call per sample adds up).
SERIES: dict[tuple[str, Items], SeriesLabels] = {}
_CHILDREN: dict[tuple[str, Items, tuple[str, ...]], Child] = {}


def series(name: str, items: Items) -> SeriesLabels:
    """The labels of sample ``name`` with label ``items`` (values made strings)."""
    labels = SERIES.get((name, items))
    if labels is None:
        labels = SeriesLabels(name, items)
        if len(SERIES) >= LIMIT:
            SERIES.clear()
        SERIES[(name, items)] = labels
    return labels


def child(sample: str, name: str, items: Items, label: str, values: tuple[str, ...]) -> Child:
    """The labels of one histogram or summary child: the ``sample`` series, one per value of
    ``label`` (a histogram's ``le``, a summary's ``quantile``), then ``_count``'s and
    ``_sum``'s; and the child's lines as one ``%`` template, a ``%s`` where each value goes."""
    key = (sample, items, values)
    found = _CHILDREN.get(key)
    if found is None:
        points = [SeriesLabels(sample, (*items, (label, value))) for value in values]
        count, total = SeriesLabels(name + "_count", items), SeriesLabels(name + "_sum", items)
        template = "".join(labels.text.replace("%", "%%") + "%s\n"
                           for labels in (*points, count, total))
        found = (points, count, total, template)
        if len(_CHILDREN) >= LIMIT // 32:
            _CHILDREN.clear()
        _CHILDREN[key] = found
    return found
