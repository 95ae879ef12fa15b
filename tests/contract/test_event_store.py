"""The event store contract, run against every backend (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio

import pytest

from zyflow.domain.errors import ConcurrencyError
from zyflow.domain.events import EventType, NewEvent
from zyflow.store.port import EventQuery, Store


def created(task_id: str, title: str = "T", change: str = "c1") -> NewEvent:
    return NewEvent(
        "task",
        task_id,
        1,
        EventType.TASK_CREATED,
        {
            "task": {
                "id": task_id,
                "project": "p",
                "change": change,
                "key": task_id,
                "display_id": None,
                "title": title,
                "group": "G",
                "section": None,
                "status": "todo",
                "assignee": None,
                "priority": None,
                "tags": [],
                "parent_id": None,
                "line": 1,
                "order": 0,
            }
        },
        {"actor": "test"},
    )


def updated(task_id: str, version: int, **changes: object) -> NewEvent:
    return NewEvent(
        "task",
        task_id,
        version,
        EventType.TASK_UPDATED,
        {"changes": changes, "previous": {}},
        {"actor": "test"},
    )


async def test_append_and_read_back(store: Store) -> None:
    stored = await store.append([created("a"), created("b")])
    assert [e.position for e in stored] == [1, 2]
    stream = await store.read_stream("a")
    assert [(e.version, e.type) for e in stream] == [(1, "TaskCreated")]
    assert stream[0].data["task"]["title"] == "T"
    assert stream[0].metadata == {"actor": "test"}
    assert stream[0].timestamp == stored[0].timestamp
    assert await store.last_position() == 2


async def test_read_models_written_with_events(store: Store) -> None:
    await store.append([created("a", "First")])
    task = await store.get_task("a")
    assert task is not None and task.title == "First" and task.version == 1
    await store.append([updated("a", 2, title="Second", assignee="ann")])
    task = await store.get_task("a")
    assert task is not None
    assert (task.title, task.assignee, task.version) == ("Second", "ann", 2)


async def test_stale_version_writes_nothing(store: Store) -> None:
    await store.append([created("a")])
    await store.append([updated("a", 2, title="one")])
    before = await store.last_position()
    with pytest.raises(ConcurrencyError):
        # The batch holds a good event for "b" and a stale one for "a": all or nothing.
        await store.append([created("b"), updated("a", 2, title="two")])
    assert await store.last_position() == before
    assert await store.get_task("b") is None
    task = await store.get_task("a")
    assert task is not None and task.title == "one"
    # The store still works after the refused batch.
    await store.append([updated("a", 3, title="three")])
    assert [e.version for e in await store.read_stream("a")] == [1, 2, 3]


async def test_read_all_after_position_with_filters(store: Store) -> None:
    await store.append([created(f"t{i}") for i in range(10)])
    await store.append([updated("t3", 2, title="x")])
    page = await store.read_all(EventQuery(after=4, limit=3))
    assert [e.position for e in page] == [5, 6, 7]
    only = await store.read_all(EventQuery(types=("TaskUpdated",)))
    assert [e.aggregate_id for e in only] == ["t3"]
    agg = await store.read_all(EventQuery(aggregate_id="t3"))
    assert [e.version for e in agg] == [1, 2]
    assert await store.read_all(EventQuery(after=11)) == []


async def test_concurrent_appends_to_one_version_one_wins(store: Store) -> None:
    await store.append([created("a")])

    async def attempt(n: int) -> bool:
        try:
            await store.append([updated("a", 2, title=f"w{n}")])
            return True
        except ConcurrencyError:
            return False

    results = await asyncio.gather(*(attempt(n) for n in range(20)))
    assert results.count(True) == 1
    assert [e.version for e in await store.read_stream("a")] == [1, 2]


async def test_positions_are_gapless_and_ordered_under_concurrency(store: Store) -> None:
    await asyncio.gather(*(store.append([created(f"x{i}"), created(f"y{i}")]) for i in range(30)))
    events = await store.read_all(EventQuery(limit=1000))
    assert [e.position for e in events] == list(range(1, 61))
