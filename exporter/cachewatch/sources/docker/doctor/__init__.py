"""``cachewatch doctor``: find Dockerfile patterns that throw away build-cache hits.

A pure-Python, standard-library-only analysis: :func:`analyze` parses a Dockerfile (BuildKit
syntax: heredocs, ``--mount``, ``# escape=``, multi-stage; ``dockerfile`` and ``shell``), runs
the ``rules`` package (one module per rule family) and returns findings whose ``fix`` is a
unified diff of the real file (``fixes``). The rules share what they know about a build:
``installers`` reads package managers' command lines, ``runs`` a RUN's commands, ``copies``
what a COPY takes, ``stages`` a stage's ancestors, working directory and variables, and
``volatility`` which variables change per build. ``report`` renders findings as
``PATH:LINE: rule: message`` lines or JSON. ``cost`` charges each finding with the cache busts
and rebuild time counted for its lines, read by ``history`` from an exporter or Prometheus
(plain HTTP, no client library); ``command`` is the ``cachewatch doctor`` command behind the
Typer wiring in ``commands.py``.
"""

from __future__ import annotations

from .dockerfile import Dockerfile, Instruction, Stage, parse
from .finding import Finding
from .report import analyze, apply_fix, dockerignore_for, exit_code, to_json, to_text
from .rules import RULES

__all__ = [
    "RULES",
    "Dockerfile",
    "Finding",
    "Instruction",
    "Stage",
    "analyze",
    "apply_fix",
    "dockerignore_for",
    "exit_code",
    "parse",
    "to_json",
    "to_text",
]
