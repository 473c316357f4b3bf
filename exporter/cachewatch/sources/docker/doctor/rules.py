"""Doctor's rules: Dockerfile patterns that cost build-cache hits, each a small function.

Every rule takes a :class:`Context` and returns :class:`Finding` objects. Precision matters
more than recall here (a wrong finding teaches people to ignore the tool), so each rule only
fires when the Dockerfile itself shows the problem, and says nothing when it cannot tell
(an ``ARG``-built image name it cannot resolve, a RUN script it cannot read, a manifest it
cannot place). Fixes are unified diffs of the real file, produced by editing its lines, so a
finding's fix can be applied with ``patch -p1``/``git apply`` and rebuilt.

The choices a reviewer might question are documented where they are made:

* ``package-cache-kept`` looks only at the final stage and the stages it is built ``FROM``:
  a cache left in a build stage never reaches the image that is shipped.
* apt's index (``/var/lib/apt/lists``) is the cache that ``apt-get update`` leaves behind; an
  update in its own RUN is reported once, as ``apt-update-separate``, whose fix merges it into
  the install and removes the lists (cleaning in a later layer would not shrink the image).
* ``volatile-arg-early`` follows Docker's documented rule ("Impact on build caching"): an
  ``ARG`` whose value changed misses the cache at its first use, and every ``RUN`` after the
  ``ARG`` uses it implicitly (as an environment variable). A ``LABEL`` does not count: with
  BuildKit it only edits image metadata. A commit id changes with the sources, so for
  commit-like values only steps before the first source copy are needlessly rebuilt; a date or
  a cache-buster changes on every build, so everything after it is.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import posixpath
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .dockerfile import (
    Command,
    Dockerfile,
    Instruction,
    Stage,
    arg_pairs,
    env_pairs,
    expand,
    names_in,
    references,
    run_commands,
    run_script,
)

__all__ = ["RULES", "Context", "Finding", "Step", "classify", "run_all"]


@dataclass(frozen=True)
class Finding:
    """One problem: the rule, the 1-based line, why it costs cache, and a diff that fixes it."""

    rule: str
    line: int
    message: str
    fix: str | None
    instruction: str


@dataclass(frozen=True)
class Context:
    """What the rules look at: the parsed file, how to name it, and its ignore file.

    ``dockerignore`` is the text of the ignore file BuildKit would use, or None when there is
    none. ``vcs_in_context`` says whether a ``.git`` folder sits in the build context (a
    Dockerfile in a sub-folder built with that folder as context has none), and
    ``check_dockerignore`` turns the two ignore-file rules off when nobody knows.
    """

    dockerfile: Dockerfile
    path: str
    dockerignore: str | None = None
    vcs_in_context: bool = True
    check_dockerignore: bool = True


# ---------------------------------------------------------------------------------------------
# What a shell command does


@dataclass(frozen=True)
class Step:
    """What a command means for caching.

    ``kind`` is one of ``os-install``, ``os-update``, ``dep`` (installs from manifests),
    ``named`` (installs packages named on the command line), ``source`` (needs the project's
    sources: builds, ``pip install .``), ``fetch`` (downloads), ``clean``, ``cheap`` and
    ``other``. ``manifests`` are the files a ``dep`` step reads, as written (relative to the
    working directory or absolute); ``optional`` ones are copied with a ``*`` so they may be
    absent (lock files). ``no_cache`` is set when the command itself keeps no cache.
    ``standalone`` is False when the manifests alone are not enough to run the step (``cargo
    fetch`` wants a target such as src/main.rs): such a step is reported but gets no fix.
    """

    kind: str
    manager: str | None = None
    manifests: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    no_cache: bool = False
    standalone: bool = True


INSTALL_KINDS = frozenset({"os-install", "dep", "named"})
HOISTABLE_KINDS = frozenset({"os-install", "os-update", "dep", "named", "clean", "fetch"})
CHEAP_KINDS = frozenset({"cheap", "clean"})

_CHEAP = frozenset({
    "echo", "printf", "set", "true", "false", ":", "export", "unset", "umask", "mkdir", "ln",
    "useradd", "adduser", "groupadd", "addgroup", "usermod", "groupmod", "install", "rm",
    "rmdir", "cp", "mv", "touch", "cd", "test", "[", "[[", "chmod", "chown", "chgrp", "sed",
    "cat", "env", "id", "whoami", "ls", "tee", "exit", "sleep", "printenv", "ldconfig",
    "locale-gen", "update-ca-certificates", "date", "which", "type", "chpasswd", "passwd",
    "tr", "grep", "awk", "cut", "sort", "uniq", "head", "tail", "wc", "dirname", "basename",
    "readlink", "realpath", "hash", "shopt", "trap", "return", "source", ".", "local",
    "declare", "read", "wait", "sync", "dpkg-reconfigure", "update-alternatives", "corepack",
})
# Cheap commands that may read the files they are given: hoisting them above a source copy
# is only safe when every path they name is absolute (so it cannot come from the context).
_READERS = frozenset({
    "chmod", "chown", "chgrp", "cp", "mv", "rm", "cat", "sed", "test", "[", "[[", "source",
    ".", "install", "tee", "ls", "grep", "awk",
})
_FETCHERS = frozenset({"curl", "wget"})
_PIP_VALUE_OPTIONS = frozenset({
    "-i", "--index-url", "--extra-index-url", "-t", "--target", "--prefix", "--root", "-f",
    "--find-links", "--trusted-host", "--platform", "--python-version", "--implementation",
    "--abi", "--src", "--upgrade-strategy", "--global-option", "-C", "--config-settings",
    "--report", "--log", "--cache-dir", "--timeout", "--retries", "--proxy", "--cert",
    "--client-cert", "--exists-action", "--progress-bar", "--python", "--only-binary",
    "--no-binary",
})
_NPM_VALUE_OPTIONS = frozenset({
    "--prefix", "--registry", "--cache", "--userconfig", "--omit", "--include", "-w",
    "--workspace", "--loglevel", "--location",
})
_MVN_DEP_GOALS = frozenset({
    "dependency:go-offline", "dependency:resolve", "dependency:resolve-plugins",
    "de.qaware.maven:go-offline-maven-plugin:resolve-dependencies",
})


def classify(command: Command) -> Step:
    """Classify one simple command; unknown programs are ``other`` (never hoisted)."""
    words = list(command.words)
    if not words:
        return Step("cheap")
    program = posixpath.basename(words[0]).lower()
    args = words[1:]
    if re.fullmatch(r"python[0-9.]*", program) and args[:1] == ["-m"] and len(args) > 1:
        program, args = args[1], args[2:]
    handler = _HANDLERS.get(program)
    if handler is None:
        for pattern, candidate in _PATTERN_HANDLERS:
            if pattern.fullmatch(program):
                handler = candidate
                break
    if handler is not None:
        return handler(words[0], args)
    if program in _FETCHERS:
        return Step("fetch")
    if program in _CHEAP:
        return Step("cheap")
    if re.fullmatch(r"python[0-9.]*|node|ruby|php|java|perl|make|gcc|cc", program):
        return Step("source")
    return Step("other")


def _positionals(args: list[str], value_options: frozenset[str] = frozenset()) -> list[str]:
    """Non-option words, skipping the values of options that take one."""
    result = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in value_options:
            skip = True
        elif not arg.startswith("-"):
            result.append(arg)
    return result


def _looks_local(spec: str) -> bool:
    """Whether a pip/apt argument names a local path (which may come from the sources)."""
    if re.match(r"^[a-z][a-z0-9+.-]*://", spec, re.I) or spec.startswith("git+"):
        return False
    return (spec in (".", "..") or spec.startswith((".", "/", "~", "$")) or "/" in spec
            or spec.endswith((".whl", ".tar.gz", ".zip", ".deb", ".rpm", ".apk")))


def _pip(program: str, args: list[str], manager: str = "pip") -> Step:
    """``pip install`` with requirement files is a dependency step; ``pip install .`` is not."""
    positionals = _positionals(args, _PIP_VALUE_OPTIONS | {"-r", "--requirement", "-c",
                                                           "--constraint", "-e", "--editable"})
    sub = positionals[0] if positionals else ""
    no_cache = "--no-cache-dir" in args or "--no-cache" in args
    if sub == "cache":
        return Step("clean", manager)
    if sub != "install":
        return Step("cheap" if sub in ("freeze", "list", "show", "config", "check") else "other",
                    manager)
    requirements: list[str] = []
    local = named = False
    rest = args[args.index("install") + 1:]
    index = 0
    while index < len(rest):
        arg = rest[index]
        value = rest[index + 1] if index + 1 < len(rest) else ""
        if arg in ("-r", "--requirement", "-c", "--constraint"):
            requirements.append(value)
            index += 2
            continue
        if arg.startswith(("--requirement=", "--constraint=")):
            requirements.append(arg.split("=", 1)[1])
        elif arg in ("-e", "--editable"):
            local = True
            index += 1
        elif arg.startswith(("-r", "-c")) and not arg.startswith("--") and len(arg) > 2:
            requirements.append(arg[2:])
        elif arg.startswith(("-e", "--editable=")):
            local = True
        elif arg in _PIP_VALUE_OPTIONS:
            index += 1
        elif not arg.startswith("-"):
            local = local or _looks_local(arg)
            named = named or not _looks_local(arg)
        index += 1
    if local or any(_looks_local(r) and r.startswith("$") for r in requirements):
        return Step("source", manager, no_cache=no_cache)
    if requirements:
        return Step("dep", manager, tuple(requirements), no_cache=no_cache)
    return Step("named" if named else "other", manager, no_cache=no_cache)


def _uv(program: str, args: list[str]) -> Step:
    """uv: ``uv pip install`` reads like pip; ``uv sync --no-install-project`` is deps only."""
    positionals = _positionals(args)
    if positionals[:1] == ["pip"]:
        return _pip(program, args[args.index("pip") + 1:], "uv")
    if positionals[:1] == ["sync"]:
        if "--no-install-project" in args or "--only-deps" in args:
            return Step("dep", "uv", ("pyproject.toml",), ("uv.lock",))
        return Step("source", "uv")
    return Step("cheap" if positionals[:1] in (["venv"], ["python"]) else "other", "uv")


def _npm(program: str, args: list[str]) -> Step:
    """``npm ci``/``npm install`` read package.json; ``npm run build`` needs the sources."""
    positionals = _positionals(args, _NPM_VALUE_OPTIONS)
    sub = positionals[0] if positionals else ""
    packages = positionals[1:]
    if sub in ("ci", "install", "i", "isntall", "add", "in", "ins", "inst", "insta", "instal"):
        if sub == "ci" or not packages:
            return Step("dep", "npm", ("package.json",), ("package-lock.json",))
        globally = "-g" in args or "--global" in args or "--location=global" in args
        return Step("named" if globally else "other", "npm")
    if sub == "cache":
        return Step("clean", "npm")
    if sub in ("config", "set", "get", "-v", "--version", "doctor", "ping"):
        return Step("cheap", "npm")
    return Step("source", "npm")


def _yarn(program: str, args: list[str]) -> Step:
    """Bare ``yarn`` and ``yarn install`` read package.json and yarn.lock."""
    positionals = _positionals(args, frozenset({"--cwd", "--cache-folder", "--network-timeout",
                                                "--modules-folder", "--registry"}))
    if not positionals or positionals[0] == "install":
        return Step("dep", "yarn", ("package.json",), ("yarn.lock",))
    if positionals[:2] == ["global", "add"]:
        return Step("named", "yarn")
    if positionals[0] == "cache":
        return Step("clean", "yarn")
    if positionals[0] in ("config", "set", "policies"):
        return Step("cheap", "yarn")
    return Step("other" if positionals[0] == "add" else "source", "yarn")


def _pnpm(program: str, args: list[str]) -> Step:
    """``pnpm install`` reads package.json and pnpm-lock.yaml; ``pnpm fetch`` only the lock."""
    positionals = _positionals(args, frozenset({"--filter", "-F", "--dir", "-C", "--store-dir"}))
    sub = positionals[0] if positionals else "install"
    if sub in ("install", "i") and len(positionals) <= 1:
        return Step("dep", "pnpm", ("package.json",), ("pnpm-lock.yaml",))
    if sub == "fetch":
        return Step("dep", "pnpm", ("pnpm-lock.yaml",))
    if sub == "add" and ("-g" in args or "--global" in args):
        return Step("named", "pnpm")
    if sub == "store":
        return Step("clean", "pnpm")
    return Step("other" if sub == "add" else "source", "pnpm")


def _go(program: str, args: list[str]) -> Step:
    """``go mod download`` reads go.mod/go.sum; ``go install x@v`` needs no sources."""
    positionals = _positionals(args, frozenset({"-o", "-C", "-ldflags", "-tags", "-gcflags"}))
    if positionals[:2] == ["mod", "download"]:
        return Step("dep", "go", ("go.mod",), ("go.sum",))
    if positionals[:1] == ["install"] and len(positionals) > 1 and all(
        "@" in p for p in positionals[1:]
    ):
        return Step("named", "go")
    if positionals[:1] in (["env"], ["version"]):
        return Step("cheap", "go")
    return Step("source", "go")


def _cargo(program: str, args: list[str]) -> Step:
    """``cargo fetch`` and cargo-chef's ``cook`` install dependencies only."""
    positionals = _positionals(args, frozenset({"--recipe-path", "--target", "--features",
                                                "--bin", "--package", "-p", "--root"}))
    sub = positionals[0] if positionals else ""
    if sub == "fetch":
        return Step("dep", "cargo", ("Cargo.toml",), ("Cargo.lock",), standalone=False)
    if positionals[:2] == ["chef", "cook"]:
        recipe = args[args.index("--recipe-path") + 1] if "--recipe-path" in args[:-1] else ""
        return Step("dep", "cargo", (recipe,) if recipe else ())
    if sub == "install" and "--path" not in args and len(positionals) > 1:
        return Step("named", "cargo")
    if sub in ("init", "new", "--version", "version"):
        return Step("cheap", "cargo")
    return Step("source", "cargo")


