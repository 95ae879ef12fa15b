"""Redis Streams across processes: two workers share the stream; one is killed mid-way;
every event is handled exactly once in effect; a poison entry ends in the dead stream."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.conftest import need_service
from zyflow.bench.loader import load_tasks
from zyflow.domain.events import EventType, NewEvent
from zyflow.events.streams import DEAD, GROUP, STREAM, StreamPublisher
from zyflow.events.workers import POISON
from zyflow.store import open_store
from zyflow.store.port import EventQuery, Store

# A database index of its own: servers in other tests publish to index 0.
STREAMS_REDIS = "redis://127.0.0.1:6379/3"


def start_worker(name: str, db_url: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "zyflow.cli.main", "worker", "--name", name, "--db", db_url,
            "--redis", STREAMS_REDIS, "--claim-idle-ms", "500",
        ],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


async def wait_for(store: Store, count: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    positions: list[int] = []
    while time.monotonic() < deadline:
        positions = await store.activity_positions()
        if len(positions) >= count:
            return positions
        await asyncio.sleep(0.1)
    return positions


@pytest.mark.redis
async def test_two_workers_one_killed_nothing_lost(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    need_service("Redis", "127.0.0.1", 6379)
    client = aioredis.Redis.from_url(STREAMS_REDIS)
    await client.delete(STREAM, DEAD)
    await load_tasks(store, 3000, per_change=50)
    events = []
    after = 0
    while batch := await store.read_all(EventQuery(after=after, limit=10_000)):
        events.extend(batch)
        after = batch[-1].position
    publisher = StreamPublisher(client)
    a = start_worker("worker-a", db_url, tmp_path / "a.log")
    b = start_worker("worker-b", db_url, tmp_path / "b.log")
    try:
        for start in range(0, len(events), 200):
            await publisher.publish(events[start : start + 200])
            await asyncio.sleep(0.005)
        partial = await wait_for(store, len(events) // 4, 30)
        assert len(partial) >= len(events) // 4
        os.kill(a.pid, signal.SIGKILL)  # dies with entries read but not acknowledged
        a.wait()
        positions = await wait_for(store, len(events), 60)
        assert positions == [e.position for e in events]  # all, once each
        # The last batch's effects commit just before its XACK: wait for the ack.
        deadline = time.monotonic() + 10
        while True:
            info = await client.xinfo_groups(STREAM)
            if info[0]["pending"] == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert info[0]["name"].decode() == GROUP and info[0]["pending"] == 0
        # A poison entry is retried, then buried in the dead-letter stream.
        poison = NewEvent(
            "task", "poison", 1, EventType.TASK_UPDATED, {"changes": {}, "previous": {}},
            {"actor": POISON},
        )  # fmt: skip
        stored = await store.append([poison])
        await publisher.publish(stored)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and await client.xlen(DEAD) == 0:
            await asyncio.sleep(0.1)
        assert await client.xlen(DEAD) == 1
        assert stored[0].position not in await store.activity_positions()
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        await client.delete(STREAM, DEAD)
        await client.aclose()
    _ = open_store
