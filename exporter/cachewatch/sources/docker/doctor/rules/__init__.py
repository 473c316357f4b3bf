"""Doctor's rules: Dockerfile patterns that cost build-cache hits, one module per rule family.

Every rule takes a ``Context`` and returns ``Finding`` objects (both in ``finding.py``, so the
rule modules never import this package). Precision matters more than recall here (a wrong
finding teaches people to ignore the tool), so each rule only fires when the Dockerfile itself
shows the problem, and says nothing when it cannot tell (an ``ARG``-built image name it cannot
resolve, a RUN script it cannot read, a manifest it cannot place). Fixes are unified diffs of
the real file, produced by editing its lines, so a finding's fix can be applied with
``patch -p1``/``git apply`` and rebuilt. The choices a reviewer might question are documented in
the rule's own module.
"""

from __future__ import annotations

from collections.abc import Callable

from ..finding import Context, Finding
from .apt_update import apt_update_separate
from .copy_before_install import copy_before_install
from .dockerignore import dockerignore_leaks, dockerignore_missing
from .package_cache import package_cache_kept
from .pinning import add_url, latest_tag
from .project_install import deps_with_project
from .source_before_deps import source_before_deps
from .volatile_arg import volatile_arg_early

__all__ = ["RULES", "run_all"]


RULES: dict[str, Callable[[Context], list[Finding]]] = {
    "source-before-deps": source_before_deps,
    "deps-with-project": deps_with_project,
    "copy-before-install": copy_before_install,
    "apt-update-separate": apt_update_separate,
    "package-cache-kept": package_cache_kept,
    "add-url": add_url,
    "latest-tag": latest_tag,
    "dockerignore-missing": dockerignore_missing,
    "dockerignore-leaks": dockerignore_leaks,
    "volatile-arg-early": volatile_arg_early,
}


def run_all(ctx: Context) -> list[Finding]:
    """Every rule's findings, ordered by line then rule id."""
    findings = [f for rule in RULES.values() for f in rule(ctx)]
    return sorted(findings, key=lambda f: (f.line, f.rule))