def _maven(program: str, args: list[str]) -> Step:
    """Maven's go-offline/resolve goals read only pom.xml (and the wrapper, when used)."""
    goals = _positionals(args, frozenset({"-f", "--file", "-s", "--settings", "-P", "-pl",
                                          "--projects", "-T", "--threads", "-gs"}))
    goals = [g for g in goals if not g.startswith("-D")]
    if not goals or not all(g in _MVN_DEP_GOALS for g in goals):
        return Step("source", "maven")
    pom = args[args.index("-f") + 1] if "-f" in args[:-1] else "pom.xml"
    manifests = [pom]
    if program.startswith(("./", "mvnw")) and "mvnw" in program:
        manifests += [posixpath.normpath(program), ".mvn/"]
    return Step("dep", "maven", tuple(manifests))


def _bundle(program: str, args: list[str]) -> Step:
    """``bundle install`` reads the Gemfile and its lock."""
    positionals = _positionals(args, frozenset({"--jobs", "-j", "--retry", "--path",
                                                "--without", "--with", "--gemfile"}))
    sub = positionals[0] if positionals else "install"
    if sub == "install":
        gemfile = args[args.index("--gemfile") + 1] if "--gemfile" in args[:-1] else "Gemfile"
        return Step("dep", "bundler", (gemfile,), (gemfile + ".lock",))
    if sub in ("config", "version", "--version"):
        return Step("cheap", "bundler")
    return Step("source", "bundler")


def _gem(program: str, args: list[str]) -> Step:
    """``gem install bundler`` installs a named gem."""
    positionals = _positionals(args, frozenset({"-v", "--version", "-i", "--install-dir"}))
    if positionals[:1] in (["install"], ["update"]) and not any(
        _looks_local(p) for p in positionals[1:]
    ):
        return Step("named", "gem")
    return Step("other", "gem")


def _composer(program: str, args: list[str]) -> Step:
    """``composer install --no-scripts`` is deps only; its scripts usually need the app."""
    positionals = _positionals(args, frozenset({"--working-dir", "-d"}))
    sub = positionals[0] if positionals else ""
    if sub == "install":
        if "--no-scripts" in args:
            return Step("dep", "composer", ("composer.json",), ("composer.lock",))
        return Step("source", "composer")
    if positionals[:2] == ["global", "require"]:
        return Step("named", "composer")
    if sub in ("config", "--version", "diagnose"):
        return Step("cheap", "composer")
    return Step("source", "composer")


