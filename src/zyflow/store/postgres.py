"""The scale-out backend: PostgreSQL through asyncpg.

Appends take a transaction-scoped advisory lock so that global positions become
visible in order: a reader paging "after position N" can never skip an event that
commits later with a smaller position. ``?schema=NAME`` in the URL selects a schema
(created on migrate), which is how tests and replay get isolated namespaces.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import orjson

from zyflow.domain.errors import ConcurrencyError, ZyflowError
from zyflow.domain.events import NewEvent, StoredEvent
from zyflow.domain.model import Change, Conflict, Project, SyncBase, Task, format_ts
from zyflow.domain.projection import CONFLICT_COLUMNS, RowOp, Update, Upsert, project_all
from zyflow.store import sql
from zyflow.store.group_commit import AppendRequest, GroupCommitter, Outcome
from zyflow.store.port import EventQuery, Page, Store, SyncState, TaskQuery, task_from_row
from zyflow.store.rows import (
    changes_from_rows,
    conflict_from_row,
    dead_letter_json,
    dead_letter_row,
    page_of,
    stored_events,
    sync_states_from_rows,
    tasks_by_change,
)

APPEND_LOCK = 0x5A59_464C  # "ZYFL": serialises appends so positions commit in order
MIGRATE_LOCK = 0x5A59_4D47

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
                priority SMALLINT NOT NULL DEFAULT 0, tags TEXT NOT NULL DEFAULT '[]',
                parent_id TEXT, line INTEGER NOT NULL, ord INTEGER NOT NULL,
                version INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
                search tsvector GENERATED ALWAYS AS (to_tsvector('simple',
                    title || ' ' || coalesce(grp, '') || ' ' || coalesce(section, ''))) STORED,
                UNIQUE (project_id, change_id, key))""",
            """CREATE TABLE events (
                position BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id UUID NOT NULL UNIQUE, aggregate_type TEXT NOT NULL,
                aggregate_id TEXT NOT NULL, version INTEGER NOT NULL, type TEXT NOT NULL,
                timestamp TIMESTAMPTZ NOT NULL, data JSONB NOT NULL, metadata JSONB NOT NULL)""",
            """CREATE TABLE sync_status (
                project_id TEXT NOT NULL, change_id TEXT NOT NULL, status TEXT NOT NULL,
                last_sync TEXT, checksum TEXT, tasks INTEGER, error TEXT,
                version INTEGER NOT NULL, PRIMARY KEY (project_id, change_id))""",
            """CREATE TABLE sync_base (
                project_id TEXT NOT NULL, change_id TEXT NOT NULL, checksum TEXT NOT NULL,
                tasks JSONB NOT NULL, PRIMARY KEY (project_id, change_id))""",
            """CREATE TABLE conflicts (
                id TEXT PRIMARY KEY, project_id TEXT NOT NULL, change_id TEXT NOT NULL,
                task_id TEXT NOT NULL, field TEXT NOT NULL, base TEXT, spec TEXT,
                runtime TEXT, strategy TEXT NOT NULL, status TEXT NOT NULL, resolution TEXT,
                detected_at TEXT NOT NULL, resolved_at TEXT)""",
            # The seed's indexes in PostgreSQL's dialect. Plain CREATE INDEX: migrations run
            # in a transaction, where CONCURRENTLY is not allowed, and on a new table it
            # buys nothing (seed bug 8).
            "CREATE INDEX idx_tasks_change_id_status ON tasks(change_id, status)",
            "CREATE INDEX idx_tasks_assignee_status ON tasks(assignee, status)"
            " WHERE assignee IS NOT NULL",
            "CREATE INDEX idx_tasks_created_at ON tasks(created_at DESC)",
            'CREATE INDEX idx_events_timestamp_type ON events("timestamp", type)',
            "CREATE UNIQUE INDEX idx_events_aggregate_id_version ON events(aggregate_id, version)",
            "CREATE INDEX idx_sync_status_change_id ON sync_status(change_id, last_sync)",
            "CREATE INDEX idx_tasks_active ON tasks(status)"
            " WHERE status IN ('todo', 'in-progress')",
            "CREATE INDEX idx_tasks_position ON tasks(project_id, change_id, ord, id)",
            "CREATE INDEX idx_tasks_updated_at ON tasks(updated_at, id)",
            "CREATE INDEX idx_events_type_position ON events(type, position)",
            "CREATE INDEX idx_conflicts_status ON conflicts(status, project_id, change_id)",
            "CREATE INDEX idx_tasks_search ON tasks USING GIN (search)",
        ],
    ),
    (
        2,
        [
            """CREATE TABLE dead_letters (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, created_at TEXT NOT NULL,
                error TEXT NOT NULL, events TEXT NOT NULL, sync_base TEXT)""",
        ],
    ),
    (
        3,
        [
            # L3 cache (zyflow.cache.database): entries, their tags, tag generations.
            """CREATE TABLE cache_entries (
                key TEXT PRIMARY KEY, value BYTEA NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL)""",
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
                consumer TEXT PRIMARY KEY, position BIGINT NOT NULL)""",
            """CREATE TABLE activity (
                position BIGINT PRIMARY KEY, type TEXT NOT NULL, aggregate_id TEXT NOT NULL,
                actor TEXT, at TEXT NOT NULL, consumer TEXT)""",
        ],
    ),
]


BULK_MIN = 8
INT_COLUMNS = frozenset({"version", "line", "ord", "priority", "tasks"})


def _array_type(column: str) -> str:
    return "int[]" if column in INT_COLUMNS else "text[]"


def _bulk(group: sql.OpGroup) -> tuple[str, list[list[Any]]]:
    """One statement for a whole group: INSERT/UPDATE ... FROM unnest(arrays)."""
    op = group.first
    rows = sql.collapsed_rows(group)  # one row per key keeps UPDATE ... FROM deterministic
    columns = [*op.values, *op.where] if isinstance(op, Update) else list(op.row)
    arrays = [[row[i] for row in rows] for i in range(len(columns))]
    unnest = ", ".join(f"${i + 1}::{_array_type(c)}" for i, c in enumerate(columns))
    alias = f"u({', '.join(columns)})"
    if isinstance(op, Update):
        sets = ", ".join(f"{c} = u.{c}" for c in op.values)
        match = " AND ".join(f"t.{c} = u.{c}" for c in op.where)
        statement = (
            f"UPDATE {op.table} AS t SET {sets} FROM unnest({unnest}) AS {alias} WHERE {match}"
        )
    else:
        statement = (
            f"INSERT INTO {op.table} ({', '.join(columns)}) "
            f"SELECT * FROM unnest({unnest}) AS {alias}"
        )
        if isinstance(op, Upsert):
            updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in op.conflict)
            statement += f" ON CONFLICT ({', '.join(op.conflict)}) DO UPDATE SET {updates}"
    return statement, arrays


def _fts_clause(terms: list[str]) -> tuple[str, list[Any]]:
    if not terms:
        return "FALSE", []
    return "t.search @@ to_tsquery('simple', ?)", [" & ".join(f"{t}:*" for t in terms)]


def split_url(url: str) -> tuple[str, str]:
    """``postgresql://...?schema=x`` -> (DSN without ``schema``, schema name)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    schema = "public"
    kept = []
    for name, value in query:
        if name == "schema":
            schema = value
        else:
            kept.append((name, value))
    if not schema.replace("_", "").isalnum():
        raise ValueError(f"invalid schema name {schema!r}")
    return urlunsplit(parts._replace(query=urlencode(kept))), schema


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: orjson.dumps(v).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )


