"""The read models as a pure function of events.

``project(event)`` says which rows an event inserts or updates, in column terms.
Both store backends execute these operations in the transaction that appends the
event, and ``zyflow replay`` executes them again from an empty schema: one
definition, so the live read models and their replay cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from zyflow.domain.events import EventType, NewEvent, StoredEvent
from zyflow.domain.model import priority_rank

TASK_COLUMNS: tuple[str, ...] = (
    "id",
    "project_id",
    "change_id",
    "key",
    "display_id",
    "title",
    "grp",
    "section",
    "status",
    "assignee",
    "priority",
    "tags",
    "parent_id",
    "line",
    "ord",
    "version",
    "created_at",
    "updated_at",
)
CHANGE_COLUMNS: tuple[str, ...] = (
    "project_id",
    "id",
    "title",
    "status",
    "path",
    "version",
    "created_at",
    "updated_at",
)
SYNC_COLUMNS: tuple[str, ...] = (
    "project_id",
    "change_id",
    "status",
    "last_sync",
    "checksum",
    "tasks",
    "error",
    "version",
)
CONFLICT_COLUMNS: tuple[str, ...] = (
    "id",
    "project_id",
    "change_id",
    "task_id",
    "field",
    "base",
    "spec",
    "runtime",
    "strategy",
    "status",
    "resolution",
    "detected_at",
    "resolved_at",
)

# Task fields as the domain names them -> their column.
_TASK_FIELD_COLUMN = {
    "project": "project_id",
    "change": "change_id",
    "group": "grp",
    "order": "ord",
}


@dataclass(frozen=True, slots=True)
class Insert:
    table: str
    row: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Update:
    table: str
    where: dict[str, Any]
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Upsert:
    table: str
    conflict: tuple[str, ...]
    row: dict[str, Any]


RowOp = Insert | Update | Upsert


def task_column_value(name: str, value: Any) -> tuple[str, Any]:
    """A domain task field and value -> (column, stored value)."""
    if name == "priority":
        return "priority", priority_rank(value)
    if name == "tags":
        return "tags", orjson.dumps(value or []).decode()
    return _TASK_FIELD_COLUMN.get(name, name), value


def _task_values(fields: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    rename = _TASK_FIELD_COLUMN
    for name, value in fields.items():
        if name == "priority":
            values["priority"] = priority_rank(value)
        elif name == "tags":
            values["tags"] = orjson.dumps(value or []).decode()
        else:
            values[rename.get(name, name)] = value
    return values


def project(event: NewEvent | StoredEvent) -> Iterator[RowOp]:
    """The row operations one event makes on the read models."""
    data = event.data
    ts = event.timestamp
    kind = event.type
    if kind == EventType.TASK_CREATED:
        row = _task_values(data["task"])
        row.update(version=event.version, created_at=ts, updated_at=ts)
        yield Insert("tasks", row)
    elif kind in _TASK_UPDATES:
        values = _task_values(data["changes"])
        values.update(version=event.version, updated_at=ts)
        yield Update("tasks", {"id": event.aggregate_id}, values)
    elif kind == EventType.CHANGE_CREATED:
        change = data["change"]
        yield Insert(
            "changes",
            {
                "project_id": change["project"],
                "id": change["id"],
                "title": change["title"],
                "status": change["status"],
                "path": change["path"],
                "version": event.version,
                "created_at": ts,
                "updated_at": ts,
            },
        )
        yield from _moves(data)
    elif kind in (EventType.CHANGE_UPDATED, EventType.CHANGE_ARCHIVED):
        values = dict(data.get("changes", {}))
        values.update(version=event.version, updated_at=ts)
        yield Update("changes", {"project_id": data["project"], "id": data["change"]}, values)
        yield from _moves(data)
    elif kind in (EventType.SYNC_STARTED, EventType.SYNC_COMPLETED, EventType.SYNC_FAILED):
        status_row: dict[str, Any] = {
            "project_id": data["project"],
            "change_id": data["change"],
            "version": event.version,
        }
        if kind == EventType.SYNC_STARTED:
            status_row["status"] = "syncing"
        elif kind == EventType.SYNC_COMPLETED:
            status_row.update(
                status="ok",
                last_sync=ts,
                checksum=data["checksum"],
                tasks=data["tasks"],
                error=None,
            )
        else:
            status_row.update(status="failed", last_sync=ts, error=data["error"])
        yield Upsert("sync_status", ("project_id", "change_id"), status_row)
    elif kind == EventType.CONFLICT_DETECTED:
        c = data["conflict"]
        yield Insert(
            "conflicts",
            {
                "id": event.aggregate_id,
                "project_id": c["project"],
                "change_id": c["change"],
                "task_id": c["task_id"],
                "field": c["field"],
                "base": orjson.dumps(c["base"]).decode(),
                "spec": orjson.dumps(c["spec"]).decode(),
                "runtime": orjson.dumps(c["runtime"]).decode(),
                "strategy": c["strategy"],
                "status": "open",
                "resolution": None,
                "detected_at": ts,
                "resolved_at": None,
            },
        )
    elif kind == EventType.CONFLICT_RESOLVED:
        yield Update(
            "conflicts",
            {"id": event.aggregate_id},
            {"status": "resolved", "resolution": data["resolution"], "resolved_at": ts},
        )
    else:  # pragma: no cover - the event store refuses unknown types
        raise ValueError(f"unknown event type {kind!r}")


def _moves(data: dict[str, Any]) -> Iterator[RowOp]:
    # Line and order shifts ride on the change's event rather than one event per task:
    # inserting a line at the top of a file must not rewrite fifty task histories.
    for task_id, (line, order) in data.get("moved", {}).items():
        yield Update("tasks", {"id": task_id}, {"line": line, "ord": order})


_TASK_UPDATES = frozenset(
    {
        EventType.TASK_UPDATED,
        EventType.TASK_COMPLETED,
        EventType.TASK_REOPENED,
        EventType.TASK_ARCHIVED,
    }
)


def project_all(events: Iterable[NewEvent | StoredEvent]) -> list[RowOp]:
    ops: list[RowOp] = []
    for event in events:
        ops.extend(project(event))
    return ops
