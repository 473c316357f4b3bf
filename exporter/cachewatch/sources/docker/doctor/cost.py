"""What a finding costs: the cache busts and rebuild time that build history puts on its lines.

cachewatch counts, per image, the instruction that first missed the cache in each build that
had a usable cache (``cachewatch_docker_build_cache_busters_total``) and, for ingested logs, the
seconds those builds then spent re-running steps (``..._cache_buster_seconds_total``). A
finding's cost is what those counters hold for the instructions the finding makes miss, which
are not always its own line:

* ``source-before-deps`` is reported on the install, but the step that misses is the source
  copy above it (``COPY . .``): each of its busts re-ran the install for nothing;
* ``latest-tag`` is reported on ``FROM``, which is no cache lookup: a moved base image shows
  up as a bust of the stage's first step (unless that step copies the context, whose busts
  are mostly source changes: then its cost is unknown);
* ``apt-update-separate`` is reported on the update, but what misses is the install below it
  (a changed package list), which then runs against the stale cached index;
* ``volatile-arg-early`` is reported on the ``ARG``: a changed value misses at the first RUN.

Metrics carry an instruction's text, not its line, so lines are matched by text. Both sides are
reduced to one key: the exporter's own normalisation (comments, hashes, runs of whitespace),
leading flags other than ``--from`` dropped, the exec form's JSON and the history's
``/bin/sh -c`` prefix spelled as the shell form, and the legacy engine's ``COPY dir:<hash> in
/app`` matched on its destination. BuildKit prints ``RUN`` with variables expanded, so each
instruction is tried as written and expanded. A label cut at 100 characters matches an
instruction it is the beginning of.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ..buildlog import normalise_instruction
from .copies import broad_copy
from .dockerfile import Dockerfile, Instruction, expand
from .finding import Finding
from .rules.apt_update import apt_steps
from .rules.project_install import busting_copies
from .runs import run_info
from .stages import stage_state
from .wording import count, share

__all__ = ["Buster", "Cost", "History", "cost_of", "describe", "duration", "matches",
           "rank", "triggers"]

LABEL_LIMIT = 100  # normalise_instruction's default: longer labels end with "..."
_STEPS = ("RUN", "COPY", "ADD")  # instructions whose cache can miss and re-run
_SHELL_PREFIX = re.compile(r"^(?:\|\d+ (?:\S+=\S* )*)?(?:/usr)?(?:/bin/)?(?:ba|da|a|z|k)?sh -c ")
_LEGACY_COPY = re.compile(r"^(dir|file|multi):\S+ in (.+)$")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
# What fixing a rule would have spared, when it spares the busts themselves; the other rules
# (apt lists, package caches) cost image size or freshness, so only their busts are shown.
_SAVINGS = {
    "source-before-deps": "moving the dependency install above {trigger}",
    "volatile-arg-early": "declaring the argument where it is needed",
    "latest-tag": "pinning the image",
    "add-url": "pinning the download",
    "copy-before-install": "copying it after the install",
    "deps-with-project": "installing the dependencies alone first",
}


@dataclass(frozen=True)
class Buster:
    """One instruction label of one image: builds it busted, and seconds re-run after it."""

    instruction: str
    busts: float
    seconds: float | None


@dataclass(frozen=True)
class History:
    """An image's cache busters over a window, as the exporter or Prometheus counted them.

    ``window`` reads in a sentence (``in the last 7d``); ``timed`` is False when the counts
    come from the engine's history, which has no step durations; ``images`` are the images
    the history knows, for telling the user when ``image`` is not one of them.
    """

    image: str
    builds: float
    busters: tuple[Buster, ...]
    window: str
    timed: bool = True
    images: tuple[str, ...] = ()


@dataclass(frozen=True)
class Cost:
    """What one finding's busting step cost: busts, seconds lost after it, matched labels."""

    trigger: str
    trigger_line: int
    busts: int
    seconds: float | None
    instructions: tuple[str, ...]


@dataclass(frozen=True)
class _Key:
    """An instruction reduced for matching; ``legacy`` is the legacy engine's copy kind."""

    keyword: str
    body: str
    truncated: bool = False
    legacy: str | None = None


def _key(text: str, *, label: bool = False) -> _Key:
    """The matching key of an exported label (``label``) or of an instruction's text."""
    truncated = label and len(text) == LABEL_LIMIT and text.endswith("...")
    text = text[:-3] if truncated else normalise_instruction(text, limit=1 << 20)
    keyword, _, rest = text.partition(" ")
    keyword = keyword.upper()
    words = rest.split(" ")
    while words and words[0].startswith("--"):
        flag = words.pop(0)
        if flag.startswith("--from="):
            keyword += " " + flag.lower()
    body = " ".join(words)
    if keyword.startswith(("COPY", "ADD")):
        legacy = _LEGACY_COPY.match(body)
        if legacy:
            return _Key(keyword, legacy.group(2).strip(), truncated, legacy.group(1))
    if body.startswith("["):
        body = _exec_form(body)
    body = _SHELL_PREFIX.sub("", body)
    return _Key(keyword, body.strip(), truncated)


def _exec_form(body: str) -> str:
    """``["sh","-c","x"]`` as ``sh -c x``; a JSON array cut short keeps its complete words."""
    try:
        words = json.loads(body)
    except ValueError:
        words = [json.loads(f'"{word}"') for word in _QUOTED.findall(body)]
    if not isinstance(words, list):
        return body
    return " ".join(str(word) for word in words)


