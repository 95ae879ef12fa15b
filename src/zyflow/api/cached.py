"""Cached reads on the HTTP path.

``CachedReads`` sits in front of the framework: a GET whose response is in L1 is
answered from its stored bytes with no routing, validation or serialisation. On a
miss the request goes on to FastAPI, whose handlers read through the whole cache
(``read_through``) and so fill it for the next caller.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from zyflow.cache.invalidation import ALL_TASK_LISTS, CHANGES, change_tasks_tag, task_key
from zyflow.cache.multilevel import MultiLevelCache

JSON_HEADERS = [(b"content-type", b"application/json")]


def task_value(version: int, body: bytes) -> bytes:
    """A cached task: its version (for the ETag) and its JSON body."""
    return b"%d|" % version + body


def split_task_value(value: bytes) -> tuple[bytes, bytes]:
    version, _, body = value.partition(b"|")
    return b'"' + version + b'"', body


def list_key(path: str, query: bytes) -> str:
    return f"{path.removeprefix('/api/')}?{query.decode('latin-1')}"


def tasks_list_tags(change: str | None) -> tuple[str, ...]:
    return (change_tasks_tag(change),) if change else (ALL_TASK_LISTS,)


CHANGES_TAGS = (CHANGES,)


class CachedReads:
    def __init__(self, app: ASGIApp, cache: MultiLevelCache) -> None:
        self.app = app
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/api/tasks/"):
            task_id = path[len("/api/tasks/") :]
            if task_id and "/" not in task_id:
                value = self.cache.peek(task_key(task_id))
                if value is not None:
                    await self._send_task(scope, send, value)
                    return
        elif path in ("/api/tasks", "/api/changes") or path.startswith("/api/changes/"):
            value = self.cache.peek(list_key(path, scope["query_string"]))
            if value is not None:
                await _send(send, 200, JSON_HEADERS, value)
                return
        await self.app(scope, receive, send)

    async def _send_task(self, scope: Scope, send: Send, value: bytes) -> None:
        etag, body = split_task_value(value)
        for name, header in scope["headers"]:
            if name == b"if-none-match" and etag in header:
                await _send(send, 304, [(b"etag", etag)], b"")
                return
        await _send(send, 200, [*JSON_HEADERS, (b"etag", etag)], body)


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def read_through(
    cache: MultiLevelCache | None,
    key: str,
    tags: tuple[str, ...],
    load: Callable[[], Awaitable[bytes | None]],
) -> bytes | None:
    if cache is None:
        return await load()
    return await cache.get_or_load(key, load, tags)
