"""The cache level contract, run against L1, L2 (real Redis), L3 (SQLite, PostgreSQL) and
the composed multi-level cache."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import REDIS_URL, need_service
from zyflow.cache.breaker import CircuitBreaker
from zyflow.cache.database import PostgresCache, SqliteCache
from zyflow.cache.memory import MemoryCache
from zyflow.cache.multilevel import MultiLevelCache
from zyflow.cache.policy import IntelligentPolicy
from zyflow.cache.port import CacheLevel
from zyflow.cache.redis import RedisCache
from zyflow.store.port import Store
from zyflow.store.postgres import PostgresStore
from zyflow.store.sqlite import SqliteStore


class Composed(CacheLevel):
    """The multi-level cache seen through the level port (read-through with no loader)."""

    name = "multilevel"

    def __init__(self, cache: MultiLevelCache) -> None:
        self.cache = cache

    async def get(self, key: str) -> bytes | None:
        async def nothing() -> bytes | None:
            return None

        return await self.cache.get_or_load(key, nothing)

    async def set(self, key: str, value: bytes, ttl: float, tags: Any = ()) -> bool:
        tags = tuple(tags)

        async def load() -> bytes:
            return value

        await self.cache.invalidate(keys=[key])
        got = await self.cache.get_or_load(key, load, tags, ttl)
        return got == value

    async def delete(self, keys: Any) -> int:
        await self.cache.invalidate(keys=list(keys))
        return 0

    async def invalidate_tags(self, tags: Any) -> int:
        await self.cache.invalidate(tags=list(tags))
        return 0

    async def invalidate_pattern(self, pattern: str) -> int:
        await self.cache.invalidate(patterns=[pattern])
        return 0

    async def clear(self) -> None:
        await self.cache.invalidate(patterns=["*"])


def redis_level(prefix_isolation: str) -> RedisCache:
    need_service("Redis", "127.0.0.1", 6379)
    return RedisCache.from_url(REDIS_URL, CircuitBreaker("l2", call_timeout=1.0))


LEVELS = [
    "l1",
    pytest.param("l2", marks=pytest.mark.redis),
    "l3-sqlite",
    pytest.param("l3-postgres", marks=pytest.mark.postgres),
    pytest.param("multilevel", marks=[pytest.mark.redis]),
]


@pytest.fixture(params=LEVELS)
async def level(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[CacheLevel]:
    from tests.conftest import pg_url
    from zyflow.store import open_store

    kind = request.param
    store: Store | None = None
    made: CacheLevel
    if kind == "l1":
        made = MemoryCache(policy=IntelligentPolicy())
    elif kind == "l2":
        made = redis_level("")
        await made.clear()
    elif kind == "l3-sqlite":
        store = await open_store(f"sqlite:///{tmp_path / 'c.db'}")
        assert isinstance(store, SqliteStore)
        made = SqliteCache(store)
    elif kind == "l3-postgres":
        need_service("PostgreSQL", "127.0.0.1", 5432)
        store = await open_store(pg_url("zc_" + secrets.token_hex(5)))
        assert isinstance(store, PostgresStore)
        store._drop_on_close = True
        made = PostgresCache(store)
    else:
        l2 = redis_level("")
        await l2.clear()
        store = await open_store(f"sqlite:///{tmp_path / 'c.db'}")
        assert isinstance(store, SqliteStore)
        made = Composed(MultiLevelCache(MemoryCache(), l2, SqliteCache(store)))
    try:
        yield made
    finally:
        await made.close()
        if isinstance(made, Composed) and made.cache.l2 is not None:
            await made.cache.l2.close()
        if store is not None:
            await store.close()


async def test_round_trip_binary(level: CacheLevel) -> None:
    value = bytes(range(256)) * 4
    assert await level.get("a") is None
    assert await level.set("a", value, 60)
    assert await level.get("a") == value
    await level.set("a", b"second", 60)
    assert await level.get("a") == b"second"


async def test_ttl_expires(level: CacheLevel) -> None:
    await level.set("short", b"v", 0.3)
    assert await level.get("short") == b"v"
    await asyncio.sleep(1.1)
    assert await level.get("short") is None


async def test_delete_tags_and_patterns(level: CacheLevel) -> None:
    await level.set("task:1", b"1", 60, ["change:a"])
    await level.set("task:2", b"2", 60, ["change:a", "change:b"])
    await level.set("task:3", b"3", 60, ["change:b"])
    await level.set("list:x", b"x", 60)
    await level.set("list:y", b"y", 60)
    await level.delete(["task:3"])
    assert await level.get("task:3") is None
    await level.invalidate_tags(["change:a"])
    assert await level.get("task:1") is None and await level.get("task:2") is None
    await level.invalidate_pattern("list:*")
    assert await level.get("list:x") is None and await level.get("list:y") is None
    await level.set("task:9", b"9", 60, ["change:c"])
    await level.clear()
    assert await level.get("task:9") is None


async def test_tagged_entry_set_again_after_invalidation(level: CacheLevel) -> None:
    await level.set("k", b"old", 60, ["t"])
    await level.invalidate_tags(["t"])
    await level.set("k", b"new", 60, ["t"])
    assert await level.get("k") == b"new"
    await level.invalidate_tags(["t"])
    assert await level.get("k") is None
