"""Watches registered projects and syncs a change within milliseconds of an edit.

watchfiles (Rust notify) batches filesystem events; a short debounce folds an
editor's write-rename-chmod burst into one sync. The engine recognises the service's
own write-backs by checksum, so they end as a no-op instead of a loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from watchfiles import Change, awatch

from zyflow.domain.errors import ZyflowError
from zyflow.spec import layout
from zyflow.sync.engine import SyncEngine, SyncReport

log = logging.getLogger("zyflow.watch")

DEBOUNCE_MS = 30
STEP_MS = 5


def _relevant(_: Change, path: str) -> bool:
    return "/openspec/changes/" in path and not path.endswith(".zyflow-tmp")


class Watcher:
    def __init__(
        self,
        engine: SyncEngine,
        on_sync: Callable[[str, str, SyncReport], None] | None = None,
    ) -> None:
        self.engine = engine
        self.on_sync = on_sync
        self.ready = asyncio.Event()

    async def run(self, roots: dict[str, Path], stop: asyncio.Event) -> None:
        if not roots:
            await stop.wait()
            return
        paths = [root / layout.CHANGES_DIR for root in roots.values()]
        watcher = awatch(
            *paths,
            watch_filter=_relevant,
            debounce=DEBOUNCE_MS,
            step=STEP_MS,
            stop_event=stop,
            recursive=True,
        )
        self.ready.set()
        async for batch in watcher:
            touched: set[tuple[str, str]] = set()
            for _, raw_path in batch:
                path = Path(raw_path)
                for project, root in roots.items():
                    change = layout.locate(root, path)
                    if change is not None:
                        touched.add((project, change))
            for project, change in sorted(touched):
                await self._sync(project, change)

    async def _sync(self, project: str, change: str) -> None:
        try:
            report = await self.engine.sync_change(project, change, actor="watcher")
        except ZyflowError as exc:
            log.warning("sync of %s/%s failed: %s", project, change, exc)
            return
        except OSError as exc:
            log.warning("sync of %s/%s failed: %s", project, change, exc)
            return
        if self.on_sync is not None and report.events:
            self.on_sync(project, change, report)
