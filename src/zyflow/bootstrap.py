"""The composition root: the one place that picks adapters and wires them together."""

from __future__ import annotations

from dataclasses import dataclass

from zyflow.cache.invalidation import stale
from zyflow.cache.multilevel import MultiLevelCache, build_cache
from zyflow.config import Settings
from zyflow.domain.events import StoredEvent
from zyflow.store import open_store
from zyflow.store.port import Store
from zyflow.sync.engine import SyncEngine


@dataclass(slots=True)
class Services:
    settings: Settings
    store: Store
    engine: SyncEngine
    cache: MultiLevelCache | None = None

    async def close(self) -> None:
        # Queued writes commit (and invalidate) before the cache and the store go away.
        await self.store.committer.close()
        if self.cache is not None:
            await self.cache.close()
        await self.store.close()


async def build(settings: Settings, *, with_cache: bool = False) -> Services:
    """The services for a CLI command (no cache) or a server (``with_cache``)."""
    store = await open_store(settings.db)
    engine = SyncEngine(store, strategy=settings.strategy)
    await engine.load_projects()
    services = Services(settings, store, engine)
    if with_cache:
        cache = build_cache(store, settings.redis)
        await cache.start()
        services.cache = cache

        async def invalidate(events: list[StoredEvent]) -> None:
            keys, tags, patterns = stale(events)
            await cache.invalidate(keys, tags, patterns)

        store.committer.after_commit.append(invalidate)
    return services
