"""The application caches' part of the status page: multi-level chains and expired instances.

A two-level cache (L1 in-process, L2 Redis) is judged by its effective hit rate, the lookups
that never reached the source: (L1 hits + L2 hits on L1 misses) / L1 lookups, the figure of the
two-level example (docs, Application caches) and the dashboard's "Two-level effective hit rate".
It is shown next to each level's own rate, over the counts since the exporter started (as the
example computes it). An instance that stopped pushing and expired says so, rather than
vanishing from the page.
"""

from __future__ import annotations

import html
import time

from ...status.context import PageContext, percent
from . import contract


def _rate(page: PageContext, layer: str, cache: str) -> float | None:
    """A level's own hit ratio over the counts now."""
    counters = page.snapshot.counters
    hits = counters.get(("lookups", layer, cache, "hit"), 0.0)
    lookups = hits + counters.get(("lookups", layer, cache, "miss"), 0.0)
    return hits / lookups if lookups > 0 else None


def chains(page: PageContext) -> list[tuple[str, str, str, float | None]]:
    """(L1, L2, L2's layer, effective hit ratio) of every chain the pushes declared."""
    effective = {labels["cache"]: value for labels, value in
                 page.samples(contract.CACHE_EFFECTIVE_HITS.family_name)
                 if labels.get("layer") == contract.LAYER}
    out = []
    for labels, _ in page.samples(contract.APP_CACHE_PARENT.family_name):
        cache = labels["cache"]
        counters = page.snapshot.counters
        lookups = sum(counters.get(("lookups", contract.LAYER, cache, r), 0.0)
                      for r in ("hit", "miss"))
        ratio = effective[cache] / lookups if cache in effective and lookups > 0 else None
        out.append((cache, labels["parent"], labels["parent_layer"], ratio))
    return sorted(out)


def _level_rate(page: PageContext, layer: str, cache: str) -> float | None:
    """The second level's hit ratio: from its declared layer (the Redis cachewatch reads),
    else as the application counted it itself (pushed as an app cache of that name)."""
    found = _rate(page, layer, cache)
    return found if found is not None else _rate(page, contract.LAYER, cache)


def _chains_html(page: PageContext) -> str:
    rows = "".join(
        f'<tr data-chain="{html.escape(l1)}"><td>{html.escape(l1)} '
        f"({percent(_rate(page, contract.LAYER, l1))}) &rarr; {html.escape(l2)} "
        f"({percent(_level_rate(page, layer, l2))}) &rarr; source</td>"
        f'<td class="num effective">{percent(ratio)}</td></tr>'
        for l1, l2, layer, ratio in chains(page))
    if not rows:
        return ""
    return ('<section data-section="chains"><h2>Multi-level caches</h2><div class="wide">'
            "<table><thead><tr><th>chain (each level's hit rate)</th><th>effective hit rate"
            "</th></tr></thead><tbody>" + rows + "</tbody></table></div><p class=\"note\">"
            "Effective: lookups served by any level, over the first level's lookups, since "
            "the exporter started.</p></section>")


def _expired_html(page: PageContext) -> str:
    expired = getattr(page.sources.get("app"), "expired", {})
    if not expired:
        return ""
    now = time.time()
    items = "".join(f'<li data-instance="{html.escape(name)}"><b>{html.escape(name)}</b> '
                    f"expired {max(0.0, now - when):.0f} s ago: no push within "
                    "<code>app.instance_ttl</code>; its counts stay, its sizes are gone</li>"
                    for name, when in sorted(expired.items(), key=lambda item: -item[1]))
    return f'<div class="expired"><p class="note">Instances that stopped pushing:</p>' \
           f"<ul>{items}</ul></div>"


def section(page: PageContext) -> str:
    """Chains with their effective rate, then the instances that expired."""
    return _chains_html(page) + _expired_html(page)