def _dotnet(program: str, args: list[str]) -> Step:
    """``dotnet restore <project>`` reads that project file; without one we cannot say which."""
    positionals = _positionals(args, frozenset({"-r", "--runtime", "-s", "--source",
                                                "--packages", "--configfile", "-c", "-o"}))
    sub = positionals[0] if positionals else ""
    if sub == "restore":
        projects = [p for p in positionals[1:] if p.endswith(("proj", ".sln"))]
        return Step("dep", "dotnet", tuple(projects) if projects else ("*.csproj",))
    if positionals[:2] == ["tool", "install"]:
        return Step("named", "dotnet")
    return Step("source", "dotnet")


def _mix(program: str, args: list[str]) -> Step:
    """``mix deps.get`` reads mix.exs/mix.lock; ``mix do a, b`` is judged task by task."""
    text = " ".join(args)
    tasks = [t.split()[0] for t in text[3:].split(",") if t.split()] if args[:1] == ["do"] else (
        [args[0]] if args else [])
    fetching = {"deps.get", "deps.compile"}
    setup = {"local.hex", "local.rebar", "archive.install"}
    if tasks and all(t in fetching | setup for t in tasks):
        if fetching.intersection(tasks):
            return Step("dep", "mix", ("mix.exs",), ("mix.lock",))
        return Step("named", "mix")
    return Step("source", "mix")


def _poetry(program: str, args: list[str]) -> Step:
    """``poetry install --no-root`` is deps only; plain ``poetry install`` installs the app."""
    positionals = _positionals(args)
    if positionals[:1] == ["install"]:
        if "--no-root" in args or "--no-directory" in args:
            return Step("dep", "poetry", ("pyproject.toml",), ("poetry.lock",))
        return Step("source", "poetry")
    return Step("cheap" if positionals[:1] == ["config"] else "other", "poetry")


def _pipenv(program: str, args: list[str]) -> Step:
    """``pipenv install``/``sync`` without package names read the Pipfile."""
    positionals = _positionals(args)
    if positionals[:1] in (["install"], ["sync"]) and len(positionals) == 1:
        return Step("dep", "pipenv", ("Pipfile",), ("Pipfile.lock",))
    return Step("other", "pipenv")


def _apt(program: str, args: list[str]) -> Step:
    """apt-get/apt: install and upgrade install, update fetches the index."""
    positionals = _positionals(args, frozenset({"-o", "-t", "--target-release", "-c"}))
    sub = positionals[0] if positionals else ""
    if sub == "install":
        local = any(_looks_local(p) for p in positionals[1:])
        return Step("source" if local else "os-install", "apt")
    if sub in ("upgrade", "dist-upgrade", "full-upgrade", "build-dep"):
        return Step("os-install", "apt")
    if sub == "update":
        return Step("os-update", "apt")
    if sub in ("clean", "autoclean", "autoremove", "purge", "remove"):
        return Step("clean", "apt")
    return Step("other", "apt")


def _apk(program: str, args: list[str]) -> Step:
    """apk: ``add``/``upgrade`` install; ``--no-cache`` keeps no index behind."""
    positionals = _positionals(args, frozenset({"-X", "--repository", "-t", "--virtual", "-p",
                                                "--root", "--arch", "--repositories-file"}))
    sub = positionals[0] if positionals else ""
    no_cache = "--no-cache" in args
    if sub in ("add", "upgrade", "fix"):
        local = any(_looks_local(p) for p in positionals[1:])
        return Step("source" if local else "os-install", "apk", no_cache=no_cache)
    if sub == "update":
        return Step("os-update", "apk", no_cache=no_cache)
    if sub in ("del", "cache", "clean"):
        return Step("clean", "apk")
    return Step("cheap" if sub in ("info", "version", "policy") else "other", "apk")


def _rpm_family(program: str, args: list[str]) -> Step:
    """yum/dnf/microdnf/tdnf share their verbs; ``clean all`` empties their cache."""
    positionals = _positionals(args, frozenset({"--setopt", "--enablerepo", "--disablerepo",
                                                "--installroot", "--releasever"}))
    sub = positionals[0] if positionals else ""
    manager = posixpath.basename(program)
    if sub in ("install", "update", "upgrade", "groupinstall", "reinstall", "localinstall",
               "module", "distro-sync"):
        local = any(_looks_local(p) for p in positionals[1:])
        return Step("source" if local else "os-install", manager)
    if sub == "makecache":
        return Step("os-update", manager)
    if sub in ("clean", "remove", "erase", "autoremove"):
        return Step("clean", manager)
    return Step("other", manager)


def _zypper(program: str, args: list[str]) -> Step:
    """zypper's verbs and their short forms."""
    positionals = _positionals(args)
    sub = positionals[0] if positionals else ""
    if sub in ("in", "install", "up", "update", "dup", "dist-upgrade"):
        return Step("os-install", "zypper")
    if sub in ("ref", "refresh"):
        return Step("os-update", "zypper")
    return Step("clean" if sub in ("clean", "cc", "rm", "remove") else "other", "zypper")


def _git(program: str, args: list[str]) -> Step:
    """``git clone`` downloads; other git commands usually read the checked-out sources."""
    positionals = _positionals(args, frozenset({"-C", "-c", "--depth", "--branch", "-b"}))
    if positionals[:1] == ["clone"]:
        return Step("fetch")
    return Step("cheap" if positionals[:1] == ["config"] else "other")


def _choco(program: str, args: list[str]) -> Step:
    """Chocolatey installs named Windows packages."""
    return Step("named" if _positionals(args)[:1] == ["install"] else "other", "choco")


_HANDLERS: dict[str, Callable[[str, list[str]], Step]] = {
    "pip": _pip, "uv": _uv, "npm": _npm, "yarn": _yarn, "pnpm": _pnpm, "go": _go,
    "cargo": _cargo, "mvn": _maven, "mvnw": _maven, "./mvnw": _maven, "bundle": _bundle,
    "bundler": _bundle, "gem": _gem, "composer": _composer, "dotnet": _dotnet, "mix": _mix,
    "poetry": _poetry, "pipenv": _pipenv, "apt-get": _apt, "apt": _apt, "aptitude": _apt,
    "apk": _apk, "yum": _rpm_family, "dnf": _rpm_family, "microdnf": _rpm_family,
    "tdnf": _rpm_family, "zypper": _zypper, "git": _git, "choco": _choco,
}
_PATTERN_HANDLERS: list[tuple[re.Pattern[str], Callable[[str, list[str]], Step]]] = [
    (re.compile(r"pip[0-9.]*"), _pip),
    (re.compile(r"(gradle|gradlew)"), lambda program, args: Step("source", "gradle")),
]


# ---------------------------------------------------------------------------------------------
# RUN instructions and stages


@dataclass(frozen=True)
class RunInfo:
    """A RUN's commands, what each does, and whether its script could be read at all."""

    instruction: Instruction
    commands: tuple[Command, ...]
    steps: tuple[Step, ...]
    readable: bool

    def kinds(self) -> set[str]:
        """The set of step kinds in this RUN."""
        return {step.kind for step in self.steps}

    def cache_targets(self) -> list[str]:
        """Targets of ``--mount=type=cache`` on this RUN."""
        return [m.get("target", "") for m in self.instruction.mounts()
                if m.get("type") == "cache"]

    def removed_paths(self) -> list[str]:
        """Paths this RUN removes with ``rm``: how caches are usually cleaned."""
        return [word for command in self.commands
                if command.words and posixpath.basename(command.words[0]) == "rm"
                for word in command.words[1:] if not word.startswith("-")]


@functools.lru_cache(maxsize=4096)
def run_info(ins: Instruction) -> RunInfo:
    """Read a RUN instruction's script into classified commands (memoised: rules ask often)."""
    commands, readable = run_commands(ins)
    return RunInfo(ins, tuple(commands), tuple(classify(c) for c in commands), readable)


def _parent(df: Dockerfile, stage: Stage) -> Stage | None:
    """The earlier stage this one is built FROM, if any."""
    for other in df.stages[: stage.index]:
        if other.name and other.name == stage.image.lower():
            return other
    return None


def _chain(df: Dockerfile, stage: Stage) -> list[Stage]:
    """``stage`` and the stages it is built FROM, outermost ancestor first."""
    chain = [stage]
    seen = {stage.index}
    parent = _parent(df, stage)
    while parent is not None and parent.index not in seen:
        chain.insert(0, parent)
        seen.add(parent.index)
        parent = _parent(df, parent)
    return chain


def _final_stages(df: Dockerfile) -> set[int]:
    """Indexes of the stages whose files end up in the image that is built by default."""
    return {s.index for s in _chain(df, df.stages[-1])} if df.stages else set()


