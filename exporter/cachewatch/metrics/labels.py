"""The one place where a string from outside is made safe to become a label value or a log field.

Label values arrive from webhooks, pushes, container engines and cache servers. Three things
in them break an exporter that trusts them: a lone UTF-16 surrogate (JSON's ``\\ud800`` escape
decodes to one) cannot be encoded as UTF-8, so the first exposition or store write that meets
it raises; control characters (ESC, NUL, BEL) rewrite terminals and split log lines; and an
unbounded length makes every series and every stored key as large as a client likes.
``safe_text`` replaces surrogates with U+FFFD, writes control characters as visible escapes
(ESC becomes the four characters ``\\x1b``) and bounds the length. It is idempotent, so a value
made safe at a receiver, stored, restored and made safe again by a collector is unchanged.
"""

from __future__ import annotations

import re

MAX_LABEL = 256
"""Longest label value kept, in characters: longer values are cut (repository names, the
longest legitimate value here, are at most 255)."""

REPLACEMENT = "\ufffd"
# Surrogates (never valid alone in UTF-8), C0 and C1 controls, DEL, and the Unicode line and
# paragraph separators (some log viewers break lines on them).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _replace(match: re.Match[str]) -> str:
    char = match.group()
    if "\ud800" <= char <= "\udfff":
        return REPLACEMENT
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(text: str, *, limit: int | None = None, keep: str = "") -> str:
    """``text`` with surrogates replaced, control characters escaped (except those in
    ``keep``, which a caller's own format escapes) and at most ``limit`` characters."""
    if _UNSAFE.search(text) is not None:
        if keep:
            text = "".join(c if c in keep else _UNSAFE.sub(_replace, c) for c in text)
        else:
            text = _UNSAFE.sub(_replace, text)
    return text if limit is None or len(text) <= limit else text[:limit]


def safe_label(value: object, limit: int = MAX_LABEL) -> str:
    """A label value from outside, made safe once: see the module docstring."""
    return safe_text(value if isinstance(value, str) else str(value), limit=limit)


def id_bytes(value: str) -> bytes:
    """An identifier from outside (an event id) as bytes for hashing: every string, lone
    surrogates included, has one, so a de-duplication key can never fail to be made."""
    return value.encode("utf-8", "surrogatepass")
