"""The cache level port: bytes in, bytes out, with TTLs, tags and pattern invalidation.

Values are bytes (a response body serialised once), so a hit never re-serialises.
Patterns are globs over keys (``tasks:*``); no level uses Redis ``KEYS`` (seed bug 4).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable


class CacheLevel(abc.ABC):
    name: str

    @abc.abstractmethod
    async def get(self, key: str) -> bytes | None: ...

    @abc.abstractmethod
    async def set(self, key: str, value: bytes, ttl: float, tags: Iterable[str] = ()) -> bool:
        """Store ``value``; False when the level declined it (admission, size)."""

    @abc.abstractmethod
    async def delete(self, keys: Iterable[str]) -> int: ...

    @abc.abstractmethod
    async def invalidate_tags(self, tags: Iterable[str]) -> int:
        """Drop every entry carrying any of ``tags``; returns how many were dropped."""

    @abc.abstractmethod
    async def invalidate_pattern(self, pattern: str) -> int:
        """Drop every key matching the glob ``pattern``."""

    @abc.abstractmethod
    async def clear(self) -> None: ...

    async def close(self) -> None:
        return None