def matches(label: str, instruction_text: str) -> bool:
    """Whether an exported cache-buster label names this instruction (``KEYWORD rest``)."""
    return _same(_key(label, label=True), _key(instruction_text))


def _same(label: _Key, step: _Key) -> bool:
    if label.keyword != step.keyword:
        return False
    if label.legacy is not None:
        words = step.body.split(" ")
        sources = len(words) - 1
        return words[-1] == label.body and (sources >= 1 if label.legacy == "multi"
                                            else sources == 1)
    if label.truncated:
        return len(label.body) >= 8 and step.body.startswith(label.body)
    return label.body == step.body


def triggers(df: Dockerfile, finding: Finding) -> list[Instruction]:
    """The steps whose cache misses this finding causes (see the module docstring)."""
    ins = next((i for i in df.instructions if i.start_line == finding.line), None)
    if ins is None or not 0 <= ins.stage < len(df.stages):
        return []
    stage = df.stages[ins.stage]
    if finding.rule == "source-before-deps":
        return [i for i in stage.instructions
                if i.start_line <= ins.start_line and broad_copy(i)][:1]
    if finding.rule == "latest-tag" and ins.keyword == "FROM":
        first = [i for i in stage.instructions if i.keyword in (*_STEPS, "WORKDIR")][:1]
        # A copy from the context busts on source changes too: nothing tells them apart.
        return [] if not first or first[0].keyword in ("COPY", "ADD") else first
    if finding.rule == "apt-update-separate":  # the install is what misses, on a stale index
        installs = [i for i in stage.instructions if i.start_line > ins.start_line
                    and i.keyword == "RUN" and "os-install" in apt_steps(run_info(i))]
        return [ins, *installs[:1]]
    if finding.rule == "deps-with-project":  # the copies in front of it are what miss
        return busting_copies(df, ins)
    if finding.rule == "volatile-arg-early":
        return [i for i in stage.instructions
                if i.start_line > ins.start_line and i.keyword == "RUN"][:1]
    return [ins] if ins.keyword in _STEPS else []


def _texts(df: Dockerfile, ins: Instruction) -> list[str]:
    """The instruction as written and, when it uses variables, as BuildKit prints it."""
    text = f"{ins.keyword} {ins.rest}"
    texts = [text]
    if "$" in ins.rest and 0 <= ins.stage < len(df.stages):
        stage = df.stages[ins.stage]
        env = stage_state(df, stage).env_before[stage.instructions.index(ins)]
        expanded = expand(ins.rest, env)
        if expanded is not None and expanded != ins.rest:
            texts.append(f"{ins.keyword} {expanded}")
    return texts


def cost_of(df: Dockerfile, finding: Finding, history: History) -> Cost | None:
    """The finding's cost in ``history``; None when it has no step that can miss the cache."""
    found = triggers(df, finding)
    if not found:
        return None
    matched: list[Buster] = []
    shown = found[0]
    for ins in found:
        keys = [_key(text) for text in _texts(df, ins)]
        mine = [b for b in history.busters if b not in matched
                and any(_same(_key(b.instruction, label=True), key) for key in keys)]
        if mine and not matched:
            shown = ins  # the sentence names the step that did bust
        matched += mine
    seconds = sum(b.seconds or 0.0 for b in matched) if history.timed else None
    return Cost(shown.display(), shown.start_line, round(sum(b.busts for b in matched)),
                seconds, tuple(b.instruction for b in matched))


def rank(findings: list[Finding], df: Dockerfile,
         history: History) -> list[tuple[Finding, Cost | None]]:
    """Findings with their costs, the costliest first (time lost, then busts, then line)."""
    costed = [(finding, cost_of(df, finding, history)) for finding in findings]
    return sorted(costed, key=lambda pair: (
        -(pair[1].seconds or 0.0) if pair[1] else 0.0, -pair[1].busts if pair[1] else 0,
        pair[0].line))


def duration(seconds: float) -> str:
    """``38 s``, ``41 min``, ``2.5 h``: how long, as a person says it."""
    if seconds < 59.5:
        return f"{seconds:.0f} s"
    if seconds < 3600 - 30:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(finding: Finding, cost: Cost, history: History) -> str:
    """One sentence: how often the finding's step busted the cache, and what that cost."""
    where = f"`{_short(cost.trigger)}` (line {cost.trigger_line})"
    total = round(history.builds)
    if cost.busts == 0:
        none = (f"the only build of {history.image} {history.window} was not" if total == 1 else
                f"none of the {count(total, 'build')} of {history.image} {history.window} was")
        return f"cost: {none} busted at {where}"
    busted = f"busted the cache in {share(cost.busts, total, 'build')} of {history.image}"
    if cost.seconds is None:
        return (f"cost: {where} {busted} {history.window} (the engine's history has no step "
                "times)")
    saving = _SAVINGS.get(finding.rule)
    if saving and cost.seconds > 0:
        return (f"cost: {saving.format(trigger=where)} would have saved up to "
                f"{duration(cost.seconds)} over {count(cost.busts, 'build')} {history.window} "
                f"({'it' if '{trigger}' in saving else where} {busted})")
    return (f"cost: {where} {busted} {history.window}; re-running the steps after it took "
            f"{duration(cost.seconds)}")
