"""Rows to domain objects, shared by the backends (both return rows in the same column order)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from zyflow.domain.events import StoredEvent
from zyflow.domain.model import Change, Conflict, Task
from zyflow.store.port import Page, TaskQuery, encode_cursor, sort_values


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
