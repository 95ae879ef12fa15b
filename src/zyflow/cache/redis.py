"""L2: Redis (redis-py asyncio), shared by every instance.

Keys live under ``zf:c:``; each tag is a Redis set of the keys carrying it, and a
generation counter ``zf:g:<tag>`` that every invalidation increments. A loader reads
the generations of its tags before it queries the database and writes its result
only if none moved meanwhile (one Lua script), so a slow loader can never put back
a value that an invalidation has already removed. Pattern invalidation walks keys
with ``SCAN`` (never ``KEYS``, which blocks the server).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import redis.asyncio as aioredis

from zyflow.cache.breaker import CircuitBreaker
from zyflow.cache.port import CacheLevel

PREFIX = "zf:c:"
TAGS = "zf:t:"
GENS = "zf:g:"

SET_IF_CURRENT = """
local n = tonumber(ARGV[3])
for i = 1, n do
  local gen = redis.call('GET', KEYS[1 + n + i]) or '0'
  if gen ~= ARGV[3 + i] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
for i = 1, n do
  redis.call('SADD', KEYS[1 + i], KEYS[1])
  redis.call('PEXPIRE', KEYS[1 + i], ARGV[2], 'NX')
  redis.call('PEXPIRE', KEYS[1 + i], ARGV[2], 'GT')
end
return 1
"""

INVALIDATE_TAGS = """
local dropped = 0
for i = 1, #KEYS, 2 do
  redis.call('INCR', KEYS[i + 1])
  local members = redis.call('SMEMBERS', KEYS[i])
  for j = 1, #members, 500 do
    dropped = dropped + redis.call('UNLINK', unpack(members, j, math.min(j + 499, #members)))
  end
  redis.call('UNLINK', KEYS[i])
end
return dropped
"""


class RedisCache(CacheLevel):
    name = "l2"

    def __init__(self, client: aioredis.Redis, breaker: CircuitBreaker) -> None:
        self.client = client
        self.breaker = breaker
        self._set_script = client.register_script(SET_IF_CURRENT)
        self._invalidate_script = client.register_script(INVALIDATE_TAGS)

    @classmethod
    def from_url(cls, url: str, breaker: CircuitBreaker) -> RedisCache:
        client = aioredis.Redis.from_url(
            url, socket_connect_timeout=0.2, socket_timeout=0.5, health_check_interval=5
        )
        return cls(client, breaker)

    @staticmethod
    def tags_for(key: str, tags: Iterable[str]) -> list[str]:
        """An entry's tags plus its own key-tag, so deleting a key is a tag invalidation."""
        return [*tags, f"k:{key}"]

    async def get(self, key: str) -> bytes | None:
        value = await self.breaker.call(lambda: self.client.get(PREFIX + key))
        return value if isinstance(value, bytes) else None

    async def generations(self, tags: Sequence[str]) -> list[bytes]:
        if not tags:
            return []
        values = await self.breaker.call(lambda: self.client.mget([GENS + t for t in tags]))
        return [v if isinstance(v, bytes) else b"0" for v in values]

    async def set(self, key: str, value: bytes, ttl: float, tags: Iterable[str] = ()) -> bool:
        tag_list = self.tags_for(key, tags)
        gens = await self.generations(tag_list)
        return await self.set_if_current(key, value, ttl, tag_list, gens)

    async def set_if_current(
        self, key: str, value: bytes, ttl: float, tags: Sequence[str], gens: Sequence[bytes]
    ) -> bool:
        keys = [PREFIX + key, *(TAGS + t for t in tags), *(GENS + t for t in tags)]
        args: list[bytes | str | int] = [value, max(1, int(ttl * 1000)), len(tags), *gens]
        result = await self.breaker.call(lambda: self._set_script(keys=keys, args=args))
        return bool(result)

    async def delete(self, keys: Iterable[str]) -> int:
        return await self.invalidate_tags([f"k:{k}" for k in keys])

    async def invalidate_tags(self, tags: Iterable[str]) -> int:
        keys: list[str] = []
        for tag in tags:
            keys.extend((TAGS + tag, GENS + tag))
        if not keys:
            return 0
        return int(await self.breaker.call(lambda: self._invalidate_script(keys=keys)))

    async def invalidate_pattern(self, pattern: str) -> int:
        dropped = 0

        async def sweep() -> int:
            count = 0
            batch: list[bytes] = []
            async for key in self.client.scan_iter(match=PREFIX + pattern, count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    count += await self.client.unlink(*batch)
                    batch = []
            if batch:
                count += await self.client.unlink(*batch)
            return count

        dropped = await self.breaker.call(sweep, timeout=5.0)
        return dropped

    async def clear(self) -> None:
        for prefix in (PREFIX, TAGS):
            await self.invalidate_pattern_raw(prefix + "*")

    async def invalidate_pattern_raw(self, match: str) -> None:
        async def sweep() -> None:
            async for key in self.client.scan_iter(match=match, count=1000):
                await self.client.unlink(key)

        await self.breaker.call(sweep, timeout=10.0)

    async def close(self) -> None:
        await self.client.aclose()
