"""Wiring for event consumers: the Redis Streams publisher of a server, and the
``zyflow worker`` process that builds the activity feed from the shared stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence

import redis.asyncio as aioredis

from zyflow.bootstrap import Services
from zyflow.domain.events import StoredEvent
from zyflow.events.streams import StreamPublisher, StreamWorker

log = logging.getLogger("zyflow.worker")

POISON = "zyflow-test-poison"  # an actor name whose events the activity handler refuses


def attach_publisher(services: Services) -> StreamPublisher | None:
    """Publish every committed event to the Redis stream (when Redis is configured)."""
    if not services.settings.redis:
        return None
    client = aioredis.Redis.from_url(services.settings.redis, socket_timeout=1.0)
    publisher = StreamPublisher(client)

    async def publish(events: list[StoredEvent]) -> None:
        await publisher.publish(events)

    services.store.committer.after_commit.append(publish)
    return publisher


async def run_worker(services: Services, name: str, claim_idle_ms: int) -> None:
    assert services.settings.redis
    client = aioredis.Redis.from_url(services.settings.redis)
    store = services.store

    async def handle(events: Sequence[StoredEvent]) -> None:
        if any(e.metadata.get("actor") == POISON for e in events):
            raise ValueError("refusing a poison event")
        await store.record_activity(name, events)

    worker = StreamWorker(client, name, handle, claim_idle_ms=claim_idle_ms)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, worker.stop)
    log.info("worker %s consuming", name)
    try:
        await worker.run()
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()
