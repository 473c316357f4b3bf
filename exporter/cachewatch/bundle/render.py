"""YAML output for every generated YAML file (rules, their tests, Alertmanager, provisioning)."""

from __future__ import annotations

from typing import Any

import yaml


def yaml_text(document: dict[str, Any]) -> str:
    """YAML with a stable layout: regenerating gives byte-identical files."""
    return yaml.safe_dump(document, sort_keys=False, width=100, allow_unicode=True)
