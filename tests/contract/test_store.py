"""The store contract (read models, search, pagination, indexes), run against every backend."""

from __future__ import annotations

import random

import pytest

from tests.contract.test_event_store import created, updated
from zyflow.domain.errors import InvalidInput
from zyflow.domain.events import EventType, NewEvent
from zyflow.domain.model import Project
from zyflow.store.port import Store, TaskQuery


async def all_pages(store: Store, **filters: object) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        page = await store.list_tasks(TaskQuery.build(cursor=cursor, **filters))  # type: ignore[arg-type]
        ids.extend(t.id for t in page.items)
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


async def test_projects_register_once_per_path(store: Store) -> None:
    a = await store.register_project(
        Project("demo", "demo", "/x/demo", "2026-01-01T00:00:00.000000Z")
    )
    again = await store.register_project(
        Project("demo", "demo", "/x/demo", "2026-01-01T00:00:00.000000Z")
    )
    other = await store.register_project(
        Project("demo", "demo", "/y/demo", "2026-01-01T00:00:00.000000Z")
    )
    assert a.id == again.id == "demo"
    assert other.id == "demo-2"
    assert [p.id for p in await store.list_projects()] == ["demo", "demo-2"]


async def test_filters_and_keyset_pages(store: Store) -> None:
    events = [created(f"t{i:03}", f"Task {i}", change=f"c{i % 3}") for i in range(120)]
    await store.append(events)
    await store.append([updated("t005", 2, status="in-progress", assignee="ann", priority="high")])
    await store.append([updated("t007", 2, status="done", assignee="ann")])
    ids = await all_pages(store, limit=7)
    assert len(ids) == len(set(ids)) == 120
    c1 = await all_pages(store, change="c1", limit=5)
    assert len(c1) == 40
    assert await all_pages(store, assignee="ann") == ["t005", "t007"] or set(
        await all_pages(store, assignee="ann")
    ) == {"t005", "t007"}
    assert await all_pages(store, status="in-progress") == ["t005"]
    assert await all_pages(store, priority="high") == ["t005"]
    assert set(await all_pages(store, status="done,in-progress")) == {"t005", "t007"}
    desc = await all_pages(store, sort="-updated_at", limit=3)
    assert desc[:2] == ["t007", "t005"]
    by_title = await all_pages(store, sort="title", limit=11)
    assert len(by_title) == 120 and len(set(by_title)) == 120


async def test_pagination_never_skips_or_repeats_while_tasks_are_added(store: Store) -> None:
    await store.append([created(f"t{i:03}", change="c") for i in range(0, 200, 2)])
    seen: list[str] = []
    cursor = None
    extra = iter(range(1, 200, 2))
    while True:
        page = await store.list_tasks(TaskQuery.build(change="c", cursor=cursor, limit=9))
        seen.extend(t.id for t in page.items)
        for _ in range(3):  # add tasks between pages
            n = next(extra, None)
            if n is not None:
                await store.append([created(f"t{n:03}", change="c")])
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen))
    assert {f"t{i:03}" for i in range(0, 200, 2)} <= set(seen)


async def test_bad_cursors_are_invalid_input(store: Store) -> None:
    await store.append([created(f"t{i}") for i in range(5)])
    page = await store.list_tasks(TaskQuery.build(limit=2))
    assert page.next_cursor
    for bad in ["???", "e30", page.next_cursor[:-3] + "AAA"]:
        with pytest.raises(InvalidInput):
            TaskQuery.build(limit=2, cursor=bad)
    with pytest.raises(InvalidInput, match="does not belong"):
        TaskQuery.build(limit=2, cursor=page.next_cursor, sort="title")
    with pytest.raises(InvalidInput):
        TaskQuery.build(limit=100000)
    with pytest.raises(InvalidInput):
        TaskQuery.build(sort="id; drop table tasks")


