"""Events across instances over Redis Streams, with consumer groups.

The publisher adds every committed event to ``zf:events`` (an after-commit hook, so
only committed events travel). Workers in a consumer group share the entries; each
acknowledges an entry only after its handler succeeded. A worker that dies leaves
its entries pending; the others take them over with ``XAUTOCLAIM`` once they have
been idle long enough. An entry delivered ``max_deliveries`` times without success
goes to the dead-letter stream ``zf:events:dead`` instead of looping forever.
Delivery is at least once: handlers must be idempotent (``record_activity`` is).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from zyflow.domain.events import StoredEvent

log = logging.getLogger("zyflow.streams")

STREAM = "zf:events"
DEAD = "zf:events:dead"
GROUP = "zf:workers"
MAXLEN = 1_000_000

StreamHandler = Callable[[Sequence[StoredEvent]], Awaitable[None]]


def encode(event: StoredEvent) -> bytes:
    return orjson.dumps(event.to_json())


def decode(raw: bytes) -> StoredEvent:
    d = orjson.loads(raw)
    return StoredEvent(
        d["position"], d["id"], d["aggregate_type"], d["aggregate_id"], d["version"],
        d["type"], d["timestamp"], d["data"], d["metadata"],
    )  # fmt: skip


# One round trip and one command for a whole batch: packing a pipeline of XADDs in
# redis-py costs more than Redis takes to run them.
XADD_MANY = """
for i = 2, #ARGV do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[i])
end
return #ARGV - 1
"""


class StreamPublisher:
    def __init__(self, client: aioredis.Redis, stream: str = STREAM) -> None:
        self.client = client
        self.stream = stream
        self.published = 0
        self.failures = 0
        self._xadd_many = client.register_script(XADD_MANY)

    async def publish(self, events: Sequence[StoredEvent]) -> None:
        if not events:
            return
        try:
            for start in range(0, len(events), 1000):
                chunk = events[start : start + 1000]
                await self._xadd_many(keys=[self.stream], args=[MAXLEN, *map(encode, chunk)])
            self.published += len(events)
        except Exception as exc:
            # The log has them: a stream consumer can be re-fed from the store.
            self.failures += 1
            log.warning("publishing %d events to %s failed: %s", len(events), self.stream, exc)


@dataclass(slots=True)
class WorkerStats:
    handled: int = 0
    claimed: int = 0
    dead: int = 0
    failures: int = 0


class StreamWorker:
    def __init__(
        self,
        client: aioredis.Redis,
        name: str,
        handler: StreamHandler,
        *,
        stream: str = STREAM,
        group: str = GROUP,
        claim_idle_ms: int = 2000,
        max_deliveries: int = 3,
        batch: int = 200,
    ) -> None:
        self.client = client
        self.name = name
        self.handler = handler
        self.stream = stream
        self.group = group
        self.claim_idle_ms = claim_idle_ms
        self.max_deliveries = max_deliveries
        self.batch = batch
        self.stats = WorkerStats()
        self._stop = asyncio.Event()

    async def ensure_group(self) -> None:
        with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
            await self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        await self.ensure_group()
        last_claim = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now - last_claim > self.claim_idle_ms / 2000:
                last_claim = now
                await self._claim()
            reply: Any = await self.client.xreadgroup(
                self.group, self.name, {self.stream: ">"}, count=self.batch, block=100
            )
            for _, entries in reply or []:
                await self._handle(list(entries))

    async def _claim(self) -> None:
        """Take over entries another worker left pending for too long."""
        start = "0-0"
        while True:
            result = await self.client.xautoclaim(
                self.stream, self.group, self.name, self.claim_idle_ms, start, count=self.batch
            )
            start, entries = result[0], result[1]
            if entries:
                self.stats.claimed += len(entries)
                await self._handle(entries, claimed=True)
            if start in (b"0-0", "0-0") or not entries:
                return

    async def _handle(self, entries: list[Any], claimed: bool = False) -> None:
        ids = [entry_id for entry_id, fields in entries if fields]
        if not ids:
            return
        if claimed:
            ids = await self._bury_poison(ids, entries)
        by_id = {entry_id: fields for entry_id, fields in entries}
        events = [decode(by_id[i][b"e"]) for i in ids]
        if not events:
            return
        try:
            await self.handler(events)
        except Exception as exc:
            self.stats.failures += 1
            log.warning("handler failed on %d entries (left pending): %s", len(events), exc)
            return
        await self.client.xack(self.stream, self.group, *ids)
        self.stats.handled += len(events)

    async def _bury_poison(self, ids: list[Any], entries: list[Any]) -> list[Any]:
        keep = []
        fields = {entry_id: f for entry_id, f in entries}
        for entry_id in ids:
            info = await self.client.xpending_range(
                self.stream, self.group, min=entry_id, max=entry_id, count=1
            )
            deliveries = int(info[0]["times_delivered"]) if info else 0
            if deliveries > self.max_deliveries:
                await self.client.xadd(
                    DEAD, {"e": fields[entry_id][b"e"], "deliveries": deliveries, "from": entry_id}
                )
                await self.client.xack(self.stream, self.group, entry_id)
                self.stats.dead += 1
            else:
                keep.append(entry_id)
        return keep
