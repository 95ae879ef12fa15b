"""Consumer checkpoints, idempotent effects and dead letters, on every backend."""

from __future__ import annotations

import sqlite3

import pytest

from tests.contract.test_event_store import created, updated
from zyflow.domain.errors import Unavailable
from zyflow.store.port import EventQuery, Store


async def test_checkpointed_consumer_is_idempotent(store: Store) -> None:
    await store.append([created(f"t{i}") for i in range(10)])
    events = await store.read_all(EventQuery(limit=100))
    assert await store.advance_consumer("feed", events[:6]) == 6
    assert await store.consumer_position("feed") == 6
    # Redelivery of an overlapping range applies only what is new.
    assert await store.advance_consumer("feed", events[3:]) == 4
    assert await store.advance_consumer("feed", events) == 0
    assert await store.activity_positions() == list(range(1, 11))


async def test_shared_stream_effect_absorbs_duplicates(store: Store) -> None:
    await store.append([created(f"t{i}") for i in range(5)])
    events = await store.read_all(EventQuery(limit=100))
    assert await store.record_activity("a", events[:3]) == 3
    assert await store.record_activity("b", events[1:]) == 2
    assert await store.activity_positions() == [1, 2, 3, 4, 5]


async def test_failing_batch_is_retried_then_dead_lettered(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    committer = store.committer
    attempts = 0

    async def broken(batch):  # type: ignore[no-untyped-def]
        nonlocal attempts
        attempts += 1
        raise sqlite3.OperationalError("disk I/O error (simulated)")

    monkeypatch.setattr(committer, "_commit_batch", broken)
    monkeypatch.setattr(committer, "retry_delay", 0.001)
    with pytest.raises(Unavailable):
        await store.append([created("lost")])
    assert attempts == committer.retries + 1
    letters = await store.list_dead_letters()
    assert len(letters) == 1 and "disk I/O error" in letters[0]["error"]
    assert letters[0]["events"][0]["aggregate_id"] == "lost"
    assert await store.get_task("lost") is None
    monkeypatch.undo()
    await store.append([created("ok")])  # the committer keeps working afterwards
    assert await store.get_task("ok") is not None
    _ = updated
