"""The shape of the code, checked: no import cycles, no oversized files or functions, and no
source named outside its own package (a new source is one package and one registration line)."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

from support import ROOT

PACKAGE = ROOT / "exporter" / "cachewatch"
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 60
# Files outside a source's package that may name sources: the registration list, and the public
# import path of the in-process instrumentation that applications import
# (``from cachewatch.instrument import ...``), a re-export kept so the layout may change.
NAMING_ALLOWED = frozenset({"sources/__init__.py", "instrument.py"})
# Words of identifiers (``create_app``, ``_registry``) whose Python sense is not the source: the
# ASGI ``app`` (FastAPI's and uvicorn's name for it) and prometheus_client's collector
# ``registry``. Text is checked for them all the same.
OTHER_SENSE_IDENTIFIERS = frozenset({"app", "registry"})
# Text naming a source's word in another sense, each for a reason: Kubernetes' recommended
# label prefix, the web application's logger (its name is in every log line), the state
# backends listed in the state families' help (a Redis server as a store, not the Redis source).
OTHER_SENSE_TEXT = ("app.kubernetes.io", "cachewatch.app", "sqlite, redis or memory")
# The state store's backends: in ``state/`` "redis" is the store, not the Redis source, and so it
# is in ``resp.py``, the Redis wire protocol that the state store speaks (the Redis source too).
STATE_BACKEND = (("state/", "resp.py"), "redis")


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(module: str, path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """Every module of the package ``module`` imports: at module level, under TYPE_CHECKING and
    inside functions alike. ``from p import name`` counts as importing ``p.name`` when that is a
    module, and ``p`` otherwise."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target not in modules:
                continue
            submodules = [f"{target}.{a.name}" for a in node.names
                          if f"{target}.{a.name}" in modules]
            yield from submodules
            if len(submodules) < len(node.names):
                yield target


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph``, as the modules along it, or None."""
    done: set[str] = set()

    def visit(node: str, trail: list[str]) -> list[str] | None:
        if node in trail:
            return [*trail[trail.index(node):], node]
        if node in done:
            return None
        for successor in sorted(graph[node]):
            found = visit(successor, [*trail, node])
            if found:
                return found
        done.add(node)
        return None

    return next((c for c in (visit(n, []) for n in sorted(graph)) if c), None)


def test_the_cycle_finder_finds_a_cycle_and_only_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles_between_modules():
    modules = _modules()
    graph = {name: set(_imports(name, path, modules)) - {name}
             for name, path in modules.items()}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or ())


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def test_no_file_over_600_lines_and_no_function_over_60():
    too_big = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        text = path.read_text()
        if len(text.splitlines()) > MAX_FILE_LINES:
            too_big.append(f"{name}: {len(text.splitlines())} lines")
        too_big += [f"{name}: {node.name}() {node.end_lineno - node.lineno + 1} lines"
                    for node in _functions(ast.parse(text))
                    if (node.end_lineno or node.lineno) - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not too_big, too_big


def _source_words() -> dict[str, frozenset[str]]:
    """Each registered source's package name -> the words that name it: that name and its
    layers' names (``docker`` -> ``docker``, ``docker_build``)."""
    from cachewatch.sources import packages

    return {source.name: frozenset({source.name, *(layer.name for layer in source.layers)})
            for source in packages()}


def _namings(name: str, text: str, words: frozenset[str]) -> Iterator[str]:
    """Where the module ``name`` (path under the package) with source ``text`` names one of
    ``words``.

    Strings, docstrings and comments: every whole word, any case (``Redis``, ``docker_build``;
    ``_`` is a letter, so ``CACHEWATCH_REDIS__TARGET`` names nothing), minus the text of
    ``OTHER_SENSE_TEXT``. Identifiers: each ``_``-separated part, except the identifiers of
    ``OTHER_SENSE_IDENTIFIERS``. Imports: any module under ``cachewatch.sources.<source>``.
    """
    checked = words - {STATE_BACKEND[1]} if name.startswith(STATE_BACKEND[0]) else words
    if not checked:
        return
    pattern = re.compile(r"\b(" + "|".join(sorted(checked)) + r")\b", re.IGNORECASE)
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type in (tokenize.STRING, tokenize.COMMENT):
            said = token.string
            for other in OTHER_SENSE_TEXT:
                said = said.replace(other, "")
            yield from (f"{name}:{token.start[0]}: {m.group(0)!r} in {token.string[:60]!r}"
                        for m in pattern.finditer(said))
        elif token.type == tokenize.NAME:
            parts = {token.string.lower(), *token.string.lower().split("_")}
            if checked.intersection(parts - OTHER_SENSE_IDENTIFIERS):
                yield f"{name}:{token.start[0]}: identifier {token.string}"


def test_no_core_file_names_a_source():
    """A source is one package and one registration line: no file of the exporter outside
    ``sources/<name>/`` names a registered source, by its package's name or a layer's, in text,
    an identifier or an import (a fifth source's name is checked as soon as it is registered).
    The exceptions, each narrow and explained above: ``NAMING_ALLOWED`` files,
    ``OTHER_SENSE_IDENTIFIERS``, ``OTHER_SENSE_TEXT`` and the state store's Redis backend
    (``STATE_BACKEND``)."""
    sources = _source_words()
    modules = _modules()
    found = []
    for module, path in modules.items():
        name = path.relative_to(PACKAGE).as_posix()
        home = name.split("/")[1] if name.startswith("sources/") else None
        if name in NAMING_ALLOWED or home in sources:
            continue
        words = frozenset().union(*sources.values())
        found += _namings(name, path.read_text(), words)
        found += [f"{name}: imports {target}" for target in _imports(module, path, modules)
                  if target.split(".")[:3][-1] in sources
                  and target.startswith("cachewatch.sources.")]
    assert not found, "\n".join(found)


def test_the_naming_check_finds_a_new_sources_name_in_text_identifiers_and_imports():
    words = frozenset({"memcached"})
    code = ('"""Reads Memcached servers."""\n'
            "from .sources.memcached import x  # the memcached one\n"
            "memcached_client = create_app = _registry = 1\n"
            'label = "app.kubernetes.io/part-of"\n')
    found = [line.split(": ")[:2] for line in _namings("core.py", code, words)]
    assert found == [["core.py:1", "'Memcached' in '\"\"\"Reads Memcached servers.\"\"\"'"],
                     ["core.py:2", "identifier memcached"],
                     ["core.py:2", "'memcached' in '# the memcached one'"],
                     ["core.py:3", "identifier memcached_client"]]
    assert not list(_namings("state/x.py", '"""A redis:// store."""', frozenset({"redis"})))
    assert list(_namings("state/x.py", '"""An app record."""', frozenset({"redis", "app"})))
