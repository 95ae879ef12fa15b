"""Every endpoint and error path, through a real server process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import Server, start_server

TASKS = "openspec/changes/add-webhooks/tasks.md"


def first_task(client: httpx.Client, **params: str) -> dict:  # type: ignore[type-arg]
    page = client.get("/api/tasks", params={"limit": "1", **params}).json()
    return page["items"][0]


def is_problem(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert {"type", "title", "status", "detail"} <= set(body) and body["status"] == status


def test_reads(server: Server) -> None:
    with server.client() as c:
        health = c.get("/api/health").json()
        assert health["status"] == "ok" and health["events"] > 0
        projects = c.get("/api/projects").json()["items"]
        assert [p["id"] for p in projects] == ["project"]
        changes = c.get("/api/changes").json()["items"]
        assert {ch["id"] for ch in changes} == {
            "add-webhooks", "realtime-dashboard", "search-ko", "bootstrap-cli",
        }  # fmt: skip
        archived = c.get("/api/changes", params={"status": "archived"}).json()["items"]
        assert [ch["id"] for ch in archived] == ["bootstrap-cli"]
        one = c.get("/api/changes/search-ko").json()
        assert one["title"] == "한국어 검색 지원" and one["progress"]["total"] == 6
        is_problem(c.get("/api/changes/nope"), 404)
        is_problem(c.get("/api/changes/..%2F..%2Fetc"), 404)  # no route matches
        is_problem(c.get("/api/changes/bad$id"), 400)
        is_problem(c.get("/api/changes", params={"status": "weird"}), 422)
        page = c.get("/api/tasks", params={"change": "add-webhooks", "limit": "4"}).json()
        assert len(page["items"]) == 4 and page["next_cursor"]
        rest = c.get(
            "/api/tasks",
            params={"change": "add-webhooks", "limit": "50", "cursor": page["next_cursor"]},
        ).json()
        assert len(page["items"]) + len(rest["items"]) == 11 and rest["next_cursor"] is None
        found = c.get("/api/tasks", params={"q": "형태소"}).json()["items"]
        assert [t["title"] for t in found] == ["한국어 형태소 분석기 조사"]
        done = c.get("/api/tasks", params={"status": "done", "project": "project"}).json()["items"]
        assert done and all(t["done"] for t in done)
        task = first_task(c, change="search-ko")
        got = c.get(f"/api/tasks/{task['id']}")
        assert got.headers["etag"] == f'"{task["version"]}"'
        assert (
            c.get(
                f"/api/tasks/{task['id']}", headers={"If-None-Match": got.headers["etag"]}
            ).status_code
            == 304
        )
        history = c.get(f"/api/tasks/{task['id']}/history").json()["items"]
        assert [e["type"] for e in history] == ["TaskCreated"]
        events = c.get("/api/events", params={"type": "ChangeCreated", "limit": "2"}).json()
        assert len(events["items"]) == 2 and events["next_cursor"]
        after = c.get(
            "/api/events", params={"after": events["next_cursor"], "type": "ChangeCreated"}
        ).json()
        assert len(after["items"]) == 2
        assert c.get("/api/conflicts").json() == {"items": [], "next_cursor": None}
        assert "openapi" in c.get("/openapi.json").json()
        assert c.get("/docs").status_code == 200
        assert "<title>ZyFlow</title>" in c.get("/").text
        assert "python_info" in c.get("/metrics").text


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/api/tasks", {"limit": "0"}, 400),
        ("/api/tasks", {"limit": "abc"}, 422),
        ("/api/tasks", {"sort": "password"}, 400),
        ("/api/tasks", {"status": "sleeping"}, 400),
        ("/api/tasks", {"priority": "whenever"}, 400),
        ("/api/tasks", {"cursor": "bm90IGEgY3Vyc29y"}, 400),
        ("/api/tasks/..%2F..%2Fetc%2Fpasswd", {}, 404),
        ("/api/tasks/bad$id", {}, 400),
        ("/api/tasks/nope", {}, 404),
        ("/api/tasks/nope/history", {}, 404),
        ("/api/events", {"type": "Nope"}, 400),
        ("/api/events", {"after": "-1"}, 400),
        ("/api/events", {"limit": "100000"}, 400),
        ("/api/nothing-here", {}, 404),
    ],
)
def test_bad_reads(server: Server, path: str, params: dict[str, str], status: int) -> None:
    with server.client() as c:
        is_problem(c.get(path, params=params), status)


def test_patch_flow_and_write_back(server: Server) -> None:
    path = server.project / TASKS
    with server.client() as c:
        task = next(
            t
            for t in c.get("/api/tasks", params={"change": "add-webhooks"}).json()["items"]
            if not t["done"]
        )
        before = path.read_bytes()
        response = c.patch(
            f"/api/tasks/{task['id']}",
            json={"status": "done"},
            headers={"If-Match": f'"{task["version"]}"'},
        )
        assert response.status_code == 200, response.text
        assert response.json()["done"] and response.headers["etag"] == f'"{task["version"] + 1}"'
        after = path.read_bytes()
        assert sum(a != b for a, b in zip(before, after, strict=True)) == 1
        stale = c.patch(
            f"/api/tasks/{task['id']}",
            json={"status": "todo"},
            headers={"If-Match": f'"{task["version"]}"'},
        )
        is_problem(stale, 409)
        assert path.read_bytes() == after
        stale_body = c.patch(
            f"/api/tasks/{task['id']}", json={"assignee": "x", "expected_version": 1}
        )
        is_problem(stale_body, 409)
        ok = c.patch(
            f"/api/tasks/{task['id']}",
            json={"assignee": "ann", "priority": "high", "tags": ["api", "ux"]},
        )
        assert ok.json()["assignee"] == "ann" and ok.json()["tags"] == ["api", "ux"]
        cleared = c.patch(f"/api/tasks/{task['id']}", json={"assignee": None})
        assert cleared.json()["assignee"] is None and cleared.json()["priority"] == "high"
        history = c.get(f"/api/tasks/{task['id']}/history").json()["items"]
        assert [e["type"] for e in history] == [
            "TaskCreated",
            "TaskCompleted",
            "TaskUpdated",
            "TaskUpdated",
        ]
        assert history[-1]["data"]["previous"] == {"assignee": "ann"}
        for body, status in [
            ({"status": "archived"}, 422),
            ({"status": "sideways"}, 422),
            ({"unknown": 1}, 422),
            ({"tags": "notalist"}, 422),
            ({"expected_version": 0}, 422),
            ({"assignee": "x" * 500}, 422),
        ]:
            is_problem(c.patch(f"/api/tasks/{task['id']}", json=body), status)
        is_problem(
            c.patch(
                f"/api/tasks/{task['id']}",
                content=b"{not json",
                headers={"content-type": "application/json"},
            ),
            422,
        )
        is_problem(
            c.patch(f"/api/tasks/{task['id']}", json={}, headers={"If-Match": "garbage"}), 400
        )
        is_problem(c.patch("/api/tasks/nope", json={"status": "done"}), 404)
        is_problem(
            c.patch(
                f"/api/tasks/{task['id']}",
                content=b"x" * 100_000,
                headers={"content-type": "application/json"},
            ),
            413,
        )
        is_problem(c.delete(f"/api/tasks/{task['id']}"), 405)


def test_sync_projects_and_conflicts_endpoints(server: Server, tmp_path: Path) -> None:
    with server.client() as c:
        assert c.post("/api/sync", json={}).json()["events"] == 0
        assert (
            c.post(
                "/api/sync", json={"project": "project", "change": "search-ko", "force": True}
            ).status_code
            == 200
        )
        is_problem(c.post("/api/sync", json={"project": "nope"}), 404)
        is_problem(c.post("/api/sync", json={"change": "../../etc"}), 400)
        is_problem(c.post("/api/projects", json={"path": str(tmp_path / "missing")}), 400)
        is_problem(c.post("/api/projects", json={"path": "/etc"}), 400)
        is_problem(c.post("/api/projects", json={}), 422)
        other = tmp_path / "second"
        (other / "openspec" / "changes" / "solo").mkdir(parents=True)
        (other / "openspec" / "changes" / "solo" / "tasks.md").write_text("## A\n- [ ] 1. one\n")
        created = c.post("/api/projects", json={"path": str(other)})
        assert created.status_code == 201 and created.json()["sync"]["tasks_created"] == 1
        assert len(c.get("/api/projects").json()["items"]) == 2
        is_problem(c.post("/api/conflicts/abc/resolve", json={"resolution": "spec"}), 404)
        is_problem(c.post("/api/conflicts/abc/resolve", json={"resolution": "maybe"}), 422)
        # The new project is watched: an edit there shows up.
        (other / "openspec" / "changes" / "solo" / "tasks.md").write_text(
            "## A\n- [ ] 1. one\n- [ ] 2. two\n"
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if len(c.get("/api/tasks", params={"change": "solo"}).json()["items"]) == 2:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("edit in a project registered over the API was not synced")


def test_edit_on_disk_reaches_api_and_stream_within_a_second(server: Server) -> None:
    path = server.project / TASKS
    with server.client() as c:
        position = c.get("/api/health").json()["events"]
        seen_at: list[float] = []
        opened = threading.Event()
        started = 0.0

        def listen() -> None:
            headers = {"Last-Event-ID": str(position)}
            with httpx.stream(
                "GET", server.url + "/api/events/stream", headers=headers, timeout=10
            ) as r:
                opened.set()
                for line in r.iter_lines():
                    if line.startswith("data:") and "Brand new task" in line:
                        seen_at.append(time.monotonic())
                        return

        thread = threading.Thread(target=listen, daemon=True)
        thread.start()
        assert opened.wait(5)
        time.sleep(0.05)
        started = time.monotonic()
        path.write_bytes(path.read_bytes() + b"- [ ] 4.1 Brand new task\n")
        api_latency = None
        while time.monotonic() - started < 2.0:
            if c.get("/api/tasks", params={"q": "brand new"}).json()["items"]:
                api_latency = time.monotonic() - started
                break
            time.sleep(0.01)
        thread.join(3)
        assert api_latency is not None and api_latency < 1.0, api_latency
        assert seen_at, "edit never reached the SSE stream"
        print(f"latency api={api_latency:.3f}s sse={seen_at[0] - started:.3f}s")
        assert seen_at[0] - started < 1.0, seen_at[0] - started


def test_stream_resumes_from_last_event_id(server: Server) -> None:
    with httpx.stream(
        "GET", server.url + "/api/events/stream", headers={"Last-Event-ID": "3"}, timeout=5
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        ids = []
        for line in r.iter_lines():
            if line.startswith("id: "):
                ids.append(int(line[4:]))
                if len(ids) == 5:
                    break
    assert ids == [4, 5, 6, 7, 8]
    with server.client() as c:
        is_problem(c.get("/api/events/stream", headers={"Last-Event-ID": "abc"}), 400)


def test_token_required_for_mutations(tmp_path: Path, db_url: str) -> None:
    running = start_server(tmp_path, db_url, env={"ZYFLOW_TOKEN": "s3cret"})
    try:
        with running.client() as c:
            task = first_task(c)
            assert c.get(f"/api/tasks/{task['id']}").status_code == 200
            is_problem(c.patch(f"/api/tasks/{task['id']}", json={"assignee": "x"}), 401)
            is_problem(
                c.patch(
                    f"/api/tasks/{task['id']}",
                    json={"assignee": "x"},
                    headers={"Authorization": "Bearer nope"},
                ),
                401,
            )
            is_problem(c.post("/api/sync", json={}), 401)
            ok = c.patch(
                f"/api/tasks/{task['id']}",
                json={"assignee": "x"},
                headers={"Authorization": "Bearer s3cret"},
            )
            assert ok.status_code == 200
    finally:
        running.stop()


def test_refuses_public_address_without_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ZYFLOW_TOKEN"}
    proc = subprocess.run(
        [sys.executable, "-m", "zyflow.cli.main", "serve", "--host", "0.0.0.0", "--port", "1"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "ZYFLOW_TOKEN" in proc.stderr and "Traceback" not in proc.stderr


def test_graceful_shutdown_keeps_everything(tmp_path: Path, db_url: str) -> None:
    running = start_server(tmp_path, db_url)
    with running.client() as c:
        tasks = c.get("/api/tasks", params={"limit": "20"}).json()["items"]
        for i, t in enumerate(tasks):
            assert c.patch(f"/api/tasks/{t['id']}", json={"assignee": f"a{i}"}).status_code == 200
    assert running.stop() == 0
    proc = subprocess.run(
        [sys.executable, "-m", "zyflow.cli.main", "replay", "--verify", "--db", db_url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_pagination_while_tasks_are_added(server: Server) -> None:
    path = server.project / "openspec/changes/realtime-dashboard/tasks.md"
    with server.client() as c:
        seen: list[str] = []
        cursor = None
        added = 0
        while True:
            params = {"change": "realtime-dashboard", "limit": "3"}
            if cursor:
                params["cursor"] = cursor
            page = c.get("/api/tasks", params=params).json()
            seen.extend(t["id"] for t in page["items"])
            if added < 4:
                path.write_bytes(
                    path.read_bytes() + f"- [ ] 9.{added} Added while paging\n".encode()
                )
                added += 1
                time.sleep(0.15)
            if not page["next_cursor"]:
                break
            cursor = page["next_cursor"]
        assert len(seen) == len(set(seen))
        final = c.get("/api/tasks", params={"change": "realtime-dashboard", "limit": "100"}).json()[
            "items"
        ]
        original = [t["id"] for t in final if not t["title"].startswith("Added while")]
        assert set(original) <= set(seen)
