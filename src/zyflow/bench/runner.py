"""``zyflow bench``: every performance target of DESIGN section 7, beside a ceiling
measured in the same run on the same machine.

Each row reports the median of several runs (with min and max), the goal, the seed's
value, the ceiling and the ratio to it. Nothing here asserts a target: the numbers are
for people, and CI only checks that ``--quick`` runs end to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from zyflow.bench import wrk
from zyflow.bench.generate import make_project
from zyflow.bench.loader import load_tasks
from zyflow.store import open_store
from zyflow.store.port import Store, TaskQuery
from zyflow.sync.engine import SyncEngine

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass(slots=True)
class Row:
    bench: str
    name: str
    unit: str
    samples: list[float]
    goal: str = ""
    seed: str = ""
    ceiling: float | None = None
    ceiling_label: str = ""
    higher_is_better: bool = False
    passed: bool | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    @property
    def ratio(self) -> float | None:
        if self.ceiling is None or not self.samples or self.ceiling == 0:
            return None
        return self.median / self.ceiling

    def to_wire(self) -> dict[str, Any]:
        """Every field, for passing a row from a bench process to the report."""
        return {
            "bench": self.bench,
            "name": self.name,
            "unit": self.unit,
            "samples": self.samples,
            "goal": self.goal,
            "seed": self.seed,
            "ceiling": self.ceiling,
            "ceiling_label": self.ceiling_label,
            "higher_is_better": self.higher_is_better,
            "passed": self.passed,
            "notes": self.notes,
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Row:
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        return {
            "bench": self.bench,
            "name": self.name,
            "unit": self.unit,
            "median": _round(self.median),
            "min": _round(min(self.samples)) if self.samples else None,
            "max": _round(max(self.samples)) if self.samples else None,
            "runs": len(self.samples),
            "goal": self.goal,
            "seed": self.seed,
            "ceiling": _round(self.ceiling) if self.ceiling is not None else None,
            "ceiling_label": self.ceiling_label,
            "ratio": _round(self.ratio) if self.ratio is not None else None,
            "passed": self.passed,
            "notes": self.notes,
            **({"extra": self.extra} if self.extra else {}),
        }


def _round(value: float | None) -> float | None:
    if value is None:
        return None
    return round(value, 4 if abs(value) < 10 else 1)


@dataclass(slots=True)
class Plan:
    quick: bool
    pg_url: str | None
    work: Path
    runs: int
    wrk_seconds: float
    api_changes: int
    query_scales: tuple[int, ...]
    bulk_changes: int
    event_count: int
    memory_tasks: int
    log: Callable[[str], None]


Bench = Callable[[Plan], Awaitable[list[Row]]]
BENCHES: dict[str, Bench] = {}


def bench(name: str) -> Callable[[Bench], Bench]:
    def register(fn: Bench) -> Bench:
        BENCHES[name] = fn
        return fn

    return register


def make_plan(quick: bool, pg_url: str | None, work: Path, log: Callable[[str], None]) -> Plan:
    if quick:
        return Plan(quick, pg_url, work, 1, 2.0, 20, (10_000,), 100, 20_000, 10_000, log)
    return Plan(
        quick, pg_url, work, 3, 10.0, 1000, (10_000, 100_000, 1_000_000), 1000, 200_000,
        1_000_000, log,
    )  # fmt: skip


# --- helpers -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_available(url: str | None) -> bool:
    if not url:
        return False
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return True
    except OSError:
        return False


def backends(plan: Plan) -> list[tuple[str, Callable[[], str]]]:
    def sqlite_url() -> str:
        return f"sqlite:///{tempfile.mkdtemp(dir=plan.work)}/bench.db"

    out: list[tuple[str, Callable[[], str]]] = [("sqlite", sqlite_url)]
    if pg_available(plan.pg_url):
        assert plan.pg_url is not None
        base = plan.pg_url

        def pg() -> str:
            return f"{base}{'&' if '?' in base else '?'}schema=zb_{secrets.token_hex(4)}"

        out.append(("postgres", pg))
    return out


async def drop_scratch(store: Store) -> None:
    from zyflow.store.postgres import PostgresStore

    if isinstance(store, PostgresStore):
        store._drop_on_close = True
    await store.close()


@contextlib.contextmanager
def process(
    args: list[str], env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    handle = log.open("wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        args, stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if log and not isinstance(handle, int):
            handle.close()


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout}s")


def tree_rss(pid: int) -> int:
    parent = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)])


# --- API (wrk) ---------------------------------------------------------------------------


def _wrk_median(
    plan: Plan, url: str, connections: int
) -> tuple[list[wrk.WrkResult], wrk.WrkResult]:
    results = [wrk.run_wrk(url, connections, plan.wrk_seconds) for _ in range(plan.runs)]
    by_rps = sorted(results, key=lambda r: r.rps)
    return results, by_rps[len(by_rps) // 2]


@bench("api")
async def bench_api(plan: Plan) -> list[Row]:
    """Throughput and latency through the real server, beside bare Starlette on granian."""
    if not wrk.available():
        plan.log(wrk.INSTALL_HINT)
        return [Row("api", "API throughput", "req/s", [], notes=wrk.INSTALL_HINT)]
    root = make_project(plan.work / "api-project", plan.api_changes, 50)
    data = Path(tempfile.mkdtemp(dir=plan.work))
    port, bare_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    bare = f"http://127.0.0.1:{bare_port}/task"
    rows: list[Row] = []
    serve = [
        sys.executable, "-m", "zyflow.cli.main", "serve", str(root), "--port", str(port),
        "--data-dir", str(data), "--db", f"sqlite:///{data / 'api.db'}",
    ]  # fmt: skip
    bare_cmd = [
        sys.executable, "-m", "granian", "--interface", "asgi", "--port", str(bare_port),
        "--workers", "1", "--no-ws", "zyflow.bench.bare:app",
    ]  # fmt: skip
    with (
        process(serve, log=plan.work / "api-serve.log") as server,
        process(bare_cmd, log=plan.work / "api-bare.log") as bare_proc,
    ):
        wait_http(base + "/api/health", server)
        wait_http(bare, bare_proc)
        tasks = httpx.get(base + "/api/tasks", params={"limit": "200"}).json()["items"]
        task_id = random.Random(3).choice(tasks)["id"]
        change = tasks[0]["change"]
        endpoints = {
            "GET /api/tasks/{id}": f"{base}/api/tasks/{task_id}",
            "GET /api/tasks?change= (one change's page of 50)": (
                f"{base}/api/tasks?change={change}&limit=50"
            ),
            "GET /api/tasks?status=&q=&sort= (filtered page)": (
                f"{base}/api/tasks?status=todo,in-progress&q=cache&sort=-updated_at&limit=20"
            ),
        }
        peak_rss = tree_rss(server.pid)
        for connections in (64, 1000):
            plan.log(f"api: bare Starlette @{connections}")
            _, ceiling = _wrk_median(plan, bare, connections)
            rows.append(
                Row(
                    "api", f"bare Starlette JSON @{connections} conns", "req/s",
                    [ceiling.rps], ceiling=None, higher_is_better=True,
                    notes="the ceiling: same server (granian, 1 worker), same machine",
                    extra=ceiling.to_json(),
                )
            )  # fmt: skip
            for label, url in endpoints.items():
                plan.log(f"api: {label} @{connections}")
                results, mid = _wrk_median(plan, url, connections)
                peak_rss = max(peak_rss, tree_rss(server.pid))
                ratio_ok = mid.rps >= 0.5 * ceiling.rps
                rows.append(
                    Row(
                        "api", f"{label} @{connections} conns", "req/s",
                        [r.rps for r in results], goal="≥ 10,000 req/s and ≥ 0.5 × bare",
                        seed="10,000 req/s", ceiling=ceiling.rps,
                        ceiling_label="bare Starlette req/s", higher_is_better=True,
                        passed=mid.rps >= 10_000 and ratio_ok and mid.errors == 0,
                        extra=mid.to_json(),
                    )
                )  # fmt: skip
                rows.append(
                    Row(
                        "api", f"{label} p95 @{connections} conns", "ms",
                        [r.p95_ms for r in results], goal="< 10 ms", seed="100 ms",
                        ceiling=ceiling.p95_ms, ceiling_label="bare Starlette p95 ms",
                        passed=mid.p95_ms < 10,
                        extra={"p50_ms": mid.p50_ms, "p99_ms": mid.p99_ms},
                    )
                )  # fmt: skip
        # Edit a tasks.md and time until the API shows it.
        path = root / "openspec" / "changes" / change / "tasks.md"
        samples = []
        with httpx.Client(base_url=base) as client:
            for i in range(10 if plan.quick else 30):
                marker = f"zyedit{i}x{secrets.token_hex(3)}"
                started = time.perf_counter()
                path.write_bytes(path.read_bytes() + f"- [ ] {marker} added\n".encode())
                while time.perf_counter() - started < 5:
                    if client.get("/api/tasks", params={"q": marker}).json()["items"]:
                        samples.append((time.perf_counter() - started) * 1000)
                        break
                    time.sleep(0.002)
        rows.append(
            Row(
                "api", "tasks.md edit visible through the API", "ms", samples,
                goal="< 50 ms", seed="(Node ZyFlow ≈ 190 ms)",
                passed=bool(samples) and statistics.median(samples) < 50,
                notes="write the file, poll GET /api/tasks?q= every 2 ms",
            )
        )  # fmt: skip
        rows.append(
            Row(
                "api", f"server RSS under load ({plan.api_changes * 50:,} tasks)", "MiB",
                [peak_rss / 2**20], goal="< 1024 MiB", seed="2 GB",
                passed=peak_rss < 2**30, notes="peak sampled between wrk runs",
            )
        )  # fmt: skip
    return rows


# --- queries -----------------------------------------------------------------------------


async def _timed(fn: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


async def _raw_get(store: Store, task_id: str) -> Any:
    from zyflow.store import sql
    from zyflow.store.postgres import PostgresStore
    from zyflow.store.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        return store.db.execute(sql.TASK_SELECT + " WHERE t.id = ?", (task_id,)).fetchone()
    assert isinstance(store, PostgresStore)
    return await store.pool.fetchrow(sql.TASK_SELECT + " WHERE t.id = $1", task_id)


async def _raw_list(store: Store, query: TaskQuery) -> Any:
    from zyflow.store import sql
    from zyflow.store.postgres import PostgresStore
    from zyflow.store.postgres import _fts_clause as pg_fts
    from zyflow.store.sqlite import SqliteStore
    from zyflow.store.sqlite import _fts_clause as lite_fts

    if isinstance(store, SqliteStore):
        statement, params = sql.task_list_sql(query, lite_fts)
        return store.db.execute(statement, params).fetchall()
    assert isinstance(store, PostgresStore)
    statement, params = sql.task_list_sql(query, pg_fts)
    return await store.pool.fetch(sql.renumber(statement), *params)


@bench("queries")
async def bench_queries(plan: Plan) -> list[Row]:
    """Single-record and complex queries at growing sizes, beside the raw driver."""
    rows: list[Row] = []
    for backend, url in backends(plan):
        growth: dict[int, tuple[float, float]] = {}
        for size in plan.query_scales:
            store = await open_store(url())
            try:
                plan.log(f"queries: loading {size:,} tasks into {backend}")
                load_seconds = await load_tasks(store, size)
                if backend == "postgres":
                    from zyflow.store.postgres import PostgresStore

                    assert isinstance(store, PostgresStore)
                    await store.pool.execute("ANALYZE")
                else:
                    from zyflow.store.sqlite import SqliteStore

                    assert isinstance(store, SqliteStore)
                    store.db.execute("ANALYZE")
                ids = [
                    t.id
                    for t in (
                        await store.list_tasks(TaskQuery.build(limit=500, status="todo"))
                    ).items
                ]
                rng = random.Random(5)
                picks = [rng.choice(ids) for _ in range(300)]
                it = iter(picks * 4)

                async def single(s: Store = store) -> Any:
                    return await s.get_task(next(it))

                async def raw_single(s: Store = store) -> Any:
                    return await _raw_get(s, next(it))

                single_ms = await _timed(single, 300)
                raw_single_ms = await _timed(raw_single, 300)
                complex_query = TaskQuery.build(
                    project="bench", status="todo,in-progress", assignee="ann",
                    q="cache", sort="-updated_at", limit=50,
                )  # fmt: skip

                async def complex_page(s: Store = store) -> Any:
                    page = await s.list_tasks(complex_query)
                    if page.next_cursor:
                        await s.list_tasks(
                            TaskQuery.build(
                                project="bench", status="todo,in-progress", assignee="ann",
                                q="cache", sort="-updated_at", limit=50,
                                cursor=page.next_cursor,
                            )
                        )  # fmt: skip

                async def raw_complex(s: Store = store) -> Any:
                    return await _raw_list(s, complex_query)

                complex_ms = await _timed(complex_page, 30)
                raw_complex_ms = await _timed(raw_complex, 30)
                growth[size] = (statistics.median(single_ms), statistics.median(complex_ms))
                rows.append(
                    Row(
                        "queries", f"single record, {backend}, {size:,} tasks", "ms",
                        single_ms, goal="< 1 ms", seed="50 ms",
                        ceiling=statistics.median(raw_single_ms),
                        ceiling_label="raw indexed SELECT ms",
                        passed=statistics.median(single_ms) < 1,
                        notes=f"loaded in {load_seconds:.1f}s; median of 300 lookups",
                    )
                )  # fmt: skip
                rows.append(
                    Row(
                        "queries",
                        f"complex query (filter+search+sort, 2 pages), {backend}, {size:,} tasks",
                        "ms", complex_ms, goal="< 50 ms", seed="500 ms",
                        ceiling=statistics.median(raw_complex_ms),
                        ceiling_label="same SQL, raw driver, first page ms",
                        passed=statistics.median(complex_ms) < 50,
                    )
                )  # fmt: skip
            finally:
                await drop_scratch(store)
        if len(growth) > 1:
            sizes = sorted(growth)
            first, last = sizes[0], sizes[-1]
            rows.append(
                Row(
                    "queries", f"cost growth {first:,} → {last:,} tasks, {backend}", "x",
                    [growth[last][1] / growth[first][1]],
                    notes=(
                        "complex-query time ratio; single-record ratio "
                        f"{growth[last][0] / growth[first][0]:.2f}x; "
                        "per size (single, complex ms): "
                        + ", ".join(f"{s:,}: {growth[s][0]:.3f}, {growth[s][1]:.2f}" for s in sizes)
                    ),
                    extra={str(s): {"single_ms": growth[s][0], "complex_ms": growth[s][1]}
                           for s in sizes},
                )
            )  # fmt: skip
    return rows


# --- sync --------------------------------------------------------------------------------


async def _raw_insert_ceiling(store: Store, rows: int) -> float:
    """Seconds for the backend's bulk primitive to put ``rows`` task-shaped rows into the
    real tasks table (with its indexes): executemany in one transaction for SQLite, COPY for
    PostgreSQL."""
    from zyflow.store.postgres import PostgresStore
    from zyflow.store.sqlite import SqliteStore

    values = [
        (
            secrets.token_hex(8), "raw", f"c{i // 50}", f"k{i}", f"{i}", f"Raw task {i}", "G",
            None, "todo", None, 0, "[]", None, i, i % 50, 1, "2026-01-01T00:00:00.000000Z",
            "2026-01-01T00:00:00.000000Z",
        )
        for i in range(rows)
    ]  # fmt: skip
    if isinstance(store, SqliteStore):
        db = sqlite3.connect(store.path, isolation_level=None)
        started = time.perf_counter()
        db.execute("BEGIN")
        db.executemany(f"INSERT INTO tasks VALUES ({', '.join('?' * 18)})", values)
        db.execute("COMMIT")
        seconds = time.perf_counter() - started
        db.close()
        return seconds
    assert isinstance(store, PostgresStore)
    from zyflow.domain.projection import TASK_COLUMNS

    async with store.pool.acquire() as conn:
        started = time.perf_counter()
        await conn.copy_records_to_table("tasks", records=values, columns=list(TASK_COLUMNS))
        return time.perf_counter() - started


@bench("sync")
async def bench_sync(plan: Plan) -> list[Row]:
    """One change (file edit to committed state), bulk sync, and concurrent syncs."""
    rows: list[Row] = []
    for backend, url in backends(plan):
        # One change of 50 tasks: edit the file, sync it, until committed.
        store = await open_store(url())
        try:
            root = make_project(Path(tempfile.mkdtemp(dir=plan.work)), 1, 50)
            engine = SyncEngine(store)
            project = await engine.register(root)
            await engine.sync_project(project.id)
            path = next((root / "openspec" / "changes").glob("*/tasks.md"))
            samples = []
            for i in range(30):
                raw = path.read_bytes()
                flipped = (
                    raw.replace(b"- [ ]", b"- [x]", 1)
                    if i % 2 == 0
                    else raw.replace(b"- [x]", b"- [ ]", 1)
                )
                started = time.perf_counter()
                path.write_bytes(flipped + f"\n<!-- edit {i} -->\n".encode())
                report = await engine.sync_change(project.id, path.parent.name)
                samples.append((time.perf_counter() - started) * 1000)
                assert report.events > 0
            rows.append(
                Row(
                    "sync", f"sync of one change (50 tasks), {backend}", "ms", samples,
                    goal="< 20 ms", seed="1 s", passed=statistics.median(samples) < 20,
                    notes="file write → parse → reconcile → commit; median of 30 edits",
                )
            )  # fmt: skip
        finally:
            await drop_scratch(store)
        # Bulk: N changes of 50 tasks into a fresh database, several times; the last
        # database then has every file edited and re-synced concurrently.
        n = plan.bulk_changes
        root = make_project(Path(tempfile.mkdtemp(dir=plan.work)), n, 50)
        bulk_runs: list[float] = []
        ceilings: list[float] = []
        for run in range(plan.runs):
            store = await open_store(url())
            engine = SyncEngine(store)
            project = await engine.register(root)
            plan.log(f"sync: bulk {n} changes on {backend}, run {run + 1}")
            started = time.perf_counter()
            report = await engine.sync_project(project.id)
            bulk_runs.append(time.perf_counter() - started)
            ceilings.append(await _raw_insert_ceiling(store, report.tasks_created))
            if run < plan.runs - 1:
                await drop_scratch(store)
        try:
            bulk = statistics.median(bulk_runs)
            ceiling = statistics.median(ceilings)
            rows.append(
                Row(
                    "sync", f"bulk sync {n:,} changes / {report.tasks_created:,} tasks, {backend}",
                    "s", bulk_runs, goal="< 5 s (1,000 changes)", seed="10 s",
                    ceiling=ceiling,
                    ceiling_label=(
                        "raw executemany of the task rows, s"
                        if backend == "sqlite"
                        else "raw COPY of the task rows, s"
                    ),
                    passed=bulk < 5 if n >= 1000 else None,
                    notes=f"{report.events:,} events",
                )
            )  # fmt: skip
            # Concurrent: flip one box in every change, sync all at once.
            changes = sorted((root / "openspec" / "changes").glob("change-*/tasks.md"))
            for path in changes:
                raw = path.read_bytes()
                path.write_bytes(raw.replace(b"- [ ]", b"- [x]", 1))
            store_tasks_before = await store.list_changes(project=project.id)
            done_before = sum(c.done for c in store_tasks_before)
            errors = 0

            async def one(change: str) -> None:
                nonlocal errors
                try:
                    await engine.sync_change(project.id, change)
                except Exception:
                    errors += 1

            started = time.perf_counter()
            await asyncio.gather(*(one(p.parent.name) for p in changes))
            elapsed = time.perf_counter() - started
            done_after = sum(c.done for c in await store.list_changes(project=project.id))
            lost = len(changes) - (done_after - done_before)
            rows.append(
                Row(
                    "sync", f"{len(changes):,} concurrent sync operations, {backend}", "s",
                    [elapsed], goal="1,000 with no error, no lost update", seed="1,000",
                    passed=(errors == 0 and lost == 0) if len(changes) >= 1000 else None,
                    notes=f"errors {errors}, lost updates {lost}",
                    extra={"errors": errors, "lost_updates": lost},
                )
            )  # fmt: skip
        finally:
            await drop_scratch(store)
    return rows


# --- events ------------------------------------------------------------------------------


@bench("events")
async def bench_events(plan: Plan) -> list[Row]:
    """Durable append throughput, beside a raw insert of the same rows; publish → handled."""
    from zyflow.domain.events import EventType, NewEvent
    from zyflow.domain.model import utc_now

    rows: list[Row] = []
    for backend, url in backends(plan):
        store_url = url()
        store = await open_store(store_url)
        try:
            await load_tasks(store, 1000, per_change=50)
            ids = [t.id for t in (await store.list_tasks(TaskQuery.build(limit=500))).items]
            ids += [
                t.id
                for t in (
                    await store.list_tasks(
                        TaskQuery.build(limit=500, cursor=None, status="done,review")
                    )
                ).items
            ]
            ids = sorted(set(ids))[:500]
            versions = {i: (await store.get_task(i)).version for i in ids}  # type: ignore[union-attr]
            total = plan.event_count
            now = utc_now()
            batches: list[list[NewEvent]] = []
            batch: list[NewEvent] = []
            made = 0
            while made < total:
                for task_id in ids:
                    versions[task_id] += 1
                    batch.append(
                        NewEvent(
                            "task", task_id, versions[task_id], EventType.TASK_UPDATED,
                            {"changes": {"assignee": f"a{made % 97}"}, "previous": {}},
                            {"actor": "bench"}, secrets.token_hex(16), now,
                        )
                    )  # fmt: skip
                    made += 1
                    if len(batch) == 1000:
                        batches.append(batch)
                        batch = []
                    if made >= total:
                        break
            if batch:
                batches.append(batch)
            plan.log(f"events: appending {total:,} events on {backend}")
            started = time.perf_counter()
            # Producers in parallel; group commit folds their requests into transactions.
            sem = asyncio.Semaphore(8)

            async def produce(b: list[NewEvent]) -> None:
                async with sem:
                    await store.append(b)

            await asyncio.gather(*(produce(b) for b in batches))
            seconds = time.perf_counter() - started
            rate = total / seconds
            ceiling_rate = await _raw_event_ceiling(store, batches)
            rows.append(
                Row(
                    "events", f"durable event append, {backend}", "events/s", [rate],
                    goal="≥ 100,000 events/s", seed="100,000 events/s",
                    ceiling=ceiling_rate,
                    ceiling_label=(
                        "raw executemany of the same event rows"
                        if backend == "sqlite"
                        else "raw COPY of the same event rows"
                    ),
                    higher_is_better=True, passed=rate >= 100_000,
                    notes="each event also updates its task's read-model row in the same commit",
                )
            )  # fmt: skip
            # Publish -> handled: append one event, time until the live hub hands it out.
            from zyflow.api.live import EventHub

            hub = EventHub(store)
            await hub.start()
            store.committer.listeners.append(hub.committed)
            latencies: list[float] = []
            target = ids[0]
            version = versions[target]
            for i in range(300 if plan.quick else 2000):
                version += 1
                event = NewEvent(
                    "task", target, version, EventType.TASK_UPDATED,
                    {"changes": {"assignee": f"p{i}"}, "previous": {}}, {"actor": "bench"},
                )  # fmt: skip
                position = hub.last_position
                started = time.perf_counter()
                await store.append([event])
                while hub.last_position <= position:
                    await hub.wait(position, 1.0)
                latencies.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(0.0005)
            await hub.stop()
            latencies.sort()
            p99 = latencies[int(len(latencies) * 0.99) - 1]
            rows.append(
                Row(
                    "events", f"publish → handled (in process), {backend}", "ms p50",
                    latencies, goal="p99 < 5 ms", seed="10 ms", passed=p99 < 5,
                    notes=f"p99 {p99:.3f} ms over {len(latencies)} events",
                    extra={"p99_ms": p99},
                )
            )  # fmt: skip
        finally:
            await drop_scratch(store)
    return rows


async def _raw_event_ceiling(store: Store, batches: list[list[Any]]) -> float:
    """Events/s for inserting the same rows with the driver's bulk primitive, no projection."""
    import orjson

    from zyflow.store.postgres import PostgresStore
    from zyflow.store.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        db = store.db
        db.execute("CREATE TEMP TABLE raw_events AS SELECT * FROM events WHERE 0")
        rows = [
            (e.id, e.aggregate_type, e.aggregate_id, e.version, e.type, e.timestamp,
             orjson.dumps(e.data).decode(), orjson.dumps(e.metadata).decode())
            for b in batches for e in b
        ]  # fmt: skip
        started = time.perf_counter()
        for i in range(0, len(rows), 10_000):
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO raw_events (id, aggregate_type, aggregate_id, version, type, "
                "timestamp, data, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows[i : i + 10_000],
            )
            db.execute("COMMIT")
        return len(rows) / (time.perf_counter() - started)
    assert isinstance(store, PostgresStore)
    from datetime import datetime

    records = [
        (e.id, e.aggregate_type, e.aggregate_id, e.version, e.type,
         datetime.fromisoformat(e.timestamp), orjson.dumps(e.data).decode(),
         orjson.dumps(e.metadata).decode())
        for b in batches for e in b
    ]  # fmt: skip
    async with store.pool.acquire() as conn:
        await conn.execute(
            "CREATE TEMP TABLE raw_events (id uuid, aggregate_type text, aggregate_id text, "
            'version int, type text, "timestamp" timestamptz, data text, metadata text)'
        )
        started = time.perf_counter()
        for i in range(0, len(records), 10_000):
            await conn.copy_records_to_table("raw_events", records=records[i : i + 10_000])
        rate = len(records) / (time.perf_counter() - started)
        await conn.execute("DROP TABLE raw_events")
    return rate


