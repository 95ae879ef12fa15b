"""The HTTP API (DESIGN section 4) and the dashboard, as one FastAPI application.

Hot reads answer with bytes serialised once by orjson: no response-model validation
on the way out. Request bodies are validated by small pydantic models that refuse
unknown fields. Every error, ours or the framework's, leaves as problem+json.
"""

from __future__ import annotations

import hmac
import time
from importlib import resources
from typing import Annotated, Any, Literal

import orjson
from fastapi import Body, Depends, FastAPI, Header, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from zyflow.api.cached import (
    CHANGES_TAGS,
    list_key,
    read_through,
    split_task_value,
    task_value,
    tasks_list_tags,
)
from zyflow.api.live import EventHub
from zyflow.api.problems import BodyLimit, problem_handlers
from zyflow.bootstrap import Services
from zyflow.cache.invalidation import task_key
from zyflow.domain.errors import InvalidInput, NotFound, ZyflowError
from zyflow.domain.model import check_change_id, check_entity_id
from zyflow.store.port import EventQuery, TaskQuery
from zyflow.sync.engine import UNSET, SyncReport, Unset

JSON = "application/json"
MAX_BODY = 64 * 1024


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type=JSON, headers=headers)


class PatchTask(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["todo", "in-progress", "review", "done"] | None = None
    assignee: str | None = Field(default=None, max_length=200)
    priority: Literal["low", "medium", "high", "urgent"] | None = None
    tags: list[Annotated[str, Field(max_length=64)]] | None = Field(default=None, max_length=32)
    expected_version: int | None = Field(default=None, ge=1)


class RegisterProject(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1, max_length=4096)


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project: str | None = Field(default=None, max_length=64)
    change: str | None = Field(default=None, max_length=200)
    force: bool = False


class ResolveConflict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resolution: Literal["spec", "runtime"]


def etag(version: int) -> str:
    return f'"{version}"'


def parse_if_match(value: str | None) -> int | None:
    if value is None or value.strip() == "*":
        return None
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    try:
        version = int(text)
    except ValueError:
        raise InvalidInput(f"If-Match must be an ETag this API issued, not {value!r}") from None
    if version < 1:
        raise InvalidInput("If-Match version must be 1 or more")
    return version


def create_app(services: Services, hub: EventHub | None = None) -> FastAPI:
    store = services.store
    engine = services.engine
    cache = services.cache
    token = services.settings.token
    live = hub or EventHub(store)

    app = FastAPI(
        title="ZyFlow",
        version="0.1.0",
        description="OpenSpec tasks.md files and a runtime task database, kept in step.",
        exception_handlers=problem_handlers(),
    )
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY)
    app.state.services = services
    app.state.hub = live

    async def require_token(authorization: Annotated[str | None, Header()] = None) -> None:
        if token is None:
            return
        expected = f"Bearer {token}"
        if authorization is None or not hmac.compare_digest(authorization, expected):
            raise StarletteHTTPException(401, "a valid 'Authorization: Bearer <token>' is needed")

    mutating = [Depends(require_token)]

    @app.get("/api/health", tags=["service"])
    async def health() -> Response:
        started = time.perf_counter()
        position = await store.last_position()
        return json_response(
            {
                "status": "ok",
                "database": store.url.split(":", 1)[0],
                "events": position,
                "db_ms": round((time.perf_counter() - started) * 1000, 3),
                "live_clients": live.clients,
                "cache": cache.snapshot() if cache is not None else None,
            }
        )

    @app.get("/api/projects", tags=["projects"])
    async def list_projects() -> Response:
        projects = await store.list_projects()
        return json_response({"items": [p.to_json() for p in projects], "next_cursor": None})

    @app.post("/api/projects", tags=["projects"], status_code=201, dependencies=mutating)
    async def register_project(body: RegisterProject) -> Response:
        project = await engine.register(body.path)
        report = await engine.sync_project(project.id, actor="api")
        watch = getattr(app.state, "watch_project", None)
        if watch is not None:
            watch(project.id)
        return json_response({"project": project.to_json(), "sync": report.to_json()}, 201)

    @app.get("/api/changes", tags=["changes"])
    async def list_changes(
        request: Request,
        project: str | None = None,
        status: Literal["active", "archived"] | None = None,
    ) -> Response:
        async def load() -> bytes:
            changes = await store.list_changes(project=project, status=status)
            return orjson.dumps({"items": [c.to_json() for c in changes], "next_cursor": None})

        key = list_key(request.url.path, request.scope["query_string"])
        body = await read_through(cache, key, CHANGES_TAGS, load)
        return Response(body, media_type=JSON)

    @app.get("/api/changes/{change_id}", tags=["changes"])
    async def get_change(request: Request, change_id: str, project: str | None = None) -> Response:
        check_change_id(change_id)
        problem: list[ZyflowError] = []

        async def load() -> bytes | None:
            found = await store.list_changes(project=project, change=change_id)
            if not found:
                problem.append(NotFound(f"no change {change_id!r}"))
                return None
            if len(found) > 1:
                problem.append(
                    InvalidInput(f"change {change_id!r} exists in several projects; add ?project=")
                )
                return None
            return orjson.dumps(found[0].to_json())

        key = list_key(request.url.path, request.scope["query_string"])
        body = await read_through(cache, key, CHANGES_TAGS, load)
        if body is None:
            raise problem[0] if problem else NotFound(f"no change {change_id!r}")
        return Response(body, media_type=JSON)

    @app.get("/api/tasks", tags=["tasks"])
    async def list_tasks(
        request: Request,
        project: str | None = None,
        change: str | None = None,
        status: str | None = None,
        assignee: str | None = None,
        priority: str | None = None,
        q: Annotated[str | None, Query(max_length=200)] = None,
        sort: str | None = None,
        limit: int | None = None,
        cursor: Annotated[str | None, Query(max_length=2048)] = None,
    ) -> Response:
        query = TaskQuery.build(
            project=project, change=change, status=status, assignee=assignee,
            priority=priority, q=q, sort=sort, limit=limit, cursor=cursor,
        )  # fmt: skip

        async def load() -> bytes:
            return orjson.dumps((await store.list_tasks(query)).to_json())

        key = list_key(request.url.path, request.scope["query_string"])
        body = await read_through(cache, key, tasks_list_tags(query.change), load)
        return Response(body, media_type=JSON)

    @app.get("/api/tasks/{task_id}", tags=["tasks"])
    async def get_task(
        task_id: str, if_none_match: Annotated[str | None, Header()] = None
    ) -> Response:
        check_entity_id(task_id, "task id")

        async def load() -> bytes | None:
            task = await store.get_task(task_id)
            if task is None:
                return None
            return task_value(task.version, orjson.dumps(task.to_json()))

        key = task_key(task_id)
        value = await read_through(cache, key, (key,), load)
        if value is None:
            raise NotFound(f"no task {task_id!r}")
        tag, body = split_task_value(value)
        if if_none_match is not None and tag.decode() in if_none_match:
            return Response(status_code=304, headers={"ETag": tag.decode()})
        return Response(body, media_type=JSON, headers={"ETag": tag.decode()})

    @app.patch("/api/tasks/{task_id}", tags=["tasks"], dependencies=mutating)
    async def patch_task(
        task_id: str,
        body: Annotated[PatchTask, Body()],
        if_match: Annotated[str | None, Header()] = None,
    ) -> Response:
        check_entity_id(task_id, "task id")
        expected = parse_if_match(if_match)
        if body.expected_version is not None:
            if expected is not None and expected != body.expected_version:
                raise InvalidInput("If-Match and expected_version disagree")
            expected = body.expected_version
        sent = body.model_fields_set
        assignee: str | Unset | None = body.assignee if "assignee" in sent else UNSET
        priority: str | Unset | None = body.priority if "priority" in sent else UNSET
        task = await engine.update_task(
            task_id, status=body.status, assignee=assignee, priority=priority,
            tags=body.tags, expected_version=expected, actor="api",
        )  # fmt: skip
        return json_response(task.to_json(), headers={"ETag": etag(task.version)})

    @app.get("/api/tasks/{task_id}/history", tags=["tasks"])
    async def task_history(task_id: str) -> Response:
        check_entity_id(task_id, "task id")
        events = await store.read_stream(task_id)
        if not events:
            raise NotFound(f"no task {task_id!r}")
        return json_response({"items": [e.to_json() for e in events], "next_cursor": None})

    @app.get("/api/events", tags=["events"])
    async def list_events(
        aggregate_id: Annotated[str | None, Query(max_length=300)] = None,
        type: str | None = None,
        after: int | None = None,
        limit: int | None = None,
    ) -> Response:
        query = EventQuery.build(aggregate_id=aggregate_id, type=type, after=after, limit=limit)
        events = await store.read_all(query)
        more = len(events) == query.limit
        return json_response(
            {
                "items": [e.to_json() for e in events],
                "next_cursor": str(events[-1].position) if events and more else None,
            }
        )

    @app.get("/api/events/stream", tags=["events"])
    async def stream_events(
        request: Request,
        after: int | None = None,
        type: str | None = None,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> StreamingResponse:
        """Server-Sent Events: every event as it commits; resumable with Last-Event-ID."""
        position = after if after is not None else live.last_position
        if last_event_id:
            try:
                position = int(last_event_id)
            except ValueError:
                raise InvalidInput("Last-Event-ID must be an event position") from None
        if position < 0:
            raise InvalidInput("after must be 0 or more")
        types = frozenset(EventQuery.build(type=type).types) if type else None

        async def frames() -> Any:
            async for frame in live.stream(position, types):
                if await request.is_disconnected():
                    return
                yield frame

        return StreamingResponse(
            frames(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.post("/api/sync", tags=["sync"], dependencies=mutating)
    async def sync(body: Annotated[SyncRequest | None, Body()] = None) -> Response:
        body = body or SyncRequest()
        projects = [p.id for p in await store.list_projects()]
        if body.project is not None and body.project not in projects:
            raise NotFound(f"no project {body.project!r}")
        if body.change is not None:
            check_change_id(body.change)
            targets = [body.project] if body.project else projects
            if len(targets) != 1:
                raise InvalidInput("give 'project' with 'change' when several projects exist")
            report = await engine.sync_change(
                targets[0], body.change, force=body.force, actor="api"
            )
            return json_response(report.to_json())
        total = SyncReport()
        started = time.perf_counter()
        for project in [body.project] if body.project else projects:
            total.add(await engine.sync_project(project, force=body.force, actor="api"))
        total.duration_ms = (time.perf_counter() - started) * 1000
        return json_response(total.to_json())

    @app.get("/api/conflicts", tags=["sync"])
    async def list_conflicts(status: Literal["open", "resolved"] | None = None) -> Response:
        conflicts = await store.list_conflicts(status)
        return json_response({"items": [c.to_json() for c in conflicts], "next_cursor": None})

    @app.post("/api/conflicts/{conflict_id}/resolve", tags=["sync"], dependencies=mutating)
    async def resolve_conflict(conflict_id: str, body: ResolveConflict) -> Response:
        check_entity_id(conflict_id, "conflict id")
        await engine.resolve_conflict(conflict_id, body.resolution, actor="api")
        found = await store.get_conflict(conflict_id)
        assert found is not None
        return json_response(found.to_json())

    @app.get("/api/dead-letters", tags=["service"])
    async def dead_letters(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
        """Writes that could not commit after bounded retries, with their error."""
        items = await store.list_dead_letters(limit)
        return json_response({"items": items, "next_cursor": None})

    @app.get("/metrics", tags=["service"], include_in_schema=False)
    async def metrics() -> Response:
        if cache is not None:
            cache.snapshot()  # refresh the gauges
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    dashboard = resources.files("zyflow.api").joinpath("static/index.html").read_bytes()

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(dashboard, headers={"Cache-Control": "no-cache"})

    return app