def _copy_sources(ins: Instruction) -> list[str]:
    """Sources of a COPY/ADD (everything but the destination), heredoc names excluded."""
    words = ins.words()
    if len(words) < 2:
        return []
    heredoc_names = {h.name for h in ins.heredocs}
    sources = []
    for word in words[:-1]:
        match = re.match(r"^\d*<<-?[\"']?([^\"']+)", word)
        if match and match.group(1) in heredoc_names:
            continue
        sources.append(word)
    return sources


def _clean_source(source: str) -> str:
    """A source path as the context sees it: no ``./`` prefix, no trailing slash."""
    source = source.replace("\\", "/")
    while source.startswith("./"):
        source = source[2:]
    return source.rstrip("/") or "."


_ROOT_SOURCES = frozenset({".", "*", "./*", "/"})
_SOURCE_DIRS = frozenset({"src", "app", "lib", "cmd", "pkg", "internal", "source", "sources",
                          "code", "project"})


def _copies_context(ins: Instruction) -> bool:
    """Whether a COPY/ADD copies the whole build context (``COPY . .`` and friends)."""
    if ins.keyword not in ("COPY", "ADD") or ins.has_flag("from"):
        return False
    return any(_clean_source(s) in _ROOT_SOURCES for s in _copy_sources(ins))


def _broad_copy(ins: Instruction) -> bool:
    """A copy of the sources: the whole context or a top-level source folder."""
    if ins.keyword not in ("COPY", "ADD") or ins.has_flag("from"):
        return False
    return any(_clean_source(s) in _ROOT_SOURCES or _clean_source(s) in _SOURCE_DIRS
               for s in _copy_sources(ins))


def _is_url(source: str) -> bool:
    """An http(s) source of ADD, which BuildKit downloads at build time."""
    return bool(re.match(r"^https?://", source, re.I))


def _text(ins: Instruction) -> str:
    """Everything an instruction says, heredoc bodies included, for variable references."""
    return ins.rest + "".join(h.body for h in ins.heredocs)


# ---------------------------------------------------------------------------------------------
# Editing the file


def _display_path(path: str) -> str:
    """The path as it appears in diff headers (``a/<path>``)."""
    path = path.replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path.lstrip("/") or "Dockerfile"


def _diff(old: list[str], new: list[str], path: str, *, created: bool = False) -> str | None:
    """A unified diff (one line of context) between two versions of a file, None if equal.

    Only the region between the common head and tail is compared, so a small edit of a long
    file stays cheap; hunk line numbers are offset back to the whole file.
    """
    if old == new and not created:
        return None
    head = 0
    while head < min(len(old), len(new)) and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < min(len(old), len(new)) - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    start = max(head - 1, 0)
    old_part, new_part = old[start: len(old) - max(tail - 1, 0)], new[start: len(new) - max(
        tail - 1, 0)]
    name = _display_path(path)
    out = ["--- /dev/null" if created else f"--- a/{name}", f"+++ b/{name}"]
    matcher = difflib.SequenceMatcher(None, old_part, new_part)
    for group in matcher.get_grouped_opcodes(1):
        i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        out.append(f"@@ -{_range(start + i1, i2 - i1)} +{_range(start + j1, j2 - j1)} @@")
        for tag, a1, a2, b1, b2 in group:
            if tag == "equal":
                out += [" " + line for line in old_part[a1:a2]]
                continue
            out += ["-" + line for line in old_part[a1:a2]]
            out += ["+" + line for line in new_part[b1:b2]]
    return "\n".join(out) + "\n"


def _range(start: int, length: int) -> str:
    """A hunk range as difflib writes it (``start,length``; 1-based, or the line before)."""
    first = start + 1 if length else start
    return str(first) if length == 1 else f"{first},{length}"


def _lines_of(df: Dockerfile, ins: Instruction) -> list[str]:
    """The physical lines an instruction spans, heredoc bodies included."""
    return df.lines[ins.start_line - 1: ins.end_line]


def _attached_comments(df: Dockerfile, ins: Instruction, floor: int) -> int:
    """First line of the comment block right above ``ins`` (not above line ``floor``)."""
    line = ins.start_line
    while line - 1 > floor and df.lines[line - 2].lstrip().startswith("#"):
        line -= 1
    return line


def _append_command(df: Dockerfile, ins: Instruction, command: str) -> list[str] | None:
    """New file lines with ``command`` run at the end of a RUN, or None if that is unsafe."""
    if ins.exec_form is not None:
        return None
    lines = list(df.lines)
    if ins.heredocs:
        heredoc = ins.heredocs[0]
        terminator = lines[heredoc.end_line - 1] if heredoc.end_line <= len(lines) else ""
        if run_script(ins)[0] != heredoc.body or (
            terminator.lstrip("\t") if heredoc.chomp else terminator) != heredoc.name:
            return None
        lines.insert(heredoc.end_line - 1, command)
        return lines
    last = lines[ins.end_line - 1]
    stripped = last.rstrip()
    if stripped.endswith((df.escape, "&&", "||", "|")) or re.search(r"(^|\s)#", stripped):
        return None
    joiner = " " if stripped.endswith(";") else " && "
    lines[ins.end_line - 1] = stripped + joiner + command
    return lines


# ---------------------------------------------------------------------------------------------
# source-before-deps


@dataclass
class _Hoist:
    """Instructions (stage indexes) to move above the source copy, and one RUN to split."""

    moved: list[int]
    installs: list[int]
    split: tuple[int, int] | None = None


def _hoistable_command(command: Command, step: Step) -> bool:
    """Whether a command could run before the sources are copied without changing meaning."""
    if step.kind in HOISTABLE_KINDS:
        return True
    if step.kind != "cheap" or not command.words:
        return False
    if posixpath.basename(command.words[0]) not in _READERS:
        return True
    paths = [w for w in command.words[1:] if not w.startswith(("-", "+"))]
    return all(p.startswith("/") for p in paths)


def _install_words(info: RunInfo, count: int | None = None) -> set[tuple[str, ...]]:
    """The install commands of a RUN (or of its first ``count`` commands), options left out."""
    pairs = list(zip(info.commands, info.steps, strict=True))[:count]
    return {(step.manager or "", *(w for w in command.words[1:] if not w.startswith("-")))
            for command, step in pairs if step.kind in INSTALL_KINDS}


def _installed_before(df: Dockerfile, stage: Stage, copy_at: int) -> set[tuple[str, ...]]:
    """Install commands already run before the source copy (in the stage or its ancestors).

    Running one of them again after the copy is cheap (everything is already there), so it is
    not a dependency step out of place: that is the "split" fix's own result.
    """
    done: set[tuple[str, ...]] = set()
    for ancestor in _chain(df, stage)[:-1]:
        for ins in ancestor.instructions:
            if ins.keyword == "RUN":
                done |= _install_words(run_info(ins))
    for ins in stage.instructions[:copy_at]:
        if ins.keyword == "RUN":
            done |= _install_words(run_info(ins))
    return done


def _mounts_context(ins: Instruction) -> bool:
    """A ``--mount=type=bind`` of the whole build context: the step then depends on all of it."""
    return any(m.get("type") == "bind" and "from" not in m
               and _clean_source(m.get("source", ".")) in _ROOT_SOURCES for m in ins.mounts())


def _hoistable_run(info: RunInfo) -> bool:
    """A RUN that only installs or prepares, never touching the project's files."""
    return info.readable and bool(info.commands) and not _mounts_context(info.instruction) and all(
        _hoistable_command(c, s) for c, s in zip(info.commands, info.steps, strict=True)
    )


def _dependency_prefix(info: RunInfo) -> int:
    """How many leading ``&&``-joined commands of a RUN install dependencies only (0 if none)."""
    ins = info.instruction
    if not info.readable or ins.heredocs or ins.exec_form is not None or _mounts_context(ins):
        return 0
    count = 0
    for command, step in zip(info.commands, info.steps, strict=True):
        if not _hoistable_command(command, step) or command.separator != "&&":
            break
        count += 1
    installs = [s for s in info.steps[:count] if s.kind in ("dep", "named", "os-install")]
    return count if installs else 0


_CONTEXT_KEYWORDS = frozenset({"WORKDIR", "ENV", "ARG", "USER", "SHELL"})
_METADATA_KEYWORDS = frozenset({"LABEL", "EXPOSE", "CMD", "ENTRYPOINT", "VOLUME", "HEALTHCHECK",
                                "STOPSIGNAL", "MAINTAINER", "ONBUILD"})