# --- memory ------------------------------------------------------------------------------


@bench("memory")
async def bench_memory(plan: Plan) -> list[Row]:
    """Peak RSS of a server holding N tasks while serving reads."""
    data = Path(tempfile.mkdtemp(dir=plan.work))
    url = f"sqlite:///{data / 'memory.db'}"
    store = await open_store(url)
    plan.log(f"memory: loading {plan.memory_tasks:,} tasks")
    await load_tasks(store, plan.memory_tasks)
    await store.close()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = [
        sys.executable, "-m", "zyflow.cli.main", "serve", "--port", str(port),
        "--data-dir", str(data), "--db", url,
    ]  # fmt: skip
    peak = 0
    with process(serve, log=plan.work / "memory-serve.log") as server:
        wait_http(base + "/api/health", server)
        ids = [
            t["id"] for t in httpx.get(base + "/api/tasks", params={"limit": "100"}).json()["items"]
        ]
        idle = tree_rss(server.pid)
        if wrk.available():
            for url_ in (
                f"{base}/api/tasks/{ids[0]}",
                f"{base}/api/tasks?status=todo&q=cache&limit=50",
                f"{base}/api/changes",
            ):
                plan.log(f"memory: load on {url_}")
                wrk.run_wrk(url_, 64, plan.wrk_seconds)
                peak = max(peak, tree_rss(server.pid))
        peak = max(peak, tree_rss(server.pid))
    return [
        Row(
            "memory", f"server RSS with {plan.memory_tasks:,} tasks, under load", "MiB",
            [peak / 2**20], goal="< 1024 MiB, flat under load", seed="2 GB",
            passed=peak < 2**30,
            notes=f"idle {idle / 2**20:.0f} MiB; peak after wrk on get, search and change list",
        )
    ]  # fmt: skip


