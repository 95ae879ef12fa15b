"""L3: a cache table in the task database itself; it survives restarts.

Holds what is costly to compute (the policy decides), with the same tag and
generation scheme as L2: invalidation bumps ``cache_gens`` and deletes the tagged
rows; a write lands only if the generations it read before loading still hold,
checked in the writing transaction. Expired rows are purged periodically.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterable, Sequence

from zyflow.cache.port import CacheLevel
from zyflow.store.postgres import PostgresStore
from zyflow.store.sqlite import SqliteStore


def _like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


class _TaggedTable(CacheLevel):
    """What both L3 backends share: a key is also its own tag (``k:<key>``), and a plain
    ``set`` reads the generations it then checks."""

    @abc.abstractmethod
    async def generations(self, tags: Sequence[str]) -> list[int]: ...

    @abc.abstractmethod
    async def set_if_current(
        self, key: str, value: bytes, ttl: float, tags: Sequence[str], gens: Sequence[int]
    ) -> bool: ...

    @abc.abstractmethod
    async def purge_expired(self) -> int: ...

    async def set(self, key: str, value: bytes, ttl: float, tags: Iterable[str] = ()) -> bool:
        tag_list = [*tags, f"k:{key}"]
        gens = await self.generations(tag_list)
        return await self.set_if_current(key, value, ttl, tag_list, gens)

    async def delete(self, keys: Iterable[str]) -> int:
        return await self.invalidate_tags([f"k:{k}" for k in keys])


class SqliteCache(_TaggedTable):
    name = "l3"

    def __init__(self, store: SqliteStore) -> None:
        self.db = store.db

    async def get(self, key: str) -> bytes | None:
        row = self.db.execute(
            "SELECT value, expires_at FROM cache_entries WHERE key = ?", (key,)
        ).fetchone()
        if row is None or row[1] < time.time():
            return None
        return bytes(row[0])

    async def generations(self, tags: Sequence[str]) -> list[int]:
        return self._generations(tags)

    def _generations(self, tags: Sequence[str]) -> list[int]:
        if not tags:
            return []
        marks = ", ".join("?" for _ in tags)
        rows = dict(
            self.db.execute(f"SELECT tag, gen FROM cache_gens WHERE tag IN ({marks})", list(tags))
        )
        return [int(rows.get(t, 0)) for t in tags]

    async def set_if_current(
        self, key: str, value: bytes, ttl: float, tags: Sequence[str], gens: Sequence[int]
    ) -> bool:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            # Synchronous from BEGIN to COMMIT: no other coroutine can use the connection.
            if self._generations(tags) != list(gens):
                db.execute("ROLLBACK")
                return False
            db.execute(
                "INSERT INTO cache_entries (key, value, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                "expires_at = excluded.expires_at",
                (key, value, time.time() + ttl),
            )
            db.executemany(
                "INSERT OR IGNORE INTO cache_tags (tag, key) VALUES (?, ?)",
                [(t, key) for t in tags],
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return True

    async def invalidate_tags(self, tags: Iterable[str]) -> int:
        tag_list = list(tags)
        if not tag_list:
            return 0
        db = self.db
        marks = ", ".join("?" for _ in tag_list)
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT INTO cache_gens (tag, gen) VALUES (?, 1) "
                "ON CONFLICT (tag) DO UPDATE SET gen = gen + 1",
                [(t,) for t in tag_list],
            )
            cur = db.execute(
                f"DELETE FROM cache_entries WHERE key IN "
                f"(SELECT key FROM cache_tags WHERE tag IN ({marks}))",
                tag_list,
            )
            dropped = cur.rowcount
            db.execute(f"DELETE FROM cache_tags WHERE tag IN ({marks})", tag_list)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return max(dropped, 0)

    async def invalidate_pattern(self, pattern: str) -> int:
        cur = self.db.execute(
            "DELETE FROM cache_entries WHERE key LIKE ? ESCAPE '\\'", (_like(pattern),)
        )
        return max(cur.rowcount, 0)

    async def purge_expired(self) -> int:
        cur = self.db.execute("DELETE FROM cache_entries WHERE expires_at < ?", (time.time(),))
        self.db.execute("DELETE FROM cache_tags WHERE key NOT IN (SELECT key FROM cache_entries)")
        return max(cur.rowcount, 0)

    async def clear(self) -> None:
        self.db.execute("DELETE FROM cache_entries")
        self.db.execute("DELETE FROM cache_tags")


class PostgresCache(_TaggedTable):
    name = "l3"

    def __init__(self, store: PostgresStore) -> None:
        self.pool = store.pool

    async def get(self, key: str) -> bytes | None:
        row = await self.pool.fetchrow(
            "SELECT value FROM cache_entries WHERE key = $1 AND expires_at > $2", key, time.time()
        )
        return bytes(row[0]) if row else None

    async def generations(self, tags: Sequence[str]) -> list[int]:
        if not tags:
            return []
        rows = dict(
            await self.pool.fetch("SELECT tag, gen FROM cache_gens WHERE tag = ANY($1)", list(tags))
        )
        return [int(rows.get(t, 0)) for t in tags]

    async def set_if_current(
        self, key: str, value: bytes, ttl: float, tags: Sequence[str], gens: Sequence[int]
    ) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            # Lock the generation rows: an invalidation of these tags waits for us, or we
            # see its bump.
            await conn.execute(
                "INSERT INTO cache_gens (tag, gen) SELECT unnest($1::text[]), 0 "
                "ON CONFLICT (tag) DO NOTHING",
                list(tags),
            )
            rows = dict(
                await conn.fetch(
                    "SELECT tag, gen FROM cache_gens WHERE tag = ANY($1) FOR SHARE", list(tags)
                )
            )
            if [int(rows.get(t, 0)) for t in tags] != list(gens):
                return False
            await conn.execute(
                "INSERT INTO cache_entries (key, value, expires_at) VALUES ($1, $2, $3) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                "expires_at = excluded.expires_at",
                key,
                value,
                time.time() + ttl,
            )
            await conn.executemany(
                "INSERT INTO cache_tags (tag, key) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                [(t, key) for t in tags],
            )
        return True

    async def invalidate_tags(self, tags: Iterable[str]) -> int:
        tag_list = sorted(set(tags))
        if not tag_list:
            return 0
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO cache_gens (tag, gen) SELECT unnest($1::text[]), 1 "
                "ON CONFLICT (tag) DO UPDATE SET gen = cache_gens.gen + 1",
                tag_list,
            )
            status = await conn.execute(
                "DELETE FROM cache_entries WHERE key IN "
                "(SELECT key FROM cache_tags WHERE tag = ANY($1))",
                tag_list,
            )
            await conn.execute("DELETE FROM cache_tags WHERE tag = ANY($1)", tag_list)
        return int(status.split()[-1])

    async def invalidate_pattern(self, pattern: str) -> int:
        status = await self.pool.execute(
            "DELETE FROM cache_entries WHERE key LIKE $1 ESCAPE '\\'", _like(pattern)
        )
        return int(status.split()[-1])

    async def purge_expired(self) -> int:
        status = await self.pool.execute(
            "DELETE FROM cache_entries WHERE expires_at < $1", time.time()
        )
        await self.pool.execute(
            "DELETE FROM cache_tags t WHERE NOT EXISTS "
            "(SELECT 1 FROM cache_entries e WHERE e.key = t.key)"
        )
        return int(status.split()[-1])

    async def clear(self) -> None:
        await self.pool.execute("DELETE FROM cache_entries")
        await self.pool.execute("DELETE FROM cache_tags")
