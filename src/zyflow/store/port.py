"""The store port: what the sync engine, the CLI and the API need from a database.

One abstract class, one module per backend (``sqlite``, ``postgres``), one contract test
suite run against each. ``EventStore`` is the append-only log; ``Store`` adds the read
models, which every backend writes in the same transaction as the events that change
them (``append``), using ``zyflow.domain.projection`` so that replay is exact.
"""

from __future__ import annotations

import abc
import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import orjson

from zyflow.domain.errors import InvalidInput
from zyflow.domain.events import EVENT_TYPES, NewEvent, StoredEvent
from zyflow.domain.model import (
    Change,
    Conflict,
    Project,
    Status,
    SyncBase,
    Task,
    parse_status,
    priority_name,
    priority_rank,
)
from zyflow.domain.projection import RowOp
from zyflow.store.group_commit import GroupCommitter

T = TypeVar("T")

MAX_PAGE = 500
DEFAULT_PAGE = 50

# Sort name -> the columns of its keyset (id always last, for a total order).
SORTS: dict[str, tuple[str, ...]] = {
    "position": ("project_id", "change_id", "ord"),
    "created_at": ("created_at",),
    "updated_at": ("updated_at",),
    "title": ("title",),
    "priority": ("priority",),
    "status": ("status",),
}


@dataclass(slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "items": [item.to_json() for item in self.items],  # type: ignore[attr-defined]
            "next_cursor": self.next_cursor,
        }


@dataclass(slots=True)
class TaskQuery:
    project: str | None = None
    change: str | None = None
    statuses: tuple[str, ...] = ()
    assignee: str | None = None
    priority: int | None = None
    q: str | None = None
    sort: str = "position"
    descending: bool = False
    limit: int = DEFAULT_PAGE
    after: tuple[Any, ...] | None = None

    @classmethod
    def build(
        cls,
        *,
        project: str | None = None,
        change: str | None = None,
        status: str | None = None,
        assignee: str | None = None,
        priority: str | None = None,
        q: str | None = None,
        sort: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> TaskQuery:
        """Validate user-facing filters (as the API and CLI take them) into a query."""
        statuses: tuple[str, ...] = ()
        if status:
            statuses = tuple(parse_status(s.strip()).value for s in status.split(",") if s.strip())
        sort_name = (sort or "position").strip()
        descending = sort_name.startswith("-")
        sort_name = sort_name.lstrip("-")
        if sort_name not in SORTS:
            raise InvalidInput(f"unknown sort {sort!r}; expected one of {', '.join(SORTS)}")
        if limit is None:
            limit = DEFAULT_PAGE
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
        query = cls(
            project=project or None,
            change=change or None,
            statuses=statuses,
            assignee=assignee or None,
            priority=priority_rank(priority) if priority else None,
            q=q.strip() if q and q.strip() else None,
            sort=sort_name,
            descending=descending,
            limit=limit,
        )
        if cursor:
            query.after = decode_cursor(cursor, query)
        return query

    def fingerprint(self) -> str:
        """What a cursor must agree with: the same sort and filters it was made for."""
        return orjson.dumps(
            [
                self.project,
                self.change,
                self.statuses,
                self.assignee,
                self.priority,
                self.q,
                self.sort,
                self.descending,
            ]
        ).decode()


def encode_cursor(query: TaskQuery, values: Sequence[Any]) -> str:
    payload = orjson.dumps({"k": list(values), "f": query.fingerprint()})
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_cursor(cursor: str, query: TaskQuery) -> tuple[Any, ...]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        values = payload["k"]
        fingerprint = payload["f"]
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeEncodeError):
        raise InvalidInput("invalid cursor") from None
    if fingerprint != query.fingerprint():
        raise InvalidInput("cursor does not belong to this query (filters or sort changed)")
    expected = len(SORTS[query.sort]) + 1
    if not isinstance(values, list) or len(values) != expected:
        raise InvalidInput("invalid cursor")
    for value in values:
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise InvalidInput("invalid cursor")
    return tuple(values)


@dataclass(slots=True)
class EventQuery:
    aggregate_id: str | None = None
    types: tuple[str, ...] = ()
    after: int = 0
    limit: int = 100

    @classmethod
    def build(
        cls,
        *,
        aggregate_id: str | None = None,
        type: str | None = None,
        after: int | None = None,
        limit: int | None = None,
    ) -> EventQuery:
        types: tuple[str, ...] = ()
        if type:
            types = tuple(t.strip() for t in type.split(",") if t.strip())
            unknown = [t for t in types if t not in EVENT_TYPES]
            if unknown:
                raise InvalidInput(f"unknown event type {unknown[0]!r}")
        if after is not None and after < 0:
            raise InvalidInput("after must be a position (0 or more)")
        if limit is None:
            limit = 100
        if not 1 <= limit <= 10_000:
            raise InvalidInput("limit must be between 1 and 10000")
        return cls(aggregate_id=aggregate_id or None, types=types, after=after or 0, limit=limit)


@dataclass(slots=True)
class SyncState:
    base: SyncBase | None
    version: int
    open_conflicts: frozenset[str] = field(default_factory=frozenset)
    failed_with: str | None = None  # the error of the last sync, when it failed


