"""The sync decision, as a pure function: file, base and database in; events and checkbox
writes out.

Identity: a parsed task is matched to a stored task by key, then by its current
title within its group, then as a rename in place (same position, same group).
Ownership: the file owns title, group, order, nesting and the checkbox; the
database owns status detail, assignee, priority and tags.
Three-way merge: the base is what the file and the database said at the last sync
(``SyncBase``). A side that changed alone wins; both changed to disagreeing values is
a conflict, settled by the strategy and recorded as events.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from zyflow.domain.events import EventType, NewEvent, change_aggregate, sync_aggregate
from zyflow.domain.model import (
    Change,
    Status,
    Strategy,
    SyncBase,
    Task,
    new_id,
)
from zyflow.spec.parser import ParsedDoc, ParsedTask, normalize

FILE_FIELDS = ("title", "display_id", "group", "section", "parent_id")


@dataclass(frozen=True, slots=True)
class ChangeSpec:
    """A change as found on disk. ``doc`` is None when its folder is gone."""

    project: str
    change: str
    title: str
    path: str
    archived: bool
    doc: ParsedDoc | None
    file_mtime: str | None = None


@dataclass(slots=True)
class Plan:
    events: list[NewEvent] = field(default_factory=list)
    checkboxes: dict[str, bool] = field(default_factory=dict)
    base_after: dict[str, tuple[bool, str]] = field(default_factory=dict)
    created: int = 0
    updated: int = 0
    archived: int = 0
    conflicts: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.events or self.checkboxes)


def _title_key(group: str | None, section: str | None, title: str) -> str:
    return " / ".join(normalize(p) for p in (group or "", section or "", title))


def match_tasks(parsed: Sequence[ParsedTask], stored: Sequence[Task]) -> dict[int, Task]:
    """Map each parsed task's ordinal to the stored task it continues, if any."""
    matches: dict[int, Task] = {}
    if not stored:
        return matches
    taken: set[str] = set()
    by_key: dict[str, Task] = {}
    for task in stored:
        # An active task beats an archived one holding the same key.
        held = by_key.get(task.key)
        if held is None or (held.status == Status.ARCHIVED and task.status != Status.ARCHIVED):
            by_key[task.key] = task
    for p in parsed:
        keyed = by_key.get(p.key)
        if keyed is not None and keyed.id not in taken:
            matches[p.ordinal] = keyed
            taken.add(keyed.id)
    if len(matches) == len(parsed):
        return matches
    # Second pass: the same title in the same group (a display id added or removed).
    by_title: dict[str, list[Task]] = {}
    for task in stored:
        if task.id not in taken:
            by_title.setdefault(_title_key(task.group, task.section, task.title), []).append(task)
    for p in parsed:
        if p.ordinal in matches:
            continue
        candidates = by_title.get(_title_key(p.group, p.section, p.title))
        while candidates:
            task = candidates.pop(0)
            if task.id not in taken:
                matches[p.ordinal] = task
                taken.add(task.id)
                break
    # Third pass: a title edited in place. The unmatched line sits where an unmatched
    # active task sat (same order, or right after the task its predecessor matched).
    free = sorted(
        (t for t in stored if t.id not in taken and t.status != Status.ARCHIVED),
        key=lambda t: t.order,
    )
    if not free:
        return matches
    by_order = {t.order: t for t in free}
    ordered_all = sorted(stored, key=lambda t: t.order)
    following: dict[str, Task] = {}
    for before, after in itertools.pairwise(ordered_all):
        following[before.id] = after
    for p in parsed:
        if p.ordinal in matches:
            continue
        candidate = by_order.get(p.ordinal)
        if candidate is None and p.ordinal > 0 and (p.ordinal - 1) in matches:
            candidate = following.get(matches[p.ordinal - 1].id)
        if (
            candidate is not None
            and candidate.id not in taken
            and candidate.status != Status.ARCHIVED
            and candidate.group == p.group
            and candidate.section == p.section
        ):
            matches[p.ordinal] = candidate
            taken.add(candidate.id)
    return matches


def _status_from_file(done: bool, current: str) -> str:
    if done:
        return Status.DONE
    # An unchecked box never resets in-progress or review.
    return Status.TODO if current in (Status.DONE, Status.ARCHIVED) else current


def _task_event_type(previous: str, status: str) -> str:
    if status == previous:
        return EventType.TASK_UPDATED
    if status == Status.ARCHIVED:
        return EventType.TASK_ARCHIVED
    if status == Status.DONE:
        return EventType.TASK_COMPLETED
    if previous == Status.DONE:
        return EventType.TASK_REOPENED
    return EventType.TASK_UPDATED


