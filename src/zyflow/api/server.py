"""``zyflow serve``: granian in front, the API inside, the watcher beside it.

Granian starts worker processes that import ``served_app``; configuration reaches
them through ``ZYFLOW_*`` environment variables. Each worker builds its services on
ASGI startup. One worker per data directory (the holder of ``watch.lock``) syncs and
watches the projects; the others serve. On shutdown the watcher stops, queued writes
commit, and the store closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import logging
import os
import sys
from pathlib import Path
from typing import IO, Any

import orjson
from starlette.types import Receive, Scope, Send

from zyflow.api.app import create_app
from zyflow.api.cached import CachedReads
from zyflow.api.live import EventHub
from zyflow.bootstrap import Services, build
from zyflow.cache.invalidation import stale
from zyflow.config import Settings
from zyflow.domain.events import StoredEvent
from zyflow.events.workers import attach_publisher
from zyflow.spec import layout
from zyflow.sync.watcher import Watcher

log = logging.getLogger("zyflow.serve")

PROJECTS_ENV = "ZYFLOW_SERVE_PROJECTS"
WATCH_SETTLE_SECONDS = 0.2  # the OS watch is registered on another thread, shortly after start


class ServeError(Exception):
    pass


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServedApp:
    """The ASGI application granian runs: builds services at startup, then delegates."""

    def __init__(self) -> None:
        self.settings = Settings.load()
        self.projects: list[str] = orjson.loads(os.environ.get(PROJECTS_ENV, "[]"))
        self.services: Services | None = None
        self.inner: Any = None
        self.app_state: Any = None
        self.hub: EventHub | None = None
        self._stop = asyncio.Event()
        self._watch_task: asyncio.Task[None] | None = None
        self._lock_file: IO[str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        await self.inner(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _take_watch_lock(self) -> bool:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.settings.data_dir / "watch.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._lock_file = handle
        return True

    async def startup(self) -> None:
        services = await build(self.settings, with_cache=True)
        self.services = services
        self.hub = EventHub(services.store, on_foreign=self._foreign_events)
        await self.hub.start()
        services.store.committer.after_commit.append(self.hub.record_local)
        attach_publisher(services)
        services.store.committer.listeners.append(self.hub.committed)
        app = create_app(services, self.hub)
        self.app_state = app.state
        assert services.cache is not None
        self.inner = CachedReads(app, services.cache)
        leader = self._take_watch_lock()
        roots: dict[str, Path] = {}
        for directory in self.projects:
            project = await services.engine.register(directory)
            roots[project.id] = Path(project.path)
        if not leader:
            return
        for project in await services.engine.load_projects():
            roots.setdefault(project.id, Path(project.path))
        self._roots = roots
        # Watch first, then sync: an edit made while the watch is being set up is
        # caught by the sync, and one made after it by the watcher.
        self._start_watcher()
        await asyncio.sleep(WATCH_SETTLE_SECONDS)
        for project_id in roots:
            await self._catch_up(project_id)
        self.app_state.watch_project = self._watch_project

    async def _foreign_events(self, events: list[StoredEvent]) -> None:
        """Events another process committed (the CLI, another worker): drop what they staled."""
        assert self.services is not None and self.services.cache is not None
        keys, tags, patterns = stale(events)
        await self.services.cache.invalidate(keys, tags, patterns)

    async def _catch_up(self, project_id: str) -> None:
        assert self.services is not None
        report = await self.services.engine.sync_project(project_id, actor="serve")
        for error in report.errors:
            log.warning("%s/%s: %s", project_id, error["change"], error["error"])

    def _start_watcher(self) -> None:
        assert self.services is not None
        self._stop = asyncio.Event()
        watcher = Watcher(self.services.engine)
        self._watch_task = asyncio.create_task(watcher.run(dict(self._roots), self._stop))

    def _watch_project(self, project_id: str) -> None:
        """A project registered through the API joins the watch (the watcher restarts)."""
        assert self.services is not None
        root = self.services.engine._roots.get(project_id)
        if root is None or project_id in self._roots:
            return
        self._roots[project_id] = root
        asyncio.get_running_loop().create_task(self._restart_watcher(project_id))

    async def _restart_watcher(self, project_id: str) -> None:
        await self._stop_watcher()
        self._start_watcher()
        await asyncio.sleep(WATCH_SETTLE_SECONDS)
        await self._catch_up(project_id)

    async def _stop_watcher(self) -> None:
        self._stop.set()
        if self._watch_task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._watch_task, 5)

    async def shutdown(self) -> None:
        await self._stop_watcher()
        if self.hub is not None:
            await self.hub.stop()
        if self.services is not None:
            await self.services.close()
        if self._lock_file is not None:
            self._lock_file.close()


def served_app() -> ServedApp:
    return ServedApp()


def serve_forever(
    settings: Settings, project_dirs: list[str], insecure: bool, workers: int = 1
) -> None:
    from granian.constants import Interfaces
    from granian.server import Server

    if not is_loopback(settings.host) and settings.token is None and not insecure:
        raise ServeError(
            f"refusing to listen on {settings.host} without ZYFLOW_TOKEN (or --insecure)"
        )
    if workers < 1:
        raise ServeError("--workers must be 1 or more")
    roots = [str(layout.project_root(d)) for d in project_dirs]
    os.environ.update(
        {
            "ZYFLOW_DB": settings.db,
            "ZYFLOW_DATA_DIR": str(settings.data_dir),
            "ZYFLOW_STRATEGY": settings.strategy.value,
            PROJECTS_ENV: orjson.dumps(roots).decode(),
        }
    )
    if settings.redis:
        os.environ["ZYFLOW_REDIS"] = settings.redis
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    print(
        f"ZyFlow on http://{settings.host}:{settings.port} "
        f"(database {settings.db.split('?')[0]}, {len(roots)} project(s) on the command line)",
        file=sys.stderr,
        flush=True,
    )
    Server(
        "zyflow.api.server:served_app",
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=workers,
        factory=True,
        log_access=False,
        websockets=False,
    ).serve()
