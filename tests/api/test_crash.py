"""kill -9 while updates stream in: every acknowledged update is in the log afterwards,
and the read models equal their replay."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.api.conftest import start_server
from zyflow.store import open_store


def test_sigkill_loses_nothing_acknowledged(tmp_path: Path, db_url: str) -> None:
    server = start_server(tmp_path, db_url, args=())
    acked: list[tuple[str, int, str]] = []
    stop = threading.Event()
    with server.client() as c:
        ids = [t["id"] for t in c.get("/api/tasks", params={"limit": "40"}).json()["items"]]

    def writer(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=5) as c:
            i = 0
            while not stop.is_set():
                i += 1
                task_id = ids[(worker * 7 + i) % len(ids)]
                assignee = f"w{worker}-{i}"
                try:
                    r = c.patch(f"/api/tasks/{task_id}", json={"assignee": assignee})
                except httpx.HTTPError:
                    return  # the server is gone; this request was never acknowledged
                if r.status_code == 200:
                    acked.append((task_id, r.json()["version"], assignee))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(random.uniform(0.8, 1.6))
    # SIGKILL the whole server: the granian main process and its worker.
    os.killpg(os.getpgid(server.process.pid), signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join(10)
    server.process.wait(10)
    assert len(acked) > 20, "the load did not get going before the kill"

    import asyncio

    async def check() -> None:
        store = await open_store(db_url)
        try:
            for task_id, version, assignee in acked:
                events = await store.read_stream(task_id)
                match = [e for e in events if e.version == version]
                assert match, f"acknowledged update {task_id} v{version} is missing"
                assert match[0].data["changes"].get("assignee") == assignee
        finally:
            await store.close()

    asyncio.run(check())
    proc = subprocess.run(
        [sys.executable, "-m", "zyflow.cli.main", "replay", "--verify", "--db", db_url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # And the service starts again on the same database.
    again = start_server(tmp_path / "again", db_url, project=server.project)
    try:
        with again.client() as c:
            assert c.get("/api/health").json()["status"] == "ok"
    finally:
        again.stop()
