"""Synthetic access traces for comparing eviction and admission policies."""

from __future__ import annotations

import random
from collections.abc import Iterator

from zyflow.cache.memory import MemoryCache
from zyflow.cache.policy import IntelligentPolicy


def zipf_trace(n: int, keys: int, s: float = 1.0, seed: int = 1) -> Iterator[str]:
    rng = random.Random(seed)
    weights = [1.0 / (i + 1) ** s for i in range(keys)]
    # Shuffle ranks so that key names do not sort by popularity.
    names = [f"k{i}" for i in range(keys)]
    rng.shuffle(names)
    yield from rng.choices(names, weights=weights, k=n)


def scan_polluted_trace(
    n: int,
    keys: int,
    s: float = 1.0,
    scan_every: int = 5000,
    scan_length: int = 2000,
    seed: int = 2,
) -> Iterator[str]:
    """A Zipf workload interrupted by long one-off scans (an export, a crawler)."""
    scan = 0
    for i, key in enumerate(zipf_trace(n, keys, s, seed)):
        yield key
        if i % scan_every == scan_every - 1:
            for j in range(scan_length):
                yield f"scan{scan}-{j}"
            scan += 1


def hit_ratio(trace: Iterator[str], capacity: int, intelligent: bool) -> float:
    """Drive a real L1 with ``trace``: every miss loads a 200-byte value and stores it."""
    policy = IntelligentPolicy(track=capacity * 8) if intelligent else None
    cache = MemoryCache(max_entries=capacity, max_bytes=1 << 40, policy=policy)
    value = b"x" * 200
    hits = total = 0
    for key in trace:
        total += 1
        if cache.get_local(key) is not None:
            hits += 1
        else:
            cache.put_local(key, value, 300.0, (), 0.5)
    return hits / total if total else 0.0
