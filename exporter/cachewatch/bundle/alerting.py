"""The shape every cachewatch alert shares, core or source: the same labels and the same four
annotations (a test checks every alert has them), so routing and runbooks work alike.

Every alert names the panel that draws the number its expression tests (``PanelLink``); its
``dashboard_url`` opens that panel alone (``viewPanel``) with the alert's identity labels and
cache as the dashboard's variables and the last hours as time range, and the Grafana-managed
copy of the rule carries the same dashboard and panel, so Grafana shows the alert's state on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .panels import panel_id
from .thresholds import Thresholds

# A time range around a fresh alert: Prometheus' annotation templates know no time of their own,
# so the range is relative to the moment the link is opened.
TIME_RANGE = "from=now-3h&to=now"


@dataclass(frozen=True)
class PanelLink:
    """The panel showing an alert's number: dashboard uid and panel title (the panel id derives
    from the title). ``variables`` are (dashboard variable, alert label) set beyond the identity
    labels, which ``identity`` says the alert keeps (``absent()`` keeps none). ``by_layer``
    sends an alert about many layers to each layer's own panel: (layer, link) pairs, this
    link for any other layer."""

    dashboard: str
    panel: str
    variables: tuple[tuple[str, str], ...] = ()
    identity: bool = True
    by_layer: tuple[tuple[str, PanelLink], ...] = ()

    def url(self, t: Thresholds) -> str:
        """This panel's address, in Prometheus' (and Grafana's) annotation template syntax."""
        chosen = [*((label, label) for label in t.identity_labels if self.identity),
                  *self.variables]
        return (f"{t.grafana_url}/d/{self.dashboard}?viewPanel={panel_id(self.panel)}"
                + "".join(f"&var-{var}={{{{ $labels.{label} | urlquery }}}}"
                          for var, label in chosen)
                + f"&{TIME_RANGE}")

    def template(self, t: Thresholds) -> str:
        """The ``dashboard_url`` annotation: the alert's layer's panel where it has one."""
        if not self.by_layer:
            return self.url(t)
        branches = "".join(f'{{{{ {"if" if i == 0 else "else if"} eq $labels.layer "{layer}" }}}}'
                           f"{link.url(t)}" for i, (layer, link) in enumerate(self.by_layer))
        return f"{branches}{{{{ else }}}}{self.url(t)}{{{{ end }}}}"


_PANEL = re.compile(r"/d/([\w-]+)\?viewPanel=(\d+)")


def panels_of(rule: dict[str, Any]) -> list[tuple[str, int]]:
    """Every (dashboard uid, panel id) ``rule``'s ``dashboard_url`` can open; the last is the
    link for any layer (the one Grafana's copy of the rule is attached to)."""
    return [(uid, int(pid)) for uid, pid in _PANEL.findall(rule["annotations"]["dashboard_url"])]


def alert(name: str, expr: str, duration: str, severity: str, summary: str, description: str,
          link: PanelLink, t: Thresholds, layer: str = "") -> dict[str, Any]:
    """A Prometheus alerting rule linking to its runbook section and to the panel ``link``."""
    labels = {"severity": severity}
    if layer:
        labels["layer"] = layer
    return {
        "alert": name,
        "expr": expr,
        "for": duration,
        "labels": labels,
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"{t.runbook_url}#{name.lower()}",
            "dashboard_url": link.template(t),
        },
    }
