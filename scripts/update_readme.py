"""Rewrites the README's metric reference from the metric contract (`make docs`)."""

from pathlib import Path

from cachewatch.contract import markdown_table

START, END = "<!-- metrics:start -->\n", "<!-- metrics:end -->"

readme = Path(__file__).resolve().parents[1] / "README.md"
text = readme.read_text()
head, rest = text.split(START, 1)
_, tail = rest.split(END, 1)
readme.write_text(head + START + markdown_table() + END + tail)
