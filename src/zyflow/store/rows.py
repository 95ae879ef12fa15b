"""Rows to domain objects, shared by the backends (both return rows in the same column order)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from zyflow.domain.events import NewEvent, StoredEvent
from zyflow.domain.model import Change, Conflict, SyncBase, Task, utc_now
from zyflow.store.group_commit import AppendRequest
from zyflow.store.port import Page, SyncState, TaskQuery, encode_cursor, sort_values


def event_from_row(row: Sequence[Any]) -> StoredEvent:
    return StoredEvent(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        orjson.loads(row[7]),
        orjson.loads(row[8]),
    )


def conflict_from_row(row: Sequence[Any]) -> Conflict:
    return Conflict(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        orjson.loads(row[5]),
        orjson.loads(row[6]),
        orjson.loads(row[7]),
        row[8],
        row[9],
        row[10],
        row[11],
        row[12],
    )


def page_of(query: TaskQuery, tasks: list[Task]) -> Page[Task]:
    cursor = None
    if len(tasks) > query.limit:
        tasks = tasks[: query.limit]
        cursor = encode_cursor(query, sort_values(tasks[-1], query.sort))
    return Page(tasks, cursor)


def changes_from_rows(rows: Sequence[Sequence[Any]]) -> list[Change]:
    changes: dict[tuple[str, str], Change] = {}
    for row in rows:
        key = (row[0], row[1])
        change = changes.get(key)
        if change is None:
            change = Change(*row[:8])
            changes[key] = change
        status, count = row[8], row[9]
        if status is None:
            continue
        change.counts[status] = count
        if status != "archived":
            change.total += count
        if status == "done":
            change.done += count
    return list(changes.values())


def stored_events(first_position: int, events: Sequence[NewEvent]) -> list[StoredEvent]:
    """Appended events with the positions they took (positions commit in order)."""
    return [
        StoredEvent(
            first_position + i + 1,
            e.id,
            e.aggregate_type,
            e.aggregate_id,
            e.version,
            e.type,
            e.timestamp,
            e.data,
            e.metadata,
        )
        for i, e in enumerate(events)
    ]


def dead_letter_row(request: AppendRequest, error: str) -> tuple[str, str, str, str | None]:
    events = [
        {
            "id": e.id,
            "aggregate_type": e.aggregate_type,
            "aggregate_id": e.aggregate_id,
            "version": e.version,
            "type": e.type,
            "timestamp": e.timestamp,
            "data": e.data,
            "metadata": e.metadata,
        }
        for e in request.events
    ]
    base = None
    if request.sync_base is not None:
        project, change, sync_base = request.sync_base
        base = orjson.dumps(
            {
                "project": project,
                "change": change,
                "checksum": sync_base.checksum,
                "tasks": sync_base.tasks,
            }
        ).decode()
    return utc_now(), error, orjson.dumps(events).decode(), base


def dead_letter_json(row: Sequence[Any]) -> dict[str, Any]:
    return {
        "id": row[0],
        "created_at": row[1],
        "error": row[2],
        "events": orjson.loads(row[3]),
        "sync_base": orjson.loads(row[4]) if row[4] else None,
    }


def sync_states_from_rows(
    bases: Sequence[Sequence[Any]],
    statuses: Sequence[Sequence[Any]],
    open_conflicts: Sequence[Sequence[Any]],
) -> dict[str, SyncState]:
    """Per change, from (change, checksum, tasks) bases, (change, version, status, error)
    sync-status rows and (change, task_id) open conflicts."""
    waiting: dict[str, set[str]] = {}
    for change, task_id in open_conflicts:
        waiting.setdefault(change, set()).add(task_id)
    states: dict[str, SyncState] = {}
    for change, version, status, error in statuses:
        failed = str(error) if status == "failed" else None
        states[change] = SyncState(None, int(version), frozenset(waiting.get(change, ())), failed)
    for change, checksum, raw_tasks in bases:
        tasks = orjson.loads(raw_tasks) if isinstance(raw_tasks, str | bytes) else raw_tasks
        state = states.setdefault(change, SyncState(None, 0, frozenset(waiting.get(change, ()))))
        state.base = SyncBase(checksum, {k: (bool(v[0]), str(v[1])) for k, v in tasks.items()})
    for change, task_ids in waiting.items():
        states.setdefault(change, SyncState(None, 0, frozenset(task_ids)))
    return states


def tasks_by_change(tasks: Sequence[Task]) -> dict[str, list[Task]]:
    grouped: dict[str, list[Task]] = {}
    for task in tasks:
        grouped.setdefault(task.change, []).append(task)
    return grouped
