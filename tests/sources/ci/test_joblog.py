"""The CI cache reader, line by line, on each CI's own wording.

The lines follow the wording of the code that prints them: ``actions/cache``'s restore and
save (``Cache restored from key``, ``Cache not found for input keys``, ``Cache saved with
key``), ``actions/setup-node`` (``npm cache is not found``), GitLab Runner's cache script
(``Checking cache for``, ``Successfully extracted cache``, ``Failed to extract cache``,
``Created cache``), CircleCI's ``restore_cache``/``save_cache`` output and the Azure
Pipelines agent's ``PipelineCacheServer`` (``Entry found at fingerprint``, ``Saved item.``).
"""

from __future__ import annotations

import pytest

from cachewatch.sources.ci.joblog import JobLogReader, message
from cachewatch.sources.ci.keys import stable_name


def read(text: str) -> tuple[list[dict], list[dict]]:
    reader = JobLogReader()
    for line in text.splitlines():
        reader.feed(line)
    restores, saves = reader.finish()
    return [r.to_dict() for r in restores], [s.to_dict() for s in saves]


@pytest.mark.parametrize(("key", "ci", "name"), [
    ("node-cache-Linux-x64-npm-f037910a5e2c44e0b0b1e9f1", "", "node-cache-Linux-x64-npm"),
    ("Linux-node-modules-482579847a5939e157ee1a6b1d59e8f7f2b5e5f", "", "Linux-node-modules"),
    ("v1-deps-qwa_N++0aXeaXlpPu1TzrRMKJU1V7n3NYN+0BxBVg20=", "", "v1-deps"),
    ("setup-python-Linux-x64-22.04-Ubuntu-python-3.11.5-pip-0123abcd0123abcd", "",
     "setup-python-Linux-x64-22.04-Ubuntu-python-3.11.5-pip"),
    ('npm|"Linux"|D8R9Hf7a8s9d8f7a6s5d4f3a2s1d=', "", 'npm|"Linux"'),
    ("cd-5-non_protected", "gitlab", "cd"),
    ("main-protected", "gitlab", "main"),
    ("0123456789abcdef0123456789abcdef", "", "files"),
    ("yarn-cache-arch1-6_58-D0_AuAkbuS7gt7h+QkuuifdD4ggj_6o0mKXP8aewiEQ=-XUzc4oblUuD6VhRoBYEv7OC"
     "tEibCDWiNuAbxRwyDlRk=-v4", "", "yarn-cache-arch1-6_58"),
    ("gitlab-fixes-105", "gitlab", "gitlab-fixes-105"),
])
def test_a_cache_is_named_by_its_keys_stable_prefix(key, ci, name):
    assert stable_name(key, ci) == name


def test_a_gitlab_key_that_is_the_ref_keeps_its_digits():
    assert stable_name("v0-23-0-protected", "gitlab", "v0-23-0") == "v0-23-0"
    assert stable_name("v0-23-0-2-protected", "gitlab", "v0-23-0") == "v0-23-0"
    trace = ("Checking out 9833c929 as detached HEAD (ref is v0.23.0)...\n"
             "Checking cache for v0-23-0-protected...\nSuccessfully extracted cache\n")
    assert read(trace)[0] == [{"ci": "gitlab", "cache": "v0-23-0", "result": "hit", "bytes": 0}]


def test_reasons_and_sizes_real_logs_print():
    gitlab = ("Checking cache for b-1-protected...\nFATAL: zip: checksum error\n"
              "Failed to extract cache\n")
    assert read(gitlab)[0][0]["reason"] == "zip: checksum error"
    github = ('Warning: Failed to restore: "/usr/bin/tar" failed with error\n'
              "Cache not found for input keys: nix-f69b52731a4e03a, nix-f69b52731a4e03a\n")
    assert read(github)[0][0]["reason"] == 'Failed to restore: "/usr/bin/tar" failed with error'
    sent = ("Sent 65867307 of 65867307 (100.0%), 27.5 MBs/sec\n"
            "Cache saved with key: venv-Linux-443fe1c\n")
    assert read(sent)[1] == [{"ci": "github", "cache": "venv-Linux", "bytes": 65867307}]
    stored = "Stored Cache to v1-build-main-1648139534\nTotal size uploaded: 508 MiB\n"
    assert read(stored)[1] == [{"ci": "circleci", "cache": "v1-build-main", "bytes": 508 * 2**20}]


def test_prefixes_colours_and_job_columns_are_not_the_message():
    assert message("build\tSet up Node\t2024-05-01T10:00:00.1234567Z Cache restored from key: k") \
        == "Cache restored from key: k"
    assert message("2026-05-08T09:28:48.074871Z 01O Successfully extracted cache") \
        == "Successfully extracted cache"
    assert message("\x1b[0K\x1b[32;1mChecking cache for main-protected...\x1b[0;m") \
        == "Checking cache for main-protected..."
    # a trace copied from a web page keeps the colour codes without their escape byte
    assert message("    [32;1mChecking cache for main-protected...[0;m") \
        == "Checking cache for main-protected..."


