"""SQL shared by the backends: the hot queries and the projection's row operations.

Written with ``?`` placeholders; the PostgreSQL backend renumbers them to ``$n``.
Hot paths name their columns (no ``SELECT *``) and page by keyset, never by OFFSET.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from zyflow.domain.projection import (
    CHANGE_COLUMNS,
    CONFLICT_COLUMNS,
    SYNC_COLUMNS,
    TASK_COLUMNS,
    Insert,
    RowOp,
    Update,
    Upsert,
)
from zyflow.store.port import ACTIVE_STATUSES, SORTS, EventQuery, TaskQuery

TASK_SELECT = "SELECT " + ", ".join(f"t.{c}" for c in TASK_COLUMNS) + " FROM tasks t"
EVENT_COLUMNS = (
    "position, id, aggregate_type, aggregate_id, version, type, timestamp, data, metadata"
)

READ_MODEL_ORDER: dict[str, tuple[tuple[str, ...], str]] = {
    "tasks": (TASK_COLUMNS, "id"),
    "changes": (CHANGE_COLUMNS, "project_id, id"),
    "sync_status": (SYNC_COLUMNS, "project_id, change_id"),
    "conflicts": (CONFLICT_COLUMNS, "id"),
}

_WORD = re.compile(r"\w+", re.UNICODE)


def search_terms(q: str) -> list[str]:
    """Words of a free-text query; punctuation never reaches the FTS syntax."""
    return _WORD.findall(q)


def task_list_sql(
    query: TaskQuery, search_clause: Callable[[list[str]], tuple[str, list[Any]]]
) -> tuple[str, list[Any]]:
    """One keyset page of tasks: filters, optional full-text, sort, ``limit + 1`` rows."""
    where: list[str] = []
    params: list[Any] = []
    if query.project:
        where.append("t.project_id = ?")
        params.append(query.project)
    if query.change:
        where.append("t.change_id = ?")
        params.append(query.change)
    statuses = query.statuses or ACTIVE_STATUSES
    if len(statuses) == 1:
        where.append("t.status = ?")
        params.append(statuses[0])
    else:
        where.append("t.status IN (" + ", ".join("?" for _ in statuses) + ")")
        params.extend(statuses)
    if query.assignee:
        where.append("t.assignee = ?")
        params.append(query.assignee)
    if query.priority is not None:
        where.append("t.priority = ?")
        params.append(query.priority)
    if query.q:
        clause, extra = search_clause(search_terms(query.q))
        where.append(clause)
        params.extend(extra)
    columns = [f"t.{c}" for c in SORTS[query.sort]] + ["t.id"]
    if query.after is not None:
        op = "<" if query.descending else ">"
        where.append(f"({', '.join(columns)}) {op} ({', '.join('?' for _ in columns)})")
        params.extend(query.after)
    direction = " DESC" if query.descending else ""
    sql = TASK_SELECT
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY " + ", ".join(c + direction for c in columns) + " LIMIT ?"
    params.append(query.limit + 1)
    return sql, params


def event_list_sql(query: EventQuery) -> tuple[str, list[Any]]:
    where = ["position > ?"]
    params: list[Any] = [query.after]
    if query.aggregate_id:
        where.append("aggregate_id = ?")
        params.append(query.aggregate_id)
    if query.types:
        where.append("type IN (" + ", ".join("?" for _ in query.types) + ")")
        params.extend(query.types)
    sql = (
        f"SELECT {EVENT_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY position LIMIT ?"
    )
    params.append(query.limit)
    return sql, params


def change_list_sql(
    project: str | None, status: str | None, change: str | None
) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    # Pushing the filters into the grouped subquery too keeps a one-change lookup an
    # index range scan instead of a count over every task.
    inner_where: list[str] = []
    inner_params: list[Any] = []
    if project:
        where.append("c.project_id = ?")
        params.append(project)
        inner_where.append("project_id = ?")
        inner_params.append(project)
    if change:
        where.append("c.id = ?")
        params.append(change)
        inner_where.append("change_id = ?")
        inner_params.append(change)
    if status:
        where.append("c.status = ?")
        params.append(status)
    inner = " WHERE " + " AND ".join(inner_where) if inner_where else ""
    sql = (
        "SELECT c.project_id, c.id, c.title, c.status, c.path, c.version, c.created_at, "
        "c.updated_at, s.status, s.n FROM changes c LEFT JOIN ("
        f" SELECT project_id, change_id, status, COUNT(*) AS n FROM tasks{inner}"
        " GROUP BY project_id, change_id, status"
        ") s ON s.project_id = c.project_id AND s.change_id = c.id"
    )
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY c.project_id, c.id"
    return sql, inner_params + params


def op_signature(op: RowOp) -> tuple[Any, ...]:
    if isinstance(op, Insert):
        return ("i", op.table, tuple(op.row))
    if isinstance(op, Update):
        return ("u", op.table, tuple(op.values), tuple(op.where))
    return ("s", op.table, tuple(op.row), op.conflict)


def op_sql(op: RowOp) -> str:
    if isinstance(op, Insert):
        cols = tuple(op.row)
        return f"INSERT INTO {op.table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
    if isinstance(op, Update):
        sets = ", ".join(f"{c} = ?" for c in op.values)
        where = " AND ".join(f"{c} = ?" for c in op.where)
        return f"UPDATE {op.table} SET {sets} WHERE {where}"
    cols = tuple(op.row)
    updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in op.conflict)
    return (
        f"INSERT INTO {op.table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)}) "
        f"ON CONFLICT ({', '.join(op.conflict)}) DO UPDATE SET {updates}"
    )


def op_params(op: RowOp) -> tuple[Any, ...]:
    if isinstance(op, Insert | Upsert):
        return tuple(op.row.values())
    return (*op.values.values(), *op.where.values())


_KIND_ORDER = {Insert: 0, Upsert: 1, Update: 2}


@dataclass(slots=True)
class OpGroup:
    """Consecutive operations of one shape: same kind, table and columns."""

    first: RowOp
    rows: list[tuple[Any, ...]]

    @property
    def sql(self) -> str:
        return op_sql(self.first)


def op_groups(ops: Sequence[RowOp]) -> list[OpGroup]:
    """Operations of the same shape, grouped for one bulk statement each.

    A stable sort by (table, insert/upsert/update) first brings like operations together:
    rows are inserted before anything updates them, and operations on one row keep
    their order, so the result equals applying the operations one by one.
    """
    ordered = sorted(ops, key=lambda op: (op.table, _KIND_ORDER[type(op)]))
    groups: list[OpGroup] = []
    last: tuple[Any, ...] | None = None
    for op in ordered:
        signature = op_signature(op)
        if signature != last:
            groups.append(OpGroup(op, []))
            last = signature
        groups[-1].rows.append(op_params(op))
    return groups


def collapsed_rows(group: OpGroup) -> list[tuple[Any, ...]]:
    """A group's rows with only the last write per row key: within one group every row
    sets the same columns, so earlier writes to the same row are overwritten anyway."""
    op = group.first
    if isinstance(op, Update):
        width = len(op.values)
        last: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        for row in group.rows:
            last[row[width:]] = row
        return list(last.values())
    if isinstance(op, Upsert):
        columns = list(op.row)
        index = [columns.index(c) for c in op.conflict]
        last = {}
        for row in group.rows:
            last[tuple(row[i] for i in index)] = row
        return list(last.values())
    return group.rows


def grouped_ops(ops: Sequence[RowOp]) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """Each group as (statement, parameter rows) for ``executemany``."""
    return [(group.sql, collapsed_rows(group)) for group in op_groups(ops)]


def renumber(sql: str) -> str:
    """``?`` placeholders to PostgreSQL's ``$1, $2, ...``."""
    counter = iter(range(1, 10_000))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)
