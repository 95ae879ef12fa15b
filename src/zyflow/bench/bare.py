"""The ceiling for API benchmarks: a bare Starlette JSON endpoint, served like ZyFlow is."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# A body of the same size and shape as one task's JSON, serialised once.
BODY = (
    b'{"id":"6892cbcf85075385","project":"demo","change":"add-webhooks","key":"1.1",'
    b'"display_id":"1.1","title":"Create webhook_subscriptions table","group":"1. Subscriptions",'
    b'"section":null,"status":"done","done":true,"assignee":null,"priority":null,"tags":[],'
    b'"parent_id":null,"line":4,"order":0,"version":1,"created_at":"2026-11-26T07:13:38.775471Z",'
    b'"updated_at":"2026-11-26T07:13:38.775471Z"}'
)


async def task(_: Request) -> Response:
    return Response(BODY, media_type="application/json")


app = Starlette(routes=[Route("/task", task)])
