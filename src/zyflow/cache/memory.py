"""L1: the in-process level. Bounded by entries and bytes; TTL capped at five minutes.

``get_local`` is synchronous and does no allocation on a hit: a dict lookup, an expiry
check and the policy's access record. Eviction is LRU or the intelligent policy's
priority (a heap checked lazily: a stale heap priority is refreshed when it surfaces).
"""

from __future__ import annotations

import fnmatch
import heapq
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from zyflow.cache.policy import IntelligentPolicy
from zyflow.cache.port import CacheLevel

L1_MAX_TTL = 300.0


@dataclass(slots=True)
class Entry:
    value: bytes
    expires_at: float
    tags: tuple[str, ...]
    size: int


@dataclass(slots=True)
class LevelStats:
    hits: int = 0
    misses: int = 0
    sets: int = 0
    evictions: int = 0
    rejected: int = 0
    invalidations: int = 0
    expired: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class MemoryCache(CacheLevel):
    name = "l1"

    def __init__(
        self,
        *,
        max_entries: int = 50_000,
        max_bytes: int = 128 * 1024 * 1024,
        max_ttl: float = L1_MAX_TTL,
        policy: IntelligentPolicy | None = None,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_ttl = min(max_ttl, L1_MAX_TTL)
        self.policy = policy
        self._data: OrderedDict[str, Entry] = OrderedDict()
        self._tags: dict[str, set[str]] = {}
        self._heap: list[tuple[float, str]] = []
        self.bytes = 0
        self.stats = LevelStats()
        self.now = time.monotonic

    def __len__(self) -> int:
        return len(self._data)

    # -- synchronous core (the hot path, and what the trace simulator drives) -----------
    def get_local(self, key: str) -> bytes | None:
        entry = self._data.get(key)
        now = self.now()
        if self.policy is not None:
            self.policy.record_access(key, now)
        if entry is None:
            self.stats.misses += 1
            return None
        if entry.expires_at < now:
            self._remove(key)
            self.stats.expired += 1
            self.stats.misses += 1
            return None
        if self.policy is None:
            self._data.move_to_end(key)
        self.stats.hits += 1
        return entry.value

    def put_local(
        self,
        key: str,
        value: bytes,
        ttl: float,
        tags: Iterable[str] = (),
        load_cost_ms: float = 0.0,
    ) -> bool:
        size = len(value) + len(key) + 64
        if size > self.max_bytes or ttl <= 0:
            self.stats.rejected += 1
            return False
        policy = self.policy
        if policy is not None:
            policy.record_load(key, size, load_cost_ms)
            ttl = policy.ttl(key, min(ttl, self.max_ttl))
        if key in self._data:
            self._remove(key)
        while self._data and (
            len(self._data) >= self.max_entries or self.bytes + size > self.max_bytes
        ):
            victim = self._victim()
            if policy is not None and not policy.admit(key, size, victim):
                self.stats.rejected += 1
                return False
            self._evict(victim)
        if policy is not None and not self._data and not policy.admit(key, size, None):
            self.stats.rejected += 1
            return False
        tag_tuple = tuple(tags)
        self._data[key] = Entry(value, self.now() + min(ttl, self.max_ttl), tag_tuple, size)
        self.bytes += size
        for tag in tag_tuple:
            self._tags.setdefault(tag, set()).add(key)
        if policy is not None:
            heapq.heappush(self._heap, (policy.priority(key, size), key))
            if len(self._heap) > 4 * len(self._data) + 64:
                self._rebuild_heap()
        self.stats.sets += 1
        return True

    def _victim(self) -> str:
        if self.policy is None:
            return next(iter(self._data))
        policy = self.policy
        while self._heap:
            priority, key = self._heap[0]
            entry = self._data.get(key)
            if entry is None:
                heapq.heappop(self._heap)
                continue
            current = policy.priority(key, entry.size)
            if current > priority + 1e-9:
                # Used since it was pushed: give it its current priority and look again.
                heapq.heapreplace(self._heap, (current, key))
                continue
            return key
        self._rebuild_heap()
        return next(iter(self._data))

    def _evict(self, key: str) -> None:
        if self.policy is not None:
            entry = self._data[key]
            self.policy.evicted(self.policy.priority(key, entry.size))
        self._remove(key)
        self.stats.evictions += 1

    def _rebuild_heap(self) -> None:
        assert self.policy is not None
        self._heap = [(self.policy.priority(k, e.size), k) for k, e in self._data.items()]
        heapq.heapify(self._heap)

    def _remove(self, key: str) -> None:
        entry = self._data.pop(key, None)
        if entry is None:
            return
        self.bytes -= entry.size
        for tag in entry.tags:
            keys = self._tags.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tags[tag]

    def drop_keys(self, keys: Iterable[str]) -> int:
        dropped = 0
        for key in keys:
            if key in self._data:
                self._remove(key)
                dropped += 1
        self.stats.invalidations += dropped
        return dropped

    def drop_tags(self, tags: Iterable[str]) -> int:
        keys: set[str] = set()
        for tag in tags:
            keys |= self._tags.get(tag, set())
        return self.drop_keys(keys)

    def drop_pattern(self, pattern: str) -> int:
        if pattern.endswith("*") and not any(c in pattern[:-1] for c in "*?["):
            prefix = pattern[:-1]
            return self.drop_keys([k for k in self._data if k.startswith(prefix)])
        return self.drop_keys([k for k in self._data if fnmatch.fnmatchcase(k, pattern)])

    def clear_local(self) -> None:
        self._data.clear()
        self._tags.clear()
        self._heap.clear()
        self.bytes = 0

    # -- the async port ---------------------------------------------------------------
    async def get(self, key: str) -> bytes | None:
        return self.get_local(key)

    async def set(self, key: str, value: bytes, ttl: float, tags: Iterable[str] = ()) -> bool:
        return self.put_local(key, value, ttl, tags)

    async def delete(self, keys: Iterable[str]) -> int:
        return self.drop_keys(keys)

    async def invalidate_tags(self, tags: Iterable[str]) -> int:
        return self.drop_tags(tags)

    async def invalidate_pattern(self, pattern: str) -> int:
        return self.drop_pattern(pattern)

    async def clear(self) -> None:
        self.clear_local()
