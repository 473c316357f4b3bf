"""`cachewatch doctor` rule by rule: the parser's line numbers, each rule firing and staying
silent, the fixes being real edits, and no input (however odd) making it raise."""

from __future__ import annotations

import json
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachewatch.sources.docker.doctor import analyze, apply_fix, parse, to_json, to_text
from cachewatch.sources.docker.doctor.dockerfile import expand, references
from cachewatch.sources.docker.doctor.installers import classify
from cachewatch.sources.docker.doctor.report import dockerignore_for, exit_code
from cachewatch.sources.docker.doctor.shell import split_commands

GOOD_IGNORE = ".git\nnode_modules\n"


def dockerfile(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def found(text: str, ignore: str | None = GOOD_IGNORE, **kwargs) -> set[tuple[str, int]]:
    return {(f.rule, f.line) for f in analyze(dockerfile(text), "Dockerfile", ignore, **kwargs)}


def rule(text: str, name: str, ignore: str | None = GOOD_IGNORE, **kwargs):
    return [f for f in analyze(dockerfile(text), "Dockerfile", ignore, **kwargs) if f.rule == name]


def kinds(script: str) -> list[str]:
    return [classify(command).kind for command in split_commands(script)]


# --- parser ------------------------------------------------------------------------------------


def test_continuations_comments_and_blank_lines_inside_them_keep_line_numbers():
    df = parse(dockerfile("""
        # comment
        FROM debian:12 AS base

        RUN apt-get update \\
            # a comment inside the continuation does not end it
            && apt-get install -y curl \\

            && rm -rf /var/lib/apt/lists/*
        CMD ["bash"]
        """))
    spans = [(i.keyword, i.start_line, i.end_line) for i in df.instructions]
    assert spans == [("FROM", 2, 2), ("RUN", 4, 8), ("CMD", 9, 9)]
    run = df.instructions[1]
    assert "&& apt-get install -y curl" in run.args
    assert "comment" not in run.args
    assert df.stages[0].name == "base"


def test_escape_directive_backtick_makes_backslash_ordinary():
    df = parse("# escape=`\nFROM mcr.microsoft.com/windows/servercore:ltsc2022\n"
               "COPY Install.cmd C:\\TEMP\\\nRUN dir `\n  C:\\\nUSER app\n")
    assert df.escape == "`"
    assert [(i.keyword, i.start_line, i.end_line) for i in df.instructions] == [
        ("FROM", 2, 2), ("COPY", 3, 3), ("RUN", 4, 5), ("USER", 6, 6)]


def test_directive_only_counts_at_the_very_top():
    df = parse("# hello\n# escape=`\nFROM x:1\nRUN a `\nUSER b\n")
    assert df.escape == "\\"
    assert "escape" not in df.directives
    assert [i.keyword for i in df.instructions] == ["FROM", "RUN", "USER"]
    assert parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM x:1\n").directives == {
        "syntax": "docker/dockerfile:1", "escape": "`"}


def test_heredoc_bodies_are_data_not_instructions():
    df = parse(dockerfile("""
        FROM alpine:3.20
        RUN <<EOF
        echo a \\
        # not a comment for Docker
        USER root
        EOF
        COPY <<-"CONF" <<two /etc/app/
        \tkey=value
        \tCONF
        second file
        two
        USER nobody
        """))
    spans = [(i.keyword, i.start_line, i.end_line) for i in df.instructions]
    assert spans == [("FROM", 1, 1), ("RUN", 2, 6), ("COPY", 7, 11), ("USER", 12, 12)]
    run, copy = df.instructions[1], df.instructions[2]
    assert run.heredocs[0].body == "echo a \\\n# not a comment for Docker\nUSER root\n"
    assert [h.name for h in copy.heredocs] == ["CONF", "two"]
    assert copy.heredocs[0].chomp


def test_unterminated_heredoc_takes_the_rest_of_the_file():
    df = parse("FROM a:1\nRUN <<EOF\napt-get update\n")
    assert [(i.keyword, i.end_line) for i in df.instructions] == [("FROM", 1), ("RUN", 3)]


def test_here_string_and_quoted_heredoc_in_a_command_are_not_heredocs():
    df = parse('FROM a:1\nRUN bash -c "cat <<EOF" && grep x <<<"$y"\nUSER z\n')
    assert [i.keyword for i in df.instructions] == ["FROM", "RUN", "USER"]
    assert df.instructions[1].heredocs == ()


