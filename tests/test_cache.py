"""The composed cache's behaviour: read-through, stampede, races, policy, breaker, bus."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.conftest import REDIS_URL, need_service
from zyflow.cache.breaker import CircuitBreaker
from zyflow.cache.bus import InvalidationBus
from zyflow.cache.memory import MemoryCache
from zyflow.cache.multilevel import MultiLevelCache
from zyflow.cache.policy import IntelligentPolicy
from zyflow.cache.redis import RedisCache
from zyflow.cache.traces import hit_ratio, scan_polluted_trace, zipf_trace


async def test_one_loader_per_key_however_many_wait() -> None:
    cache = MultiLevelCache(MemoryCache())
    calls = 0

    async def load() -> bytes:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return b"value"

    results = await asyncio.gather(*(cache.get_or_load("k", load) for _ in range(100)))
    assert results == [b"value"] * 100 and calls == 1
    assert await cache.get_or_load("k", load) == b"value" and calls == 1


async def test_failed_load_reaches_every_waiter_and_is_not_cached() -> None:
    cache = MultiLevelCache(MemoryCache())

    async def broken() -> bytes:
        await asyncio.sleep(0.01)
        raise RuntimeError("database down")

    results = await asyncio.gather(
        *(cache.get_or_load("k", broken) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert cache.l1.get_local("k") is None


async def test_invalidation_during_load_is_not_undone() -> None:
    cache = MultiLevelCache(MemoryCache())
    started = asyncio.Event()

    async def slow_old_value() -> bytes:
        started.set()
        await asyncio.sleep(0.05)
        return b"old"

    loading = asyncio.create_task(cache.get_or_load("task:1", slow_old_value, ("t",)))
    await started.wait()
    await cache.invalidate(tags=["t"])  # the write commits while the old value is loading
    assert await loading == b"old"  # that caller still gets its answer...
    assert cache.l1.get_local("task:1") is None  # ...but it is not cached


def test_l1_bounds_and_ttl_cap() -> None:
    cache = MemoryCache(max_entries=10, max_bytes=10_000)
    for i in range(50):
        cache.put_local(f"k{i}", b"x" * 100, 10_000)
    assert len(cache) == 10 and cache.bytes <= 10_000
    big = MemoryCache(max_entries=1000, max_bytes=5_000)
    for i in range(100):
        big.put_local(f"k{i}", b"x" * 400, 60)
    assert big.bytes <= 5_000
    assert not big.put_local("huge", b"x" * 10_000, 60)
    cache.put_local("t", b"v", 10_000)
    assert cache._data["t"].expires_at - time.monotonic() <= 300.0


@pytest.mark.parametrize(
    "trace",
    [
        lambda: zipf_trace(60_000, 20_000, 0.9),
        lambda: scan_polluted_trace(60_000, 20_000, 0.9, scan_every=3000, scan_length=1500),
    ],
    ids=["zipf", "scan-polluted"],
)
def test_intelligent_policy_beats_lru_at_equal_capacity(trace) -> None:  # type: ignore[no-untyped-def]
    lru = hit_ratio(trace(), 400, intelligent=False)
    smart = hit_ratio(trace(), 400, intelligent=True)
    assert smart > lru + 0.03, (lru, smart)


def test_policy_decisions_follow_access_patterns() -> None:
    policy = IntelligentPolicy()
    for i in range(20):
        policy.record_access("regular", now=1000.0 + i * 10.0)
    policy.record_access("once", now=1000.0)
    regular = policy.cacheability("regular", 200, now=1200.0)
    assert regular.score > policy.cacheability("once", 200, now=1200.0).score
    assert "REGULAR" in regular.reason and "SMALL" in regular.reason
    assert policy.cacheability("regular", 50_000, now=1200.0).score < regular.score
    assert policy.ttl("regular", 3600) == 300.0  # regular: max(2 × 10 s, 5 min)
    assert policy.ttl("regular", 30) == 30  # never beyond the caller's cap
    policy.record_load("regular", 200, 5.0)
    policy.record_load("once", 200, 0.1)
    assert policy.priority("regular", 200) > policy.priority("once", 200)


async def test_breaker_skips_a_dead_redis_within_milliseconds() -> None:
    breaker = CircuitBreaker("l2", call_timeout=0.05, reset_after=0.2)
    dead = RedisCache.from_url("redis://127.0.0.1:1/0", breaker)
    cache = MultiLevelCache(MemoryCache(), dead)

    async def load() -> bytes:
        return b"from db"

    for i in range(5):
        assert await cache.get_or_load(f"k{i}", load) == b"from db"
    assert breaker.state == "open"
    started = time.perf_counter()
    assert await cache.get_or_load("another", load) == b"from db"
    assert time.perf_counter() - started < 0.01
    await cache.close()


@pytest.mark.redis
async def test_backfill_and_cross_instance_invalidation() -> None:
    need_service("Redis", "127.0.0.1", 6379)

    def instance() -> MultiLevelCache:
        l2 = RedisCache.from_url(REDIS_URL, CircuitBreaker("l2", call_timeout=1.0))
        cache = MultiLevelCache(MemoryCache(), l2)
        cache.bus = InvalidationBus(l2.client, cache.apply_local, cache.reset_local)
        return cache

    a, b = instance(), instance()
    await a.start()
    await b.start()
    try:
        assert a.l2 is not None
        await a.l2.clear()

        async def load() -> bytes:
            return b"v1"

        async def never() -> bytes:
            raise AssertionError("should come from L2")

        assert await a.get_or_load("task:x", load, ("change:c",)) == b"v1"
        # B finds it in L2 and backfills its own L1.
        assert await b.get_or_load("task:x", never, ("change:c",)) == b"v1"
        assert b.l1.get_local("task:x") == b"v1"
        # A invalidates: by the time that returns, B's L1 has dropped it too.
        await a.invalidate(tags=["change:c"])
        assert b.l1.get_local("task:x") is None
        assert await b.l2.get("task:x") is None  # type: ignore[union-attr]
        assert a.bus is not None and a.bus.ack_timeouts == 0
    finally:
        await a.close()
        await b.close()
