"""Every example runs after the install its docs line asks for: what it imports comes with
cachewatch or with the ``examples`` extra, never only with the test extra."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions

import pytest

from support import ROOT

EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_name(r) for r in [*project["dependencies"],
                               *project["optional-dependencies"]["examples"]]}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_what_an_example_imports_is_installed_by_the_examples_extra(example):
    tree = ast.parse(example.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    siblings = {path.stem for path in EXAMPLES}  # an example may reuse another
    third_party = imported - set(sys.stdlib_module_names) - {"cachewatch"} - siblings
    providers = packages_distributions()
    declared = _declared()
    for module in sorted(third_party):
        distributions = {_name(d) for d in providers.get(module, [module])}
        assert distributions & declared, (
            f"{example.name} imports {module}, which neither cachewatch's dependencies nor the "
            "examples extra install")


def test_the_docs_say_how_to_install_and_run_each_example():
    pages = [page.read_text() for page in sorted((ROOT / "docs").rglob("*.md"))]
    for example in EXAMPLES:
        run = f"python examples/{example.name}"
        showing = [page for page in pages if run in page]
        assert showing, f"no docs page says how to run {example.name}"
        for page in showing:  # wherever it is shown, with the install it needs
            assert "pip install '.[examples]'" in page, example.name
        assert "pip install '.[examples]'" in example.read_text(), example.name
