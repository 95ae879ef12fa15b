"""The cache across real server processes: two instances on one PostgreSQL and one Redis,
and Redis dying under load."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import free_port, start_server
from tests.conftest import DEMO, need_service, pg_url


@pytest.mark.postgres
@pytest.mark.redis
def test_two_instances_never_serve_a_stale_read(tmp_path: Path) -> None:
    need_service("PostgreSQL", "127.0.0.1", 5432)
    need_service("Redis", "127.0.0.1", 6379)
    db = pg_url("zcc_" + secrets.token_hex(5))
    project = tmp_path / "project"
    shutil.copytree(DEMO, project)
    env = {"ZYFLOW_REDIS": "redis://127.0.0.1:6379/0"}
    a = start_server(tmp_path / "a", db, project=project, env=env)
    b = start_server(tmp_path / "b", db, project=project, env=env)
    try:
        with a.client() as ca, b.client() as cb:
            tasks = ca.get("/api/tasks", params={"limit": "20"}).json()["items"]
            stale = 0
            for round_ in range(300):
                task = tasks[round_ % len(tasks)]
                # B reads (and caches) the task and the change's page first.
                cb.get(f"/api/tasks/{task['id']}").raise_for_status()
                cb.get("/api/tasks", params={"change": task["change"]}).raise_for_status()
                patched = ca.patch(f"/api/tasks/{task['id']}", json={"assignee": f"r{round_}"})
                assert patched.status_code == 200, patched.text
                version = patched.json()["version"]
                seen = cb.get(f"/api/tasks/{task['id']}").json()
                listed = cb.get("/api/tasks", params={"change": task["change"]}).json()["items"]
                in_list = next(t for t in listed if t["id"] == task["id"])
                if seen["version"] != version or in_list["assignee"] != f"r{round_}":
                    stale += 1
            assert stale == 0
            health = cb.get("/api/health").json()["cache"]
            assert health["bus"]["healthy"] and health["l2"]["breaker"] == "closed"
            assert health["l1"]["hits"] > 0
    finally:
        a.stop()
        b.stop()


def _redis(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            import socket

            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("throwaway redis-server did not start")


@pytest.mark.redis
def test_redis_dies_under_load_and_comes_back(tmp_path: Path, db_url: str) -> None:
    if shutil.which("redis-server") is None:
        need_service("redis-server binary", "127.0.0.1", 1)
    port = free_port()
    redis = _redis(port)
    server = start_server(tmp_path, db_url, env={"ZYFLOW_REDIS": f"redis://127.0.0.1:{port}/0"})
    latencies: list[float] = []
    failures: list[str] = []
    stop = threading.Event()

    def load(ids: list[str]) -> None:
        with server.client() as c:
            i = 0
            while not stop.is_set():
                i += 1
                started = time.perf_counter()
                try:
                    if i % 10 == 0:
                        r = c.patch(f"/api/tasks/{ids[i % len(ids)]}", json={"assignee": f"a{i}"})
                    else:
                        r = c.get(f"/api/tasks/{ids[i % len(ids)]}")
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text[:200]}")
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                latencies.append(time.perf_counter() - started)

    try:
        with server.client() as c:
            ids = [t["id"] for t in c.get("/api/tasks", params={"limit": "30"}).json()["items"]]
            workers = [threading.Thread(target=load, args=(ids,)) for _ in range(4)]
            for w in workers:
                w.start()
            time.sleep(1.0)
            redis.kill()  # SIGKILL, mid-load
            redis.wait()
            states = []
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                cache = c.get("/api/health").json()["cache"]
                states.append((cache["l2"]["breaker"], cache["bus"]["healthy"]))
                if cache["l2"]["breaker"] == "open" and not cache["bus"]["healthy"]:
                    break
                time.sleep(0.05)
            assert ("open", False) in states, states
            time.sleep(1.0)  # keep serving without Redis
            redis = _redis(port)  # Redis returns on the same port
            deadline = time.monotonic() + 10
            recovered = False
            while time.monotonic() < deadline:
                cache = c.get("/api/health").json()["cache"]
                if cache["l2"]["breaker"] == "closed" and cache["bus"]["healthy"]:
                    recovered = True
                    break
                time.sleep(0.1)
            time.sleep(0.5)
            stop.set()
            for w in workers:
                w.join(10)
            assert recovered, "the breaker did not close after Redis came back"
        assert failures == []
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99)]
        assert len(latencies) > 200 and p99 < 0.5, (len(latencies), p99)
    finally:
        stop.set()
        server.stop()
        redis.kill()