def test_flags_exec_form_and_stages():
    df = parse(dockerfile("""
        ARG BASE=python:3.12-slim
        FROM --platform=$BUILDPLATFORM ${BASE} AS build
        RUN --mount=type=cache,target=/root/.cache/pip --mount=type=bind,source=a.txt \\
            --network=none pip install -r a.txt
        COPY --from=build --chown=app:app --link /src /dst
        CMD ["python", "-m", "app"]
        RUN [not json
        """))
    assert [a.args for a in df.global_args] == ["BASE=python:3.12-slim"]
    stage = df.stages[0]
    assert (stage.name, stage.image, stage.platform) == ("build", "${BASE}", "$BUILDPLATFORM")
    run, copy, cmd, broken = stage.instructions
    assert run.mounts() == [{"type": "cache", "target": "/root/.cache/pip"},
                            {"type": "bind", "source": "a.txt"}]
    assert run.flag("network") == "none"
    assert run.args == "pip install -r a.txt"
    assert copy.flag("from") == "build"
    assert copy.flag("chown") == "app:app"
    assert copy.has_flag("link")
    assert cmd.exec_form == ("python", "-m", "app")
    assert broken.exec_form is None
    assert broken.args == "[not json"
    assert df.global_arg_defaults() == {"BASE": "python:3.12-slim"}


def test_crlf_bom_and_unknown_instructions():
    df = parse("\ufeffFROM a:1\r\nRUN echo \\\r\n  hi\r\nFROOB bar\r\n")
    assert df.newline == "\r\n"
    assert [(i.keyword, i.start_line, i.end_line) for i in df.instructions] == [
        ("FROM", 1, 1), ("RUN", 2, 3), ("FROOB", 4, 4)]
    assert df.instructions[1].args == "echo   hi"


@pytest.mark.parametrize("text", ["", "\n\n", "\\", "RUN", "FROM", "#", "<<EOF", "[", "\x00\r",
                                  "RUN <<", "FROM a AS", "ARG =x", "COPY --from= .", "\u2028"])
def test_odd_input_parses(text):
    parse(text)
    assert analyze(text, "Dockerfile", None) is not None


def test_expand_and_references():
    env = {"A": "x", "EMPTY": ""}
    assert expand("${A}-$A-${B:-d}-${EMPTY:-e}-${A:+y}", env) == "x-x-d-e-y"
    assert expand("$B", env) is None
    assert references("echo ${GIT_SHA%%-*} $X", {"GIT_SHA"})
    assert not references("echo $GIT_SHAX", {"GIT_SHA"})


def test_commands_and_what_they_do():
    assert kinds("set -eux; apt-get update && apt-get install -y curl; rm -rf /x") == [
        "cheap", "os-update", "os-install", "cheap"]
    assert kinds("pip install -r requirements.txt") == ["dep"]
    assert kinds("python3 -m pip install --no-cache-dir .") == ["source"]
    assert kinds("pip install -e . && pip install gunicorn") == ["source", "named"]
    assert kinds("npm ci && npm run build") == ["dep", "source"]
    assert kinds("npm install -g pnpm && npm install left-pad") == ["named", "other"]
    assert kinds("yarn --frozen-lockfile && yarn build") == ["dep", "source"]
    assert kinds("go mod download && go build ./...") == ["dep", "source"]
    assert kinds("mvn -B dependency:go-offline && mvn package") == ["dep", "source"]
    assert kinds("bundle install && composer install --no-scripts && composer install") == [
        "dep", "dep", "source"]
    assert kinds("mix do deps.get, deps.compile") == ["dep"]
    assert kinds("poetry install --no-root && poetry install") == ["dep", "source"]
    assert kinds("uv sync --locked --no-install-project && uv sync --locked") == ["dep", "source"]
    assert kinds("apt-get install -y ./local.deb") == ["source"]
    assert kinds("if [ -f yarn.lock ]; then yarn; fi") == ["cheap", "dep"]
    assert kinds("DEBIAN_FRONTEND=noninteractive sudo apt-get -y upgrade") == ["os-install"]


# --- source-before-deps --------------------------------------------------------------------------


def test_copy_everything_then_pip_install_is_found_and_fixed():
    text = dockerfile("""
        FROM python:3.12-slim
        WORKDIR /app
        COPY . .
        RUN pip install --no-cache-dir -r requirements.txt
        CMD ["python", "app.py"]
        """)
    [finding] = list(analyze(text, "Dockerfile", GOOD_IGNORE))
    assert (finding.rule, finding.line) == ("source-before-deps", 4)
    assert "requirements.txt" in finding.message
    assert "COPY . ." in finding.message
    fixed = apply_fix(text, finding.fix)
    assert fixed == dockerfile("""
        FROM python:3.12-slim
        WORKDIR /app
        COPY requirements.txt ./
        RUN pip install --no-cache-dir -r requirements.txt
        COPY . .
        CMD ["python", "app.py"]
        """)
    assert analyze(fixed, "Dockerfile", GOOD_IGNORE) == []