GITHUB = """\
2024-05-01T10:00:00.0000000Z ##[group]Run actions/cache@v4
2024-05-01T10:00:00.0000000Z with:
2024-05-01T10:00:00.0000000Z   path: ~/.cache/pip
2024-05-01T10:00:00.0000000Z   key: Linux-pip-3f2a9c0d1e2f3a4b5c6d
2024-05-01T10:00:00.0000000Z   restore-keys: Linux-pip-
2024-05-01T10:00:00.0000000Z ##[endgroup]
2024-05-01T10:00:01.0000000Z Received 1048576 of 1048576 (100.0%), 1.0 MBs/sec
2024-05-01T10:00:01.0000000Z Cache Size: ~1 MB (1048576 B)
2024-05-01T10:00:01.0000000Z Cache restored successfully
2024-05-01T10:00:01.0000000Z Cache restored from key: Linux-pip-0000aaaa1111bbbb2222
2024-05-01T10:00:02.0000000Z ##[group]Run actions/setup-node@v4
2024-05-01T10:00:03.0000000Z Cache Size: ~7 MB (7028388 B)
Cache restored from key: node-cache-Linux-x64-npm-aaaa0000bbbb1111
2024-05-01T10:00:04.0000000Z ##[group]Run actions/cache@v4
2024-05-01T10:00:04.0000000Z   key: Linux-cargo-99998888777766665555
Cache not found for input keys: Linux-cargo-99998888777766665555, Linux-cargo-
2024-05-01T10:00:05.0000000Z added 812 packages: lru-cache@10.2.0, Cache restored from key: x
2024-05-01T10:00:05.0000000Z Lighthouse: uses-long-cache-ttl Cache saved with key: no
2024-05-01T10:00:05.0000000Z Found in tool cache: python 3.11.5
2024-05-01T10:00:09.0000000Z Post job cleanup.
Cache hit occurred on the primary key node-cache-Linux-x64-npm-aaaa0000bbbb1, not saving cache.
2024-05-01T10:00:10.0000000Z Cache Size: ~2 MB (2097152 B)
2024-05-01T10:00:10.0000000Z Cache saved with key: Linux-pip-3f2a9c0d1e2f3a4b5c6d
2024-05-01T10:00:11.0000000Z Cache Size: ~9 MB (9437184 B)
2024-05-01T10:00:11.0000000Z Cache saved with key: Linux-cargo-99998888777766665555
"""


def test_github_hit_partial_miss_sizes_and_saves_and_nothing_from_other_cache_words():
    restores, saves = read(GITHUB)
    assert restores == [
        {"ci": "github", "cache": "Linux-pip", "result": "partial", "bytes": 1048576},
        {"ci": "github", "cache": "node-cache-Linux-x64-npm", "result": "hit", "bytes": 7028388},
        {"ci": "github", "cache": "Linux-cargo", "result": "miss", "bytes": 0},
    ]
    assert saves == [{"ci": "github", "cache": "Linux-pip", "bytes": 2097152},
                     {"ci": "github", "cache": "Linux-cargo", "bytes": 9437184}]


def test_a_setup_action_miss_is_named_by_the_save_that_follows_or_by_its_tool():
    saved = "npm cache is not found\nCache saved with key: node-cache-Linux-x64-npm-0123abcd0123\n"
    assert read(saved)[0] == [{"ci": "github", "cache": "node-cache-Linux-x64-npm",
                               "result": "miss", "bytes": 0}]
    failed_job = "pip cache is not found\n"  # a failed job runs no post step: no save
    assert read(failed_job) == ([{"ci": "github", "cache": "setup-python-pip", "result": "miss",
                                  "bytes": 0}], [])


GITLAB = """\
\x1b[0Ksection_start:1700819869:restore_cache\r\x1b[0K\x1b[0K\x1b[36;1mRestoring cache\x1b[0;m
\x1b[32;1mChecking cache for node-modules-protected...\x1b[0;m
Downloading cache from https://storage.googleapis.com/runners-cache/project/1/node-modules-protected\x1b[0;m
\x1b[32;1mSuccessfully extracted cache\x1b[0;m
\x1b[32;1mChecking cache for feature-x-protected...\x1b[0;m
\x1b[0;33mWARNING: file does not exist                       \x1b[0;m
\x1b[0;33mFailed to extract cache\x1b[0;m
\x1b[32;1mChecking cache for main-protected (fallback)...\x1b[0;m
\x1b[32;1mSuccessfully extracted cache\x1b[0;m
\x1b[32;1mChecking cache for pip-3-non_protected...\x1b[0;m
\x1b[0;33mWARNING: cache.zip: zip: not a valid zip file\x1b[0;m
\x1b[0;33mFailed to extract cache\x1b[0;m
section_start:1700819916:archive_cache\r\x1b[0K\x1b[36;1mSaving cache for successful job\x1b[0;m
\x1b[32;1mCreating cache node-modules-protected...\x1b[0;m
node_modules/: found 5031 matching artifact files and directories\x1b[0;m
Archive is up to date!                             \x1b[0;m
\x1b[32;1mCreated cache\x1b[0;m
\x1b[32;1mCreating cache pip-3-non_protected...\x1b[0;m
Uploading cache.zip to https://storage.googleapis.com/runners-cache/project/1/pip-3-non_protected\x1b[0;m
\x1b[32;1mCreated cache\x1b[0;m
"""


