"""The composed cache: read-through L1 → L2 → L3 → loader, backfilling upward.

TTLs follow the seed: L1 at most 5 minutes, L2 30 minutes on backfill, L3 the full
TTL. One loader per key however many callers wait (stampede protection). Every
invalidation reaches every level and, through the bus, every instance's L1 before
the write that caused it is acknowledged. A level that fails is skipped: L2 behind a
circuit breaker, L1 untrusted while the bus is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from zyflow.cache import metrics
from zyflow.cache.breaker import BreakerOpen, CircuitBreaker
from zyflow.cache.bus import InvalidationBus
from zyflow.cache.database import PostgresCache, SqliteCache
from zyflow.cache.memory import MemoryCache
from zyflow.cache.policy import IntelligentPolicy
from zyflow.cache.redis import RedisCache

log = logging.getLogger("zyflow.cache")

L1_TTL = 300.0
L2_BACKFILL_TTL = 1800.0
DEFAULT_TTL = 3600.0
L3_MIN_COST_MS = 2.0  # only values this slow to compute are worth a database row

Loader = Callable[[], Awaitable[bytes | None]]


class MultiLevelCache:
    def __init__(
        self,
        l1: MemoryCache,
        l2: RedisCache | None = None,
        l3: SqliteCache | PostgresCache | None = None,
        bus: InvalidationBus | None = None,
    ) -> None:
        self.l1 = l1
        self.l2 = l2
        self.l3 = l3
        self.bus = bus
        self.generation = 0  # bumped by every invalidation this instance applies
        self._inflight: dict[str, asyncio.Future[bytes | None]] = {}
        self._purger: asyncio.Task[None] | None = None
        self._peeks = 0

    @property
    def l1_trusted(self) -> bool:
        return self.bus is None or self.bus.healthy

    async def start(self) -> None:
        if self.bus is not None:
            await self.bus.start()
        if self.l3 is not None:
            self._purger = asyncio.create_task(self._purge_loop(), name="zyflow-cache-purge")

    async def close(self) -> None:
        if self._purger is not None:
            self._purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purger
        if self.bus is not None:
            await self.bus.stop()
        if self.l2 is not None:
            await self.l2.close()

    async def _purge_loop(self) -> None:
        assert self.l3 is not None
        while True:
            await asyncio.sleep(60)
            try:
                await self.l3.purge_expired()
            except Exception as exc:
                log.warning("L3 purge failed: %s", exc)

    # -- reads ----------------------------------------------------------------------------
    def peek(self, key: str) -> bytes | None:
        """An L1 hit or nothing: the synchronous fast path used before any routing."""
        if not self.l1_trusted:
            return None
        self._peeks += 1
        if self._peeks & 63 == 0:  # time one lookup in 64: the histogram costs more than a hit
            started = time.perf_counter()
            value = self.l1.get_local(key)
            metrics.LATENCY.labels("l1", "get").observe(time.perf_counter() - started)
        else:
            value = self.l1.get_local(key)
        if value is not None:
            metrics.HITS.labels("l1").inc()
        return value

    async def get_or_load(
        self, key: str, loader: Loader, tags: Sequence[str] = (), ttl: float = DEFAULT_TTL
    ) -> bytes | None:
        if self.l1_trusted:
            value = self.l1.get_local(key)
            if value is not None:
                metrics.HITS.labels("l1").inc()
                return value
            metrics.MISSES.labels("l1").inc()
        waiting = self._inflight.get(key)
        if waiting is not None:
            return await asyncio.shield(waiting)
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await self._lower_levels(key, loader, tags, ttl)
            future.set_result(value)
            return value
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a lone caller's failure is not "never retrieved"
            raise
        finally:
            self._inflight.pop(key, None)

    async def _lower_levels(
        self, key: str, loader: Loader, tags: Sequence[str], ttl: float
    ) -> bytes | None:
        generation = self.generation
        l2_tags: list[str] = []
        l2_gens: list[bytes] | None = None
        if self.l2 is not None:
            l2_tags = self.l2.tags_for(key, tags)
            try:
                started = time.perf_counter()
                value = await self.l2.get(key)
                metrics.LATENCY.labels("l2", "get").observe(time.perf_counter() - started)
                if value is not None:
                    metrics.HITS.labels("l2").inc()
                    self._fill_l1(key, value, tags, generation, 0.0, L1_TTL)
                    return value
                metrics.MISSES.labels("l2").inc()
                l2_gens = await self.l2.generations(l2_tags)
            except (BreakerOpen, Exception) as exc:
                self._l2_failed(exc)
        l3_tags = [*tags, f"k:{key}"]
        l3_gens: list[int] | None = None
        costly = self._expected_cost(key) >= L3_MIN_COST_MS
        if self.l3 is not None and costly:
            started = time.perf_counter()
            value = await self.l3.get(key)
            metrics.LATENCY.labels("l3", "get").observe(time.perf_counter() - started)
            if value is not None:
                metrics.HITS.labels("l3").inc()
                await self._fill_l2(key, value, L2_BACKFILL_TTL, l2_tags, l2_gens)
                self._fill_l1(key, value, tags, generation, 0.0, L1_TTL)
                return value
            metrics.MISSES.labels("l3").inc()
            l3_gens = await self.l3.generations(l3_tags)
        started = time.perf_counter()
        value = await loader()
        cost_ms = (time.perf_counter() - started) * 1000
        metrics.LOADS.observe(cost_ms / 1000)
        if value is None:
            return None
        if self.l3 is not None and l3_gens is not None and cost_ms >= L3_MIN_COST_MS:
            await self.l3.set_if_current(key, value, ttl, l3_tags, l3_gens)
        await self._fill_l2(key, value, ttl, l2_tags, l2_gens)
        self._fill_l1(key, value, tags, generation, cost_ms, ttl)
        return value

    def _expected_cost(self, key: str) -> float:
        policy = self.l1.policy
        stats = policy.stats.get(key) if policy is not None else None
        return stats.load_cost_ms if stats is not None else 0.0

    def _fill_l1(
        self,
        key: str,
        value: bytes,
        tags: Sequence[str],
        generation: int,
        cost_ms: float,
        ttl: float,
    ) -> None:
        # An invalidation that arrived while we were loading may concern this value.
        if generation != self.generation or not self.l1_trusted:
            return
        evictions, rejected = self.l1.stats.evictions, self.l1.stats.rejected
        self.l1.put_local(key, value, min(ttl, L1_TTL), tags, cost_ms)
        if self.l1.stats.evictions != evictions:
            metrics.EVICTIONS.labels("l1").inc(self.l1.stats.evictions - evictions)
        if self.l1.stats.rejected != rejected:
            metrics.REJECTED.labels("l1").inc(self.l1.stats.rejected - rejected)

    async def _fill_l2(
        self,
        key: str,
        value: bytes,
        ttl: float,
        tags: Sequence[str],
        gens: Sequence[bytes] | None,
    ) -> None:
        if self.l2 is None or gens is None:
            return
        try:
            await self.l2.set_if_current(key, value, ttl, tags, gens)
        except (BreakerOpen, Exception) as exc:
            self._l2_failed(exc)

    def _l2_failed(self, exc: BaseException) -> None:
        if self.l2 is not None:
            metrics.BREAKER.labels("l2").set(metrics.BREAKER_VALUES[self.l2.breaker.state])
        if not isinstance(exc, BreakerOpen):
            log.debug("L2 unavailable: %s", exc)

    # -- invalidation ----------------------------------------------------------------------
    def apply_local(
        self, keys: Sequence[str], tags: Sequence[str], patterns: Sequence[str]
    ) -> None:
        self.generation += 1
        if keys:
            self.l1.drop_keys(keys)
        if tags:
            self.l1.drop_tags(tags)
        for pattern in patterns:
            self.l1.drop_pattern(pattern)

    def reset_local(self) -> None:
        self.generation += 1
        self.l1.clear_local()

    async def invalidate(
        self,
        keys: Iterable[str] = (),
        tags: Iterable[str] = (),
        patterns: Iterable[str] = (),
    ) -> None:
        key_list, tag_list, pattern_list = list(keys), list(tags), list(patterns)
        if not (key_list or tag_list or pattern_list):
            return
        metrics.INVALIDATIONS.labels("keys").inc(len(key_list))
        metrics.INVALIDATIONS.labels("tags").inc(len(tag_list))
        metrics.INVALIDATIONS.labels("patterns").inc(len(pattern_list))
        self.apply_local(key_list, tag_list, pattern_list)
        lower_tags = [*tag_list, *(f"k:{k}" for k in key_list)]
        if self.l2 is not None:
            try:
                await self.l2.invalidate_tags(lower_tags)
                for pattern in pattern_list:
                    await self.l2.invalidate_pattern(pattern)
            except (BreakerOpen, Exception) as exc:
                self._l2_failed(exc)
        if self.l3 is not None:
            await self.l3.invalidate_tags(lower_tags)
            for pattern in pattern_list:
                await self.l3.invalidate_pattern(pattern)
        if self.bus is not None and self.bus.healthy:
            try:
                before = self.bus.ack_timeouts
                await self.bus.broadcast(key_list, tag_list, pattern_list)
                if self.bus.ack_timeouts != before:
                    metrics.ACK_TIMEOUTS.inc()
            except Exception as exc:
                log.warning("invalidation broadcast failed: %s", exc)

    def snapshot(self) -> dict[str, Any]:
        metrics.L1_ENTRIES.set(len(self.l1))
        metrics.L1_BYTES.set(self.l1.bytes)
        if self.bus is not None:
            metrics.BUS_HEALTHY.set(1 if self.bus.healthy else 0)
        if self.l2 is not None:
            metrics.BREAKER.labels("l2").set(metrics.BREAKER_VALUES[self.l2.breaker.state])
        s = self.l1.stats
        return {
            "l1": {
                "entries": len(self.l1), "bytes": self.l1.bytes, "hits": s.hits,
                "misses": s.misses, "evictions": s.evictions, "rejected": s.rejected,
            },
            "l2": None if self.l2 is None else {"breaker": self.l2.breaker.state},
            "l3": self.l3 is not None,
            "bus": None if self.bus is None else {
                "healthy": self.bus.healthy, "ack_timeouts": self.bus.ack_timeouts,
            },
        }  # fmt: skip


def build_cache(
    store: Any, redis_url: str | None, *, l1_entries: int = 50_000, l3: bool = True
) -> MultiLevelCache:
    """Wire the levels for a store and an optional Redis URL."""
    from zyflow.store.postgres import PostgresStore
    from zyflow.store.sqlite import SqliteStore

    memory = MemoryCache(max_entries=l1_entries, policy=IntelligentPolicy(track=4 * l1_entries))
    level3: SqliteCache | PostgresCache | None = None
    if l3 and isinstance(store, SqliteStore):
        level3 = SqliteCache(store)
    elif l3 and isinstance(store, PostgresStore):
        level3 = PostgresCache(store)
    level2 = None
    bus = None
    if redis_url:
        breaker = CircuitBreaker(
            "l2",
            on_change=lambda name, state: metrics.BREAKER.labels(name).set(
                metrics.BREAKER_VALUES[state]
            ),
        )
        level2 = RedisCache.from_url(redis_url, breaker)
        cache = MultiLevelCache(memory, level2, level3)
        bus = InvalidationBus(level2.client, cache.apply_local, cache.reset_local)
        cache.bus = bus
        return cache
    return MultiLevelCache(memory, level2, level3, bus)