@pytest.mark.parametrize(("install", "manifests"), [
    ("npm ci", "COPY package.json package-lock.json* ./"),
    ("yarn install --frozen-lockfile", "COPY package.json yarn.lock* ./"),
    ("go mod download", "COPY go.mod go.sum* ./"),
    ("bundle install", "COPY Gemfile Gemfile.lock* ./"),
    ("mvn dependency:go-offline", "COPY pom.xml ./"),
    ("composer install --no-scripts --no-autoloader", "COPY composer.json composer.lock* ./"),
    ("mix deps.get --only prod", "COPY mix.exs mix.lock* ./"),
    ("poetry install --no-root", "COPY pyproject.toml poetry.lock* ./"),
    ("pipenv install --deploy --system", "COPY Pipfile Pipfile.lock* ./"),
])
def test_every_ecosystem_gets_its_manifests_copied_first(install, manifests):
    text = f"FROM base:1\nWORKDIR /src\nCOPY . .\nRUN {install}\nRUN make\n"
    [finding] = rule(text, "source-before-deps")
    assert finding.line == 4
    fixed = apply_fix(text, finding.fix)
    assert fixed == f"FROM base:1\nWORKDIR /src\n{manifests}\nRUN {install}\nCOPY . .\nRUN make\n"


@pytest.mark.parametrize("build", [
    "pip install .", "pip install -e .", "npm run build", "go build -o /app .",
    "cargo build --release", "mvn package", "poetry install", "composer install",
    "./gradlew build", "python setup.py install", "dotnet publish -c Release",
])
def test_installs_that_need_the_sources_are_not_dependency_steps(build):
    assert not rule(f"FROM base:1\nCOPY . .\nRUN {build}\n", "source-before-deps")


def test_well_ordered_dockerfiles_are_left_alone():
    assert not rule("""
        FROM node:20-alpine AS deps
        WORKDIR /app
        COPY package.json package-lock.json ./
        RUN --mount=type=cache,target=/root/.npm npm ci
        COPY . .
        RUN npm run build

        FROM golang:1.22 AS go
        WORKDIR /src
        COPY go.mod go.sum ./
        RUN go mod download
        COPY . .
        RUN go build -o /out/app ./cmd/app

        FROM gcr.io/distroless/static:nonroot
        COPY --from=go /out/app /app
        """, "source-before-deps")


def test_install_after_a_copy_in_another_stage_is_fine():
    assert not rule("""
        FROM python:3.12 AS src
        COPY . /src
        FROM python:3.12
        COPY requirements.txt .
        RUN pip install --no-cache-dir -r requirements.txt
        COPY --from=src /src /app
        """, "source-before-deps")


def test_install_needing_manifests_copied_earlier_only_moves_the_run():
    text = dockerfile("""
        FROM node:21-alpine
        WORKDIR /app
        COPY package*.json ./
        COPY . .
        RUN npm ci
        """)
    [finding] = rule(text, "source-before-deps")
    assert apply_fix(text, finding.fix) == dockerfile("""
        FROM node:21-alpine
        WORKDIR /app
        COPY package*.json ./
        RUN npm ci
        COPY . .
        """)


def test_system_packages_after_the_copy_move_up_with_their_context():
    text = dockerfile("""
        FROM ubuntu:24.04
        COPY . /srv/app
        ENV DEBIAN_FRONTEND=noninteractive
        WORKDIR /srv/app
        RUN apt-get update && apt-get install -y libpq5 && rm -rf /var/lib/apt/lists/*
        RUN ./configure && make
        """)
    [finding] = rule(text, "source-before-deps")
    assert finding.line == 5
    assert "apt-get install" in finding.message
    fixed = apply_fix(text, finding.fix)
    assert fixed.splitlines()[1:5] == [
        "ENV DEBIAN_FRONTEND=noninteractive", "WORKDIR /srv/app",
        "RUN apt-get update && apt-get install -y libpq5 && rm -rf /var/lib/apt/lists/*",
        "COPY . /srv/app"]


