"""The documentation: the site builds with ``mkdocs build --strict`` (a broken link, a missing
anchor or a page left out of the nav fails it), reads with nothing fetched from the network,
gives every generated alert a runbook section at the anchor its ``runbook_url`` names, and
the README stays a short page that points into it."""

from __future__ import annotations

import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from cachewatch.bundle.rules import alert_rules, recording_rules
from cachewatch.bundle.thresholds import Thresholds
from cachewatch.defaults import DOCS_URL
from cachewatch.sources import layers, packages, specs

from support import ROOT, require, settings

DOCS = ROOT / "docs"
RUNBOOK_PARTS = ("**What it means.**", "**Confirm.**", "**Likely causes.**", "**What to do.**")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built as `make docs` builds it, into a directory of the test's own."""
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    site_dir = tmp_path_factory.mktemp("site")
    config = load_config(str(ROOT / "mkdocs.yml"), strict=True, site_dir=str(site_dir))
    build(config)  # strict: raises on the first build with any warning
    return site_dir


class _Refs(HTMLParser):
    """What a page loads (scripts, styles, icons, images, frames) and the ids it defines."""

    LOADS: ClassVar = {("script", "src"), ("link", "href"), ("img", "src"), ("iframe", "src"),
             ("source", "src"), ("audio", "src"), ("video", "src")}

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"])
        rel = values.get("rel") or ""
        for name, value in attrs:
            navigation = tag == "link" and rel in ("next", "prev", "canonical")
            if (tag, name) in self.LOADS and value and not navigation:
                self.loads.append(value)


def _parse(page: Path) -> _Refs:
    refs = _Refs()
    refs.feed(page.read_text())
    return refs


