"""Fill a database directly with N tasks (events and read models), for large-scale benchmarks.

Goes through the store's real append path (events, projection, group commit) in large
requests, skipping only the files: a 1,000,000-task database without a million lines
of markdown on disk.
"""

from __future__ import annotations

import random
import time
import uuid

from zyflow.domain.events import EventType, NewEvent
from zyflow.domain.model import new_id, utc_now
from zyflow.store.port import Store

STATUSES = ("todo", "todo", "todo", "in-progress", "review", "done", "done")
WORDS = (
    "webhook", "receiver", "delivery", "worker", "search", "index", "session", "cache",
    "audit", "log", "rate", "limiter", "schema", "migration", "retry", "policy", "keyset",
    "pagination", "bulk", "importer", "metrics", "exporter", "검색", "인덱스", "생성", "캐시",
    "무효화", "이벤트", "로그", "재생", "동기화", "충돌", "해결",
)  # fmt: skip
ASSIGNEES = ("ann", "bo", "chen", "dana", "eun", None, None, None)


async def load_tasks(
    store: Store, total: int, *, per_change: int = 50, project: str = "bench", seed: int = 7
) -> float:
    """Insert ``total`` tasks in changes of ``per_change``; returns seconds taken."""
    rng = random.Random(seed)
    started = time.perf_counter()
    batch: list[NewEvent] = []
    now = utc_now()
    changes = (total + per_change - 1) // per_change
    for c in range(changes):
        change = f"change-{c:06d}"
        batch.append(
            NewEvent(
                "change", f"{project}/{change}", 1, EventType.CHANGE_CREATED,
                {"change": {"project": project, "id": change, "title": f"Change {c}",
                            "status": "active", "path": f"openspec/changes/{change}"}},
                {"actor": "bench-loader"}, str(uuid.uuid4()), now,
            )
        )  # fmt: skip
        for i in range(min(per_change, total - c * per_change)):
            task_id = new_id()
            title = " ".join(rng.sample(WORDS, 4))
            batch.append(
                NewEvent(
                    "task", task_id, 1, EventType.TASK_CREATED,
                    {"task": {
                        "id": task_id, "project": project, "change": change,
                        "key": f"{i // 10 + 1}.{i % 10 + 1}",
                        "display_id": f"{i // 10 + 1}.{i % 10 + 1}", "title": title,
                        "group": f"{i // 10 + 1}. Group", "section": None,
                        "status": rng.choice(STATUSES), "assignee": rng.choice(ASSIGNEES),
                        "priority": rng.choice((None, "low", "medium", "high", "urgent")),
                        "tags": [], "parent_id": None, "line": i + 3, "order": i,
                    }},
                    {"actor": "bench-loader"}, str(uuid.uuid4()), now,
                )
            )  # fmt: skip
        if len(batch) >= 5000:
            await store.append(batch)
            batch = []
    if batch:
        await store.append(batch)
    return time.perf_counter() - started