def test_relative_workdir_moved_above_the_copy_rewrites_its_destination():
    text = "FROM ruby:3.3\nCOPY . app/\nWORKDIR app\nRUN bundle install\n"
    [finding] = rule(text, "source-before-deps")
    assert apply_fix(text, finding.fix) == (
        "FROM ruby:3.3\nWORKDIR app\nCOPY Gemfile Gemfile.lock* ./\nRUN bundle install\n"
        "COPY . ./\n")


def test_copy_flags_carry_over_to_the_manifest_copy():
    text = "FROM node:20\nUSER node\nWORKDIR /home/node\nCOPY --chown=node:node . .\nRUN npm ci\n"
    [finding] = rule(text, "source-before-deps")
    assert "COPY --chown=node:node package.json package-lock.json* ./" in finding.fix


def test_dependency_step_is_split_out_of_a_mixed_run():
    text = "FROM node:20\nWORKDIR /app\nCOPY . .\nRUN npm ci && npm run build\n"
    [finding] = rule(text, "source-before-deps")
    fixed = apply_fix(text, finding.fix)
    assert fixed == ("FROM node:20\nWORKDIR /app\nCOPY package.json package-lock.json* ./\n"
                     "RUN npm ci\nCOPY . .\nRUN npm ci && npm run build\n")


def test_a_step_that_may_read_the_sources_stops_the_move():
    assert not rule("FROM python:3\nCOPY . .\nRUN chmod +x run.sh\nRUN pip install -r r.txt\n",
                    "source-before-deps")
    assert not rule("FROM python:3\nCOPY . .\nRUN python gen.py\nRUN pip install -r r.txt\n",
                    "source-before-deps")


def test_manifest_from_a_place_we_cannot_map_keeps_quiet():
    assert not rule("FROM python:3\nCOPY src /app/src\nRUN pip install -r /etc/req.txt\n",
                    "source-before-deps")
    assert not rule("FROM x:1\nWORKDIR $DIR\nCOPY . .\nRUN npm ci\n", "source-before-deps")


# --- apt-update-separate -------------------------------------------------------------------------


def test_apt_update_in_its_own_run_is_merged_into_the_install():
    text = "FROM debian:12\nRUN apt-get update\nRUN apt-get install -y curl\n"
    [finding] = rule(text, "apt-update-separate")
    assert finding.line == 2
    assert apply_fix(text, finding.fix) == (
        "FROM debian:12\nRUN apt-get update && apt-get install -y curl && "
        "rm -rf /var/lib/apt/lists/*\n")
    assert found(apply_fix(text, finding.fix)) == set()


def test_apt_update_with_its_install_or_a_cache_mount_is_fine():
    assert not rule("FROM debian:12\nRUN apt-get update && apt-get install -y curl\n",
                    "apt-update-separate")
    assert not rule("FROM debian:12\nRUN --mount=type=cache,target=/var/lib/apt apt-get update\n"
                    "RUN --mount=type=cache,target=/var/lib/apt apt-get install -y curl\n",
                    "apt-update-separate")
    assert not rule("FROM debian:12\nRUN apt-get update\nRUN echo done\n", "apt-update-separate")


def test_two_installs_on_one_update_are_reported_without_a_fix():
    [finding] = rule("FROM debian:12\nRUN apt-get update\nRUN apt-get install -y a\n"
                     "RUN apt-get install -y b\n", "apt-update-separate")
    assert finding.fix is None


# --- package-cache-kept --------------------------------------------------------------------------


@pytest.mark.parametrize("run", [
    "apt-get update && apt-get install -y curl && rm -rf /var/lib/apt/lists/*",
    "--mount=type=cache,target=/var/cache/apt --mount=type=cache,target=/var/lib/apt "
    "apt-get update && apt-get install -y curl",
    "apk add --no-cache curl",
    "apk add curl && rm -rf /var/cache/apk/*",
    "pip install --no-cache-dir flask",
    "--mount=type=cache,target=/root/.cache/pip pip install -r requirements.txt",
    "PIP_NO_CACHE_DIR=1 pip install flask",
    "npm ci && npm cache clean --force",
    "--mount=type=cache,target=/root/.npm npm ci",
    "dnf install -y git && dnf clean all",
    "apt-get install -y curl",
])
def test_clean_installs_are_fine(run):
    assert not rule(f"FROM x:1\nRUN {run}\n", "package-cache-kept")