# --- processors and streams -------------------------------------------------------------


@bench("processing")
async def bench_processing(plan: Plan) -> list[Row]:
    """In-process processor throughput, and publish → handled over Redis Streams."""
    from zyflow.domain.events import StoredEvent
    from zyflow.events.processor import BatchProcessor, StreamProcessor

    n = 200_000 if plan.quick else 2_000_000
    kinds = ["TaskCreated", "TaskUpdated", "TaskCompleted", "ChangeUpdated"]
    events = [
        StoredEvent(i, str(i), "task", f"t{i % 1000}", i, kinds[i % 4],
                    "2026-01-01T00:00:00.000000Z", {}, {})
        for i in range(1, n + 1)
    ]  # fmt: skip
    counted = 0

    async def count(batch: Sequence[StoredEvent]) -> None:
        nonlocal counted
        counted += len(batch)

    rows: list[Row] = []
    samples = []
    for _ in range(plan.runs):
        counted = 0
        stream = StreamProcessor(
            BatchProcessor(dict.fromkeys(kinds, count)), max_queue=10_000, max_batch=1000
        )
        await stream.start()
        started = time.perf_counter()
        for start in range(0, n, 1000):
            await stream.publish_many(events[start : start + 1000])
        await stream.stop()
        samples.append(n / (time.perf_counter() - started))
        assert counted == n
    ceiling = await _queue_ceiling(events)
    rows.append(
        Row(
            "processing", "stream processor throughput (in process)", "events/s", samples,
            goal="≥ 500,000 events/s", seed="100,000 events/s", ceiling=ceiling,
            ceiling_label="bare asyncio.Queue put/get of the same events",
            higher_is_better=True, passed=statistics.median(samples) >= 500_000,
            notes=f"{n:,} events, bounded queue 10,000, batches ≤ 1,000, grouped by type",
        )
    )  # fmt: skip
    rows.extend(await _streams_latency(plan))
    return rows