def _hoist_plan(
    insts: list[Instruction], copy_at: int, done: set[tuple[str, ...]]
) -> _Hoist | None:
    """Which instructions after the source copy at ``copy_at`` can move above it.

    ``done`` holds install commands that already ran before the copy; repeating them after it
    costs little, so they do not make a RUN worth moving.
    """
    plan = _Hoist([], [])
    held: set[str] = set()  # volatile ARG/ENV names left in place: installs must not need them
    for index in range(copy_at + 1, len(insts)):
        ins = insts[index]
        if _volatile_binding(ins, held):
            held |= {name for name, _ in arg_pairs(ins) + env_pairs(ins)}
            continue
        if held and ins.keyword not in _METADATA_KEYWORDS and references(_text(ins), held):
            break
        if ins.keyword == "RUN":
            info = run_info(ins)
            if _hoistable_run(info):
                plan.moved.append(index)
                if _install_words(info) - done:
                    plan.installs.append(index)
                continue
            prefix = _dependency_prefix(info)
            if prefix and _install_words(info, prefix) - done:
                plan.split = (index, prefix)
            break
        if ins.keyword in _CONTEXT_KEYWORDS or (
            ins.keyword in ("COPY", "ADD") and not _broad_copy(ins)
        ):
            plan.moved.append(index)
        elif ins.keyword not in _METADATA_KEYWORDS:
            break
    last = plan.split[0] if plan.split else max(plan.installs, default=-1)
    plan.moved = [i for i in plan.moved if i <= last]
    return plan if plan.installs or plan.split else None


def _volatile_binding(ins: Instruction, held: set[str]) -> bool:
    """An ARG/ENV whose value changes per build or commit: moving it up would bust installs."""
    if ins.keyword == "ARG":
        return any(_volatility(name, value) for name, value in arg_pairs(ins))
    if ins.keyword == "ENV":
        return any(_volatility(name, None) or (held and references(value, held))
                   for name, value in env_pairs(ins))
    return False


def _workdir(current: str, ins: Instruction, env: dict[str, str]) -> str:
    """The working directory after a WORKDIR; ``{W}`` stands for the base image's."""
    value = expand(ins.args.strip().strip("\"'"), env)
    if value is None or not value:
        return "{?}"
    return posixpath.normpath(value if value.startswith("/") else posixpath.join(current, value))


def _absolute(cwd: str, path: str) -> str:
    """``path`` resolved against ``cwd`` (which may be the symbolic ``{W}``)."""
    return posixpath.normpath(path if path.startswith("/") else posixpath.join(cwd, path))


@dataclass
class _StageState:
    """Working directory and variables at each instruction of a stage, from its ancestors."""

    cwd_before: list[str]
    env_before: list[dict[str, str]]


def _stage_state(df: Dockerfile, stage: Stage) -> _StageState:
    """Track WORKDIR and ENV/ARG values through the stage's chain (best effort)."""
    cwd, env = "{W}", dict(df.global_arg_defaults())
    for ancestor in _chain(df, stage)[:-1]:
        for ins in ancestor.instructions:
            cwd, env = _advance(cwd, env, ins)
    cwds, envs = [], []
    for ins in stage.instructions:
        cwds.append(cwd)
        envs.append(dict(env))
        cwd, env = _advance(cwd, env, ins)
    return _StageState(cwds, envs)


def _advance(cwd: str, env: dict[str, str], ins: Instruction) -> tuple[str, dict[str, str]]:
    """Apply one instruction's effect on the working directory and variables."""
    if ins.keyword == "WORKDIR":
        return _workdir(cwd, ins, env), env
    if ins.keyword == "ENV":
        env = dict(env)
        for name, value in env_pairs(ins):
            env[name] = expand(value, env) or value
    elif ins.keyword == "ARG":
        env = dict(env)
        for name, value in arg_pairs(ins):
            if value is not None:
                env[name] = expand(value, env) or value
    return cwd, env


def _provided(df: Dockerfile, stage: Stage, before: int, extra: Iterable[Instruction]) -> list[str]:
    """Basenames of files copied into the stage before index ``before`` (and by ``extra``)."""
    copies: list[Instruction] = []
    for ancestor in _chain(df, stage)[:-1]:
        copies += ancestor.instructions
    copies += stage.instructions[:before]
    copies += list(extra)
    names = []
    for ins in copies:
        if ins.keyword in ("COPY", "ADD"):
            names += [posixpath.basename(_clean_source(s)) for s in _copy_sources(ins)]
    return names


def _is_provided(manifest: str, provided: list[str], ins: Instruction) -> bool:
    """Whether a manifest reaches the RUN by an earlier copy or by a bind mount of its own."""
    name = posixpath.basename(manifest.rstrip("/"))
    mounted = [posixpath.basename(_clean_source(m.get("source", ""))) for m in ins.mounts()
               if m.get("type") == "bind" and m.get("source")]
    return any(fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(pattern, name)
               for pattern in provided + mounted if pattern and pattern != ".")


def _manifest_copies(
    ctx: Context, stage: Stage, state: _StageState, plan: _Hoist, copy_at: int
) -> dict[int, list[str]] | None:
    """COPY lines to insert before each hoisted RUN for manifests the source copy provided.

    Returns None when a manifest cannot be placed: then the install may need more of the
    sources than we can see, and the rule stays silent. A RUN whose step cannot run from its
    manifests alone maps to ``[_NO_FIX]``: reported, but without a fix that would not build.
    """
    insts = stage.instructions
    broad = insts[copy_at]
    sources = _copy_sources(broad)
    words = broad.words()
    runs = list(plan.installs) + ([plan.split[0]] if plan.split else [])
    result: dict[int, list[str]] = {}
    for index in runs:
        hoisted = [insts[i] for i in plan.moved if i < index]
        provided = _provided(ctx.dockerfile, stage, copy_at, hoisted)
        missing: list[tuple[str, bool]] = []
        for step in run_info(insts[index]).steps:
            if step.kind != "dep":
                continue
            if not step.manifests:
                return None
            missing += [(m, False) for m in step.manifests
                        if not _is_provided(m, provided, insts[index])]
            missing += [(m, True) for m in step.optional
                        if not _is_provided(m, provided, insts[index])]
        if not any(not optional for _, optional in missing):
            continue
        if not all(step.standalone for step in run_info(insts[index]).steps):
            result[index] = [_NO_FIX]
            continue
        if len(sources) != 1 or len(words) != 2:
            return None
        lines = _copy_lines(broad, sources[0], words[-1], state, copy_at, index, missing)
        if lines is None:
            return None
        result[index] = lines
    return result


_NO_FIX = "# no fix"


def _copy_lines(
    broad: Instruction, source: str, dest: str, state: _StageState, copy_at: int, run_at: int,
    manifests: list[tuple[str, bool]],
) -> list[str] | None:
    """``COPY`` lines that put each manifest where the source copy would have put it."""
    cwd_copy, cwd_run = state.cwd_before[copy_at], state.cwd_before[run_at]
    if "{?}" in cwd_copy or "{?}" in cwd_run or "$" in dest or "$" in source:
        return None
    if any(ch in manifest for manifest, _ in manifests for ch in "*?["):
        return None
    dest_root = _absolute(cwd_copy, dest)
    source_root = _clean_source(source)
    groups: dict[str, list[str]] = {}
    for manifest, optional in manifests:
        directory = manifest.endswith("/")
        inside = _absolute(cwd_run, manifest.rstrip("/"))
        relative = posixpath.relpath(inside, dest_root) if _same_root(inside, dest_root) else ".."
        if relative.startswith(".."):
            return None
        context_path = relative if source_root in (".", "*", "./*") else posixpath.join(
            source_root, relative)
        target_dir = posixpath.dirname(manifest.rstrip("/"))
        target = (manifest.rstrip("/") + "/") if directory else (
            (target_dir + "/") if target_dir else "./")
        groups.setdefault(target, []).append(context_path + ("*" if optional else ""))
    flags = " ".join(f"--{f.name}={f.value}" for f in broad.flags
                     if f.name in ("chown", "chmod") and f.value)
    if broad.has_flag("link"):
        flags = (flags + " --link").strip()
    prefix = "COPY " + (flags + " " if flags else "")
    return [prefix + " ".join([*files, target]) for target, files in groups.items()]


def _same_root(first: str, second: str) -> bool:
    """Whether two resolved paths can be compared (both absolute, or both under ``{W}``)."""
    return first.startswith("{W}") == second.startswith("{W}")