@pytest.mark.parametrize(("run", "fixed"), [
    ("apt-get update && apt-get install -y curl && apt-get clean",
     "apt-get update && apt-get install -y curl && apt-get clean && rm -rf /var/lib/apt/lists/*"),
    ("apk update && apk add git", "apk update && apk add git && rm -rf /var/cache/apk/*"),
    ("python3 -m pip install -r requirements.txt",
     "python3 -m pip install --no-cache-dir -r requirements.txt"),
    ("npm install", "npm install && npm cache clean --force"),
    ("yum install -y git", "yum install -y git && yum clean all"),
])
def test_kept_caches_are_found_and_cleaned_in_the_same_layer(run, fixed):
    text = f"FROM x:1\nRUN {run}\n"
    [finding] = rule(text, "package-cache-kept")
    assert apply_fix(text, finding.fix) == f"FROM x:1\nRUN {fixed}\n"


def test_pip_no_cache_dir_in_env_counts():
    assert not rule("FROM python:3\nENV PIP_NO_CACHE_DIR=1\nRUN pip install flask\n",
                    "package-cache-kept")


def test_caches_left_in_build_stages_do_not_reach_the_image():
    assert not rule("""
        FROM node:20 AS build
        RUN npm ci && npm run build
        FROM nginx:1.27
        COPY --from=build /app/dist /usr/share/nginx/html
        """, "package-cache-kept")
    assert rule("""
        FROM python:3.12 AS base
        RUN pip install flask
        FROM base
        CMD ["flask", "run"]
        """, "package-cache-kept")


def test_heredoc_run_gets_its_cleanup_before_the_terminator():
    text = "FROM alpine:3\nRUN <<EOF\napk update\napk add git\nEOF\n"
    [finding] = rule(text, "package-cache-kept")
    assert apply_fix(text, finding.fix) == (
        "FROM alpine:3\nRUN <<EOF\napk update\napk add git\nrm -rf /var/cache/apk/*\nEOF\n")


def test_python_heredoc_is_not_read_as_shell():
    assert not rule("FROM python:3\nRUN <<EOF\n#!/usr/bin/env python3\nprint('pip install x')\n"
                    "EOF\n", "package-cache-kept")


# --- add-url -------------------------------------------------------------------------------------


def test_add_url_without_checksum():
    text = dockerfile("""
        FROM alpine:3.20
        ADD https://github.com/krallin/tini/releases/download/v0.19.0/tini /tini
        ADD --checksum=sha256:93dcc18 https://example.com/a.tgz /a.tgz
        ADD local.tgz /opt/
        ADD https://github.com/moby/buildkit.git#9b4b3c6f8bc2c7b6a0d1e3c1f4c5d6e7f8a9b0c1 /bk
        """)
    assert found(text) == {("add-url", 2)}


# --- latest-tag ----------------------------------------------------------------------------------


def test_latest_and_untagged_images():
    text = dockerfile("""
        ARG BASE=debian
        ARG TAG
        FROM ${BASE} AS one
        FROM one AS two
        FROM scratch
        FROM node:latest
        FROM ubuntu:$TAG
        FROM localhost:5000/team/img
        FROM python:3.12@sha256:abc
        FROM quay.io/prometheus/busybox-${OS:-linux}:latest
        COPY --from=one /a /a
        COPY --from=0 /a /a
        COPY --from=alpine /etc/os-release /
        COPY --from=alpine:3.20 /etc/os-release /
        """)
    assert {line for r, line in found(text) if r == "latest-tag"} == {3, 6, 8, 10, 13}


# --- .dockerignore -------------------------------------------------------------------------------


def test_missing_dockerignore_only_matters_for_copy_of_the_context():
    assert found("FROM a:1\nCOPY . /app\n", ignore=None) == {("dockerignore-missing", 2)}
    assert found("FROM a:1\nCOPY src /app/src\n", ignore=None) == set()
    assert found("FROM a:1 AS b\nFROM a:1\nCOPY --from=b . /app\n", ignore=None) == set()
    [finding] = rule("FROM node:20\nCOPY ./ ./\n", "dockerignore-missing", ignore=None)
    assert apply_fix("", finding.fix) == ".git\nnode_modules\n"
    assert "+++ b/.dockerignore" in finding.fix


def test_dockerignore_next_to_a_dockerfile_in_a_folder():
    [finding] = list(analyze("FROM a:1\nCOPY . .\n", "./svc/Dockerfile", None))
    assert "+++ b/svc/.dockerignore" in finding.fix


