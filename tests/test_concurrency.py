"""1,000 concurrent updates to one task: each commits or is refused; none lost or doubled."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from tests.test_sync import make_project
from zyflow.domain.errors import ConcurrencyError
from zyflow.store.port import Store
from zyflow.store.replay import replay_verify
from zyflow.sync.engine import SyncEngine

WRITERS = 1000


async def test_thousand_concurrent_updates_same_task(store: Store, tmp_path: Path) -> None:
    engine = SyncEngine(store)
    project = await engine.register(make_project(tmp_path / "p"))
    await engine.sync_project(project.id)
    task = (await store.tasks_of_change(project.id, "numbered"))[1]
    start_version = task.version
    rng = random.Random(1)

    async def writer(n: int) -> tuple[int, bool]:
        await asyncio.sleep(rng.random() * 0.01)
        seen = await store.get_task(task.id)
        assert seen is not None
        await asyncio.sleep(0)  # let others read the same version
        status = "done" if n % 5 == 0 else ("in-progress" if n % 2 else "todo")
        try:
            await engine.update_task(
                task.id, assignee=f"w{n}", status=status, expected_version=seen.version
            )
            return n, True
        except ConcurrencyError:
            return n, False

    results = await asyncio.gather(*(writer(n) for n in range(WRITERS)))
    winners = {n for n, ok in results if ok}
    assert winners, "at least one writer must commit"
    stream = await store.read_stream(task.id)
    versions = [e.version for e in stream]
    assert versions == list(range(1, len(versions) + 1))  # unbroken, no duplicates
    updates = [e for e in stream if e.version > start_version]
    assignees = [e.data["changes"].get("assignee") for e in updates]
    # Every acknowledged update is in the log exactly once; nothing unacknowledged is.
    assert sorted(int(a[1:]) for a in assignees) == sorted(winners)
    final = await store.get_task(task.id)
    assert final is not None and final.version == versions[-1]
    assert final.assignee == assignees[-1]
    assert (await replay_verify(store)).ok