def _rewritten_copy(
    df: Dockerfile, broad: Instruction, state: _StageState, copy_at: int, new_cwd: str
) -> str | None:
    """The source copy's line with its relative destination fixed for a hoisted WORKDIR."""
    words = broad.words()
    first = df.lines[broad.start_line - 1]
    if broad.end_line != broad.start_line or broad.exec_form is not None or len(words) < 2:
        return None
    dest = words[-1]
    if dest.startswith("/"):
        return first
    target = _absolute(state.cwd_before[copy_at], dest)
    if "{?}" in target + new_cwd or not _same_root(target, new_cwd):
        return None
    relative = posixpath.relpath(target, new_cwd)
    if relative.startswith(".."):
        return None
    new_dest = "./" if relative == "." else relative + ("/" if dest.endswith("/") else "")
    if not first.rstrip().endswith(dest):
        return None
    return first.rstrip()[: -len(dest)] + new_dest


def _hoist_edit(
    ctx: Context, stage: Stage, plan: _Hoist, copy_at: int, state: _StageState,
    inserts: dict[int, list[str]],
) -> list[str] | None:
    """The file's lines with the plan applied (moves, new COPY lines, a split RUN)."""
    df = ctx.dockerfile
    insts = stage.instructions
    broad = insts[copy_at]
    block: list[str] = []
    removed: set[int] = set()
    new_cwd = state.cwd_before[copy_at]
    for index in plan.moved:
        ins = insts[index]
        start = _attached_comments(df, ins, broad.end_line)
        block += inserts.get(index, [])
        block += df.lines[start - 1: ins.end_line]
        removed.update(range(start, ins.end_line + 1))
        if ins.keyword == "WORKDIR":
            new_cwd = _workdir(new_cwd, ins, state.env_before[index])
    if plan.split:
        index, count = plan.split
        info = run_info(insts[index])
        script = insts[index].args[: info.commands[count - 1].end].strip()
        flags = insts[index].rest[: len(insts[index].rest) - len(insts[index].args)].strip()
        block += inserts.get(index, [])
        block.append("RUN " + (flags + " " if flags else "") + script)
    copy_line = df.lines[broad.start_line - 1]
    if new_cwd != state.cwd_before[copy_at]:
        copy_line = _rewritten_copy(df, broad, state, copy_at, new_cwd)
        if copy_line is None:
            return None
    new: list[str] = []
    for number, line in enumerate(df.lines, start=1):
        if number == broad.start_line:
            new += block
            new.append(copy_line)
            continue
        if number not in removed:
            new.append(line)
    return new


def _install_label(info: RunInfo) -> str:
    """The install command of a RUN, shortened for a message (``npm ci``, ``apt-get install``)."""
    for command, step in zip(info.commands, info.steps, strict=True):
        if step.kind in INSTALL_KINDS:
            label = " ".join(command.words[:4])
            return label if len(label) <= 48 else label[:45] + "..."
    return info.instruction.display()[:40]


def source_before_deps(ctx: Context) -> list[Finding]:
    """Dependency installs that run after the sources were copied, in the same stage."""
    findings = []
    for stage in ctx.dockerfile.stages:
        finding = _source_before_deps_in(ctx, stage)
        if finding is not None:
            findings.append(finding)
    return findings


def _source_before_deps_in(ctx: Context, stage: Stage) -> Finding | None:
    """One stage: find the first source copy and what could move above it."""
    insts = stage.instructions
    copy_at = next((i for i, ins in enumerate(insts) if _broad_copy(ins)), None)
    if copy_at is None:
        return None
    plan = _hoist_plan(insts, copy_at, _installed_before(ctx.dockerfile, stage, copy_at))
    if plan is None:
        return None
    state = _stage_state(ctx.dockerfile, stage)
    inserts = _manifest_copies(ctx, stage, state, plan, copy_at)
    if inserts is None:
        return None
    fixable = not any(_NO_FIX in lines for lines in inserts.values())
    new_lines = _hoist_edit(ctx, stage, plan, copy_at, state, inserts) if fixable else None
    first = (plan.installs or [plan.split[0] if plan.split else copy_at])[0]
    ins, broad = insts[first], insts[copy_at]
    steps = [_install_label(run_info(insts[i])) for i in
             plan.installs + ([plan.split[0]] if plan.split else [])]
    manifests = sorted({word for lines in inserts.values() for line in lines
                        if line != _NO_FIX for word in line.split()[1:-1]
                        if not word.startswith("--")})
    how = (f"copy {', '.join(manifests)} first, " if manifests else "") + \
        "install, then copy the sources"
    message = (
        f"{'; '.join(f'`{s}`' for s in steps)} runs after `{broad.display()}` (line "
        f"{broad.start_line}), so every source change reinstalls dependencies that did not "
        f"change; {how}"
    )
    fix = _diff(ctx.dockerfile.lines, new_lines, ctx.path) if new_lines else None
    return Finding("source-before-deps", ins.start_line, message, fix, ins.display())


# ---------------------------------------------------------------------------------------------
# apt-update-separate and package-cache-kept


def _apt_steps(info: RunInfo) -> set[str]:
    """Which apt verbs a RUN uses (update, install)."""
    kinds = set()
    for step in info.steps:
        if step.manager == "apt" and step.kind in ("os-update", "os-install"):
            kinds.add(step.kind)
    return kinds


def _apt_lists_mounted(info: RunInfo) -> bool:
    """apt's lists live in a cache mount, so no layer keeps (or goes stale with) them."""
    return any(t.rstrip("/") in ("/var/lib/apt", "/var/lib/apt/lists")
               for t in info.cache_targets())


def apt_update_separate(ctx: Context) -> list[Finding]:
    """``apt-get update`` alone in a RUN, with the install in a later RUN of the stage."""
    findings = []
    for stage in ctx.dockerfile.stages:
        infos = [run_info(i) for i in stage.instructions if i.keyword == "RUN"]
        for position, info in enumerate(infos):
            if _apt_steps(info) != {"os-update"} or _apt_lists_mounted(info):
                continue
            later = []
            for other in infos[position + 1:]:
                if "os-update" in _apt_steps(other):
                    break
                if _apt_steps(other) == {"os-install"}:
                    later.append(other)
            if not later:
                continue
            ins = info.instruction
            message = (
                f"`apt-get update` runs in its own RUN (line {ins.start_line}) and the install "
                f"in another (line {later[0].instruction.start_line}): the cached index layer "
                f"goes stale while the install layer changes, and the index stays in the image; "
                f"update, install and remove /var/lib/apt/lists/* in one RUN"
            )
            fix = _merge_apt(ctx, info, later)
            findings.append(Finding("apt-update-separate", ins.start_line, message, fix,
                                    ins.display()))
    return findings


def _merge_apt(ctx: Context, update: RunInfo, later: list[RunInfo]) -> str | None:
    """Fold a lone ``apt-get update`` into the single RUN that installs after it."""
    df = ctx.dockerfile
    ins = update.instruction
    if len(later) != 1 or len(update.commands) != 1 or ins.heredocs or ins.exec_form or \
            ins.end_line != ins.start_line:
        return None
    target = later[0].instruction
    if target.heredocs or target.exec_form is not None:
        return None
    first = df.lines[target.start_line - 1]
    match = re.match(r"^(\s*RUN\s+(?:--\S+\s+)*)(\S.*)$", first, re.I)
    if not match or match.group(2).startswith(df.escape):
        return None
    update_text = ins.args.strip()
    lines = list(df.lines)
    lines[target.start_line - 1] = f"{match.group(1)}{update_text} && {match.group(2)}"
    probe = Dockerfile(lines, df.newline, df.final_newline, df.directives, df.escape, [], [], [])
    appended = _append_command(probe, target, "rm -rf /var/lib/apt/lists/*")
    if appended is None:
        return None
    del appended[ins.start_line - 1]
    return _diff(df.lines, appended, ctx.path)


_CACHE_HOMES = {
    "apt": ("/var/lib/apt",),
    "apk": ("/var/cache/apk", "/etc/apk/cache"),
    "yum": ("/var/cache/yum",),
    "dnf": ("/var/cache/dnf", "/var/cache/libdnf5"),
    "microdnf": ("/var/cache/yum", "/var/cache/dnf"),
    "tdnf": ("/var/cache/tdnf",),
    "pip": ("/.cache", "/pip"),
    "npm": (".npm",),
}
_CLEANUPS = {
    "apt": "rm -rf /var/lib/apt/lists/*",
    "apk": "rm -rf /var/cache/apk/*",
    "yum": "yum clean all",
    "dnf": "dnf clean all",
    "microdnf": "microdnf clean all",
    "tdnf": "tdnf clean all",
    "npm": "npm cache clean --force",
}