@pytest.mark.parametrize(("ignore", "leaks"), [
    (".git\nnode_modules\n", set()),
    ("**/.git\n**/node_modules\n", set()),
    ("/.git/\nnode_modules/\n", set()),
    (".git*\nnode_modules/*\n", set()),
    ("*\n!src\n!package.json\n", set()),
    ("node_modules\n", {".git"}),
    (".git\n", {"node_modules"}),
    (".git\nnode_modules\n!.git\n", {".git"}),
    ("# .git\n", {".git", "node_modules"}),
])
def test_dockerignore_patterns(ignore, leaks):
    findings = rule("FROM node:20\nCOPY . .\n", "dockerignore-leaks", ignore=ignore)
    reported = set() if not findings else {w for w in (".git", "node_modules")
                                           if w in findings[0].message}
    assert reported == leaks
    for finding in findings:
        assert not rule("FROM node:20\nCOPY . .\n", "dockerignore-leaks",
                        ignore=apply_fix(ignore, finding.fix))


def test_no_git_in_a_sub_folder_context_and_no_node_modules_outside_node():
    assert not rule("FROM python:3\nCOPY . .\n", "dockerignore-leaks", ignore="*.pyc\n",
                    vcs_in_context=False)
    assert not rule("FROM python:3\nCOPY . .\n", "dockerignore-leaks", ignore=".git\n")
    assert not found("FROM python:3\nCOPY . .\n", ignore=None, check_dockerignore=False)


def test_dockerignore_for_prefers_the_per_dockerfile_file(tmp_path):
    (tmp_path / "app.Dockerfile").write_text("FROM a:1\n")
    assert dockerignore_for(tmp_path / "app.Dockerfile") is None
    (tmp_path / ".dockerignore").write_text(".git\n")
    assert dockerignore_for(tmp_path / "app.Dockerfile") == ".git\n"
    (tmp_path / "app.Dockerfile.dockerignore").write_text("node_modules\n")
    assert dockerignore_for(tmp_path / "app.Dockerfile") == "node_modules\n"


# --- volatile-arg-early --------------------------------------------------------------------------


def test_build_date_before_installs_is_found_and_moved_down():
    text = dockerfile("""
        FROM alpine:3.20
        ARG BUILD_DATE
        LABEL org.opencontainers.image.created=$BUILD_DATE
        RUN apk add --no-cache curl
        COPY app /app
        """)
    [finding] = rule(text, "volatile-arg-early")
    assert finding.line == 2
    assert finding.message == (
        "`BUILD_DATE` changes on every build and is in scope from line 2; Docker uses a changed "
        "build argument at the first RUN after it, so the steps at lines 4 and 5 rebuild each "
        "time; declare it just before the step that needs it (or at the end)")
    fixed = apply_fix(text, finding.fix)
    assert fixed.splitlines()[-2:] == ["ARG BUILD_DATE",
                                       "LABEL org.opencontainers.image.created=$BUILD_DATE"]
    assert not rule(fixed, "volatile-arg-early")


def test_an_env_holding_a_date_or_commit_before_installs_is_found_and_moved_down():
    text = dockerfile("""
        FROM python:3.12-slim
        ENV BUILD_DATE=2024-05-01T10:00:00Z
        COPY requirements.txt .
        RUN pip install --no-cache-dir -r requirements.txt
        COPY . .
        """)
    [finding] = rule(text, "volatile-arg-early")
    assert finding.line == 2
    assert finding.message == (
        "`ENV BUILD_DATE` holds a date, rewritten for each release or build; a changed ENV "
        "changes the cache key of every later step, so the steps at lines 4 and 5 rebuild each "
        "time; set it after them (or pass it as a build argument where it is needed)")
    fixed = apply_fix(text, finding.fix)
    assert fixed.splitlines()[-1] == "ENV BUILD_DATE=2024-05-01T10:00:00Z"
    assert not rule(fixed, "volatile-arg-early")


def test_envs_that_do_not_change_per_build_are_fine():
    assert not rule("""
        FROM python:3.12-slim
        ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 APP_VERSION=1.2.3
        ENV GIT_SHA=$GIT_SHA
        RUN pip install --no-cache-dir flask
        """, "volatile-arg-early")


@pytest.mark.parametrize(("env", "why"), [
    ("GIT_SHA=3f2a9c1", "a commit id"),
    ("VCS_REF 0b8aa346e2d94d4058ffb88c37d3b1d3a8284752", "a commit id"),
    ("BUILD_TIMESTAMP=1714550000", "a date"),
    ("IMAGE_CREATED=\"2024-05-01\"", "a date"),
    ("GITHUB_RUN_NUMBER 52", None),
    ("SOURCE_DATE_EPOCH=0", None),
    ("GIT_COMMIT=unknown", None),
    ("BUILD_NUMBER=dev", None),
    ("CACHEBUST=1", None),
])
def test_an_env_literal_is_volatile_when_its_value_is_a_moment_or_a_commit(env, why):
    """A literal changes only when the file does: a name alone is no evidence, the value is."""
    findings = rule(f"FROM python:3.12-slim\nENV {env}\nRUN pip install --no-cache-dir flask\n",
                    "volatile-arg-early")
    if why is None:
        assert findings == []
    else:
        [finding] = findings
        assert finding.line == 2
        assert f"holds {why}, rewritten" in finding.message


