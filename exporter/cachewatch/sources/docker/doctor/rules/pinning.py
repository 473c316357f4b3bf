"""``add-url`` and ``latest-tag``: inputs that change without the Dockerfile changing.

A downloaded file with no checksum and a base image pulled by ``latest`` (or by no tag) both
bust cached steps silently and make builds unreproducible; neither can be fixed without
knowing the right checksum or version, so these findings carry no diff.
"""

from __future__ import annotations

import re

from ..copies import copy_sources
from ..dockerfile import Dockerfile, Instruction, expand
from ..finding import Context, Finding

__all__ = ["add_url", "latest_tag"]


def _is_url(source: str) -> bool:
    """An http(s) source of ADD, which BuildKit downloads at build time."""
    return bool(re.match(r"^https?://", source, re.I))


def add_url(ctx: Context) -> list[Finding]:
    """``ADD <url>`` without ``--checksum``: fetched on every build, never verified."""
    findings = []
    for ins in ctx.dockerfile.instructions:
        if ins.keyword != "ADD" or ins.has_flag("checksum"):
            continue
        urls = [s for s in copy_sources(ins) if _is_url(s) and not re.search(
            r"#[0-9a-f]{40}$", s)]
        if urls:
            message = (
                f"`ADD {urls[0]}` downloads at build time with no checksum: BuildKit checks the "
                f"URL on every build and the step changes whenever the file behind it does; "
                f"use `ADD --checksum=sha256:...` or download and verify it in a RUN"
            )
            findings.append(Finding("add-url", ins.start_line, message, None, ins.display()))
    return findings


def _image_problem(image: str) -> str | None:
    """Why an image reference is not reproducible ("untagged", "latest") or None."""
    if not image or "@" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "untagged"
    return "latest" if last.rsplit(":", 1)[1] == "latest" else None


def _resolve_image(df: Dockerfile, image: str) -> str | None:
    """The image name with global ARG defaults expanded; None if it cannot be resolved."""
    if "$" not in image:
        return image
    return expand(image, df.global_arg_defaults())


def latest_tag(ctx: Context) -> list[Finding]:
    """Base images (and ``COPY --from`` images) pulled by ``latest`` or with no tag at all."""
    df = ctx.dockerfile
    findings = []
    known: set[str] = set()
    for ins in df.instructions:
        if ins.keyword == "FROM":
            stage = next(s for s in df.stages if s.start is ins)
            image = _resolve_image(df, stage.image)
            if image is not None and image.lower() not in known | {"scratch"}:
                problem = _image_problem(image)
                if problem:
                    findings.append(_tag_finding(ins, image, problem))
            if stage.name:
                known.add(stage.name)
            continue
        reference = ins.flag("from") if ins.keyword in ("COPY", "ADD") else None
        if reference and not reference.isdigit() and "$" not in reference and \
                reference.lower() not in {s.name for s in df.stages if s.name} | {"scratch"}:
            problem = _image_problem(reference)
            if problem:
                findings.append(_tag_finding(ins, reference, problem))
    return findings


def _tag_finding(ins: Instruction, image: str, problem: str) -> Finding:
    """A latest-tag finding for one instruction."""
    detail = "has no tag, so it means `latest`" if problem == "untagged" else "uses `latest`"
    message = (
        f"`{image}` {detail}: the image behind it changes without the Dockerfile changing, "
        f"which silently busts every cached step after it and makes builds unreproducible; "
        f"pin a version tag (and ideally a digest)"
    )
    return Finding("latest-tag", ins.start_line, message, None, ins.display())
