"""Rewrites the README's generated reference tables (`make docs`): the configuration table from
the settings models, the metric reference from the metric contract."""

from pathlib import Path

from cachewatch.config import settings_table
from cachewatch.metrics.contract import markdown_table
from cachewatch.sources import specs

readme = Path(__file__).resolve().parents[1] / "README.md"
text = readme.read_text()
for name, table in (("settings", settings_table()), ("metrics", markdown_table(specs()))):
    start, end = f"<!-- {name}:start -->\n", f"<!-- {name}:end -->"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    text = head + start + table + end + tail
readme.write_text(text)
