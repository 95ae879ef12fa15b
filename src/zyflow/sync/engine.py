"""The sync engine: files to database and database to files, one change at a time.

It reads a change's files, asks the pure ``reconcile`` what to do, writes checkboxes
back atomically, and appends the events with the new base in one transaction. One
lock per change means two syncs of the same change never overlap in this process;
across processes the store's unique (aggregate, version) refuses the loser, which
retries from a fresh read.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from zyflow.domain.errors import ConcurrencyError, InvalidInput, NotFound, SpecError
from zyflow.domain.events import EventType, NewEvent, sync_aggregate
from zyflow.domain.model import (
    Change,
    Project,
    Status,
    Strategy,
    SyncBase,
    Task,
    format_ts,
    parse_status,
    priority_rank,
    utc_now,
)
from zyflow.domain.reconcile import ChangeSpec, reconcile, task_update_event
from zyflow.spec import layout
from zyflow.spec.files import atomic_write
from zyflow.spec.parser import MAX_FILE_BYTES, ParsedDoc, parse, render, title_of_proposal
from zyflow.store.port import Store, SyncState

log = logging.getLogger("zyflow.sync")

SYNC_RETRIES = 5
MAX_TAGS = 32


@dataclass(slots=True)
class SyncReport:
    changes: int = 0
    tasks_created: int = 0
    tasks_updated: int = 0
    tasks_archived: int = 0
    conflicts: int = 0
    events: int = 0
    duration_ms: float = 0.0
    errors: list[dict[str, str]] = field(default_factory=list)

    def add(self, other: SyncReport) -> None:
        self.changes += other.changes
        self.tasks_created += other.tasks_created
        self.tasks_updated += other.tasks_updated
        self.tasks_archived += other.tasks_archived
        self.conflicts += other.conflicts
        self.events += other.events
        self.errors.extend(other.errors)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "changes": self.changes,
            "tasks_created": self.tasks_created,
            "tasks_updated": self.tasks_updated,
            "tasks_archived": self.tasks_archived,
            "conflicts": self.conflicts,
            "events": self.events,
            "duration_ms": round(self.duration_ms, 3),
        }
        if self.errors:
            out["errors"] = self.errors
        return out


def _base_checksum(raw: bytes, spec_title: str, rel_path: str, archived: bool) -> str:
    """Identifies everything a sync reads: the tasks file and the change's own facts."""
    digest = hashlib.blake2b(raw, digest_size=16)
    digest.update(f"\0{spec_title}\0{rel_path}\0{archived}".encode())
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Prefetched:
    """A change's state as read in bulk by ``sync_project``."""

    state: SyncState
    change: Change | None
    tasks: list[Task]


class Unset:
    """Marks a field the caller did not send (None means "clear it")."""


UNSET = Unset()


def _slug(name: str) -> str:
    slug = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name.lower()).strip("-")
    return slug[:48] or "project"


