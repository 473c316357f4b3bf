"""The metric contract itself, and the small pieces every collector relies on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cachewatch.metrics import contract
from cachewatch.metrics.cardinality import OTHER, LabelCap
from cachewatch.metrics.contract import Families, Kind, MetricSpec
from cachewatch.sources import specs
from cachewatch.sources.redis import contract as redis_contract
from cachewatch.sources.redis.settings import TargetAddressError, split_redis_address


def test_every_spec_follows_the_naming_rules():
    every = specs()
    # every family declared (the core's and each registered source's), each once; no count
    # here, or every new source would have to edit this core test
    assert len(every) == len({spec.name for spec in every}) == len(contract.SPECS)
    assert {spec.name for spec in every} == set(contract.SPECS)
    for spec in every:
        assert spec.name.startswith("cachewatch_")
        assert (spec.kind is Kind.COUNTER) == spec.name.endswith("_total")
        assert not spec.name.endswith(("_ratio", "_rate"))  # ratios are computed in PromQL
    core = {s.name for s in contract.SPECS.values() if s.group == contract.CORE}
    assert core == {
        "cachewatch_cache_lookups_total", "cachewatch_cache_latency_seconds",
        "cachewatch_cache_evictions_total", "cachewatch_cache_entries", "cachewatch_cache_bytes"}
    for name in core:
        assert contract.SPECS[name].labels[:2] == ("layer", "cache")


def test_the_p99_threshold_is_a_bucket_edge():
    assert contract.LATENCY_P99_TARGET_SECONDS in contract.LATENCY_BUCKETS
    assert list(contract.LATENCY_BUCKETS) == sorted(set(contract.LATENCY_BUCKETS))


@pytest.mark.parametrize(("name", "kind", "message"), [
    ("cachewatch_x", Kind.COUNTER, "counters, and only counters, end in _total"),
    ("cachewatch_x_total", Kind.GAUGE, "counters, and only counters, end in _total"),
    ("other_x", Kind.GAUGE, "every metric starts with cachewatch_"),
    ("cachewatch_x", Kind.INFO, "info metrics end in _info"),
])
def test_a_misnamed_spec_is_refused(name, kind, message):
    with pytest.raises(ValueError, match=message):
        MetricSpec(name, kind, "help", ("a",), "test")


def test_families_refuse_wrong_labels_and_merge_targets():
    out = Families()
    with pytest.raises(ValueError, match="takes labels"):
        out.add(contract.CACHE_ENTRIES, {"cache": "a", "layer": "redis"}, 1)  # wrong order
    out.add(contract.CACHE_ENTRIES, {"layer": "redis", "cache": "a"}, 1)
    other = Families()
    other.add(contract.CACHE_ENTRIES, {"layer": "redis", "cache": "b"}, 2)
    out.extend(other)
    (family,) = list(out)
    assert [(s.labels["cache"], s.value) for s in family.samples] == [("a", 1), ("b", 2)]
    # merging copied the first family: the other collector's family is untouched
    assert len(next(iter(other)).samples) == 1


def test_label_cap_keeps_the_first_values_and_folds_the_rest():
    cap = LabelCap(3)
    assert [cap(v) for v in ["a", "b", "a", "c", "d", "e", "b"]] == \
        ["a", "b", "a", "c", OTHER, OTHER, "b"]
    assert len(cap) == 3
    assert cap.overflowed == 2


@given(st.text(max_size=200))
def test_address_parsing_never_fails_other_than_with_a_clear_error(raw):
    try:
        url = split_redis_address(raw)[0]
    except TargetAddressError as exc:
        url, message = None, str(exc)
    if url is None:
        assert message.strip()
    else:
        assert url.startswith(("redis://", "rediss://", "unix://"))
        assert "@" not in url.split("://", 1)[1].split("/", 1)[0]  # no credentials left


def test_fast_openmetrics_encoding_writes_the_same_bytes():
    from functools import partial

    from prometheus_client import ProcessCollector
    from prometheus_client.exposition import choose_encoder
    from prometheus_client.openmetrics import exposition as openmetrics

    from cachewatch.metrics.exposition import BuildInfo, Exposition, _fast

    out = Families()
    out.add(contract.CACHE_LOOKUPS, {"layer": "redis", "cache": 'a "quoted"\\ \n name',
                                     "result": "hit"}, 3)
    out.add_summary(redis_contract.REDIS_SERVER_LATENCY,
                    {"cache": "ünïcode", "command": "client|list"}, 2, 0.5,
                    {"0.5": 0.1, "0.99": 0.2})
    out.add_histogram(contract.CACHE_LATENCY, {"layer": "app", "cache": "c", "op": "get"},
                      [("0.05", 3.0), ("+Inf", 4.0)], 0.123456789)
    out.add(contract.CACHE_BYTES, {"layer": "redis", "cache": "x"}, float("nan"))
    out.add(contract.CACHE_ENTRIES, {"layer": "redis", "cache": "x"}, 1e21)
    out.add(redis_contract.REDIS_INFO, {"cache": "x", "version": "7.0.15", "role": "master",
                                        "mode": "standalone"}, 1)

    class Fixed:
        def collect(self):
            return iter(out)

    exposition = Exposition([Fixed(), BuildInfo(), ProcessCollector(registry=None)])
    families = list(exposition.collect())

    class Frozen:
        def collect(self):
            return iter(families)

    encoder, _ = choose_encoder("application/openmetrics-text;version=1.0.0")
    assert isinstance(encoder, partial)
    assert encoder.keywords["escaping"] == openmetrics.UNDERSCORES
    assert _fast(encoder) is not encoder
    assert _fast(encoder)(Frozen()) == encoder(Frozen())
    assert _fast(encoder)(Frozen()) == encoder(Frozen())  # again, from the cached label strings
    text, _ = choose_encoder("text/plain;version=0.0.4")
    assert _fast(text) is text  # the text format goes to the library unchanged


def test_process_metrics_are_prometheus_clients_for_less():
    """Same families, types, help texts and order as ProcessCollector; the same values (the
    memory ones move between two reads, so within a few pages)."""
    import os

    from prometheus_client import ProcessCollector

    from cachewatch.metrics.exposition import ProcessMetrics

    theirs = list(ProcessCollector(registry=None).collect())
    ours = list(ProcessMetrics().collect())
    assert [(m.name, m.type, m.documentation, [s.name for s in m.samples]) for m in ours] == \
        [(m.name, m.type, m.documentation, [s.name for s in m.samples]) for m in theirs]
    values = {m.name: m.samples[0].value for m in ours}
    expected = {m.name: m.samples[0].value for m in theirs}
    assert values["process_start_time_seconds"] == pytest.approx(
        expected["process_start_time_seconds"], abs=0.02)
    assert values["process_max_fds"] == expected["process_max_fds"]
    assert abs(values["process_open_fds"] - expected["process_open_fds"]) <= 1
    assert values["process_resident_memory_bytes"] == pytest.approx(
        expected["process_resident_memory_bytes"], rel=0.05)
    assert values["process_cpu_seconds"] >= expected["process_cpu_seconds"]
    assert values["process_cpu_seconds"] == pytest.approx(sum(os.times()[:2]), abs=0.05)


def test_fast_openmetrics_matches_the_library_on_a_real_exposition(redis_plain,
                                                                   exporter_factory):
    from prometheus_client.exposition import choose_encoder

    from cachewatch.metrics.exposition import _fast

    from support import settings as make_settings

    exporter = exporter_factory(make_settings([redis_plain.url],
                                              **{"redis.probe_interval": "50ms"}))
    redis_plain.client().set("k", "v")
    exporter.scrape()
    families = list(exporter.app.app.app.state.exposition.collect())

    class Frozen:
        def collect(self):
            return iter(families)

    encoder, _ = choose_encoder("application/openmetrics-text;version=1.0.0")
    assert _fast(encoder)(Frozen()) == encoder(Frozen())


def test_the_overflow_counter_walks_only_when_a_cap_was_made_or_folded():
    from cachewatch.metrics.cardinality import CapOverflow

    class Owner:
        name = "owner"

    owner = Owner()
    overflow = CapOverflow([owner])
    assert list(overflow.collect()) == []
    owner.cap = LabelCap(1)  # made after a walk: the next scrape names it
    assert list(overflow.collect()) == []
    assert owner.cap.name == "owner.cap"
    owner.cap("x")
    owner.cap("y")  # folded: counted from this scrape on
    [family] = list(overflow.collect())
    assert [(s.labels["family"], s.value) for s in family.samples] == [("owner.cap", 1)]