def _writes_cache(manager: str, steps: list[Step], env: dict[str, str]) -> bool:
    """Whether the commands of ``manager`` in one RUN leave a cache or index behind."""
    kinds = {s.kind for s in steps}
    if manager == "apt":
        return {"os-update", "os-install"} <= kinds
    if manager == "apk":
        return any(s.kind in ("os-install", "os-update") and not s.no_cache for s in steps)
    if manager == "pip":
        installs = [s for s in steps if s.kind in ("dep", "named", "source")]
        return any(not s.no_cache for s in installs) and not env.get("PIP_NO_CACHE_DIR")
    if manager == "npm":
        return bool(kinds & {"dep", "named"})
    return "os-install" in kinds


def _cleans(command: Command, manager: str) -> bool:
    """``yum clean all``, ``npm cache clean`` and the like: verbs that empty the cache."""
    words = [w for w in command.words if not w.startswith("-")]
    if not words or posixpath.basename(words[0]) != manager:
        return False
    return words[1:2] == ["clean"] or (manager == "npm" and words[1:3] == ["cache", "clean"])


def _removes(path: str, manager: str) -> bool:
    """Whether ``rm`` of ``path`` removes ``manager``'s cache."""
    if manager == "pip":
        return "/.cache" in path or path.startswith(("~/.cache", "$HOME/.cache",
                                                     "${HOME}/.cache"))
    if manager == "npm":
        return ".npm" in path
    if manager == "apt":
        return path.startswith("/var/lib/apt/lists")
    return any(path.startswith(home) for home in _CACHE_HOMES.get(manager, ()))


def _keeps_cache(info: RunInfo, manager: str, env: dict[str, str]) -> bool:
    """Whether this RUN leaves ``manager``'s download cache or index in its layer."""
    steps = [s for s in info.steps if s.manager == manager]
    if not _writes_cache(manager, steps, env):
        return False
    homes = _CACHE_HOMES.get(manager, ())
    if any(home in target for target in info.cache_targets() for home in homes):
        return False
    if manager != "apk" and any(_cleans(c, manager) for c in info.commands):
        return False
    return not any(_removes(path, manager) for path in info.removed_paths())


def package_cache_kept(ctx: Context) -> list[Finding]:
    """Package installs in the shipped image that keep their download cache or index."""
    df = ctx.dockerfile
    final = _final_stages(df)
    findings = []
    for stage in df.stages:
        if stage.index not in final:
            continue
        state = _stage_state(df, stage)
        for index, ins in enumerate(stage.instructions):
            if ins.keyword != "RUN":
                continue
            info = run_info(ins)
            env = dict(state.env_before[index])
            for command in info.commands:
                env.update(dict(command.env))
            managers = [m for m in ("apt", "apk", "yum", "dnf", "microdnf", "tdnf", "pip", "npm")
                        if _keeps_cache(info, m, env)]
            if managers:
                findings.append(_cache_finding(ctx, info, managers))
    return findings


def _cache_finding(ctx: Context, info: RunInfo, managers: list[str]) -> Finding:
    """The finding for one RUN, with a fix that cleans in the same layer."""
    ins = info.instruction
    what = {"apt": "apt's package index (/var/lib/apt/lists)", "apk": "apk's index cache",
            "pip": "pip's wheel cache", "npm": "npm's cache (~/.npm)"}
    kept = ", ".join(what.get(m, f"{m}'s cache") for m in managers)
    message = (
        f"this RUN leaves {kept} in the image layer: it is shipped and pulled with every "
        f"image but never used; clean it in the same RUN or use a "
        f"`--mount=type=cache` for it"
    )
    return Finding("package-cache-kept", ins.start_line, message, _cache_fix(ctx, ins, managers),
                   ins.display())


def _cache_fix(ctx: Context, ins: Instruction, managers: list[str]) -> str | None:
    """``--no-cache-dir`` for pip, a cleanup command at the end of the RUN for the rest."""
    df = ctx.dockerfile
    lines: list[str] | None = list(df.lines)
    if "pip" in managers:
        pattern = re.compile(r"(\b(?:pip[0-9.]*|python[0-9.]*\s+-m\s+pip)\s+install)\b")
        for number in range(ins.start_line, ins.end_line + 1):
            if "--no-cache-dir" not in lines[number - 1]:
                lines[number - 1] = pattern.sub(r"\1 --no-cache-dir", lines[number - 1])
    cleanups = [_CLEANUPS[m] for m in managers if m in _CLEANUPS]
    if cleanups:
        probe = Dockerfile(lines, df.newline, df.final_newline, df.directives, df.escape, [],
                           [], [])
        lines = _append_command(probe, ins, " && ".join(cleanups))
    return _diff(df.lines, lines, ctx.path) if lines is not None else None


# ---------------------------------------------------------------------------------------------
# add-url and latest-tag