def test_gitlab_hit_fallback_partial_failed_extraction_and_up_to_date_saves():
    restores, saves = read(GITLAB)
    assert restores == [
        {"ci": "gitlab", "cache": "node-modules", "result": "hit", "bytes": 0},
        {"ci": "gitlab", "cache": "feature-x", "result": "partial", "bytes": 0},
        {"ci": "gitlab", "cache": "pip", "result": "miss", "bytes": 0,
         "reason": "cache.zip: zip: not a valid zip file"},
    ]
    assert saves == [{"ci": "gitlab", "cache": "pip", "bytes": 0}]  # the other was up to date


def test_gitlab_fallbacks_that_all_miss_are_one_miss():
    trace = ("Checking cache for a-protected...\nFailed to extract cache\n"
             "Checking cache for main-protected (fallback)...\nFailed to extract cache\n")
    assert read(trace)[0] == [{"ci": "gitlab", "cache": "a", "result": "miss", "bytes": 0}]


CIRCLECI = """\
Found a cache from build 75 at v1-deps-qwa_N++0aXeaXlpPu1TzrRMKJU1V7n3NYN+0BxBVg20=
Size: 94 MiB
Cached paths:
  * /home/circleci/project/node_modules

Downloading cache archive...
Validating cache...

Unarchiving cache...
No cache is found for key: v1-gems-37RyclRo4zIg9I2R_L+I72Po+eXbphREAXxknkNduy8=
Found a cache from build 12 at v1-gems-
Size: 60 MB
Found a cache from build 45 at v1-bundle-37RyclRo4zIg9I2R_L+I72Po+eXbphREAXxknkNduy8=
Size: 60 MB
Unarchiving cache...
tar: usr/local/bundle: Cannot utime: Operation not permitted
Error untarring cache: exit status 2
No cache is found for key: v1-go-e9cX1Vj+6JCCGWLDOuWSzyiSzF3fE9ayVDQOCbRkWAM=
Creating cache archive...
Uploading cache archive...
Stored Cache to v1-go-e9cX1Vj+6JCCGWLDOuWSzyiSzF3fE9ayVDQOCbRkWAM=
  * /go/pkg/mod
"""


def test_circleci_hit_partial_untar_failure_miss_and_store():
    restores, saves = read(CIRCLECI)
    assert restores == [
        {"ci": "circleci", "cache": "v1-deps", "result": "hit", "bytes": 94 * 2**20},
        {"ci": "circleci", "cache": "v1-gems", "result": "partial", "bytes": 60 * 10**6},
        {"ci": "circleci", "cache": "v1-bundle", "result": "miss", "bytes": 0,
         "reason": "Error untarring cache: exit status 2"},
        {"ci": "circleci", "cache": "v1-go", "result": "miss", "bytes": 0},
    ]
    assert saves == [{"ci": "circleci", "cache": "v1-go", "bytes": 0}]


def test_a_circleci_hit_followed_by_a_new_key_stored_under_its_name_was_partial():
    log = ("Found a cache from build 7 at app-OLDxCA87nBHtoilUaSxwuZsPVx4OSrUcmpAoE45tPlo=\n"
           "Stored Cache to app-yircCA87nBHtoilUaSxwuZsPVx4OSrUcmpAoE45tPlo=\n")
    restores, _ = read(log)
    assert restores[0]["result"] == "partial"


def test_azure_exact_and_restore_key_entries_and_saves():
    log = ('Resolving key:\n - "npm" [string]\nResolved to: npm|"Linux"|D8R9Hf7a8s9d8f7a6s=\n'
           'Resolving restore key:\nResolved to: npm|"Linux"\n'
           'Entry found at fingerprint: `npm|"Linux"|OLDOLDOLDOLDOLDOL=`\nCache restored.\n'
           'Resolving key:\nResolved to: pip|"Linux"|AbC+dEf/GhI=\n'
           'Entry found at fingerprint: `pip|"Linux"|AbC+dEf/GhI=`\nSaved item.\n')
    restores, saves = read(log)
    assert [(r["cache"], r["result"]) for r in restores] == [('npm|"Linux"', "partial"),
                                                            ('pip|"Linux"', "hit")]
    assert saves == [{"ci": "azure", "cache": 'pip|"Linux"', "bytes": 0}]
