"""A CI cache's name: the stable prefix of its key, never the key itself.

A cache key usually ends in a lock file's hash (``node-cache-Linux-x64-npm-f037910a...``,
``v1-deps-qwa_N++0aXea...=``): the full key is one series per commit. The name is the key up
to the first part that looks like a hash, a checksum, a commit or a run number.
"""

from __future__ import annotations

import re

MAX_NAME_CHARS = 128
_PARTS = re.compile(r"[-_|/:.]+|[^-_|/:.]+")
# A hex run of 7+ (a commit, a hash), a base64 checksum (CircleCI's ``{{ checksum }}``), a
# run or build number of 5+ digits, or an Azure fingerprint part.
_HASHY = re.compile(
    r"[0-9a-fA-F]{7,}|[A-Za-z0-9+/]{20,}=*|\d{5,}|[A-Za-z0-9+/]*[+=][A-Za-z0-9+/=]*")
# CircleCI's ``{{ checksum "f" }}``: a SHA-256 in URL-safe base64, 43 characters and ``=``.
_CHECKSUM = re.compile(r"[A-Za-z0-9+/_-]{43}=$")
# GitLab appends the ref's protection and, after a cache clear, a counter: ``main-protected``,
# ``default-1``, ``cd-5-non_protected``.
_GITLAB_TAIL = re.compile(r"(?:-(?:non_)?protected)$")
_COUNTER = re.compile(r"-\d{1,3}$")


def stable_name(key: str, ci: str = "") -> str:
    """``node-cache-Linux-x64-npm-f0379...`` -> ``node-cache-Linux-x64-npm``. A key that is
    all hash names the cache by what it is hashed from: ``files``."""
    key = key.strip().strip("`'\"").rstrip(".")
    if ci == "gitlab":
        key = _COUNTER.sub("", _GITLAB_TAIL.sub("", key))
    key = _CHECKSUM.sub("", key)
    kept: list[str] = []
    for part in _PARTS.findall(key):
        if part[0] not in "-_|/:." and _HASHY.fullmatch(part):
            break
        kept.append(part)
    name = "".join(kept).rstrip("-_|/:.")
    return (name or "files")[:MAX_NAME_CHARS]
