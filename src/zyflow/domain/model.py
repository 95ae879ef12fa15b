"""The domain's nouns: tasks, changes, projects, statuses. No I/O here."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from zyflow.domain.errors import InvalidInput


class Status(StrEnum):
    TODO = "todo"
    IN_PROGRESS = "in-progress"
    REVIEW = "review"
    DONE = "done"
    ARCHIVED = "archived"


class Strategy(StrEnum):
    """How a field changed on both sides since the last sync is settled."""

    SPEC_WINS = "spec-wins"
    RUNTIME_WINS = "runtime-wins"
    LAST_WRITE_WINS = "last-write-wins"
    MANUAL = "manual"


PRIORITIES: tuple[str, ...] = ("low", "medium", "high", "urgent")
"""Priorities by rank; stored as 1..4 so that sorting by priority is an index scan (0 = none)."""

CHANGE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
ENTITY_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def priority_rank(name: str | None) -> int:
    if name is None or name == "":
        return 0
    try:
        return PRIORITIES.index(name) + 1
    except ValueError:
        raise InvalidInput(
            f"unknown priority {name!r}; expected one of {', '.join(PRIORITIES)}"
        ) from None


def priority_name(rank: int) -> str | None:
    return PRIORITIES[rank - 1] if rank else None


def parse_status(value: str) -> Status:
    try:
        return Status(value)
    except ValueError:
        allowed = ", ".join(s.value for s in Status)
        raise InvalidInput(f"unknown status {value!r}; expected one of {allowed}") from None


def parse_strategy(value: str) -> Strategy:
    try:
        return Strategy(value)
    except ValueError:
        allowed = ", ".join(s.value for s in Strategy)
        raise InvalidInput(f"unknown strategy {value!r}; expected one of {allowed}") from None


def check_change_id(value: str) -> str:
    if not CHANGE_ID.match(value) or value in {".", ".."}:
        raise InvalidInput(f"invalid change id {value!r}")
    return value


def check_entity_id(value: str, what: str = "id") -> str:
    if not ENTITY_ID.match(value):
        raise InvalidInput(f"invalid {what} {value!r}")
    return value


def new_id() -> str:
    """A random 64-bit id in hex: unique across projects and shards without coordination."""
    return secrets.token_hex(8)


def utc_now() -> str:
    return format_ts(datetime.now(UTC))


def format_ts(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds, so that text order is time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(slots=True)
class Task:
    id: str
    project: str
    change: str
    key: str
    display_id: str | None
    title: str
    group: str | None
    section: str | None
    status: str
    assignee: str | None
    priority: str | None
    tags: list[str]
    parent_id: str | None
    line: int
    order: int
    version: int
    created_at: str
    updated_at: str

    @property
    def done(self) -> bool:
        return self.status == Status.DONE

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project": self.project,
            "change": self.change,
            "key": self.key,
            "display_id": self.display_id,
            "title": self.title,
            "group": self.group,
            "section": self.section,
            "status": self.status,
            "done": self.status == Status.DONE,
            "assignee": self.assignee,
            "priority": self.priority,
            "tags": self.tags,
            "parent_id": self.parent_id,
            "line": self.line,
            "order": self.order,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(slots=True)
class Change:
    project: str
    id: str
    title: str
    status: str  # active | archived
    path: str
    version: int
    created_at: str
    updated_at: str
    total: int = 0
    done: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project": self.project,
            "title": self.title,
            "status": self.status,
            "path": self.path,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "progress": {
                "total": self.total,
                "done": self.done,
                "ratio": round(self.done / self.total, 4) if self.total else 0.0,
                "by_status": self.counts,
            },
        }


@dataclass(slots=True)
class Project:
    id: str
    name: str
    path: str
    created_at: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "path": self.path, "created_at": self.created_at}


@dataclass(slots=True)
class Conflict:
    id: str
    project: str
    change: str
    task_id: str
    field: str
    base: Any
    spec: Any
    runtime: Any
    strategy: str
    status: str  # open | resolved
    resolution: str | None
    detected_at: str
    resolved_at: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project": self.project,
            "change": self.change,
            "task_id": self.task_id,
            "field": self.field,
            "base": self.base,
            "spec": self.spec,
            "runtime": self.runtime,
            "strategy": self.strategy,
            "status": self.status,
            "resolution": self.resolution,
            "detected_at": self.detected_at,
            "resolved_at": self.resolved_at,
        }


@dataclass(slots=True)
class SyncBase:
    """What the sync engine saw at its last commit for one change.

    ``tasks`` maps task id to (checkbox in the file, status in the database) at that
    moment: the base of the three-way merge. ``checksum`` identifies the file content
    synced (or written by the service itself), so the watcher can skip its own writes.
    """

    checksum: str
    tasks: dict[str, tuple[bool, str]]
