"""Cross-instance invalidation over Redis pub/sub, acknowledged.

A writer publishes what it invalidated and waits (briefly) until every other
instance has applied it to its L1 and answered on the writer's ack channel, so a
write acknowledged on one instance is not followed by a stale L1 read on another.
An instance whose subscription breaks cannot know what it missed: it empties its L1
and stops trusting it until the subscription is back (``healthy``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis

log = logging.getLogger("zyflow.cache.bus")

CHANNEL = "zf:inval"
ACK_PREFIX = "zf:ack:"
ACK_TIMEOUT = 0.25


class InvalidationBus:
    def __init__(
        self,
        client: aioredis.Redis,
        apply: Callable[[Sequence[str], Sequence[str], Sequence[str]], None],
        on_unhealthy: Callable[[], None],
    ) -> None:
        self.client = client
        self.origin = uuid.uuid4().hex[:12]
        self.apply = apply
        self.on_unhealthy = on_unhealthy
        self.healthy = False
        self.ack_timeouts = 0
        self.received = 0
        self._pending: dict[str, tuple[int, asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="zyflow-cache-bus")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), 2.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _listen(self) -> None:
        delay = 0.05
        while True:
            pubsub = self.client.pubsub()
            try:
                await pubsub.subscribe(CHANNEL, ACK_PREFIX + self.origin)
                # Anything published while we were away is unknown: start from empty.
                self.on_unhealthy()
                self.healthy = True
                self._ready.set()
                delay = 0.05
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is None:
                        continue
                    self._handle(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.healthy:
                    log.warning("invalidation bus lost (%s); L1 bypassed until it is back", exc)
                self.healthy = False
                self.on_unhealthy()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _handle(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        channel = channel.decode() if isinstance(channel, bytes) else channel
        data = orjson.loads(message["data"])
        if channel == CHANNEL:
            if data["o"] == self.origin:
                return
            self.received += 1
            self.apply(data["k"], data["t"], data["p"])
            asyncio.get_running_loop().create_task(self._ack(data["o"], data["s"]))
        else:
            pending = self._pending.get(data["s"])
            if pending is not None:
                left, future = pending
                left -= 1
                if left <= 0:
                    if not future.done():
                        future.set_result(None)
                    self._pending.pop(data["s"], None)
                else:
                    self._pending[data["s"]] = (left, future)

    async def _ack(self, origin: str, seq: str) -> None:
        with contextlib.suppress(Exception):
            await self.client.publish(ACK_PREFIX + origin, orjson.dumps({"s": seq}))

    async def broadcast(
        self, keys: Sequence[str], tags: Sequence[str], patterns: Sequence[str]
    ) -> None:
        """Publish an invalidation and wait until every other instance applied it."""
        seq = uuid.uuid4().hex
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        payload = orjson.dumps(
            {"o": self.origin, "s": seq, "k": list(keys), "t": list(tags), "p": list(patterns)}
        )
        self._pending[seq] = (1 << 30, future)
        try:
            receivers = int(await self.client.publish(CHANNEL, payload))
            others = receivers - 1 if self.healthy else receivers
            if others <= 0:
                return
            left, _ = self._pending.get(seq, (0, future))
            # Acks may already have arrived (counted down from a huge number).
            already = (1 << 30) - left
            if already >= others:
                return
            self._pending[seq] = (others - already, future)
            try:
                await asyncio.wait_for(future, ACK_TIMEOUT)
            except TimeoutError:
                self.ack_timeouts += 1
                log.warning("invalidation %s: not every instance answered in time", seq)
        finally:
            self._pending.pop(seq, None)