async def _queue_ceiling(events: list[Any]) -> float:
    queue: asyncio.Queue[Any] = asyncio.Queue(10_000)
    done = 0

    async def consume() -> None:
        nonlocal done
        while done < len(events):
            await queue.get()
            done += 1

    consumer = asyncio.create_task(consume())
    started = time.perf_counter()
    for event in events:
        if queue.full():
            await queue.put(event)
        else:
            queue.put_nowait(event)
    await consumer
    return len(events) / (time.perf_counter() - started)


async def _streams_latency(plan: Plan) -> list[Row]:
    import redis.asyncio as aioredis

    from zyflow.domain.events import StoredEvent
    from zyflow.events.streams import StreamPublisher, StreamWorker

    try:
        client = aioredis.Redis.from_url("redis://127.0.0.1:6379/4")
        await client.ping()
    except Exception as exc:
        return [Row("processing", "publish → handled over Redis Streams", "ms", [],
                    notes=f"Redis unavailable: {exc}")]  # fmt: skip
    stream = f"zf:bench:{secrets.token_hex(4)}"
    sent: dict[int, float] = {}
    latencies: list[float] = []

    async def handle(events: Sequence[StoredEvent]) -> None:
        now = time.perf_counter()
        latencies.extend((now - sent[e.position]) * 1000 for e in events)

    worker = StreamWorker(client, "bench", handle, stream=stream, group="bench", batch=500)
    runner = asyncio.create_task(worker.run())
    publisher = StreamPublisher(client, stream)
    rate = 10_000
    total = 20_000 if plan.quick else 100_000
    per_tick = 100  # 100 events every 10 ms = 10,000 events/s
    started = time.perf_counter()
    position = 0
    try:
        while position < total:
            tick = [
                StoredEvent(position + i + 1, "x", "task", "t", 1, "TaskUpdated",
                            "2026-01-01T00:00:00.000000Z", {}, {})
                for i in range(per_tick)
            ]  # fmt: skip
            now = time.perf_counter()
            for e in tick:
                sent[e.position] = now
            await publisher.publish(tick)
            position += per_tick
            next_tick = started + position / rate
            await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))
        deadline = time.perf_counter() + 10
        while len(latencies) < total and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
    finally:
        worker.stop()
        await runner
        await client.delete(stream)
        await client.aclose()
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan")
    return [
        Row(
            "processing",
            "publish → handled over Redis Streams at 10,000 events/s",
            "ms p50",
            latencies,
            goal="p99 < 5 ms",
            seed="10 ms",
            passed=p99 < 5,
            notes=f"p99 {p99:.2f} ms; {len(latencies):,}/{total:,} handled; "
            "one XADD script per batch → XREADGROUP (block) → handler → XACK, one consumer",
            extra={"p99_ms": p99},
        )
    ]


