"""Live events for Server-Sent Events clients.

The log is the buffer. The hub keeps only a short ring of the newest events and a
"something was committed" signal; each SSE client tracks its own last position and
reads what it has not seen from the ring, or from the store when it has fallen
behind the ring. A slow client therefore costs nobody else memory or time, and
misses nothing: it resumes from the log, as a reconnecting client does with
``Last-Event-ID``. Writes made by other processes (the CLI, other instances) are
picked up by a periodic look at the log's last position.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson

from zyflow.domain.events import StoredEvent
from zyflow.store.port import EventQuery, Store

log = logging.getLogger("zyflow.live")

RING = 4096
PAGE = 500
KEEPALIVE_SECONDS = 15.0
POLL_SECONDS = 0.25


class EventHub:
    def __init__(
        self,
        store: Store,
        on_foreign: Callable[[list[StoredEvent]], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.on_foreign = on_foreign
        self._local: set[int] = set()
        self.ring: deque[StoredEvent] = deque(maxlen=RING)
        self.last_position = 0
        self._changed = asyncio.Event()
        self._refreshing = asyncio.Lock()
        self._poller: asyncio.Task[None] | None = None
        self.clients = 0

    async def start(self) -> None:
        self.last_position = await self.store.last_position()
        self._poller = asyncio.create_task(self._poll(), name="zyflow-live-poll")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    async def record_local(self, events: list[StoredEvent]) -> None:
        """After-commit hook: these positions were written (and handled) by this process."""
        if self.on_foreign is not None:
            self._local.update(e.position for e in events)

    def committed(self) -> None:
        """Called after a local commit: pull the new events without waiting for the poll."""
        asyncio.get_running_loop().create_task(self.refresh())

    async def refresh(self) -> None:
        async with self._refreshing:
            while True:
                batch = await self.store.read_all(EventQuery(after=self.last_position, limit=PAGE))
                if not batch:
                    return
                self.ring.extend(batch)
                self.last_position = batch[-1].position
                if self.on_foreign is not None:
                    foreign = [e for e in batch if e.position not in self._local]
                    self._local.difference_update(e.position for e in batch)
                    if foreign:
                        try:
                            await self.on_foreign(foreign)
                        except Exception as exc:
                            log.warning("handling events of another process failed: %s", exc)
                changed, self._changed = self._changed, asyncio.Event()
                changed.set()
                if len(batch) < PAGE:
                    return

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                if await self.store.last_position() > self.last_position:
                    await self.refresh()
            except Exception as exc:  # the store reconnects; keep polling
                log.warning("live poll failed: %s", exc)

    async def after(self, position: int) -> list[StoredEvent]:
        """Events after ``position`` that the hub knows of, from the ring or the store."""
        if position >= self.last_position:
            return []
        if self.ring and self.ring[0].position <= position + 1:
            start = position + 1 - self.ring[0].position
            return [self.ring[i] for i in range(start, min(start + PAGE, len(self.ring)))]
        return await self.store.read_all(EventQuery(after=position, limit=PAGE))

    async def wait(self, position: int, timeout: float) -> None:
        if position < self.last_position:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    async def stream(
        self, position: int, types: frozenset[str] | None = None
    ) -> AsyncIterator[bytes]:
        """SSE frames for every event after ``position``; a comment line as keep-alive."""
        self.clients += 1
        try:
            yield b"retry: 1000\n\n"
            while True:
                events = await self.after(position)
                if not events:
                    await self.wait(position, KEEPALIVE_SECONDS)
                    if position >= self.last_position:
                        yield b": keep-alive\n\n"
                    continue
                chunks = []
                for event in events:
                    position = event.position
                    if types and event.type not in types:
                        continue
                    chunks.append(
                        b"id: %d\nevent: %s\ndata: %s\n\n"
                        % (event.position, event.type.encode(), orjson.dumps(event.to_json()))
                    )
                if chunks:
                    yield b"".join(chunks)
        finally:
            self.clients -= 1
