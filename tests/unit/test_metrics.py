"""The batch histogram records exactly what one observation per value would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

from caves_faust.observability.metrics import BatchHistogram

BUCKETS = (64, 128, 256, 1024)


def samples(histogram: Histogram) -> dict[tuple[str, tuple], float]:
    return {(s.name.split("_", 1)[1], tuple(sorted(s.labels.items()))): s.value
            for metric in histogram.collect() for s in metric.samples if not s.name.endswith("_created")}


def test_observe_many_counts_like_one_observe_per_value():
    sizes = [0, 1, 63, 64, 65, 128, 129, 255, 256, 1024, 1025, 10**6, 64, 64]
    one_by_one = Histogram("one_sizes", "sizes", buckets=BUCKETS, registry=CollectorRegistry())
    batched = BatchHistogram("two_sizes", "sizes", buckets=BUCKETS, registry=CollectorRegistry())
    for size in sizes:
        one_by_one.observe(size)
    batched.observe_many(sizes[:5])
    batched.observe_many([])
    batched.observe_many(sizes[5:])

    assert samples(batched) == samples(one_by_one)
    assert samples(batched)[("sizes_bucket", (("le", "64.0"),))] == 6  # 0, 1, 63 and three 64s: bounds are inclusive
    assert samples(batched)[("sizes_count", ())] == len(sizes)
