"""What busts a dependency layer: copies in front of installs that never read them, a project
built together with its dependencies, apt's index refreshed in a RUN of its own, uv's cache
shipped, and the repository's own image (``deploy/Dockerfile``) kept free of the first two.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from cachewatch.sources.docker.doctor import analyze, apply_fix

ROOT = Path(__file__).resolve().parents[3]
LAYER_RULES = ("copy-before-install", "deps-with-project")


def findings(text: str, name: str) -> list:
    text = textwrap.dedent(text).lstrip("\n")
    return [f for f in analyze(text, "Dockerfile", None, check_dockerignore=False)
            if f.rule == name]


# --- deps-with-project ------------------------------------------------------------------------

PRE_FIX = """
    FROM python:3.11-slim-bookworm AS deps
    RUN python3 -m venv /opt/venv
    WORKDIR /src
    COPY pyproject.toml README.md ./
    RUN mkdir -p exporter/cachewatch && touch exporter/cachewatch/__init__.py \\
        && /opt/venv/bin/pip install . \\
        && /opt/venv/bin/pip uninstall -y cachewatch pip
    """


def test_the_repository_image_installs_its_dependencies_alone():
    text = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    found = analyze(text, "deploy/Dockerfile", None, check_dockerignore=False)
    assert [f for f in found if f.rule in LAYER_RULES] == []


def test_the_image_before_its_fix_is_told_the_readme_busts_the_dependency_layer():
    [finding] = findings(PRE_FIX, "deps-with-project")
    assert finding.line == 5
    assert finding.fix is None
    assert finding.message == (
        "`/opt/venv/bin/pip install .` builds the project and installs its dependencies in one "
        "layer, after copying README.md (line 4): a change to it reinstalls every dependency; "
        "install the dependencies alone first (`pip install -r requirements.txt`, from a "
        "requirements or lock file or the dependency list), then copy README.md and install the "
        "project with `pip install --no-deps .`")


def test_each_installer_gets_its_own_two_steps():
    [uv] = findings("FROM python:3.12\nCOPY pyproject.toml uv.lock README.md ./\nCOPY src src\n"
                    "RUN uv sync --no-cache\n", "deps-with-project")
    assert "README.md (line 2); src (line 3)" in uv.message
    assert uv.message.endswith("run `uv sync --no-install-project` with only pyproject.toml and "
                               "uv.lock copied, then copy the README and the sources and run "
                               "`uv sync`")
    [poetry] = findings("FROM python:3.12\nCOPY . .\nRUN poetry install\n", "deps-with-project")
    assert "the whole build context (`COPY . .`, line 2)" in poetry.message
    assert "`poetry install --only-root`" in poetry.message
    [editable] = findings("FROM python:3.12\nCOPY setup.py app.py ./\nRUN pip install -e .\n",
                          "deps-with-project")
    assert "after copying app.py (line 2): a change to it" in editable.message


def test_project_installs_that_reinstall_nothing_are_fine():
    for text in (
        # dependencies alone first, the project with --no-deps after its sources
        "FROM python:3.12\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\n"
        "COPY . .\nRUN pip install --no-deps .\n",
        # an earlier dependency step: the project install finds them installed
        "FROM python:3.12\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\n"
        "COPY . .\nRUN pip install .\n",
        # only the manifests in front of it
        "FROM python:3.12\nCOPY pyproject.toml uv.lock ./\nRUN uv sync --no-cache\n",
        "FROM python:3.12\nCOPY pyproject.toml poetry.lock ./\nRUN poetry install --no-root\n",
        # a wheelhouse, offline
        "FROM python:3.12\nCOPY --from=build /wheels /wheels\nCOPY . .\n"
        "RUN pip install --no-index --find-links=/wheels .\n",
    ):
        assert findings(text, "deps-with-project") == [], text


# --- copy-before-install ----------------------------------------------------------------------


def test_a_config_copied_before_dnf_install_is_moved_below_it():
    text = """
        FROM fedora:40
        COPY nginx.conf /etc/nginx/nginx.conf
        RUN dnf install -y nginx && dnf clean all
        CMD ["nginx"]
        """
    [finding] = findings(text, "copy-before-install")
    assert finding.line == 2
    assert finding.message == (
        "`COPY nginx.conf /etc/nginx/nginx.conf` (line 2) comes before `dnf install -y nginx` "
        "(line 3), which does not read it: every change to nginx.conf reinstalls the packages; "
        "copy it after the install")
    fixed = apply_fix(textwrap.dedent(text).lstrip("\n"), finding.fix)
    assert fixed.splitlines() == ["FROM fedora:40", "RUN dnf install -y nginx && dnf clean all",
                                  "COPY nginx.conf /etc/nginx/nginx.conf", 'CMD ["nginx"]']
    assert findings(fixed, "copy-before-install") == []


def test_a_chmod_of_the_copied_script_moves_down_with_it():
    text = ("FROM alpine:3.20\nCOPY entrypoint.sh /entrypoint.sh\nRUN chmod +x /entrypoint.sh\n"
            "RUN apk add --no-cache curl\n")
    [finding] = findings(text, "copy-before-install")
    assert apply_fix(text, finding.fix).splitlines()[1:] == [
        "RUN apk add --no-cache curl", "COPY entrypoint.sh /entrypoint.sh",
        "RUN chmod +x /entrypoint.sh"]


def test_a_stage_output_copied_before_apt_get_install_is_found():
    text = ("FROM golang:1.22 AS build\nCOPY . .\nRUN go build -o /app\n"
            "FROM debian:12\nCOPY --from=build /app /usr/local/bin/app\n"
            "RUN apt-get update && apt-get install -y ca-certificates "
            "&& rm -rf /var/lib/apt/lists/*\n")
    [finding] = findings(text, "copy-before-install")
    assert finding.line == 5
    assert "every change to what stage `build` builds reinstalls the packages" in finding.message


def test_copies_the_install_needs_stay_in_front():
    for text in (
        # package sources, keys and CA certificates are read by the installer
        "FROM debian:12\nCOPY corp.list /etc/apt/sources.list.d/corp.list\n"
        "RUN apt-get update && apt-get install -y x && rm -rf /var/lib/apt/lists/*\n",
        "FROM debian:12\nCOPY ca.crt /usr/local/share/ca-certificates/\n"
        "RUN apt-get update && apt-get install -y x && rm -rf /var/lib/apt/lists/*\n",
        "FROM fedora:40\nCOPY internal.repo /etc/yum.repos.d/\nRUN dnf install -y x\n",
        # the install names the copied file
        "FROM alpine:3.20\nCOPY packages.txt /tmp/\n"
        "RUN apk add --no-cache $(cat /tmp/packages.txt)\n",
        # a root file-system overlay: its files are unknown here
        "FROM fedora:40\nCOPY rootfs/ /\nRUN dnf install -y x\n",
        # an image's files, not a stage of this file
        "FROM debian:12\nCOPY --from=ghcr.io/astral-sh/uv:0.5 /uv /bin/\n"
        "RUN apt-get update && apt-get install -y x && rm -rf /var/lib/apt/lists/*\n",
        # a script it cannot read may use the copy
        "FROM debian:12\nCOPY app.conf /etc/app.conf\nRUN ./setup.sh\nRUN apt-get install -y x\n",
    ):
        assert findings(text, "copy-before-install") == [], text


# --- apt-update-separate, uv's cache ----------------------------------------------------------


def test_update_and_upgrade_in_one_run_and_the_install_in_another():
    text = "FROM debian:12\nRUN apt-get update && apt-get upgrade -y\nRUN apt-get install -y curl\n"
    [finding] = findings(text, "apt-update-separate")
    assert finding.message.startswith("`apt-get update` (with the upgrade) runs in its own RUN "
                                      "(line 2) and the install in another (line 3)")
    assert findings(text, "package-cache-kept") == []  # the lists are this finding's
    assert apply_fix(text, finding.fix).splitlines()[1:] == [
        "RUN apt-get update && apt-get upgrade -y && apt-get install -y curl "
        "&& rm -rf /var/lib/apt/lists/*"]
    assert findings("FROM debian:12\nRUN apt-get update && apt-get upgrade -y "
                    "&& apt-get install -y curl && rm -rf /var/lib/apt/lists/*\n",
                    "apt-update-separate") == []


def test_uv_cache_in_a_shipped_layer_is_found_and_fixed_with_no_cache():
    text = "FROM python:3.12\nCOPY pyproject.toml uv.lock ./\nRUN uv sync --frozen\n"
    [finding] = findings(text, "package-cache-kept")
    assert "uv's cache (~/.cache/uv)" in finding.message
    fixed = apply_fix(text, finding.fix)
    assert fixed.splitlines()[-1] == "RUN uv sync --no-cache --frozen"
    assert findings(fixed, "package-cache-kept") == []
    [pip] = findings("FROM python:3.12\nRUN uv pip install --system flask\n", "package-cache-kept")
    assert "uv's cache" in pip.message


def test_uv_without_a_cache_in_the_layer_is_fine():
    for text in (
        "FROM python:3.12\nRUN uv pip install --no-cache --system flask\n",
        "FROM python:3.12\nRUN uv --no-cache sync\n",
        "FROM python:3.12\nENV UV_NO_CACHE=1\nRUN uv sync\n",
        "FROM python:3.12\nRUN --mount=type=cache,target=/root/.cache/uv uv sync\n",
        "FROM python:3.12\nENV UV_CACHE_DIR=/opt/uv-cache\n"
        "RUN --mount=type=cache,target=/opt/uv-cache uv sync\n",
        "FROM python:3.12\nRUN uv sync && uv cache clean\n",
        # a build stage's cache never ships
        "FROM python:3.12 AS build\nRUN uv sync\nFROM python:3.12\nCOPY --from=build /app /app\n",
    ):
        assert findings(text, "package-cache-kept") == [], text


# --- what the new findings cost ---------------------------------------------------------------


def test_the_copies_in_front_of_a_project_install_are_what_its_cost_counts():
    from cachewatch.sources.docker.doctor import parse
    from cachewatch.sources.docker.doctor.cost import Buster, History, cost_of, describe

    text = textwrap.dedent(PRE_FIX).lstrip("\n")
    [finding] = findings(PRE_FIX, "deps-with-project")
    history = History("cachewatch", 4, (Buster("COPY pyproject.toml README.md ./", 3, 180.0),),
                      "in the last 7d")
    cost = cost_of(parse(text), finding, history)
    assert (cost.busts, cost.seconds, cost.trigger_line) == (3, 180.0, 4)
    assert describe(finding, cost, history) == (
        "cost: installing the dependencies alone first would have saved up to 3 min over 3 "
        "builds in the last 7d (`COPY pyproject.toml README.md ./` (line 4) busted the cache in "
        "3 of the 4 builds of cachewatch)")
