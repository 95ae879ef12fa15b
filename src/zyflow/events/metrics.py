"""Prometheus metrics of event processing (the seed's StreamMetrics, with histograms
instead of the seed's running "average" of two numbers, seed bug 7)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

QUEUED = Counter("zyflow_events_queued_total", "Events accepted by a processor", ["processor"])
PROCESSED = Counter("zyflow_events_processed_total", "Events handled", ["processor"])
FAILED = Counter("zyflow_events_failed_total", "Events whose handler failed", ["processor"])
DROPPED = Counter(
    "zyflow_events_dropped_total",
    "Events not delivered to an ephemeral subscriber that fell behind (never durable ones)",
    ["processor"],
)
BACKPRESSURE = Counter(
    "zyflow_events_backpressure_total", "Times a producer had to wait for room", ["processor"]
)
QUEUE_SIZE = Gauge("zyflow_events_queue_size", "Events waiting in a processor", ["processor"])
BATCH_SECONDS = Histogram(
    "zyflow_events_batch_seconds",
    "Time to process one batch",
    ["processor"],
    buckets=(1e-5, 1e-4, 5e-4, 1e-3, 5e-3, 2e-2, 0.1, 0.5, 2.0),
)