class PostgresStore(Store):
    def __init__(self, url: str, pool: asyncpg.Pool, schema: str) -> None:
        self.url = url
        self.pool = pool
        self.schema = schema
        self._drop_on_close = False
        self.committer = GroupCommitter(self._commit_batch, self._dead_letter)

    @classmethod
    async def connect(cls, url: str, *, min_size: int = 1, max_size: int = 10) -> PostgresStore:
        dsn, schema = split_url(url)
        if schema != "public":
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            finally:
                await conn.close()
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            server_settings={"search_path": schema, "jit": "off"},
        )
        return cls(url, pool, schema)

    async def migrate(self) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATE_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            done = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for version, statements in MIGRATIONS:
                if version in done:
                    continue
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)

    async def close(self) -> None:
        await self.committer.close()
        if self._drop_on_close:
            async with self.pool.acquire() as conn:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        await self.pool.close()

    # --- event store -----------------------------------------------------------------
    async def append(
        self,
        events: Sequence[NewEvent],
        *,
        sync_base: tuple[str, str, SyncBase] | None = None,
    ) -> list[StoredEvent]:
        return await self.committer.submit(events, sync_base)

    async def _commit_batch(self, batch: list[AppendRequest]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK)
            if len(batch) > 1:
                # Optimistic: the whole batch as one set of statements; if any request is
                # refused, undo it all and take them one savepoint at a time.
                try:
                    async with conn.transaction():
                        outcomes.extend(await self._append_merged(conn, batch))
                except (asyncpg.UniqueViolationError, ZyflowError):
                    outcomes.clear()
            for request in batch if not outcomes else ():
                try:
                    async with conn.transaction():  # a savepoint per request
                        first = await self._insert_events(conn, request.events)
                        if request.sync_base is not None:
                            await self._put_base(conn, *request.sync_base)
                        outcomes.append(stored_events(first, request.events))
                except asyncpg.UniqueViolationError as exc:
                    outcomes.append(_concurrency(exc))
                except ZyflowError as exc:
                    outcomes.append(exc)
        return outcomes

    async def _append_merged(
        self, conn: asyncpg.Connection, batch: list[AppendRequest]
    ) -> list[Outcome]:
        first = await self._insert_events(conn, [e for r in batch for e in r.events])
        for request in batch:
            if request.sync_base is not None:
                await self._put_base(conn, *request.sync_base)
        outcomes: list[Outcome] = []
        for request in batch:
            outcomes.append(stored_events(first, request.events))
            first += len(request.events)
        return outcomes

    async def _insert_events(self, conn: asyncpg.Connection, events: Sequence[NewEvent]) -> int:
        """Insert events and their read-model rows; returns the position before the first."""
        if not events:
            return 0
        first = await conn.fetchval("SELECT COALESCE(MAX(position), 0) FROM events")
        if len(events) >= BULK_MIN:
            # One statement over arrays: far fewer round trips than executemany.
            await conn.execute(
                "INSERT INTO events (id, aggregate_type, aggregate_id, version, type, "
                '"timestamp", data, metadata) SELECT u.id::uuid, u.agg_type, u.agg_id, '
                "u.version, u.type, u.ts, u.data::jsonb, u.meta::jsonb FROM unnest("
                "$1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::timestamptz[], "
                "$7::text[], $8::text[]) AS u(id, agg_type, agg_id, version, type, ts, data, meta)",
                [e.id for e in events],
                [e.aggregate_type for e in events],
                [e.aggregate_id for e in events],
                [e.version for e in events],
                [e.type for e in events],
                [datetime.fromisoformat(e.timestamp) for e in events],
                [orjson.dumps(e.data).decode() for e in events],
                [orjson.dumps(e.metadata).decode() for e in events],
            )
        else:
            await conn.executemany(
                "INSERT INTO events (id, aggregate_type, aggregate_id, version, type, "
                '"timestamp", data, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)',
                [
                    (
                        e.id, e.aggregate_type, e.aggregate_id, e.version, e.type,
                        datetime.fromisoformat(e.timestamp), e.data, e.metadata,
                    )
                    for e in events
                ],
            )  # fmt: skip
        await self._apply(conn, project_all(events))
        return int(first)

    async def _dead_letter(self, batch: list[AppendRequest], error: str) -> None:
        await self.pool.executemany(
            "INSERT INTO dead_letters (created_at, error, events, sync_base) "
            "VALUES ($1, $2, $3, $4)",
            [dead_letter_row(request, error) for request in batch],
        )

    @staticmethod
    async def _apply(conn: asyncpg.Connection, ops: Sequence[RowOp]) -> None:
        for group in sql.op_groups(ops):
            if len(group.rows) >= BULK_MIN:
                statement, arrays = _bulk(group)
                await conn.execute(statement, *arrays)
            elif len(group.rows) == 1:
                await conn.execute(sql.renumber(group.sql), *group.rows[0])
            else:
                await conn.executemany(sql.renumber(group.sql), group.rows)

    @staticmethod
    async def _put_base(
        conn: asyncpg.Connection, project: str, change: str, base: SyncBase
    ) -> None:
        await conn.execute(
            "INSERT INTO sync_base (project_id, change_id, checksum, tasks) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (project_id, change_id) DO UPDATE SET checksum = excluded.checksum,"
            " tasks = excluded.tasks",
            project,
            change,
            base.checksum,
            base.tasks,
        )

    async def read_stream(self, aggregate_id: str, after_version: int = 0) -> list[StoredEvent]:
        rows = await self.pool.fetch(
            f"SELECT {sql.EVENT_COLUMNS} FROM events WHERE aggregate_id = $1 AND version > $2 "
            "ORDER BY version",
            aggregate_id,
            after_version,
        )
        return [_event(r) for r in rows]

    async def read_all(self, query: EventQuery) -> list[StoredEvent]:
        statement, params = sql.event_list_sql(query)
        return [_event(r) for r in await self.pool.fetch(sql.renumber(statement), *params)]

    async def last_position(self) -> int:
        return int(await self.pool.fetchval("SELECT COALESCE(MAX(position), 0) FROM events"))

    # --- projects --------------------------------------------------------------------
    async def register_project(self, project: Project) -> Project:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATE_LOCK + 1)
            row = await conn.fetchrow(
                "SELECT id, name, path, created_at FROM projects WHERE path = $1", project.path
            )
            if row:
                return Project(*row)
            taken = {r[0] for r in await conn.fetch("SELECT id FROM projects")}
            project_id, n = project.id, 1
            while project_id in taken:
                n += 1
                project_id = f"{project.id}-{n}"
            await conn.execute(
                "INSERT INTO projects (id, name, path, created_at) VALUES ($1, $2, $3, $4)",
                project_id,
                project.name,
                project.path,
                project.created_at,
            )
        return Project(project_id, project.name, project.path, project.created_at)

    async def list_projects(self) -> list[Project]:
        rows = await self.pool.fetch("SELECT id, name, path, created_at FROM projects ORDER BY id")
        return [Project(*r) for r in rows]

    # --- read models -----------------------------------------------------------------
    async def get_task(self, task_id: str) -> Task | None:
        row = await self.pool.fetchrow(sql.TASK_SELECT + " WHERE t.id = $1", task_id)
        return task_from_row(row) if row else None

    async def tasks_of_change(self, project: str, change: str) -> list[Task]:
        rows = await self.pool.fetch(
            sql.TASK_SELECT + " WHERE t.project_id = $1 AND t.change_id = $2 ORDER BY t.ord",
            project,
            change,
        )
        return [task_from_row(r) for r in rows]

    async def list_tasks(self, query: TaskQuery) -> Page[Task]:
        statement, params = sql.task_list_sql(query, _fts_clause)
        rows = await self.pool.fetch(sql.renumber(statement), *params)
        return page_of(query, [task_from_row(r) for r in rows])

    async def get_change(self, project: str, change: str) -> Change | None:
        found = await self.list_changes(project=project, change=change)
        return found[0] if found else None

    async def list_changes(
        self, project: str | None = None, status: str | None = None, change: str | None = None
    ) -> list[Change]:
        statement, params = sql.change_list_sql(project, status, change)
        return changes_from_rows(await self.pool.fetch(sql.renumber(statement), *params))

    async def list_conflicts(self, status: str | None = None) -> list[Conflict]:
        cols = ", ".join(CONFLICT_COLUMNS)
        if status:
            rows = await self.pool.fetch(
                f"SELECT {cols} FROM conflicts WHERE status = $1 ORDER BY detected_at, id", status
            )
        else:
            rows = await self.pool.fetch(f"SELECT {cols} FROM conflicts ORDER BY detected_at, id")
        return [conflict_from_row(r) for r in rows]

    async def get_conflict(self, conflict_id: str) -> Conflict | None:
        cols = ", ".join(CONFLICT_COLUMNS)
        row = await self.pool.fetchrow(f"SELECT {cols} FROM conflicts WHERE id = $1", conflict_id)
        return conflict_from_row(row) if row else None

    async def sync_state(self, project: str, change: str) -> SyncState:
        return (await self._sync_states(project, change)).get(change) or SyncState(None, 0)

    async def sync_states(self, project: str) -> dict[str, SyncState]:
        return await self._sync_states(project)

    async def _sync_states(self, project: str, change: str | None = None) -> dict[str, SyncState]:
        scope, params = "project_id = $1", [project]
        if change is not None:
            scope, params = "project_id = $1 AND change_id = $2", [project, change]
        async with self.pool.acquire() as conn:
            return sync_states_from_rows(
                await conn.fetch(
                    f"SELECT change_id, checksum, tasks FROM sync_base WHERE {scope}", *params
                ),
                await conn.fetch(
                    f"SELECT change_id, version, status, error FROM sync_status WHERE {scope}",
                    *params,
                ),
                await conn.fetch(
                    f"SELECT change_id, task_id FROM conflicts WHERE status = 'open' AND {scope}",
                    *params,
                ),
            )

    async def tasks_of_project(self, project: str) -> dict[str, list[Task]]:
        rows = await self.pool.fetch(
            sql.TASK_SELECT + " WHERE t.project_id = $1 ORDER BY t.change_id, t.ord", project
        )
        return tasks_by_change([task_from_row(r) for r in rows])

    async def put_sync_base(self, project: str, change: str, base: SyncBase) -> None:
        async with self.pool.acquire() as conn:
            await self._put_base(conn, project, change, base)

    # --- event consumers -------------------------------------------------------------
    async def consumer_position(self, consumer: str) -> int:
        value = await self.pool.fetchval(
            "SELECT position FROM consumer_positions WHERE consumer = $1", consumer
        )
        return int(value or 0)

    async def advance_consumer(self, consumer: str, events: Sequence[StoredEvent]) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO consumer_positions (consumer, position) VALUES ($1, 0) "
                "ON CONFLICT DO NOTHING",
                consumer,
            )
            done = await conn.fetchval(
                "SELECT position FROM consumer_positions WHERE consumer = $1 FOR UPDATE",
                consumer,
            )
            fresh = [e for e in events if e.position > done]
            if fresh:
                await conn.executemany(_ACTIVITY_INSERT, [_activity(consumer, e) for e in fresh])
                await conn.execute(
                    "UPDATE consumer_positions SET position = $2 WHERE consumer = $1",
                    consumer,
                    max(e.position for e in fresh),
                )
        return len(fresh)

    async def record_activity(self, consumer: str, events: Sequence[StoredEvent]) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            inserted = 0
            for event in events:
                status = await conn.execute(_ACTIVITY_INSERT, *_activity(consumer, event))
                inserted += int(status.split()[-1])
        return inserted

    async def activity_positions(self) -> list[int]:
        rows = await self.pool.fetch("SELECT position FROM activity ORDER BY position")
        return [int(r[0]) for r in rows]

    async def list_dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT id, created_at, error, events, sync_base FROM dead_letters "
            "ORDER BY id DESC LIMIT $1",
            limit,
        )
        return [dead_letter_json(r) for r in rows]

    # --- replay ----------------------------------------------------------------------
    async def apply_ops(self, ops: Sequence[RowOp]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await self._apply(conn, ops)

    async def read_models(self) -> dict[str, list[tuple[Any, ...]]]:
        out: dict[str, list[tuple[Any, ...]]] = {}
        async with self.pool.acquire() as conn:
            for table, (columns, order) in sql.READ_MODEL_ORDER.items():
                rows = await conn.fetch(
                    f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}"
                )
                out[table] = [tuple(r) for r in rows]
        return out

    async def open_scratch(self) -> Store:
        dsn, _ = split_url(self.url)
        schema = "zyflow_replay_" + secrets.token_hex(4)
        sep = "&" if "?" in dsn else "?"
        scratch = await PostgresStore.connect(f"{dsn}{sep}schema={schema}", max_size=2)
        scratch._drop_on_close = True
        await scratch.migrate()
        return scratch


_ACTIVITY_INSERT = (
    "INSERT INTO activity (position, type, aggregate_id, actor, at, consumer) "
    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (position) DO NOTHING"
)


def _activity(consumer: str, e: StoredEvent) -> tuple[Any, ...]:
    return (e.position, e.type, e.aggregate_id, e.metadata.get("actor"), e.timestamp, consumer)


def _concurrency(exc: asyncpg.UniqueViolationError) -> ConcurrencyError:
    constraint = getattr(exc, "constraint_name", "") or ""
    if "aggregate" in constraint:
        return ConcurrencyError("the aggregate was changed concurrently; re-read and retry")
    if "tasks" in constraint:
        return ConcurrencyError("the change was synced concurrently; re-sync")
    return ConcurrencyError(f"concurrent write refused: {exc}")


def _event(row: Sequence[Any]) -> StoredEvent:
    return StoredEvent(
        row[0],
        str(row[1]),
        row[2],
        row[3],
        row[4],
        row[5],
        format_ts(row[6]),
        row[7],
        row[8],
    )
