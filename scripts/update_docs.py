"""Rewrites the docs' generated reference tables (`make docs`): the configuration table of
docs/configuration.md from the settings models, the metric reference of docs/metrics.md from the
metric contract. Each table sits between `<!-- NAME:start -->` and `<!-- NAME:end -->`; the prose
around it is written by hand."""

from pathlib import Path

from cachewatch.config import settings_table
from cachewatch.metrics.contract import markdown_table
from cachewatch.sources import specs

docs = Path(__file__).resolve().parents[1] / "docs"
for page, name, table in (("configuration.md", "settings", settings_table()),
                          ("metrics.md", "metrics", markdown_table(specs()))):
    path = docs / page
    text = path.read_text()
    start, end = f"<!-- {name}:start -->\n", f"<!-- {name}:end -->"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(head + start + table + end + tail)
