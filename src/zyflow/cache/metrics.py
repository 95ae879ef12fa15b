"""Prometheus metrics of the cache (served on ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HITS = Counter("zyflow_cache_hits_total", "Cache hits", ["level"])
MISSES = Counter("zyflow_cache_misses_total", "Cache misses", ["level"])
LATENCY = Histogram(
    "zyflow_cache_latency_seconds",
    "Cache operation latency",
    ["level", "op"],
    buckets=(1e-6, 5e-6, 2e-5, 1e-4, 5e-4, 1e-3, 5e-3, 2e-2, 0.1, 0.5),
)
EVICTIONS = Counter("zyflow_cache_evictions_total", "Entries evicted from L1", ["level"])
REJECTED = Counter("zyflow_cache_rejected_admissions_total", "Values the policy refused", ["level"])
INVALIDATIONS = Counter("zyflow_cache_invalidations_total", "Invalidation requests", ["kind"])
LOADS = Histogram(
    "zyflow_cache_load_seconds",
    "Time to load a value on a full miss",
    buckets=(1e-4, 5e-4, 1e-3, 5e-3, 2e-2, 0.1, 0.5, 2.0),
)
BREAKER = Gauge(
    "zyflow_cache_breaker_state", "L2 circuit breaker: 0 closed, 1 half-open, 2 open", ["level"]
)
L1_ENTRIES = Gauge("zyflow_cache_l1_entries", "Entries in L1")
L1_BYTES = Gauge("zyflow_cache_l1_bytes", "Bytes in L1")
BUS_HEALTHY = Gauge("zyflow_cache_bus_healthy", "1 while the invalidation bus is subscribed")
ACK_TIMEOUTS = Counter(
    "zyflow_cache_invalidation_ack_timeouts_total", "Invalidations not acknowledged in time"
)

BREAKER_VALUES = {"closed": 0, "half-open": 1, "open": 2}