# --- cache -------------------------------------------------------------------------------


@bench("cache")
async def bench_cache(plan: Plan) -> list[Row]:
    """L1 hit latency in process, and the policy's hit ratio against plain LRU."""
    from zyflow.cache.memory import MemoryCache
    from zyflow.cache.policy import IntelligentPolicy
    from zyflow.cache.traces import hit_ratio, scan_polluted_trace, zipf_trace

    rows: list[Row] = []
    for label, policy in (("LRU", None), ("intelligent policy", IntelligentPolicy())):
        cache = MemoryCache(max_entries=20_000, policy=policy)
        resident = [f"task:{i:016x}" for i in range(2000)]
        for key in resident:
            cache.put_local(key, b"x" * 500, 300)
        get = cache.get_local
        samples = []
        for _ in range(7):
            started = time.perf_counter_ns()
            for _ in range(50):
                for key in resident:
                    get(key)
            samples.append((time.perf_counter_ns() - started) / (50 * len(resident)) / 1000)
        rows.append(
            Row(
                "cache", f"L1 hit latency ({label})", "µs", samples, goal="median ≤ 1 µs",
                passed=statistics.median(samples) <= 1.0,
                notes="MemoryCache.get_local on 2,000 resident keys, in process",
            )
        )  # fmt: skip
    n, keys = (60_000, 20_000) if plan.quick else (400_000, 100_000)
    traces: list[tuple[str, Callable[[], Iterator[str]]]] = [
        ("Zipf s=0.9", lambda: zipf_trace(n, keys, 0.9)),
        ("Zipf + one-off scans", lambda: scan_polluted_trace(n, keys, 0.9)),
    ]
    for name, make in traces:
        for capacity in (keys // 100, keys // 20):
            lru = hit_ratio(make(), capacity, intelligent=False)
            smart = hit_ratio(make(), capacity, intelligent=True)
            rows.append(
                Row(
                    "cache", f"hit ratio, {name}, capacity {capacity:,} of {keys:,} keys",
                    "ratio", [smart], goal="beats LRU", ceiling=lru,
                    ceiling_label="plain LRU hit ratio, same capacity",
                    higher_is_better=True, passed=smart > lru,
                    notes=f"{n:,} requests through the real L1",
                )
            )  # fmt: skip
    return rows


# --- entry point -------------------------------------------------------------------------


async def run_one(
    name: str, quick: bool, pg_url: str | None, log: Callable[[str], None]
) -> list[Row]:
    work = Path(tempfile.mkdtemp(prefix="zyflow-bench-"))
    try:
        return await BENCHES[name](make_plan(quick, pg_url, work, log))
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def run_benches(
    names: list[str], quick: bool, pg_url: str | None, log: Callable[[str], None]
) -> list[Row]:
    """Each bench in a fresh process: one bench's heap (a million loaded tasks) must not
    slow the next one's garbage collector."""
    import orjson

    rows: list[Row] = []
    for name in names:
        log(f"== {name}")
        started = time.perf_counter()
        command = [sys.executable, "-m", "zyflow.bench.runner", name, pg_url or ""]
        if quick:
            command.append("--quick")
        proc = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=None
        )
        out, _ = await proc.communicate()
        try:
            rows.extend(Row.from_json(r) for r in orjson.loads(out))
        except (ValueError, KeyError, TypeError):
            rows.append(Row(name, f"{name} failed", "", [], notes=f"exit {proc.returncode}"))
        log(f"   {name} took {time.perf_counter() - started:.1f}s")
    return rows


def _main() -> None:
    import orjson

    name, pg_url = sys.argv[1], sys.argv[2] or None
    quick = "--quick" in sys.argv[3:]

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        rows = asyncio.run(run_one(name, quick, pg_url, log))
    except Exception as exc:  # one broken bench must not hide the others
        rows = [Row(name, f"{name} failed", "", [], notes=f"{type(exc).__name__}: {exc}")]
    sys.stdout.buffer.write(orjson.dumps([r.to_wire() for r in rows]))


if __name__ == "__main__":
    _main()
