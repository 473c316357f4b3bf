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
# CircleCI's ``{{ checksum "f" }}``: a SHA-256 in URL-safe base64, 43 characters and ``=``,
# anywhere in the key (``yarn-cache-arch1-6_58-D0_AuAk...=-XUzc...=-v4``). Its ``-`` and ``_``
# would otherwise split it into short parts that do not look like a hash.
_CHECKSUM = re.compile(r"(?:^|(?<=[-_|/:.]))[A-Za-z0-9+/_-]{43}=")
# GitLab runners of the last years append the ref's protection, after a cache clear preceded
# by a counter: ``main-protected``, ``cd-5-non_protected``. A key without that suffix (older
# runners) keeps its digits: ``gitlab-fixes-105`` is a branch, not a counter.
_GITLAB_TAIL = re.compile(r"-(?:non_)?protected$")
_COUNTER = re.compile(r"-\d{1,3}$")
_SLUG = re.compile(r"[^a-z0-9]+")


def ref_slug(ref: str) -> str:
    """GitLab's ``CI_COMMIT_REF_SLUG`` of a ref: ``v0.23.0`` -> ``v0-23-0``."""
    return _SLUG.sub("-", ref.lower())[:63].strip("-")


def stable_name(key: str, ci: str = "", ref: str = "") -> str:
    """``node-cache-Linux-x64-npm-f0379...`` -> ``node-cache-Linux-x64-npm``. A key that is
    all hash names the cache by what it is hashed from: ``files``. For GitLab, ``ref`` is the
    job's ref slug when the trace shows it: a key that is the ref keeps its trailing digits
    (``v0-23-0-protected`` on tag v0.23.0 is ``v0-23-0``)."""
    key = key.strip().strip("`'\"").rstrip(".")
    if ci == "gitlab":
        bare = _GITLAB_TAIL.sub("", key)
        key = bare if bare in (key, ref) else _COUNTER.sub("", bare)
    checksum = _CHECKSUM.search(key)
    if checksum is not None:
        key = key[:checksum.start()]
    kept: list[str] = []
    for part in _PARTS.findall(key):
        if part[0] not in "-_|/:." and _HASHY.fullmatch(part):
            break
        kept.append(part)
    name = "".join(kept).rstrip("-_|/:.")
    return (name or "files")[:MAX_NAME_CHARS]
