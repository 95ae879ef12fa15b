"""Edits on disk reach the database through the watcher, and write-backs do not loop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.test_sync import make_project, tasks_file
from zyflow.store.port import EventQuery, Store
from zyflow.sync.engine import SyncEngine
from zyflow.sync.watcher import Watcher


async def wait_for(predicate, timeout: float = 5.0) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if await predicate():
            return time.perf_counter() - started
        await asyncio.sleep(0.002)
    raise AssertionError("condition not met in time")


async def test_edit_is_synced_quickly_and_own_writes_do_not_loop(
    store: Store, tmp_path: Path
) -> None:
    engine = SyncEngine(store)
    root = make_project(tmp_path / "p")
    project = await engine.register(root)
    await engine.sync_project(project.id)
    stop = asyncio.Event()
    watcher = Watcher(engine)
    runner = asyncio.create_task(watcher.run({project.id: root}, stop))
    await asyncio.wait_for(watcher.ready.wait(), 5)
    await asyncio.sleep(0.2)  # let the OS watch settle
    try:
        path = tasks_file(root, "numbered")
        path.write_bytes(path.read_bytes() + b"- [ ] 2.3 Added from an editor\n")

        async def created() -> bool:
            return any(
                t.display_id == "2.3" for t in await store.tasks_of_change(project.id, "numbered")
            )

        latency = await wait_for(created)
        assert latency < 1.0
        # A write-back by the service itself: exactly one sync's worth of events, no echo.
        task = next(
            t for t in await store.tasks_of_change(project.id, "numbered") if t.display_id == "2.3"
        )
        await engine.update_task(task.id, status="done")
        position = await store.last_position()
        await asyncio.sleep(0.5)
        assert await store.last_position() == position
        assert b"- [x] 2.3 Added" in path.read_bytes()
        # A new change folder appears.
        new = root / "openspec" / "changes" / "fresh-change"
        new.mkdir()
        (new / "tasks.md").write_text("## 1. New\n- [ ] 1.1 First\n")

        async def appeared() -> bool:
            return len(await store.tasks_of_change(project.id, "fresh-change")) == 1

        await wait_for(appeared)
        events = await store.read_all(EventQuery(types=("ChangeCreated",), after=position))
        assert [e.data["change"]["id"] for e in events] == ["fresh-change"]
    finally:
        stop.set()
        await asyncio.wait_for(runner, 5)
