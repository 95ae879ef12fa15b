"""Rebuild the read models from the event log and compare them with the live ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zyflow.domain.projection import project_all
from zyflow.store.port import EventQuery, Store

BATCH = 5000


@dataclass(slots=True)
class ReplayResult:
    events: int
    tables: dict[str, int]
    differences: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "rows": self.tables,
            "differences": self.differences[:50],
            "difference_count": len(self.differences),
        }


async def replay_verify(store: Store) -> ReplayResult:
    """Project every event into an empty scratch store and diff every read-model row."""
    scratch = await store.open_scratch()
    try:
        after, count = 0, 0
        while True:
            batch = await store.read_all(EventQuery(after=after, limit=BATCH))
            if not batch:
                break
            await scratch.apply_ops(project_all(batch))
            after = batch[-1].position
            count += len(batch)
        live = await store.read_models()
        rebuilt = await scratch.read_models()
    finally:
        await scratch.close()
    differences: list[dict[str, Any]] = []
    for table, rows in live.items():
        other = rebuilt.get(table, [])
        live_set, rebuilt_set = set(rows), set(other)
        for row in sorted(live_set - rebuilt_set, key=repr)[:20]:
            differences.append({"table": table, "only_live": list(row)})
        for row in sorted(rebuilt_set - live_set, key=repr)[:20]:
            differences.append({"table": table, "only_replayed": list(row)})
    return ReplayResult(count, {t: len(r) for t, r in live.items()}, differences)