def test_volatile_arg_just_before_its_use_or_at_the_end_is_fine():
    assert not rule("""
        FROM golang:1.22
        COPY go.mod go.sum ./
        RUN go mod download
        COPY . .
        ARG GIT_COMMIT
        RUN go build -ldflags "-X main.commit=$GIT_COMMIT" -o /app
        """, "volatile-arg-early")
    assert not rule("FROM a:1\nRUN apk add --no-cache x\nARG BUILD_DATE\nLABEL d=$BUILD_DATE\n",
                    "volatile-arg-early")


def test_commit_arg_before_the_source_copy_only_costs_the_steps_before_it():
    assert rule("FROM node:20\nARG GIT_SHA\nCOPY package.json .\nRUN npm ci\nCOPY . .\n",
                "volatile-arg-early")
    assert not rule("FROM node:20\nARG GIT_SHA\nCOPY . .\nRUN npm ci\n", "volatile-arg-early")
    assert rule("FROM node:20\nARG CACHEBUST=1\nCOPY . .\nRUN npm ci\n", "volatile-arg-early")


def test_env_from_a_volatile_arg_is_reported_without_an_automatic_move():
    [finding] = rule("FROM a:1\nARG VCS_REF\nENV REVISION=$VCS_REF\nRUN apk add --no-cache x\n",
                     "volatile-arg-early")
    assert finding.fix is None


def test_global_arg_is_not_in_scope_in_stages_and_plain_version_is_not_volatile():
    assert not rule("ARG BUILD_DATE\nFROM a:1\nRUN apk add --no-cache x\n", "volatile-arg-early")
    assert not rule("FROM a:1\nARG VERSION=1.2.3\nRUN apk add --no-cache x\n",
                    "volatile-arg-early")
    assert rule("FROM a:1\nARG VERSION=$(date +%Y%m%d)\nRUN apk add --no-cache x\n",
                "volatile-arg-early")


# --- report --------------------------------------------------------------------------------------


def test_text_json_and_exit_code():
    text = "FROM node\nCOPY . .\nRUN npm ci\n"
    findings = analyze(text, "svc/Dockerfile", None)
    out = to_text(findings, "svc/Dockerfile")
    lines = [line for line in out.splitlines() if not line.startswith("    ")]
    assert lines == [f"svc/Dockerfile:{f.line}: {f.rule}: {f.message}" for f in findings]
    assert any(line.startswith("    --- a/svc/Dockerfile") for line in out.splitlines())
    data = json.loads(to_json(findings, "svc/Dockerfile"))
    assert [(d["rule"], d["line"]) for d in data] == [(f.rule, f.line) for f in findings]
    assert set(data[0]) == {"path", "line", "rule", "message", "fix", "instruction"}
    assert exit_code(findings) == 1
    assert exit_code([]) == 0
    assert to_text([], "x") == ""


def test_apply_fix_keeps_crlf_and_refuses_a_stale_diff():
    text = "FROM python:3\r\nCOPY . .\r\nRUN pip install -r r.txt\r\n"
    [finding] = rule(text, "source-before-deps")
    fixed = apply_fix(text, finding.fix)
    assert fixed == "FROM python:3\r\nCOPY r.txt ./\r\nRUN pip install -r r.txt\r\nCOPY . .\r\n"
    with pytest.raises(ValueError, match="does not match"):
        apply_fix(text.replace("COPY", "ADD"), finding.fix)


# --- properties ----------------------------------------------------------------------------------

