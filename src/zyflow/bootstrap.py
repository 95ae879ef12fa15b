"""The composition root: the one place that picks adapters and wires them together."""

from __future__ import annotations

from dataclasses import dataclass

from zyflow.config import Settings
from zyflow.store import open_store
from zyflow.store.port import Store
from zyflow.sync.engine import SyncEngine


@dataclass(slots=True)
class Services:
    settings: Settings
    store: Store
    engine: SyncEngine

    async def close(self) -> None:
        await self.store.close()


async def build(settings: Settings) -> Services:
    store = await open_store(settings.db)
    engine = SyncEngine(store, strategy=settings.strategy)
    await engine.load_projects()
    return Services(settings, store, engine)
