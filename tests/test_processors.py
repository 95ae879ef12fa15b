"""Batch and stream processors, and ephemeral fan-out."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from zyflow.domain.events import StoredEvent
from zyflow.events.processor import BatchProcessor, Fanout, StreamProcessor


def event(position: int, kind: str = "TaskUpdated", aggregate: str | None = None) -> StoredEvent:
    return StoredEvent(
        position, f"id{position}", "task", aggregate or f"t{position % 7}", position, kind,
        "2026-01-01T00:00:00.000000Z", {}, {},
    )  # fmt: skip


async def test_batch_groups_by_type_with_bounded_parallelism() -> None:
    running = 0
    peak = 0
    seen: dict[str, int] = {}

    def handler(kind: str):  # type: ignore[no-untyped-def]
        async def handle(events: Sequence[StoredEvent]) -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            assert all(e.type == kind for e in events)
            seen[kind] = seen.get(kind, 0) + len(events)
            running -= 1

        return handle

    kinds = ["TaskCreated", "TaskUpdated", "TaskCompleted", "TaskArchived", "ChangeCreated"]
    processor = BatchProcessor({k: handler(k) for k in kinds}, max_concurrency=2)
    events = [event(i, kinds[i % len(kinds)]) for i in range(1, 501)]
    result = await processor.process_batch(events)
    assert (result.total, result.processed, result.failed) == (500, 500, 0)
    assert peak == 2
    assert seen == {k: 100 for k in kinds}


async def test_failures_are_counted_not_raised() -> None:
    async def broken(events: Sequence[StoredEvent]) -> None:
        raise RuntimeError("boom")

    async def fine(events: Sequence[StoredEvent]) -> None:
        return None

    processor = BatchProcessor({"TaskUpdated": broken, "TaskCreated": fine})
    result = await processor.process_batch(
        [event(1), event(2, "TaskCreated"), event(3), event(4, "SyncStarted")]
    )
    assert (result.processed, result.failed) == (2, 2)
    assert result.errors[0][0] == "TaskUpdated"


async def test_parallel_keeps_each_aggregate_in_order() -> None:
    order: dict[str, list[int]] = {}

    async def record(events: Sequence[StoredEvent]) -> None:
        for e in events:
            order.setdefault(e.aggregate_id, []).append(e.position)

    processor = BatchProcessor({"TaskUpdated": record})
    result = await processor.process_parallel([event(i) for i in range(1, 1001)], concurrency=4)
    assert result.processed == 1000
    assert all(positions == sorted(positions) for positions in order.values())


async def test_stream_backpressure_waits_and_drops_nothing() -> None:
    handled: list[int] = []

    async def slow(events: Sequence[StoredEvent]) -> None:
        await asyncio.sleep(0.001)
        handled.extend(e.position for e in events)

    stream = StreamProcessor(BatchProcessor({"TaskUpdated": slow}), max_queue=10, max_batch=5)
    await stream.start()

    async def producer(offset: int) -> None:
        for i in range(200):
            await stream.publish(event(offset + i))

    await asyncio.gather(producer(0), producer(1000), producer(2000))
    await stream.stop()
    assert sorted(handled) == sorted([*range(200), *range(1000, 1200), *range(2000, 2200)])
    assert stream.backpressure > 0
    assert stream.queue.maxsize == 10


async def test_fanout_cuts_off_a_slow_subscriber_who_resumes_from_the_log() -> None:
    fanout = Fanout(queue_size=50)
    fast = fanout.subscribe()
    slow = fanout.subscribe()
    log = [event(i) for i in range(1, 201)]
    received: list[int] = []

    async def read_fast() -> None:
        async for e in fast:
            received.append(e.position)
            if e.position == 200:
                return

    reader = asyncio.create_task(read_fast())
    for start in range(0, 200, 10):
        fanout.publish(log[start : start + 10])
        await asyncio.sleep(0)  # the fast reader keeps up; the slow one never reads
    await asyncio.wait_for(reader, 2)
    assert received == list(range(1, 201))
    assert slow.cut_off and fanout.cut_offs == 1 and fanout.dropped > 0
    got = [e.position async for e in slow]
    assert got == []  # its queue was cleared and closed
    # It resumes from the log after the last position it saw: nothing is lost.
    resumed = [e.position for e in log if e.position > slow.last_position]
    assert resumed == list(range(1, 201))
