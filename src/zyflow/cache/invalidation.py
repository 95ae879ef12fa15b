"""Which cached responses an event makes stale: the keys and tags of the API's reads.

Reads are tagged when cached (``api/cached.py``); writes are translated here. Both
sides use these names, and nothing else decides what to drop.
"""

from __future__ import annotations

from collections.abc import Iterable

from zyflow.domain.events import EventType, StoredEvent

ALL_TASK_LISTS = "tasks:all"
CHANGES = "changes"


def task_key(task_id: str) -> str:
    return f"task:{task_id}"


def change_tasks_tag(change: str) -> str:
    return f"tasks:change:{change}"


_TASK_EVENTS = frozenset(
    {
        EventType.TASK_CREATED,
        EventType.TASK_UPDATED,
        EventType.TASK_COMPLETED,
        EventType.TASK_REOPENED,
        EventType.TASK_ARCHIVED,
    }
)
_CHANGE_EVENTS = frozenset(
    {EventType.CHANGE_CREATED, EventType.CHANGE_UPDATED, EventType.CHANGE_ARCHIVED}
)


TASK_LISTS_PATTERN = "tasks?*"


def stale(events: Iterable[StoredEvent]) -> tuple[set[str], set[str], set[str]]:
    """(keys, tags, patterns) made stale by ``events``."""
    keys: set[str] = set()
    tags: set[str] = set()
    patterns: set[str] = set()
    for event in events:
        if event.type in _TASK_EVENTS:
            data = event.data
            change = data["task"]["change"] if "task" in data else data.get("change")
            keys.add(task_key(event.aggregate_id))
            tags.update((ALL_TASK_LISTS, CHANGES))
            if change:
                tags.add(change_tasks_tag(str(change)))
            else:  # an event from before project/change rode along: drop every list
                patterns.add(TASK_LISTS_PATTERN)
        elif event.type in _CHANGE_EVENTS:
            tags.add(CHANGES)
            moved = event.data.get("moved") or {}
            if moved:
                keys.update(task_key(t) for t in moved)
                tags.update((ALL_TASK_LISTS, change_tasks_tag(str(event.data.get("change")))))
    return keys, tags, patterns
