"""Group commit: appends queue up and commit together, each caller acknowledged after commit.

One writer task drains the queue. Whatever queued while the previous batch was being
written goes into the next transaction (up to ``max_batch`` requests), so a lone write
commits at once and a burst shares one commit. Each request runs inside its own
savepoint: a stale version refuses that request alone, never its neighbours.
A batch that fails for any other reason (a locked or unreachable database) is retried
a bounded number of times; then its requests are written to the dead-letter table and
their callers get the error. Nothing is acknowledged before its transaction commits,
and nothing is re-queued forever (seed bug 2).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from zyflow.domain.errors import Unavailable
from zyflow.domain.events import NewEvent, StoredEvent
from zyflow.domain.model import SyncBase

log = logging.getLogger("zyflow.store")

BaseRef = tuple[str, str, SyncBase]


@dataclass(slots=True)
class AppendRequest:
    events: Sequence[NewEvent]
    sync_base: BaseRef | None
    future: asyncio.Future[list[StoredEvent]] = field(repr=False)


Outcome = list[StoredEvent] | BaseException


@dataclass(slots=True)
class GroupCommitStats:
    batches: int = 0
    requests: int = 0
    retries: int = 0
    dead_lettered: int = 0
    largest_batch: int = 0


class GroupCommitter:
    def __init__(
        self,
        commit_batch: Callable[[list[AppendRequest]], Awaitable[list[Outcome]]],
        dead_letter: Callable[[list[AppendRequest], str], Awaitable[None]],
        *,
        max_batch: int = 256,
        retries: int = 3,
        retry_delay: float = 0.05,
    ) -> None:
        self._commit_batch = commit_batch
        self._dead_letter = dead_letter
        self.max_batch = max_batch
        self.retries = retries
        self.retry_delay = retry_delay
        self._queue: list[AppendRequest] = []
        self._wakeup: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self.stats = GroupCommitStats()
        self.listeners: list[Callable[[], None]] = []
        # Awaited after a batch commits and before its callers are acknowledged (cache
        # invalidation): an acknowledged write is never followed by a stale read.
        self.after_commit: list[Callable[[list[StoredEvent]], Awaitable[None]]] = []

    async def submit(
        self, events: Sequence[NewEvent], sync_base: BaseRef | None
    ) -> list[StoredEvent]:
        if self._closing:
            raise RuntimeError("store is closing")
        loop = asyncio.get_running_loop()
        if self._writer is None or self._writer.done() or self._writer.get_loop() is not loop:
            self._wakeup = asyncio.Event()
            self._writer = loop.create_task(self._run(), name="zyflow-group-commit")
        request = AppendRequest(events, sync_base, loop.create_future())
        self._queue.append(request)
        assert self._wakeup is not None
        self._wakeup.set()
        return await request.future

    async def close(self) -> None:
        """Commit what is queued, then stop the writer."""
        self._closing = True
        writer = self._writer
        if writer is not None and not writer.done():
            assert self._wakeup is not None
            self._wakeup.set()
            await writer

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = self._queue[: self.max_batch]
            del self._queue[: len(batch)]
            await self._write(batch)

    async def _write(self, batch: list[AppendRequest]) -> None:
        self.stats.batches += 1
        self.stats.requests += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        error: BaseException | None = None
        for attempt in range(self.retries + 1):
            try:
                outcomes = await self._commit_batch(batch)
            except asyncio.CancelledError:
                for request in batch:
                    if not request.future.done():
                        request.future.cancel()
                raise
            except Exception as exc:
                error = exc
                if attempt < self.retries:
                    self.stats.retries += 1
                    log.warning("batch of %d failed (%s); retrying", len(batch), exc)
                    await asyncio.sleep(self.retry_delay * (2**attempt))
                    continue
                break
            committed = [
                event
                for outcome in outcomes
                if not isinstance(outcome, BaseException)
                for event in outcome
            ]
            for hook in self.after_commit:
                try:
                    await hook(committed)
                except Exception as exc:  # committed is committed; say so loudly
                    log.error("after-commit hook failed: %s", exc)
            for listener in self.listeners:
                listener()
            for request, outcome in zip(batch, outcomes, strict=True):
                if request.future.done():
                    continue
                if isinstance(outcome, BaseException):
                    request.future.set_exception(outcome)
                else:
                    request.future.set_result(outcome)
            return
        assert error is not None
        started = time.perf_counter()
        try:
            await self._dead_letter(batch, f"{type(error).__name__}: {error}")
            self.stats.dead_lettered += len(batch)
        except Exception as dl_error:  # the database is gone: the callers still learn it
            log.error("dead-lettering %d requests failed: %s", len(batch), dl_error)
        log.error(
            "batch of %d dead-lettered after %d retries (%.1f ms): %s",
            len(batch), self.retries, (time.perf_counter() - started) * 1000, error,
        )  # fmt: skip
        failure = Unavailable(f"write not committed after {self.retries} retries: {error}")
        for request in batch:
            if not request.future.done():
                request.future.set_exception(failure)