FRAGMENTS = st.sampled_from([
    "FROM ", "RUN ", "COPY ", "ADD ", "ARG ", "ENV ", "WORKDIR ", "LABEL ", "USER ", " AS ",
    ". .", ". /app", "\\\n", "`\n", "\n", "\r\n", "# escape=`\n", "<<EOF\n", "EOF\n", "<<-X",
    "apt-get update", "apt-get install -y x", " && ", "; ", "|", "pip install -r r.txt",
    "npm ci", "--mount=type=cache,target=/root/.npm ", "--from=", "node", ":latest", "${X}",
    "BUILD_DATE", "GIT_SHA=1", '["a", "b"]', "[", '"', "'", "#", " ", "$(", ")", "`", "é",
    "https://x/y", "apk add", "rm -rf /var/lib/apt/lists/*", "go mod download", "*", "/", "\x00",
])
INSTRUCTIONS = st.sampled_from([
    "FROM python:3.12", "FROM node AS build", "FROM build", "WORKDIR /app", "WORKDIR app",
    "COPY . .", "COPY . /app", "COPY . app/", "COPY requirements.txt .", "COPY package.json ./",
    "ADD . /srv", "ENV A=1", "ARG X", "USER app", "EXPOSE 80", "LABEL a=b",
    "RUN pip install -r requirements.txt", "RUN npm ci", "RUN npm ci && npm run build",
    "RUN apt-get update && apt-get install -y curl", "RUN apt-get update",
    "RUN apt-get install -y git", "RUN make", "RUN go mod download", "RUN bundle install",
    "RUN mkdir -p /data", "COPY --from=build /a /b", "ARG BUILD_DATE",
])


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(max_size=400))
def test_analyze_never_raises_on_any_text(text):
    for finding in analyze(text, "Dockerfile", None):
        assert finding.line >= 1


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(FRAGMENTS, max_size=50).map("".join), st.none() | st.text(max_size=40))
def test_analyze_never_raises_on_dockerfile_like_text_and_fixes_apply(text, ignore):
    for finding in analyze(text, "Dockerfile", ignore):
        if finding.fix and "+++ b/.dockerignore" in finding.fix:
            apply_fix(ignore or "", finding.fix)
        elif finding.fix:
            apply_fix(text, finding.fix)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(INSTRUCTIONS, min_size=1, max_size=12))
def test_source_before_deps_fix_always_removes_the_finding(lines):
    text = "\n".join(lines) + "\n"
    before = rule(text, "source-before-deps")
    for finding in before:
        if finding.fix:
            after = rule(apply_fix(text, finding.fix), "source-before-deps")
            assert len(after) < len(before)


def test_bind_mounting_the_whole_context_is_not_a_dependency_only_step():
    text = "FROM python:3\nCOPY . .\nRUN --mount=type=bind,target=. pip install -r r.txt\n"
    assert not rule(text, "source-before-deps")
    assert not rule("FROM node:20\nCOPY . .\nRUN --mount=target=. npm ci && npm run build\n",
                    "source-before-deps")


def test_cleanup_is_not_written_into_a_data_heredoc():
    [finding] = rule("FROM debian:12\nRUN apt-get update && apt-get install -y x && "
                     "cat <<EOF > /etc/motd\nhello\nEOF\n", "package-cache-kept")
    assert finding.fix is None


@pytest.mark.parametrize(("name", "volatile"), [
    ("BUILD_DATE", True), ("BUILDTIME", True), ("VCS_REF", True), ("GIT_SHA", True),
    ("CI_COMMIT_SHA", True), ("GITHUB_RUN_NUMBER", True), ("CACHEBUST", True), ("TIME", True),
    ("SOURCE_DATE_EPOCH", True), ("TINI_SHA", False), ("RELEASE_DATE", False),
    ("VERSION", False), ("NODE_VERSION", False), ("TARGETPLATFORM", False), ("REF", False),
])
def test_which_names_are_volatile(name, volatile):
    text = f"FROM a:1\nARG {name}\nRUN apk add --no-cache curl\n"
    assert bool(rule(text, "volatile-arg-early")) == volatile


def test_cargo_fetch_after_the_copy_is_reported_without_a_fix_that_cannot_build():
    [finding] = rule("FROM rust:1.80\nWORKDIR /src\nCOPY . .\nRUN cargo fetch\nRUN cargo build\n",
                     "source-before-deps")
    assert finding.line == 4
    assert finding.fix is None
    text = "FROM rust:1.80\nRUN cargo init\nCOPY Cargo.toml .\nCOPY . .\nRUN cargo fetch\n"
    [finding] = rule(text, "source-before-deps")
    assert apply_fix(text, finding.fix).splitlines()[-2:] == ["RUN cargo fetch", "COPY . ."]


def test_a_label_using_a_volatile_arg_does_not_stop_the_move():
    text = "FROM python:3\nCOPY . .\nARG BUILD_DATE\nLABEL d=$BUILD_DATE\nRUN pip install flask\n"
    [finding] = rule(text, "source-before-deps")
    fixed = apply_fix(text, finding.fix)
    assert fixed.splitlines()[:3] == ["FROM python:3", "RUN pip install flask", "COPY . ."]