async def test_full_text_search_follows_every_write(store: Store) -> None:
    rng = random.Random(7)
    words = ["webhook", "delivery", "검색", "인덱스", "signature", "retry"]
    titles: dict[str, str] = {}
    versions: dict[str, int] = {}
    for step in range(60):
        task_id = f"t{rng.randrange(12)}"
        title = " ".join(rng.sample(words, 2))
        if task_id not in titles:
            await store.append([created(task_id, title)])
            versions[task_id] = 1
        else:
            versions[task_id] += 1
            await store.append([updated(task_id, versions[task_id], title=title)])
        titles[task_id] = title
        if step % 10 == 9:
            for word in words:
                expected = {t for t, title in titles.items() if word in title.split()}
                found = set(await all_pages(store, q=word))
                assert found == expected, (word, step)
    # Prefix search and several words (AND).
    expected = {t for t, title in titles.items() if "webhook" in title and "retry" in title}
    assert set(await all_pages(store, q="webh retr")) == expected
    # Punctuation never reaches the FTS syntax.
    assert await all_pages(store, q='"*) OR (') == []


async def test_change_progress(store: Store) -> None:
    change = NewEvent(
        "change",
        "p/c1",
        1,
        EventType.CHANGE_CREATED,
        {"change": {"project": "p", "id": "c1", "title": "C1", "status": "active", "path": "x"}},
    )
    await store.append([change, *(created(f"t{i}") for i in range(4))])
    await store.append([updated("t0", 2, status="done"), updated("t1", 2, status="archived")])
    found = await store.get_change("p", "c1")
    assert found is not None
    assert (found.total, found.done) == (3, 1)
    assert found.counts == {"done": 1, "todo": 2, "archived": 1}
    assert await store.get_change("p", "nope") is None
    assert [c.id for c in await store.list_changes(project="p")] == ["c1"]
    assert await store.list_changes(status="archived") == []


SEED_INDEXES = {
    "idx_tasks_change_id_status",
    "idx_tasks_assignee_status",
    "idx_tasks_created_at",
    "idx_events_timestamp_type",
    "idx_events_aggregate_id_version",
    "idx_sync_status_change_id",
    "idx_tasks_active",
}


async def _explain(store: Store, sql: str, *params: object) -> str:
    from zyflow.store.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        rows = store.db.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
        return "\n".join(str(r[-1]) for r in rows)
    from zyflow.store.postgres import PostgresStore
    from zyflow.store.sql import renumber

    assert isinstance(store, PostgresStore)
    async with store.pool.acquire() as conn:
        await conn.execute("SET enable_seqscan = off")
        rows = await conn.fetch("EXPLAIN " + renumber(sql), *params)
        await conn.execute("RESET enable_seqscan")
    return "\n".join(r[0] for r in rows)


async def test_seed_indexes_exist_and_hot_queries_use_them(store: Store) -> None:
    from zyflow.store.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        names = {
            r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type='index'")
        }
    else:
        from zyflow.store.postgres import PostgresStore

        assert isinstance(store, PostgresStore)
        names = {
            r[0]
            for r in await store.pool.fetch(
                "SELECT indexname FROM pg_indexes WHERE schemaname = $1", store.schema
            )
        }
    assert names >= SEED_INDEXES
    await store.append([created(f"t{i}", change=f"c{i % 5}") for i in range(50)])
    plans = {
        "single": await _explain(store, "SELECT id, title FROM tasks WHERE id = ?", "t1"),
        "board": await _explain(
            store,
            "SELECT id FROM tasks t WHERE t.project_id = ? AND t.change_id = ? "
            "AND t.status IN ('todo','in-progress','review','done') ORDER BY t.project_id, "
            "t.change_id, t.ord, t.id LIMIT 51",
            "p",
            "c1",
        ),
        "assignee": await _explain(
            store, "SELECT id FROM tasks WHERE assignee = ? AND status = ?", "ann", "todo"
        ),
        "active": await _explain(
            store, "SELECT id FROM tasks WHERE status IN ('todo', 'in-progress')"
        ),
        "stream": await _explain(
            store,
            "SELECT position FROM events WHERE aggregate_id = ? AND version > ? ORDER BY version",
            "t1",
            0,
        ),
    }
    for name, plan in plans.items():
        assert "SCAN tasks\n" not in plan + "\n" and "Seq Scan" not in plan, (name, plan)
    assert "idx_tasks_assignee_status" in plans["assignee"]
    assert "idx_tasks_active" in plans["active"]
    assert "idx_events_aggregate_id_version" in plans["stream"]