def task_update_event(
    task: Task, changes: dict[str, Any], metadata: dict[str, Any], timestamp: str
) -> NewEvent:
    """The one event that applies ``changes`` to ``task``, typed by its status move."""
    previous = {name: getattr(task, name) for name in changes}
    status = changes.get("status", task.status)
    return NewEvent(
        aggregate_type="task",
        aggregate_id=task.id,
        version=task.version + 1,
        type=_task_event_type(task.status, status),
        # project and change ride along so consumers (cache invalidation, feeds) need no
        # lookup to know where the task lives.
        data={
            "project": task.project,
            "change": task.change,
            "changes": changes,
            "previous": previous,
        },
        metadata=metadata,
        timestamp=timestamp,
    )


def reconcile(
    spec: ChangeSpec,
    change: Change | None,
    stored: Sequence[Task],
    base: SyncBase | None,
    *,
    sync_version: int,
    strategy: Strategy,
    open_conflicts: frozenset[str] = frozenset(),
    now: str,
    metadata: dict[str, Any] | None = None,
    make_id: Callable[[], str] = new_id,
) -> Plan:
    """Decide what one sync of one change does. No I/O: the caller applies the plan."""
    meta = metadata or {}
    plan = Plan()
    task_events: list[NewEvent] = []
    conflict_events: list[NewEvent] = []
    parsed = spec.doc.tasks if spec.doc is not None else ()
    matches = match_tasks(parsed, stored)
    base_tasks = base.tasks if base is not None else {}
    ids_by_key: dict[str, str] = {}
    for p in parsed:
        task = matches.get(p.ordinal)
        ids_by_key[p.key] = task.id if task is not None else make_id()
    moved: dict[str, list[int]] = {}
    kept: set[str] = set()

    for p in parsed:
        task_id = ids_by_key[p.key]
        parent_id = ids_by_key.get(p.parent_key) if p.parent_key else None
        task = matches.get(p.ordinal)
        if task is None:
            status = Status.DONE if p.done else Status.TODO
            task_events.append(
                NewEvent(
                    aggregate_type="task",
                    aggregate_id=task_id,
                    version=1,
                    type=EventType.TASK_CREATED,
                    data={
                        "task": {
                            "id": task_id,
                            "project": spec.project,
                            "change": spec.change,
                            "key": p.key,
                            "display_id": p.display_id,
                            "title": p.title,
                            "group": p.group,
                            "section": p.section,
                            "status": status,
                            "assignee": None,
                            "priority": None,
                            "tags": [],
                            "parent_id": parent_id,
                            "line": p.line,
                            "order": p.ordinal,
                        }
                    },
                    metadata=meta,
                    timestamp=now,
                )
            )
            plan.created += 1
            plan.base_after[task_id] = (p.done, status)
            continue
        kept.add(task.id)
        changes: dict[str, Any] = {}
        wanted = {
            "title": p.title,
            "display_id": p.display_id,
            "group": p.group,
            "section": p.section,
            "parent_id": parent_id,
        }
        for name, value in wanted.items():
            if getattr(task, name) != value:
                changes[name] = value
        if task.line != p.line or task.order != p.ordinal:
            moved[task.id] = [p.line, p.ordinal]
        final_done, final_status = p.done, task.status
        if task.status == Status.ARCHIVED:
            # The line came back: the task returns with the file's checkbox.
            final_status = _status_from_file(p.done, task.status)
        else:
            final_done, final_status, conflict = _merge_status(
                p.done, task, base_tasks.get(task.id), strategy, spec.file_mtime
            )
            if conflict is not None:
                waiting = task.id in open_conflicts
                if waiting or conflict.winner == "none":
                    # Left for a person: neither side moves, and the old base stays so
                    # that the disagreement stays visible until it is resolved.
                    final_done, final_status = p.done, task.status
                    plan.base_after[task.id] = base_tasks.get(task.id, (p.done, task.status))
                if not waiting:
                    plan.conflicts += 1
                    conflict_events.extend(
                        _conflict_events(spec, task, conflict, strategy, meta, now, make_id)
                    )
            if final_done != p.done:
                plan.checkboxes[p.key] = final_done
        if final_status != task.status:
            changes["status"] = final_status
        if changes:
            task_events.append(task_update_event(task, changes, meta, now))
            plan.updated += 1
        plan.base_after.setdefault(task.id, (final_done, final_status))

    for task in stored:
        if task.id in kept or task.status == Status.ARCHIVED:
            continue
        task_events.append(task_update_event(task, {"status": Status.ARCHIVED}, meta, now))
        plan.archived += 1

    change_events = _change_events(spec, change, moved, meta, now)
    if not (task_events or change_events or conflict_events or plan.checkboxes):
        return plan
    agg = sync_aggregate(spec.project, spec.change)
    plan.events.append(
        NewEvent(
            "sync",
            agg,
            sync_version + 1,
            EventType.SYNC_STARTED,
            {"project": spec.project, "change": spec.change},
            meta,
            timestamp=now,
        )
    )
    plan.events.extend(change_events)
    plan.events.extend(task_events)
    plan.events.extend(conflict_events)
    plan.events.append(
        NewEvent(
            "sync",
            agg,
            sync_version + 2,
            EventType.SYNC_COMPLETED,
            {
                "project": spec.project,
                "change": spec.change,
                "checksum": spec.doc.checksum if spec.doc is not None else None,
                "tasks": len(parsed),
                "tasks_created": plan.created,
                "tasks_updated": plan.updated,
                "tasks_archived": plan.archived,
                "conflicts": plan.conflicts,
            },
            meta,
            timestamp=now,
        )
    )
    return plan


