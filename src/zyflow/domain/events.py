"""Domain events: their shape, their types and the aggregates they belong to."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from zyflow.domain.model import utc_now


class EventType(StrEnum):
    TASK_CREATED = "TaskCreated"
    TASK_UPDATED = "TaskUpdated"
    TASK_COMPLETED = "TaskCompleted"
    TASK_REOPENED = "TaskReopened"
    TASK_ARCHIVED = "TaskArchived"
    CHANGE_CREATED = "ChangeCreated"
    CHANGE_UPDATED = "ChangeUpdated"
    CHANGE_ARCHIVED = "ChangeArchived"
    SYNC_STARTED = "SyncStarted"
    SYNC_COMPLETED = "SyncCompleted"
    SYNC_FAILED = "SyncFailed"
    CONFLICT_DETECTED = "ConflictDetected"
    CONFLICT_RESOLVED = "ConflictResolved"


EVENT_TYPES = frozenset(t.value for t in EventType)


def change_aggregate(project: str, change: str) -> str:
    return f"{project}/{change}"


def sync_aggregate(project: str, change: str) -> str:
    """Sync runs of a change form their own stream beside the change's."""
    return f"{project}/{change}#sync"


@dataclass(frozen=True, slots=True)
class Metadata:
    correlation_id: str | None = None
    causation_id: str | None = None
    actor: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "actor": self.actor,
        }


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append. ``version`` is the aggregate version it creates: the expected
    current version plus one, so a stale expectation fails on the unique (aggregate, version)."""

    aggregate_type: str
    aggregate_id: str
    version: int
    type: str
    data: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timestamp: str = field(default_factory=utc_now)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    position: int
    id: str
    aggregate_type: str
    aggregate_id: str
    version: int
    type: str
    timestamp: str
    data: dict[str, Any]
    metadata: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "position": self.position,
            "aggregate_type": self.aggregate_type,
            "aggregate_id": self.aggregate_id,
            "version": self.version,
            "type": self.type,
            "timestamp": self.timestamp,
            "data": self.data,
            "metadata": self.metadata,
        }