def add_url(ctx: Context) -> list[Finding]:
    """``ADD <url>`` without ``--checksum``: fetched on every build, never verified."""
    findings = []
    for ins in ctx.dockerfile.instructions:
        if ins.keyword != "ADD" or ins.has_flag("checksum"):
            continue
        urls = [s for s in _copy_sources(ins) if _is_url(s) and not re.search(
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


# ---------------------------------------------------------------------------------------------
# .dockerignore


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus ``**``) as a regex on slash paths."""
    out = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
            continue
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", index + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[index + 1: end].replace("\\", "\\\\")
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                index = end
        else:
            out.append(re.escape(char))
        index += 1
    try:
        return re.compile("".join(out) + r"(?:/.*)?\Z")
    except re.error:
        return re.compile(re.escape(pattern) + r"(?:/.*)?\Z")


def _ignored(dockerignore: str, path: str) -> bool:
    """Whether ``path`` is left out of the context (last matching pattern wins, ``!`` undoes)."""
    result = False
    for raw in _file_lines(dockerignore):
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip()
        pattern = posixpath.normpath(pattern.replace("\\", "/")).lstrip("/")
        if pattern in ("", "."):
            continue
        if _pattern_regex(pattern).match(path):
            result = not negate
    return result


def _looks_like_node(df: Dockerfile) -> bool:
    """Whether the build is a Node one (so a local node_modules would be sent and copied)."""
    for stage in df.stages:
        if re.match(r"^(.*/)?node(:|$)", stage.image.lower()):
            return True
    for ins in df.instructions:
        if ins.keyword in ("COPY", "ADD") and any(
            "package" in posixpath.basename(s) and s.endswith(("json", "*"))
            for s in _copy_sources(ins)
        ):
            return True
        if ins.keyword == "RUN" and any(s.manager in ("npm", "yarn", "pnpm")
                                        for s in run_info(ins).steps):
            return True
    return False


def _file_lines(text: str) -> list[str]:
    """Lines as Docker and ``patch`` see them: split on newlines only (``splitlines`` would also
    split on form feeds and other separators, and the fix would not apply)."""
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    return lines[:-1] if lines[-1] == "" else lines


def _ignore_path(path: str) -> str:
    """Where the .dockerignore next to the Dockerfile lives, for diff headers."""
    directory = posixpath.dirname(_display_path(path))
    return posixpath.join(directory, ".dockerignore") if directory else ".dockerignore"


def dockerignore_missing(ctx: Context) -> list[Finding]:
    """``COPY .`` with no .dockerignore: the whole folder, VCS data included, is hashed."""
    if not ctx.check_dockerignore or ctx.dockerignore is not None:
        return []
    ins = next((i for i in ctx.dockerfile.instructions if _copies_context(i)), None)
    if ins is None:
        return []
    entries = [".git"] + (["node_modules"] if _looks_like_node(ctx.dockerfile) else [])
    message = (
        f"`{ins.display()}` copies the whole build context and there is no .dockerignore: "
        f"every file there ({', '.join(entries)}, editor and build leftovers) is part of the "
        f"step's cache key, so unrelated changes bust it; add a .dockerignore"
    )
    fix = _diff([], entries, _ignore_path(ctx.path), created=True)
    return [Finding("dockerignore-missing", ins.start_line, message, fix, ins.display())]


def dockerignore_leaks(ctx: Context) -> list[Finding]:
    """A .dockerignore that still lets ``.git`` (or ``node_modules`` for Node) into the copy."""
    if not ctx.check_dockerignore or ctx.dockerignore is None:
        return []
    ins = next((i for i in ctx.dockerfile.instructions if _copies_context(i)), None)
    if ins is None:
        return []
    leaks = []
    if ctx.vcs_in_context and not _ignored(ctx.dockerignore, ".git/HEAD"):
        leaks.append(".git")
    if _looks_like_node(ctx.dockerfile) and not _ignored(ctx.dockerignore,
                                                         "node_modules/x/package.json"):
        leaks.append("node_modules")
    if not leaks:
        return []
    message = (
        f"the .dockerignore does not exclude {' or '.join(leaks)}, so `{ins.display()}` copies "
        f"it: its content changes on every commit or install and busts this step and all "
        f"after it; add {', '.join(leaks)} to .dockerignore"
    )
    old = _file_lines(ctx.dockerignore)
    fix = _diff(old, old + leaks, _ignore_path(ctx.path))
    return [Finding("dockerignore-leaks", ins.start_line, message, fix, ins.display())]


# ---------------------------------------------------------------------------------------------
# volatile-arg-early

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


def _volatility(name: str, value: str | None) -> str | None:
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


def _expensive(ins: Instruction) -> bool:
    """A step worth keeping cached: anything but trivial commands and metadata."""
    if ins.keyword == "RUN":
        info = run_info(ins)
        return not info.readable or not info.kinds() <= CHEAP_KINDS
    return _broad_copy(ins)


def _implicit_reader(ins: Instruction) -> bool:
    """A RUN that might read the variable from its environment (builds, scripts)."""
    if ins.keyword != "RUN":
        return False
    info = run_info(ins)
    return not info.readable or not info.kinds() <= (INSTALL_KINDS | CHEAP_KINDS | {
        "os-update", "fetch"})


@dataclass(frozen=True)
class _Facts:
    """Per-instruction facts of one stage, computed once for all of its ARGs."""

    names: list[frozenset[str]]
    expensive: list[bool]
    reader: list[bool]
    first_broad: int


def _facts(insts: list[Instruction]) -> _Facts:
    """Variables mentioned, cost and implicit use of the environment, per instruction."""
    return _Facts(
        names=[names_in(_text(i)) for i in insts],
        expensive=[_expensive(i) for i in insts],
        reader=[_implicit_reader(i) for i in insts],
        first_broad=next((j for j, i in enumerate(insts) if _broad_copy(i)), len(insts)),
    )


_LITERAL_DATE = re.compile(r"\d{4}-?\d{2}-?\d{2}([T ]?\d{2}:?\d{2}(:?\d{2}(\.\d+)?)?Z?)?")


def volatile_arg_early(ctx: Context) -> list[Finding]:
    """ARGs with changing values (dates, commit ids) in scope before expensive steps, and ENVs
    set to such values in the Dockerfile itself (a release script rewrites them)."""
    findings = []
    for stage in ctx.dockerfile.stages:
        insts = stage.instructions
        facts: _Facts | None = None
        for index, ins in enumerate(insts):
            if ins.keyword == "ARG":
                pairs = [(n, v, _volatility(n, v)) for n, v in arg_pairs(ins)]
                check = _volatile_finding
            elif ins.keyword == "ENV":
                pairs = [(n, v, _env_volatility(n, v)) for n, v in env_pairs(ins)]
                check = _volatile_env_finding
            else:
                continue
            for name, _, kind in pairs:
                if kind is None:
                    continue
                facts = facts or _facts(insts)
                finding = check(ctx, insts, facts, index, name, kind)
                if finding is not None:
                    findings.append(finding)
    return findings


def _line_list(insts: list[Instruction], indexes: list[int]) -> str:
    """``4, 6, 9 and 2 more``: the lines of the steps a finding names."""
    return ", ".join(str(insts[j].start_line) for j in indexes[:5]) + (
        f" and {len(indexes) - 5} more" if len(indexes) > 5 else "")


def _env_volatility(name: str, value: str) -> str | None:
    """An ENV literal that a build or release rewrites: a volatile name or a dated value.

    One set from a variable (``ENV SHA=$GIT_SHA``) is the ARG's finding, not this one.
    """
    if "$" in value:
        return None
    if _LITERAL_DATE.fullmatch(value.strip("'\"")):
        return "date"
    return _volatility(name, value)


def _volatile_env_finding(
    ctx: Context, insts: list[Instruction], facts: _Facts, index: int, name: str, kind: str
) -> Finding | None:
    """An ENV's value is part of every later step's cache key: a changed value rebuilds all."""
    limit = facts.first_broad if kind == "commit" else len(insts)
    wasted = [j for j in range(index + 1, limit)
              if facts.expensive[j] and name not in facts.names[j]]
    if not wasted:
        return None
    ins = insts[index]
    lines = _line_list(insts, wasted)
    why = "a date" if kind == "date" else "a commit id"
    message = (
        f"`ENV {name}` holds {why}, rewritten for each release or build; a changed ENV changes "
        f"the cache key of every later step, so the step(s) at line {lines} rebuild each time; "
        f"set it after them (or pass it as a build argument where it is needed)")
    fix = None
    if len(env_pairs(ins)) == 1:
        fix = _move_arg(ctx, insts, facts, index, {name}, wasted, pairs=1)
    return Finding("volatile-arg-early", ins.start_line, message, fix, ins.display())


def _volatile_finding(
    ctx: Context, insts: list[Instruction], facts: _Facts, index: int, name: str, kind: str
) -> Finding | None:
    """Check one volatile ARG: which expensive steps its changes rebuild for nothing."""
    names = {name}
    derived = False
    for j in range(index + 1, len(insts)):
        if insts[j].keyword == "ENV" and facts.names[j] & names:
            derived = True
            names |= {n for n, _ in env_pairs(insts[j])}
    bust = next((j for j in range(index + 1, len(insts)) if insts[j].keyword == "RUN" or (
        insts[j].keyword in ("COPY", "ADD", "WORKDIR", "USER") and facts.names[j] & names)),
        None)
    if bust is None:
        return None
    limit = facts.first_broad if kind == "commit" else len(insts)
    wasted = [j for j in range(bust, limit) if facts.expensive[j] and not facts.names[j] & names]
    if not wasted:
        return None
    ins = insts[index]
    lines = _line_list(insts, wasted)
    why = "changes on every build" if kind == "date" else "changes on every commit"
    message = (
        f"`{name}` {why} and is in scope from line {ins.start_line}; Docker uses a changed "
        f"build argument at the first RUN after it, so the step(s) at line {lines} rebuild "
        f"each time; declare it just before the step that needs it (or at the end)"
    )
    fix = None if derived else _move_arg(ctx, insts, facts, index, names, wasted)
    return Finding("volatile-arg-early", ins.start_line, message, fix, ins.display())


def _move_arg(
    ctx: Context, insts: list[Instruction], facts: _Facts, index: int, names: set[str],
    wasted: list[int], pairs: int | None = None,
) -> str | None:
    """Move the ARG (and LABELs that use it) down to where it is first needed.

    A RUN that might read the value from its environment (a build script) keeps it above
    itself; if a needlessly rebuilt step comes at or after that RUN, moving the ARG cannot
    spare it, and a fix that leaves the finding standing is not offered.
    """
    df = ctx.dockerfile
    if (pairs if pairs is not None else len(arg_pairs(insts[index]))) != 1:
        return None
    target = next((j for j in range(index + 1, len(insts)) if insts[j].keyword != "LABEL" and (
        facts.names[j] & names or facts.reader[j])), len(insts))
    if any(j >= target for j in wasted):
        return None
    moved = [index] + [j for j in range(index + 1, target)
                       if insts[j].keyword == "LABEL" and facts.names[j] & names]
    block: list[str] = []
    removed: set[int] = set()
    for j in moved:
        block += _lines_of(df, insts[j])
        removed.update(range(insts[j].start_line, insts[j].end_line + 1))
    anchor = insts[target].start_line if target < len(insts) else insts[-1].end_line + 1
    new = [line for number, line in enumerate(df.lines[: anchor - 1], start=1)
           if number not in removed]
    new += block
    new += [line for number, line in enumerate(df.lines[anchor - 1:], start=anchor)
            if number not in removed]
    return _diff(df.lines, new, ctx.path)


RULES: dict[str, Callable[[Context], list[Finding]]] = {
    "source-before-deps": source_before_deps,
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


