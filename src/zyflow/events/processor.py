"""Batch and stream processing of events.

``BatchProcessor`` groups a batch by event type and runs each type's handler with
bounded parallelism (the seed's processBatch/processParallel). ``StreamProcessor``
puts a bounded queue in front of it: producers *wait* when it is full (backpressure);
nothing durable is ever dropped (seed bug 1). ``Fanout`` is for ephemeral
subscribers only: one that falls behind is cut off and counted, and resumes from the
log by position.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from zyflow.domain.events import StoredEvent
from zyflow.events import metrics

Handler = Callable[[Sequence[StoredEvent]], Awaitable[None]]


@dataclass(slots=True)
class BatchResult:
    total: int = 0
    processed: int = 0
    failed: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)  # (event type, error)
    duration_s: float = 0.0

    def merge(self, other: BatchResult) -> None:
        self.total += other.total
        self.processed += other.processed
        self.failed += other.failed
        self.errors.extend(other.errors)


class BatchProcessor:
    def __init__(
        self,
        handlers: dict[str, Handler] | None = None,
        *,
        max_concurrency: int = 10,
        name: str = "batch",
    ) -> None:
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self.max_concurrency = max_concurrency
        self.name = name

    def on(self, event_type: str, handler: Handler) -> None:
        self.handlers[event_type] = handler

    async def process_batch(self, events: Sequence[StoredEvent]) -> BatchResult:
        started = time.perf_counter()
        groups: dict[str, list[StoredEvent]] = {}
        for event in events:
            groups.setdefault(event.type, []).append(event)
        limit = asyncio.Semaphore(self.max_concurrency)

        async def run(event_type: str, group: list[StoredEvent]) -> BatchResult:
            handler = self.handlers.get(event_type)
            if handler is None:
                # No handler is not a failure: this processor does not care for the type.
                return BatchResult(total=len(group), processed=len(group))
            async with limit:
                try:
                    await handler(group)
                except Exception as exc:
                    return BatchResult(
                        total=len(group), failed=len(group), errors=[(event_type, repr(exc))]
                    )
            return BatchResult(total=len(group), processed=len(group))

        result = BatchResult()
        for part in await asyncio.gather(*(run(t, g) for t, g in groups.items())):
            result.merge(part)
        result.duration_s = time.perf_counter() - started
        metrics.PROCESSED.labels(self.name).inc(result.processed)
        if result.failed:
            metrics.FAILED.labels(self.name).inc(result.failed)
        metrics.BATCH_SECONDS.labels(self.name).observe(result.duration_s)
        return result

    async def process_parallel(
        self, events: Sequence[StoredEvent], concurrency: int | None = None
    ) -> BatchResult:
        """Split into chunks processed concurrently. Events of one aggregate stay in one
        chunk, in order, so per-aggregate ordering survives the parallelism."""
        chunks_n = max(1, concurrency or self.max_concurrency)
        chunks: list[list[StoredEvent]] = [[] for _ in range(chunks_n)]
        for event in events:
            chunks[hash(event.aggregate_id) % chunks_n].append(event)
        result = BatchResult()
        started = time.perf_counter()
        for part in await asyncio.gather(*(self.process_batch(c) for c in chunks if c)):
            result.merge(part)
        result.duration_s = time.perf_counter() - started
        return result


class StreamProcessor:
    """A bounded queue drained in batches by one worker; producers wait when it is full."""

    def __init__(
        self,
        batch: BatchProcessor,
        *,
        max_queue: int = 10_000,
        max_batch: int = 1000,
        name: str = "stream",
    ) -> None:
        self.batch = batch
        self.max_batch = max_batch
        self.name = name
        self.queue: asyncio.Queue[StoredEvent] = asyncio.Queue(max_queue)
        self.processed = 0
        self.failed = 0
        self.backpressure = 0
        self._worker: asyncio.Task[None] | None = None
        self.on_result: Callable[[BatchResult], None] | None = None
        self._queued = metrics.QUEUED.labels(name)
        self._backpressure = metrics.BACKPRESSURE.labels(name)
        self._queue_size = metrics.QUEUE_SIZE.labels(name)

    async def start(self) -> None:
        self._worker = asyncio.create_task(self._run(), name=f"zyflow-{self.name}")

    async def publish(self, event: StoredEvent) -> None:
        queue = self.queue
        if queue.full():
            self.backpressure += 1
            self._backpressure.inc()
            await queue.put(event)  # waits for room: nothing is dropped
        else:
            queue.put_nowait(event)
        self._queued.inc()

    async def publish_many(self, events: Sequence[StoredEvent]) -> None:
        queue = self.queue
        for event in events:
            if queue.full():
                self.backpressure += 1
                self._backpressure.inc()
                await queue.put(event)
            else:
                queue.put_nowait(event)
        self._queued.inc(len(events))

    async def consume(self, source: AsyncIterator[StoredEvent]) -> None:
        """The seed's startProcessing: feed every event of a stream through the queue."""
        async for event in source:
            await self.publish(event)

    async def drain(self) -> None:
        await self.queue.join()

    async def stop(self) -> None:
        await self.drain()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    async def _run(self) -> None:
        queue = self.queue
        while True:
            first = await queue.get()
            batch = [first]
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            self._queue_size.set(queue.qsize())
            try:
                result = await self.batch.process_batch(batch)
                self.processed += result.processed
                self.failed += result.failed
                if self.on_result is not None:
                    self.on_result(result)
            finally:
                for _ in batch:
                    queue.task_done()


class Subscription:
    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[StoredEvent | None] = asyncio.Queue(size)
        self.cut_off = False
        self.last_position = 0

    async def __aiter__(self) -> AsyncIterator[StoredEvent]:
        while True:
            event = await self.queue.get()
            if event is None:
                return
            self.last_position = event.position
            yield event


class Fanout:
    """Ephemeral delivery to live subscribers. Publishing never waits: a subscriber whose
    queue is full is cut off (its iteration ends), counted, and expected to resume
    from the log after ``last_position``."""

    def __init__(self, queue_size: int = 1000, name: str = "fanout") -> None:
        self.queue_size = queue_size
        self.name = name
        self.subscribers: set[Subscription] = set()
        self.dropped = 0
        self.cut_offs = 0

    def subscribe(self) -> Subscription:
        subscription = Subscription(self.queue_size)
        self.subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self.subscribers.discard(subscription)

    def publish(self, events: Sequence[StoredEvent]) -> None:
        for subscription in list(self.subscribers):
            for index, event in enumerate(events):
                try:
                    subscription.queue.put_nowait(event)
                except asyncio.QueueFull:
                    missed = len(events) - index
                    self.dropped += missed
                    self.cut_offs += 1
                    metrics.DROPPED.labels(self.name).inc(missed)
                    self._cut(subscription)
                    break

    def _cut(self, subscription: Subscription) -> None:
        subscription.cut_off = True
        self.subscribers.discard(subscription)
        # Make room for the end marker: the subscriber learns it was cut off.
        while not subscription.queue.empty():
            subscription.queue.get_nowait()
        subscription.queue.put_nowait(None)
