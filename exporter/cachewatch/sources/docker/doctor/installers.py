"""What a shell command means for the build cache, read from package managers' command lines.

The rules need to know whether a command installs dependencies from manifests (and which
manifests), installs named packages, needs the project's sources, downloads, cleans, or does
nothing worth caching. Each package manager has a small handler that reads its own verbs and
options; a program nobody knows is ``other``, which no rule ever moves or rewrites.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from .shell import Command

__all__ = ["CHEAP_KINDS", "HOISTABLE_KINDS", "INSTALL_KINDS", "Step", "classify"]


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
    ``project`` is set on a ``source`` step that builds the project from its sources and
    installs its dependencies with it (``pip install .``, ``poetry install``, ``uv sync``), so
    whatever was copied before it decides when every dependency is installed again.
    """

    kind: str
    manager: str | None = None
    manifests: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    no_cache: bool = False
    standalone: bool = True
    project: bool = False


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
            or spec.endswith(_ARCHIVES))


_ARCHIVES = (".whl", ".tar.gz", ".zip", ".deb", ".rpm", ".apk")


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
    local = named = project = False
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
            local = project = True
            index += 1
        elif arg.startswith(("-r", "-c")) and not arg.startswith("--") and len(arg) > 2:
            requirements.append(arg[2:])
        elif arg.startswith(("-e", "--editable=")):
            local = project = True
        elif arg in _PIP_VALUE_OPTIONS:
            index += 1
        elif not arg.startswith("-"):
            local = local or _looks_local(arg)
            named = named or not _looks_local(arg)
            project = project or (_looks_local(arg) and not arg.endswith(_ARCHIVES))
        index += 1
    if local or any(_looks_local(r) and r.startswith("$") for r in requirements):
        with_deps = "--no-deps" not in args and "--no-index" not in args
        return Step("source", manager, no_cache=no_cache, project=project and with_deps)
    if requirements:
        return Step("dep", manager, tuple(requirements), no_cache=no_cache)
    return Step("named" if named else "other", manager, no_cache=no_cache)


def _uv(program: str, args: list[str]) -> Step:
    """uv: ``uv pip install`` reads like pip; ``uv sync --no-install-project`` is deps only.

    ``--no-cache`` (``-n``) is a global option, so it may come before the subcommand.
    """
    positionals = _positionals(args, frozenset({"--cache-dir", "--python", "-p", "--directory",
                                                "--project", "--extra", "--group"}))
    no_cache = "--no-cache" in args or "-n" in args
    if positionals[:2] == ["pip", "sync"]:
        files = tuple(positionals[2:])
        return Step("dep", "uv", files, no_cache=no_cache) if files else Step("other", "uv")
    if positionals[:1] == ["pip"]:
        step = _pip(program, args[args.index("pip") + 1:], "uv")
        return replace(step, no_cache=step.no_cache or no_cache)
    if positionals[:1] == ["sync"]:
        if "--no-install-project" in args or "--only-deps" in args:
            return Step("dep", "uv", ("pyproject.toml",), ("uv.lock",), no_cache=no_cache)
        return Step("source", "uv", no_cache=no_cache, project="--no-install-workspace" not in args)
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
        return Step("source", "poetry", project="--only-root" not in args)
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