def _runbooks() -> dict[str, str]:
    """Each runbook section of docs/alerts.md (``### Name`` under ``## Runbooks``), by name."""
    text = (DOCS / "alerts.md").read_text().split("\n## Runbooks\n", 1)[1]
    parts = re.split(r"^### (\S+)\n", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_the_site_builds_strict_with_every_page(site):
    pages = {p.relative_to(DOCS).with_suffix(".html") for p in DOCS.rglob("*.md")}
    assert len(pages) >= 18
    for page in pages:
        assert (site / page).is_file(), page


def test_the_built_site_loads_nothing_from_the_network(site):
    html = sorted(site.rglob("*.html"))
    loads = {ref for page in html for ref in _parse(page).loads}
    assert any(ref.endswith(".js") for ref in loads)  # the theme's own bundle was seen
    remote = sorted(ref for ref in loads if re.match(r"(https?:)?//", ref))
    assert remote == [], "a page loads an asset from the network"
    styles = [css.read_text() for css in site.rglob("*.css")]
    assert styles
    for css in styles:
        assert not re.search(r"url\(\s*['\"]?(https?:)?//", css)
        assert not re.search(r"@import\s+['\"]?(url\()?\s*['\"]?(https?:)?//", css)


def test_every_alert_links_to_its_own_runbook_section(site):
    thresholds = Thresholds()
    assert thresholds.runbook_url.endswith("/docs/alerts.md")
    anchors = _parse(site / "alerts.html").ids
    sections = _runbooks()
    rules = alert_rules(thresholds)
    assert len(rules) >= 14
    for rule in rules:
        name = rule["alert"]
        assert rule["annotations"]["runbook_url"] == f"{thresholds.runbook_url}#{name.lower()}"
        assert name.lower() in anchors, f"{name}: no anchor #{name.lower()} in the built page"
        assert name in sections, f"{name} has no runbook section"
        for part in RUNBOOK_PARTS:
            assert part in sections[name], f"{name}'s runbook says nothing under {part}"
        assert "```promql\n" in sections[name], f"{name}'s runbook has no query to confirm it"
    assert set(sections) == {rule["alert"] for rule in rules}, "a runbook for no alert"


def _queries() -> list[tuple[str, str]]:
    return [(name, query) for name, section in _runbooks().items()
            for query in re.findall(r"```promql\n(.*?)```", section, re.S)]


def test_runbook_queries_read_only_series_cachewatch_makes():
    """A renamed family or recording rule would leave a runbook query that finds nothing."""
    known = {"up"} | {rule["record"] for rule in recording_rules(Thresholds())}
    for spec in specs():
        known |= {spec.name, *(spec.name + s for s in ("_bucket", "_count", "_sum"))}
    functions = {"sum", "by", "rate", "increase", "max", "min", "topk", "absent", "time",
                 "and", "on", "or", "histogram_quantile", "label_replace"}
    queries = _queries()
    assert len(queries) >= 20
    for name, query in queries:
        # label matchers, ranges and strings hold no series names; labels have no `_` here
        bare = re.sub(r'"[^"]*"|\{[^}]*\}|\[[^\]]*\]', "", query)
        words = set(re.findall(r"[a-z_][a-z0-9_:]*", bare)) - functions
        series = {word for word in words if "_" in word or ":" in word or word == "up"}
        assert series, f"{name}: a query with no series"
        assert series <= known, f"{name}: {sorted(series - known)} is no series cachewatch makes"


@pytest.mark.e2e  # promtool, a subprocess
def test_runbook_queries_are_valid_promql(tmp_path):
    promtool = require("promtool", "prometheus")
    rules = [{"record": f"runbook:query_{i}", "expr": query}
             for i, (_, query) in enumerate(_queries())]
    path = tmp_path / "runbooks.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "runbooks", "rules": rules}]}))
    checked = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                             text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_readme_is_short_and_its_links_reach_the_docs(site):
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    links = re.findall(r"\]\((?!https?://)([^)#]+)(?:#([^)]*))?\)", readme)
    assert sum(target.startswith("docs/") for target, _ in links) >= 10
    for target, anchor in links:
        assert (ROOT / target).exists(), target
        if anchor and target.startswith("docs/"):
            page = site / Path(target).relative_to("docs").with_suffix(".html")
            assert anchor in _parse(page).ids, f"{target}#{anchor}"
    for way in ("make run", "make test", "/api/v1/caches", "/webhooks/registry",
                "cachewatch ingest-build", "cachewatch ingest-job", "--buildkit-target",
                "--redis-target", "site/index.html"):
        assert way in readme, way


@pytest.mark.parametrize("page", ["README.md", "docs/index.md"])
def test_the_layer_table_lists_every_layer_the_sources_feed(page):
    table = (ROOT / page).read_text().split("\n| layer |", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \|", table, re.M)
    assert rows == [layer.name for layer in layers()], f"{page}'s layer table is stale"


def test_every_source_has_the_docs_page_the_status_page_links():
    for source in packages():
        assert source.docs, source.name
        assert (ROOT / "docs" / source.docs).is_file(), source.docs
    assert Thresholds().runbook_url == DOCS_URL + "alerts.md"  # one base for both


def test_the_metric_page_names_every_layer():
    text = (DOCS / "metrics.md").read_text().split("<!-- metrics:start -->")[0]
    for layer in layers():
        assert f"`{layer.name}`" in text, layer.name


def test_the_dashboards_page_lists_every_dashboard():
    text = (DOCS / "dashboards.md").read_text()
    listed = dict(re.findall(r"^\| `(\w+\.json)` \| `([\w-]+)` \|", text, re.M))
    files = {path.name: json.loads(path.read_text())["uid"]
             for path in (ROOT / "dashboards").glob("*.json")}
    assert listed == files


def test_make_docs_builds_the_site_into_the_ignored_site_folder():
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ndocs:", 1)[1].split("\n\n", 1)[0]
    assert "scripts/update_docs.py" in recipe
    assert "mkdocs build --strict" in recipe
    assert yaml.safe_load((ROOT / "mkdocs.yml").read_text())["site_dir"] == "site"
    assert "site/" in (ROOT / ".gitignore").read_text().splitlines()


@pytest.mark.e2e  # runs the README's shell block (bash, curl) against a real exporter
def test_the_readme_push_example_is_counted(exporter_factory):
    import httpx

    require("curl", "curl")
    readme = (ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"```sh\n(.*?)```", readme, re.S) if "/api/v1/caches" in b)
    exporter = exporter_factory(settings([], **{"redis.enabled": False}))
    script = block.replace("http://127.0.0.1:10150", exporter.url)
    run = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30,
                         check=True)
    assert json.loads(run.stdout) == {"accepted": 1, "instance": "checkout-1"}
    metrics = httpx.get(exporter.url + "/metrics").text
    for result, count in (("hit", 900), ("miss", 100)):
        assert (f'cachewatch_cache_lookups_total{{cache="products",layer="app",'
                f'result="{result}"}} {count}.0') in metrics.splitlines()