class EventStore(abc.ABC):
    """The append-only log."""

    @abc.abstractmethod
    async def append(
        self,
        events: Sequence[NewEvent],
        *,
        sync_base: tuple[str, str, SyncBase] | None = None,
    ) -> list[StoredEvent]:
        """Append atomically, with the read-model rows they change (and, for the sync
        engine, the change's new sync base). A version already taken raises
        ConcurrencyError and writes nothing."""

    @abc.abstractmethod
    async def read_stream(self, aggregate_id: str, after_version: int = 0) -> list[StoredEvent]:
        """One aggregate's events in version order."""

    @abc.abstractmethod
    async def read_all(self, query: EventQuery) -> list[StoredEvent]:
        """Events after a global position, in position order."""

    @abc.abstractmethod
    async def last_position(self) -> int: ...


class Store(EventStore):
    """The log plus the read models built from it."""

    url: str
    committer: GroupCommitter

    @abc.abstractmethod
    async def migrate(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    # projects (configuration, not event-sourced)
    @abc.abstractmethod
    async def register_project(self, project: Project) -> Project:
        """Insert, or return the project already registered at the same path."""

    @abc.abstractmethod
    async def list_projects(self) -> list[Project]: ...

    # read models
    @abc.abstractmethod
    async def get_task(self, task_id: str) -> Task | None: ...

    @abc.abstractmethod
    async def tasks_of_change(self, project: str, change: str) -> list[Task]: ...

    @abc.abstractmethod
    async def list_tasks(self, query: TaskQuery) -> Page[Task]: ...

    @abc.abstractmethod
    async def get_change(self, project: str, change: str) -> Change | None: ...

    @abc.abstractmethod
    async def list_changes(
        self, project: str | None = None, status: str | None = None, change: str | None = None
    ) -> list[Change]: ...

    @abc.abstractmethod
    async def list_conflicts(self, status: str | None = None) -> list[Conflict]: ...

    @abc.abstractmethod
    async def get_conflict(self, conflict_id: str) -> Conflict | None: ...

    @abc.abstractmethod
    async def sync_state(self, project: str, change: str) -> SyncState: ...

    @abc.abstractmethod
    async def sync_states(self, project: str) -> dict[str, SyncState]:
        """Every change's sync state in a project, in a few queries (bulk sync)."""

    @abc.abstractmethod
    async def tasks_of_project(self, project: str) -> dict[str, list[Task]]:
        """Every task of a project by change, in order (bulk sync)."""

    @abc.abstractmethod
    async def put_sync_base(self, project: str, change: str, base: SyncBase) -> None:
        """Record the base without events (the service's own write of a file)."""

    # event consumers (zyflow.events)
    @abc.abstractmethod
    async def consumer_position(self, consumer: str) -> int: ...

    @abc.abstractmethod
    async def advance_consumer(self, consumer: str, events: Sequence[StoredEvent]) -> int:
        """Apply the consumer's effect (activity rows) for events past its checkpoint and
        move the checkpoint, in one transaction; returns how many events were new."""

    @abc.abstractmethod
    async def record_activity(self, consumer: str, events: Sequence[StoredEvent]) -> int:
        """The same effect keyed by position (for consumers sharing a stream, whose
        positions interleave): a redelivered event inserts nothing."""

    @abc.abstractmethod
    async def activity_positions(self) -> list[int]: ...

    @abc.abstractmethod
    async def list_dead_letters(self, limit: int = 100) -> list[dict[str, Any]]: ...

    # replay
    @abc.abstractmethod
    async def apply_ops(self, ops: Sequence[RowOp]) -> None:
        """Execute projection operations in one transaction (replay into a scratch store)."""

    @abc.abstractmethod
    async def read_models(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every read-model row, in a canonical order, for comparison."""

    @abc.abstractmethod
    async def open_scratch(self) -> Store:
        """An empty, migrated store of the same kind, for replay; dropped by ``close``."""


def task_from_row(row: Sequence[Any]) -> Task:
    """Rows come in TASK_COLUMNS order from both backends."""
    (
        id_,
        project,
        change,
        key,
        display_id,
        title,
        grp,
        section,
        status,
        assignee,
        priority,
        tags,
        parent_id,
        line,
        ord_,
        version,
        created_at,
        updated_at,
    ) = row
    return Task(
        id=id_,
        project=project,
        change=change,
        key=key,
        display_id=display_id,
        title=title,
        group=grp,
        section=section,
        status=status,
        assignee=assignee,
        priority=priority_name(priority),
        tags=orjson.loads(tags) if tags else [],
        parent_id=parent_id,
        line=line,
        order=ord_,
        version=version,
        created_at=created_at,
        updated_at=updated_at,
    )


def sort_values(task: Task, sort: str) -> tuple[Any, ...]:
    values: dict[str, Any] = {
        "project_id": task.project,
        "change_id": task.change,
        "ord": task.order,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "title": task.title,
        "priority": priority_rank(task.priority),
        "status": task.status,
    }
    return (*(values[c] for c in SORTS[sort]), task.id)


ACTIVE_STATUSES = tuple(s.value for s in Status if s != Status.ARCHIVED)
