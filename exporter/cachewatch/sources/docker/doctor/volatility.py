"""Which build arguments and variables change on every build or every commit.

Two rules need the same judgement: ``volatile-arg-early`` reports such a variable in scope
too early, and ``source-before-deps`` must not move one above the installs it would bust.
"""

from __future__ import annotations

import re

__all__ = ["volatility"]


# Whole names only: TINI_SHA (a checksum) or RELEASE_DATE (a pin) must not look volatile.
_DATE_LIKE = re.compile(
    r"(\w+_)?(BUILD_?(DATE|TIME|TIMESTAMP|NUMBER|NUM|ID)|CACHE_?BUST(ER)?|RUN_?(ID|NUMBER)|"
    r"PIPELINE_?ID|JOB_?ID|TIMESTAMP)|DATE|TIME|DATETIME|NOW|BUST|CREATED(_AT)?|IMAGE_CREATED",
    re.I)
_COMMIT_LIKE = re.compile(
    r"(VCS|GIT|SOURCE|SRC|CI|GITHUB|BUILDKITE|CIRCLE|TRAVIS|DRONE|BITBUCKET|APP|BUILD|CODE)_?"
    r"(COMMIT(_?(SHA|HASH|ID|REF))?|(SHORT_?)?SHA|HASH|REF|REV|REVISION|HEAD|DESCRIBE)(_?SHORT)?|"
    r"COMMIT(_?(SHA|HASH|ID|REF))?|(SHORT_?)?SHA|REVISION|(CI_)?COMMIT_SHORT_SHA|"
    r"SOURCE_DATE_EPOCH", re.I)


def volatility(name: str, value: str | None) -> str | None:
    """"date" if the value changes on every build, "commit" if on every commit, else None."""
    if value and re.search(r"\$\(\s*date\b|`\s*date\b", value):
        return "date"
    if value and re.search(r"\$\(\s*git\b|`\s*git\b", value):
        return "commit"
    if _COMMIT_LIKE.fullmatch(name):
        return "commit"
    if _DATE_LIKE.fullmatch(name):
        return "date"
    return None
