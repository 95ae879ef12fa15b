"""The embedded backend: one SQLite file in WAL mode, FTS5 for search.

Every write is one synchronous ``BEGIN IMMEDIATE ... COMMIT`` block with no ``await``
inside, so coroutines sharing the connection can never interleave inside a
transaction. Statements are microseconds long; running them on the event loop is
cheaper than hopping to a thread for each. ``synchronous=NORMAL`` in WAL mode keeps
every committed transaction through a process crash (``kill -9``); only a power loss
can take the last commits back.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from zyflow.domain.errors import ConcurrencyError, InvalidInput, ZyflowError
from zyflow.domain.events import NewEvent, StoredEvent
from zyflow.domain.model import Change, Conflict, Project, SyncBase, Task
from zyflow.domain.projection import CONFLICT_COLUMNS, RowOp, project_all
from zyflow.store import sql
from zyflow.store.group_commit import AppendRequest, GroupCommitter, Outcome
from zyflow.store.port import EventQuery, Page, Store, SyncState, TaskQuery, task_from_row
from zyflow.store.rows import (
    changes_from_rows,
    conflict_from_row,
    dead_letter_json,
    dead_letter_row,
    event_from_row,
    page_of,
    stored_events,
    sync_states_from_rows,
    tasks_by_change,
)

MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """CREATE TABLE projects (
                id TEXT PRIMARY KEY, name TEXT NOT NULL, path TEXT NOT NULL UNIQUE,
                created_at TEXT NOT NULL)""",
            """CREATE TABLE changes (
                project_id TEXT NOT NULL, id TEXT NOT NULL, title TEXT NOT NULL,
                status TEXT NOT NULL, path TEXT NOT NULL, version INTEGER NOT NULL,
                created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
                PRIMARY KEY (project_id, id))""",
            """CREATE TABLE tasks (
                id TEXT PRIMARY KEY, project_id TEXT NOT NULL, change_id TEXT NOT NULL,
                key TEXT NOT NULL, display_id TEXT, title TEXT NOT NULL, grp TEXT,
                section TEXT, status TEXT NOT NULL, assignee TEXT,
                priority INTEGER NOT NULL DEFAULT 0, tags TEXT NOT NULL DEFAULT '[]',
                parent_id TEXT, line INTEGER NOT NULL, ord INTEGER NOT NULL,
                version INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
                UNIQUE (project_id, change_id, key))""",
            """CREATE TABLE events (
                position INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
                aggregate_type TEXT NOT NULL, aggregate_id TEXT NOT NULL,
                version INTEGER NOT NULL, type TEXT NOT NULL, timestamp TEXT NOT NULL,
                data TEXT NOT NULL, metadata TEXT NOT NULL)""",
            """CREATE TABLE sync_status (
                project_id TEXT NOT NULL, change_id TEXT NOT NULL, status TEXT NOT NULL,
                last_sync TEXT, checksum TEXT, tasks INTEGER, error TEXT,
                version INTEGER NOT NULL, PRIMARY KEY (project_id, change_id))""",
            """CREATE TABLE sync_base (
                project_id TEXT NOT NULL, change_id TEXT NOT NULL, checksum TEXT NOT NULL,
                tasks TEXT NOT NULL, PRIMARY KEY (project_id, change_id))""",
            """CREATE TABLE conflicts (
                id TEXT PRIMARY KEY, project_id TEXT NOT NULL, change_id TEXT NOT NULL,
                task_id TEXT NOT NULL, field TEXT NOT NULL, base TEXT, spec TEXT,
                runtime TEXT, strategy TEXT NOT NULL, status TEXT NOT NULL, resolution TEXT,
                detected_at TEXT NOT NULL, resolved_at TEXT)""",
            # The seed's indexes (06 읽기 최적화), in SQLite's dialect: no CONCURRENTLY,
            # partial indexes as written.
            "CREATE INDEX idx_tasks_change_id_status ON tasks(change_id, status)",
            "CREATE INDEX idx_tasks_assignee_status ON tasks(assignee, status)"
            " WHERE assignee IS NOT NULL",
            "CREATE INDEX idx_tasks_created_at ON tasks(created_at DESC)",
            "CREATE INDEX idx_events_timestamp_type ON events(timestamp, type)",
            "CREATE UNIQUE INDEX idx_events_aggregate_id_version ON events(aggregate_id, version)",
            "CREATE INDEX idx_sync_status_change_id ON sync_status(change_id, last_sync)",
            "CREATE INDEX idx_tasks_active ON tasks(status)"
            " WHERE status IN ('todo', 'in-progress')",
            # Ours: the board page and the other keyset sorts.
            "CREATE INDEX idx_tasks_position ON tasks(project_id, change_id, ord, id)",
            "CREATE INDEX idx_tasks_updated_at ON tasks(updated_at, id)",
            "CREATE INDEX idx_events_type_position ON events(type, position)",
            "CREATE INDEX idx_conflicts_status ON conflicts(status, project_id, change_id)",
            # Full-text search over titles, groups and sections, kept by triggers.
            """CREATE VIRTUAL TABLE tasks_fts USING fts5(
                title, grp, section, content='tasks', content_rowid='rowid',
                tokenize='unicode61 remove_diacritics 2')""",
            """CREATE TRIGGER tasks_fts_insert AFTER INSERT ON tasks BEGIN
                INSERT INTO tasks_fts(rowid, title, grp, section)
                VALUES (new.rowid, new.title, new.grp, new.section);
            END""",
            """CREATE TRIGGER tasks_fts_delete AFTER DELETE ON tasks BEGIN
                INSERT INTO tasks_fts(tasks_fts, rowid, title, grp, section)
                VALUES ('delete', old.rowid, old.title, old.grp, old.section);
            END""",
            """CREATE TRIGGER tasks_fts_update AFTER UPDATE OF title, grp, section ON tasks
            BEGIN
                INSERT INTO tasks_fts(tasks_fts, rowid, title, grp, section)
                VALUES ('delete', old.rowid, old.title, old.grp, old.section);
                INSERT INTO tasks_fts(rowid, title, grp, section)
                VALUES (new.rowid, new.title, new.grp, new.section);
            END""",
        ],
    ),
    (
        2,
        [
            """CREATE TABLE dead_letters (
                id INTEGER PRIMARY KEY, created_at TEXT NOT NULL, error TEXT NOT NULL,
                events TEXT NOT NULL, sync_base TEXT)""",
        ],
    ),
    (
        3,
        [
            # L3 cache (zyflow.cache.database): entries, their tags, tag generations.
            """CREATE TABLE cache_entries (
                key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL NOT NULL)""",
            "CREATE INDEX idx_cache_entries_expires ON cache_entries(expires_at)",
            """CREATE TABLE cache_tags (
                tag TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (tag, key))""",
            "CREATE TABLE cache_gens (tag TEXT PRIMARY KEY, gen BIGINT NOT NULL)",
        ],
    ),
    (
        4,
        [
            # Event consumers (zyflow.events): checkpoints, and the activity feed they
            # build, keyed by position so a redelivered event changes nothing.
            """CREATE TABLE consumer_positions (
                consumer TEXT PRIMARY KEY, position INTEGER NOT NULL)""",
            """CREATE TABLE activity (
                position INTEGER PRIMARY KEY, type TEXT NOT NULL, aggregate_id TEXT NOT NULL,
                actor TEXT, at TEXT NOT NULL, consumer TEXT)""",
        ],
    ),
]


def _fts_clause(terms: list[str]) -> tuple[str, list[Any]]:
    if not terms:
        return "0", []
    match = " ".join('"' + term.replace('"', "") + '"*' for term in terms)
    return "t.rowid IN (SELECT rowid FROM tasks_fts WHERE tasks_fts MATCH ?)", [match]


class SqliteStore(Store):
    def __init__(self, path: str, *, scratch_dir: str | None = None) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self._scratch_dir = scratch_dir
        self.committer = GroupCommitter(self._commit_batch, self._dead_letter)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "busy_timeout=10000",
            "temp_store=MEMORY",
            "cache_size=-131072",
            "mmap_size=1073741824",
        ):
            self.db.execute(f"PRAGMA {pragma}")

    # --- lifecycle -------------------------------------------------------------------
    async def migrate(self) -> None:
        self.migrate_sync()

    def migrate_sync(self) -> None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            done = {r[0] for r in db.execute("SELECT version FROM schema_migrations")}
            for version, statements in MIGRATIONS:
                if version in done:
                    continue
                for statement in statements:
                    db.execute(statement)
                db.execute("INSERT INTO schema_migrations VALUES (?, datetime('now'))", (version,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        await self.committer.close()
        self.db.close()
        if self._scratch_dir:
            shutil.rmtree(self._scratch_dir, ignore_errors=True)

    # --- event store -----------------------------------------------------------------
    async def append(
        self,
        events: Sequence[NewEvent],
        *,
        sync_base: tuple[str, str, SyncBase] | None = None,
    ) -> list[StoredEvent]:
        return await self.committer.submit(events, sync_base)

    async def _commit_batch(self, batch: list[AppendRequest]) -> list[Outcome]:
        db = self.db
        # Optimistic: the whole batch as one set of statements in one transaction. (No
        # savepoint around it: FTS5 makes a large savepoint several times slower.)
        db.execute("BEGIN IMMEDIATE")
        try:
            outcomes = self._append_merged(batch)
            db.execute("COMMIT")
            return outcomes
        except (sqlite3.IntegrityError, ZyflowError) as exc:
            db.execute("ROLLBACK")
            if len(batch) == 1:
                return [_concurrency(exc) if isinstance(exc, sqlite3.IntegrityError) else exc]
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        # Some request was refused: take them one savepoint at a time.
        outcomes = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for request in batch:
                db.execute("SAVEPOINT request")
                try:
                    outcomes.append(self._append_one(request.events, request.sync_base))
                    db.execute("RELEASE request")
                except (sqlite3.IntegrityError, ZyflowError) as exc:
                    db.execute("ROLLBACK TO request")
                    db.execute("RELEASE request")
                    outcomes.append(
                        _concurrency(exc) if isinstance(exc, sqlite3.IntegrityError) else exc
                    )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return outcomes

    def _append_merged(self, batch: list[AppendRequest]) -> list[Outcome]:
        events = [e for request in batch for e in request.events]
        first = self._insert_events(events)
        for request in batch:
            if request.sync_base is not None:
                self._put_base(*request.sync_base)
        outcomes: list[Outcome] = []
        for request in batch:
            outcomes.append(stored_events(first, request.events))
            first += len(request.events)
        return outcomes

    def _insert_events(self, events: Sequence[NewEvent]) -> int:
        """Insert events and their read-model rows; returns the position before the first."""
        db = self.db
        first = 0
        if events:
            first = db.execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()[0]
            db.executemany(
                "INSERT INTO events (id, aggregate_type, aggregate_id, version, type, "
                "timestamp, data, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        e.id,
                        e.aggregate_type,
                        e.aggregate_id,
                        e.version,
                        e.type,
                        e.timestamp,
                        orjson.dumps(e.data).decode(),
                        orjson.dumps(e.metadata).decode(),
                    )
                    for e in events
                ],
            )
            self._apply(project_all(events))
        return int(first)

    def _append_one(
        self, events: Sequence[NewEvent], sync_base: tuple[str, str, SyncBase] | None
    ) -> list[StoredEvent]:
        first = self._insert_events(events)
        if sync_base is not None:
            self._put_base(*sync_base)
        return stored_events(first, events)

    async def _dead_letter(self, batch: list[AppendRequest], error: str) -> None:
        db = self.db
        if db.in_transaction:
            db.execute("ROLLBACK")
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO dead_letters (created_at, error, events, sync_base) VALUES (?, ?, ?, ?)",
            [dead_letter_row(request, error) for request in batch],
        )
        db.execute("COMMIT")

    def _apply(self, ops: Sequence[RowOp]) -> None:
        for statement, params in sql.grouped_ops(ops):
            if len(params) == 1:
                self.db.execute(statement, params[0])
            else:
                self.db.executemany(statement, params)

    def _put_base(self, project: str, change: str, base: SyncBase) -> None:
        self.db.execute(
            "INSERT INTO sync_base (project_id, change_id, checksum, tasks) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (project_id, change_id) DO UPDATE SET checksum = excluded.checksum, "
            "tasks = excluded.tasks",
            (project, change, base.checksum, orjson.dumps(base.tasks).decode()),
        )

    async def read_stream(self, aggregate_id: str, after_version: int = 0) -> list[StoredEvent]:
        cur = self.db.execute(
            f"SELECT {sql.EVENT_COLUMNS} FROM events WHERE aggregate_id = ? AND version > ? "
            "ORDER BY version",
            (aggregate_id, after_version),
        )
        return [event_from_row(r) for r in cur]

    async def read_all(self, query: EventQuery) -> list[StoredEvent]:
        statement, params = sql.event_list_sql(query)
        return [event_from_row(r) for r in self.db.execute(statement, params)]

    async def last_position(self) -> int:
        return int(self.db.execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()[0])

    # --- projects --------------------------------------------------------------------
    async def register_project(self, project: Project) -> Project:
        db = self.db
        row = db.execute(
            "SELECT id, name, path, created_at FROM projects WHERE path = ?", (project.path,)
        ).fetchone()
        if row:
            return Project(*row)
        taken = {r[0] for r in db.execute("SELECT id FROM projects")}
        project_id, n = project.id, 1
        while project_id in taken:
            n += 1
            project_id = f"{project.id}-{n}"
        db.execute(
            "INSERT INTO projects (id, name, path, created_at) VALUES (?, ?, ?, ?)",
            (project_id, project.name, project.path, project.created_at),
        )
        return Project(project_id, project.name, project.path, project.created_at)

    async def list_projects(self) -> list[Project]:
        rows = self.db.execute("SELECT id, name, path, created_at FROM projects ORDER BY id")
        return [Project(*r) for r in rows]

    # --- read models -----------------------------------------------------------------
    async def get_task(self, task_id: str) -> Task | None:
        row = self.db.execute(sql.TASK_SELECT + " WHERE t.id = ?", (task_id,)).fetchone()
        return task_from_row(row) if row else None

    async def tasks_of_change(self, project: str, change: str) -> list[Task]:
        rows = self.db.execute(
            sql.TASK_SELECT + " WHERE t.project_id = ? AND t.change_id = ? ORDER BY t.ord",
            (project, change),
        )
        return [task_from_row(r) for r in rows]

    async def list_tasks(self, query: TaskQuery) -> Page[Task]:
        statement, params = sql.task_list_sql(query, _fts_clause)
        try:
            rows = self.db.execute(statement, params).fetchall()
        except sqlite3.OperationalError as exc:  # an FTS syntax the word filter let through
            raise InvalidInput(f"invalid search: {exc}") from None
        return page_of(query, [task_from_row(r) for r in rows])

    async def get_change(self, project: str, change: str) -> Change | None:
        found = await self.list_changes(project=project, change=change)
        return found[0] if found else None

    async def list_changes(
        self, project: str | None = None, status: str | None = None, change: str | None = None
    ) -> list[Change]:
        statement, params = sql.change_list_sql(project, status, change)
        return changes_from_rows(self.db.execute(statement, params).fetchall())

    async def list_conflicts(self, status: str | None = None) -> list[Conflict]:
        cols = ", ".join(CONFLICT_COLUMNS)
        if status:
            rows = self.db.execute(
                f"SELECT {cols} FROM conflicts WHERE status = ? ORDER BY detected_at, id",
                (status,),
            )
        else:
            rows = self.db.execute(f"SELECT {cols} FROM conflicts ORDER BY detected_at, id")
        return [conflict_from_row(r) for r in rows]

    async def get_conflict(self, conflict_id: str) -> Conflict | None:
        cols = ", ".join(CONFLICT_COLUMNS)
        row = self.db.execute(
            f"SELECT {cols} FROM conflicts WHERE id = ?", (conflict_id,)
        ).fetchone()
        return conflict_from_row(row) if row else None

    async def sync_state(self, project: str, change: str) -> SyncState:
        return self._sync_states(project, change).get(change) or SyncState(None, 0)

    async def sync_states(self, project: str) -> dict[str, SyncState]:
        return self._sync_states(project)

    def _sync_states(self, project: str, change: str | None = None) -> dict[str, SyncState]:
        scope, params = "project_id = ?", [project]
        if change is not None:
            scope, params = "project_id = ? AND change_id = ?", [project, change]
        db = self.db
        return sync_states_from_rows(
            db.execute(
                f"SELECT change_id, checksum, tasks FROM sync_base WHERE {scope}", params
            ).fetchall(),
            db.execute(
                f"SELECT change_id, version, status, error FROM sync_status WHERE {scope}",
                params,
            ).fetchall(),
            db.execute(
                f"SELECT change_id, task_id FROM conflicts WHERE status = 'open' AND {scope}",
                params,
            ).fetchall(),
        )

    async def tasks_of_project(self, project: str) -> dict[str, list[Task]]:
        rows = self.db.execute(
            sql.TASK_SELECT + " WHERE t.project_id = ? ORDER BY t.change_id, t.ord", (project,)
        )
        return tasks_by_change([task_from_row(r) for r in rows])

    async def put_sync_base(self, project: str, change: str, base: SyncBase) -> None:
        self._put_base(project, change, base)

    # --- event consumers -------------------------------------------------------------
    async def consumer_position(self, consumer: str) -> int:
        row = self.db.execute(
            "SELECT position FROM consumer_positions WHERE consumer = ?", (consumer,)
        ).fetchone()
        return int(row[0]) if row else 0

    async def advance_consumer(self, consumer: str, events: Sequence[StoredEvent]) -> int:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT position FROM consumer_positions WHERE consumer = ?", (consumer,)
            ).fetchone()
            done = int(row[0]) if row else 0
            fresh = [e for e in events if e.position > done]
            if fresh:
                db.executemany(_ACTIVITY_INSERT, [_activity(consumer, e) for e in fresh])
                db.execute(
                    "INSERT INTO consumer_positions (consumer, position) VALUES (?, ?) "
                    "ON CONFLICT (consumer) DO UPDATE SET position = excluded.position",
                    (consumer, max(e.position for e in fresh)),
                )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return len(fresh)

    async def record_activity(self, consumer: str, events: Sequence[StoredEvent]) -> int:
        before = self.db.total_changes
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany(_ACTIVITY_INSERT, [_activity(consumer, e) for e in events])
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        return self.db.total_changes - before

    async def activity_positions(self) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT position FROM activity ORDER BY position")]

    async def list_dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, created_at, error, events, sync_base FROM dead_letters "
            "ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [dead_letter_json(r) for r in rows]

    # --- replay ----------------------------------------------------------------------
    async def apply_ops(self, ops: Sequence[RowOp]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self._apply(ops)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    async def read_models(self) -> dict[str, list[tuple[Any, ...]]]:
        out: dict[str, list[tuple[Any, ...]]] = {}
        for table, (columns, order) in sql.READ_MODEL_ORDER.items():
            rows = self.db.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}")
            out[table] = [tuple(r) for r in rows]
        return out

    async def open_scratch(self) -> Store:
        directory = tempfile.mkdtemp(prefix="zyflow-replay-")
        scratch = SqliteStore(os.path.join(directory, "replay.db"), scratch_dir=directory)
        scratch.migrate_sync()
        return scratch


_ACTIVITY_INSERT = (
    "INSERT INTO activity (position, type, aggregate_id, actor, at, consumer) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (position) DO NOTHING"
)


def _activity(consumer: str, e: StoredEvent) -> tuple[Any, ...]:
    return (e.position, e.type, e.aggregate_id, e.metadata.get("actor"), e.timestamp, consumer)


def _concurrency(exc: sqlite3.IntegrityError) -> ConcurrencyError:
    message = str(exc)
    if "events.aggregate_id" in message:
        return ConcurrencyError("the aggregate was changed concurrently; re-read and retry")
    if "tasks.project_id" in message:
        return ConcurrencyError("the change was synced concurrently; re-sync")
    return ConcurrencyError(f"concurrent write refused: {message}")