@dataclass(frozen=True, slots=True)
class _Conflict:
    base: tuple[bool, str]
    spec: bool
    runtime: str
    winner: str  # spec | runtime | none


def _merge_status(
    file_done: bool,
    task: Task,
    base: tuple[bool, str] | None,
    strategy: Strategy,
    file_mtime: str | None,
) -> tuple[bool, str, _Conflict | None]:
    """Three-way merge of the checkbox (file side) and the status (database side).

    Returns the checkbox and status to end with, and the conflict if both sides moved
    to disagreeing values."""
    db_status = task.status
    db_done = db_status == Status.DONE
    base_done, base_status = base if base is not None else (db_done, db_status)
    file_changed = file_done != base_done
    db_changed = db_status != base_status
    if file_changed and not db_changed:
        return file_done, _status_from_file(file_done, db_status), None
    if db_changed and not file_changed:
        return db_done, db_status, None
    if not file_changed and not db_changed:
        if file_done == db_done:
            return file_done, db_status, None
        return file_done, _status_from_file(file_done, db_status), None
    if file_done == db_done:
        return file_done, db_status, None
    winner = strategy.value
    if strategy == Strategy.LAST_WRITE_WINS:
        spec_later = file_mtime is not None and file_mtime >= task.updated_at
        winner = Strategy.SPEC_WINS if spec_later else Strategy.RUNTIME_WINS
    conflict_base = (base_done, base_status)
    if winner == Strategy.SPEC_WINS:
        return (
            file_done,
            _status_from_file(file_done, db_status),
            _Conflict(conflict_base, file_done, db_status, "spec"),
        )
    if winner == Strategy.RUNTIME_WINS:
        return db_done, db_status, _Conflict(conflict_base, file_done, db_status, "runtime")
    return file_done, db_status, _Conflict(conflict_base, file_done, db_status, "none")


def _conflict_events(
    spec: ChangeSpec,
    task: Task,
    conflict: _Conflict,
    strategy: Strategy,
    meta: dict[str, Any],
    now: str,
    make_id: Callable[[], str],
) -> list[NewEvent]:
    conflict_id = make_id()
    events = [
        NewEvent(
            "conflict",
            conflict_id,
            1,
            EventType.CONFLICT_DETECTED,
            {
                "conflict": {
                    "project": spec.project,
                    "change": spec.change,
                    "task_id": task.id,
                    "field": "status",
                    "base": {"done": conflict.base[0], "status": conflict.base[1]},
                    "spec": {"done": conflict.spec},
                    "runtime": {"status": conflict.runtime},
                    "strategy": strategy.value,
                }
            },
            meta,
            timestamp=now,
        )
    ]
    if conflict.winner != "none":
        events.append(
            NewEvent(
                "conflict",
                conflict_id,
                2,
                EventType.CONFLICT_RESOLVED,
                {"resolution": conflict.winner, "strategy": strategy.value, "task_id": task.id},
                meta,
                timestamp=now,
            )
        )
    return events


def _change_events(
    spec: ChangeSpec,
    change: Change | None,
    moved: dict[str, list[int]],
    meta: dict[str, Any],
    now: str,
) -> list[NewEvent]:
    agg = change_aggregate(spec.project, spec.change)
    status = "archived" if spec.archived or spec.doc is None else "active"
    if change is None:
        return [
            NewEvent(
                "change",
                agg,
                1,
                EventType.CHANGE_CREATED,
                {
                    "change": {
                        "project": spec.project,
                        "id": spec.change,
                        "title": spec.title,
                        "status": status,
                        "path": spec.path,
                    },
                    "moved": moved,
                },
                meta,
                timestamp=now,
            )
        ]
    changes: dict[str, Any] = {}
    if change.title != spec.title:
        changes["title"] = spec.title
    if change.path != spec.path:
        changes["path"] = spec.path
    if change.status != status:
        changes["status"] = status
    if not changes and not moved:
        return []
    previous = {name: getattr(change, name) for name in changes}
    kind = (
        EventType.CHANGE_ARCHIVED
        if changes.get("status") == "archived"
        else EventType.CHANGE_UPDATED
    )
    data: dict[str, Any] = {
        "project": spec.project,
        "change": spec.change,
        "changes": changes,
        "previous": previous,
    }
    if moved:
        data["moved"] = moved
    return [NewEvent("change", agg, change.version + 1, kind, data, meta, timestamp=now)]