class SyncEngine:
    def __init__(
        self,
        store: Store,
        *,
        strategy: Strategy = Strategy.SPEC_WINS,
        concurrency: int = 64,
    ) -> None:
        self.store = store
        self.strategy = strategy
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._roots: dict[str, Path] = {}
        self._limit = asyncio.Semaphore(concurrency)

    # --- projects --------------------------------------------------------------------
    async def register(self, path: str | Path) -> Project:
        root = layout.project_root(path)
        project = await self.store.register_project(
            Project(_slug(root.name), root.name, str(root), utc_now())
        )
        self._roots[project.id] = root
        return project

    async def load_projects(self) -> list[Project]:
        projects = await self.store.list_projects()
        for project in projects:
            self._roots[project.id] = Path(project.path)
        return projects

    async def root_of(self, project: str) -> Path:
        root = self._roots.get(project)
        if root is None:
            await self.load_projects()
            root = self._roots.get(project)
        if root is None:
            raise NotFound(f"no project {project!r}")
        return root

    def project_of_path(self, path: Path) -> tuple[str, Path] | None:
        for project, root in self._roots.items():
            if path == root or root in path.parents:
                return project, root
        return None

    # --- file -> database --------------------------------------------------------------
    async def sync_project(
        self, project: str, *, force: bool = False, actor: str = "sync"
    ) -> SyncReport:
        started = time.perf_counter()
        root = await self.root_of(project)
        on_disk = layout.discover(root)
        known = {c.id: c for c in await self.store.list_changes(project=project)}
        ids = sorted(set(on_disk) | set(known))
        # Read the whole project's state in a few queries instead of five per change; a
        # change whose state moves meanwhile fails its append and is re-read from scratch.
        states = await self.store.sync_states(project)
        tasks = await self.store.tasks_of_project(project)
        correlation = str(uuid.uuid4())
        reports = await asyncio.gather(
            *(
                self._bounded(
                    project,
                    change,
                    force,
                    actor,
                    correlation,
                    on_disk.get(change),
                    Prefetched(
                        states.get(change) or SyncState(None, 0),
                        known.get(change),
                        tasks.get(change, []),
                    ),
                )
                for change in ids
            )
        )
        total = SyncReport()
        for report in reports:
            total.add(report)
        total.duration_ms = (time.perf_counter() - started) * 1000
        return total

    async def _bounded(
        self,
        project: str,
        change: str,
        force: bool,
        actor: str,
        correlation: str,
        location: layout.ChangeLocation | None,
        prefetched: Prefetched,
    ) -> SyncReport:
        async with self._limit:
            try:
                return await self.sync_change(
                    project,
                    change,
                    force=force,
                    actor=actor,
                    correlation_id=correlation,
                    location=location,
                    located=True,
                    prefetched=prefetched,
                )
            except SpecError as exc:
                return SyncReport(errors=[{"change": change, "error": str(exc)}])

    def _lock(self, project: str, change: str) -> asyncio.Lock:
        key = (project, change)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def sync_change(
        self,
        project: str,
        change: str,
        *,
        force: bool = False,
        actor: str = "sync",
        correlation_id: str | None = None,
        location: layout.ChangeLocation | None = None,
        located: bool = False,
        prefetched: Prefetched | None = None,
    ) -> SyncReport:
        """Bring one change's database state and tasks.md into agreement."""
        root = await self.root_of(project)
        if not located:
            location = layout.find(root, change)
        meta = {
            "correlation_id": correlation_id or str(uuid.uuid4()),
            "causation_id": None,
            "actor": actor,
        }
        async with self._lock(project, change):
            # Another writer (an API update, another process) may get there first: then
            # re-read everything and decide again.
            unused = [prefetched]  # prefetched state serves the first attempt only

            def attempt() -> Awaitable[SyncReport]:
                known, unused[0] = unused[0], None
                return self._sync_locked(project, change, root, location, force, meta, known)

            return await _retrying(attempt)

    async def _sync_locked(
        self,
        project: str,
        change: str,
        root: Path,
        location: layout.ChangeLocation | None,
        force: bool,
        meta: dict[str, Any],
        prefetched: Prefetched | None = None,
    ) -> SyncReport:
        started = time.perf_counter()
        if prefetched is not None:
            state, existing = prefetched.state, prefetched.change
        else:
            state = await self.store.sync_state(project, change)
            existing = await self.store.get_change(project, change)
        if location is None:
            if state.base is None and existing is None:
                raise NotFound(f"no change {change!r} in project {project!r}")
            raw = b""
            title, rel_path, archived, doc = change, "", True, None
            checksum = "gone"
        else:
            try:
                raw = layout.read_bytes(root, location.tasks_file, MAX_FILE_BYTES) or b""
                proposal = layout.read_bytes(root, location.proposal_file, MAX_FILE_BYTES)
            except SpecError as exc:
                await self._record_failure(project, change, state, str(exc), meta)
                raise
            title = (title_of_proposal(proposal) if proposal else None) or change
            rel_path, archived = location.rel_path, location.archived
            checksum = _base_checksum(raw, title, rel_path, archived)
            if not force and state.base is not None and state.base.checksum == checksum:
                return SyncReport(duration_ms=(time.perf_counter() - started) * 1000)
            try:
                doc = parse(raw)
            except SpecError as exc:
                await self._record_failure(project, change, state, str(exc), meta)
                raise SpecError(f"{location.rel_path}/tasks.md: {exc}") from None
        if prefetched is not None:
            stored = prefetched.tasks
        else:
            stored = await self.store.tasks_of_change(project, change)
        mtime = None
        if location is not None and location.tasks_file.exists():
            mtime = format_ts_epoch(location.tasks_file.stat().st_mtime)
        spec = ChangeSpec(project, change, title, rel_path, archived, doc, mtime)
        plan = reconcile(
            spec,
            existing,
            stored,
            state.base,
            sync_version=state.version,
            strategy=self.strategy,
            open_conflicts=state.open_conflicts,
            now=utc_now(),
            metadata=meta,
        )
        if plan.checkboxes and location is not None and doc is not None:
            raw = self._write_back(root, location, doc, raw, plan.checkboxes)
            checksum = _base_checksum(raw, title, rel_path, archived)
        base = SyncBase(checksum, plan.base_after)
        await self.store.append(plan.events, sync_base=(project, change, base))
        return SyncReport(
            changes=1 if plan.events else 0,
            tasks_created=plan.created,
            tasks_updated=plan.updated,
            tasks_archived=plan.archived,
            conflicts=plan.conflicts,
            events=len(plan.events),
            duration_ms=(time.perf_counter() - started) * 1000,
        )

    @staticmethod
    def _write_back(
        root: Path,
        location: layout.ChangeLocation,
        doc: ParsedDoc,
        raw: bytes,
        checkboxes: dict[str, bool],
    ) -> bytes:
        new_raw = render(doc, checkboxes)
        if new_raw == raw:
            return raw
        path = layout.inside(root, location.tasks_file)
        # The file may have been edited since we read it; never overwrite that edit.
        if path.read_bytes() != raw:
            raise ConcurrencyError("tasks.md changed during sync")
        atomic_write(path, new_raw)
        return new_raw

    async def _record_failure(
        self, project: str, change: str, state: SyncState, error: str, meta: dict[str, Any]
    ) -> None:
        if state.failed_with == error:
            return  # already recorded; a watcher re-reading a broken file adds nothing
        event = NewEvent(
            "sync",
            sync_aggregate(project, change),
            state.version + 1,
            EventType.SYNC_FAILED,
            {"project": project, "change": change, "error": error},
            meta,
        )
        with contextlib.suppress(ConcurrencyError):
            await self.store.append([event])

    # --- database -> file --------------------------------------------------------------
    async def update_task(
        self,
        task_id: str,
        *,
        status: str | None = None,
        assignee: str | Unset | None = UNSET,
        priority: str | Unset | None = UNSET,
        tags: Iterable[str] | None = None,
        expected_version: int | None = None,
        actor: str = "api",
    ) -> Task:
        """Change a task's runtime fields; a move to or from done flips its checkbox.

        With ``expected_version`` a concurrent change is the caller's conflict (409);
        without it, the update is re-applied to the fresh state a bounded number of times.
        """
        tag_list = list(tags) if tags is not None else None

        def attempt() -> Awaitable[Task]:
            return self._update_task(
                task_id, status, assignee, priority, tag_list, expected_version, actor
            )

        return await _retrying(attempt, 1 if expected_version is not None else SYNC_RETRIES)

    async def _update_task(
        self,
        task_id: str,
        status: str | None,
        assignee: str | Unset | None,
        priority: str | Unset | None,
        tags: list[str] | None,
        expected_version: int | None,
        actor: str,
    ) -> Task:
        task = await self.store.get_task(task_id)
        if task is None:
            raise NotFound(f"no task {task_id!r}")
        if expected_version is not None and expected_version != task.version:
            raise ConcurrencyError(
                f"task {task_id} is at version {task.version}, not {expected_version}"
            )
        changes: dict[str, Any] = {}
        if status is not None:
            new_status = parse_status(status)
            if new_status == Status.ARCHIVED:
                raise InvalidInput("a task is archived by removing its line from tasks.md")
            if task.status == Status.ARCHIVED:
                raise InvalidInput("an archived task has no line in tasks.md; restore it there")
            if new_status != task.status:
                changes["status"] = new_status.value
        if not isinstance(assignee, Unset) and assignee != task.assignee:
            if assignee is not None and (not isinstance(assignee, str) or len(assignee) > 200):
                raise InvalidInput("assignee must be a string of at most 200 characters")
            changes["assignee"] = assignee or None
        if not isinstance(priority, Unset) and priority != task.priority:
            if priority is not None and not isinstance(priority, str):
                raise InvalidInput("priority must be a string")
            priority_rank(priority)  # validates
            changes["priority"] = priority or None
        if tags is not None:
            tag_list = sorted({str(t).strip() for t in tags if str(t).strip()})
            if len(tag_list) > MAX_TAGS or any(len(t) > 64 for t in tag_list):
                raise InvalidInput(f"at most {MAX_TAGS} tags of at most 64 characters")
            if tag_list != task.tags:
                changes["tags"] = tag_list
        if not changes:
            return task
        meta = {"correlation_id": str(uuid.uuid4()), "causation_id": None, "actor": actor}
        event = task_update_event(task, changes, meta, utc_now())
        await self.store.append([event])
        if "status" in changes and (Status.DONE in (task.status, changes["status"])):
            try:
                await self.sync_change(
                    task.project,
                    task.change,
                    force=True,
                    actor=actor,
                    correlation_id=meta["correlation_id"],
                )
            except (SpecError, OSError, ConcurrencyError) as exc:
                # The update is committed; the next sync writes the checkbox back.
                log.warning("write-back of %s deferred: %s", task_id, exc)
        updated = await self.store.get_task(task_id)
        assert updated is not None
        return updated

    async def resolve_conflict(self, conflict_id: str, resolution: str, actor: str = "api") -> None:
        """Settle an open (manual) conflict: ``spec`` takes the checkbox, ``runtime`` the status."""
        if resolution not in ("spec", "runtime"):
            raise InvalidInput("resolution must be 'spec' or 'runtime'")
        conflict = await self.store.get_conflict(conflict_id)
        if conflict is None:
            raise NotFound(f"no conflict {conflict_id!r}")
        if conflict.status != "open":
            raise InvalidInput("conflict already resolved")
        task = await self.store.get_task(conflict.task_id)
        meta = {"correlation_id": str(uuid.uuid4()), "causation_id": None, "actor": actor}
        events: list[NewEvent] = []
        if resolution == "spec" and task is not None:
            done = bool(conflict.spec.get("done"))
            wanted = (
                Status.DONE.value if done else (Status.TODO.value if task.done else task.status)
            )
            if wanted != task.status:
                events.append(task_update_event(task, {"status": wanted}, meta, utc_now()))
        events.append(
            NewEvent(
                "conflict",
                conflict_id,
                2,
                EventType.CONFLICT_RESOLVED,
                {"resolution": resolution, "strategy": "manual", "task_id": conflict.task_id},
                meta,
            )
        )
        async with self._lock(conflict.project, conflict.change):
            state = await self.store.sync_state(conflict.project, conflict.change)
            base = state.base or SyncBase("", {})
            if task is not None:
                # Rewrite the base so the next sync sees exactly one side moved: the file
                # (spec) with the task already following it, or the database (runtime),
                # whose status then flips the checkbox.
                spec_done = bool(conflict.spec.get("done"))
                if resolution == "spec":
                    status = events[0].data["changes"]["status"] if len(events) > 1 else task.status
                else:
                    status = str(conflict.base.get("status"))
                base.tasks[task.id] = (spec_done, status)
            await self.store.append(events, sync_base=(conflict.project, conflict.change, base))
        await self.sync_change(conflict.project, conflict.change, force=True, actor=actor)


T = TypeVar("T")


async def _retrying(attempt: Callable[[], Awaitable[T]], tries: int = SYNC_RETRIES) -> T:
    """Run ``attempt`` again from scratch after a concurrency error, a bounded number of times."""
    for n in range(tries):
        try:
            return await attempt()
        except ConcurrencyError:
            if n == tries - 1:
                raise
            await asyncio.sleep(0.001 * (n + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def format_ts_epoch(seconds: float) -> str:
    from datetime import UTC, datetime

    return format_ts(datetime.fromtimestamp(seconds, UTC))
