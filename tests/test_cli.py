"""The CLI as a user runs it: real processes, real files, JSON shapes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.test_sync import make_project, tasks_file


def zyflow(db_url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ZYFLOW_DB": db_url}
    proc = subprocess.run(
        [sys.executable, "-m", "zyflow.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(proc.stdout)


def test_sync_update_replay_round_trip(db_url: str, tmp_path: Path) -> None:
    root = make_project(tmp_path / "p")
    report = as_json(zyflow(db_url, "sync", str(root), "--json"))
    assert set(report) == {
        "changes",
        "tasks_created",
        "tasks_updated",
        "tasks_archived",
        "conflicts",
        "events",
        "duration_ms",
    }
    assert report["tasks_created"] > 0
    again = as_json(zyflow(db_url, "sync", str(root), "--json"))
    assert again["events"] == 0
    page = as_json(zyflow(db_url, "tasks", "--change", "numbered", "--json"))
    assert set(page) == {"items", "next_cursor"}
    task = page["items"][1]
    for field in (
        "id",
        "project",
        "change",
        "key",
        "display_id",
        "title",
        "group",
        "status",
        "done",
        "assignee",
        "priority",
        "tags",
        "parent_id",
        "line",
        "version",
        "created_at",
        "updated_at",
    ):
        assert field in task
    path = tasks_file(root, "numbered")
    before = path.read_bytes()
    updated = as_json(zyflow(db_url, "update", task["id"], "--status", "done", "--json"))
    assert updated["done"] and updated["version"] == task["version"] + 1
    after = path.read_bytes()
    assert sum(a != b for a, b in zip(before, after, strict=True)) == 1
    other = page["items"][3]
    zyflow(db_url, "update", other["id"], "--status", "in-progress", "--assignee", "ann")
    zyflow(db_url, "sync", str(root), "--force")
    kept = as_json(zyflow(db_url, "tasks", "--assignee", "ann", "--json"))["items"]
    assert [t["status"] for t in kept] == ["in-progress"]
    path.write_bytes(path.read_bytes().replace(b"2.2 Validation", b"2.2 Input validation"))
    path.write_bytes(path.read_bytes().replace(b"- [x] 1.3 Indexes\n", b""))
    report = as_json(zyflow(db_url, "sync", str(root), "--json"))
    assert (report["tasks_updated"], report["tasks_archived"], report["tasks_created"]) == (1, 1, 0)
    changes = as_json(zyflow(db_url, "changes", "--json"))["items"]
    assert {c["id"] for c in changes} >= {"numbered", "old-work"}
    events = as_json(zyflow(db_url, "events", "--aggregate-id", task["id"], "--json"))["items"]
    assert [e["type"] for e in events] == ["TaskCreated", "TaskCompleted"]
    assert events[1]["metadata"]["actor"] == "cli"
    verdict = zyflow(db_url, "replay", "--verify")
    assert "identical" in verdict.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["sync", "/definitely/not/here"],
        ["update", "nope", "--status", "done"],
        ["update", "abc", "--status", "sideways"],
        ["update", "abc"],
        ["tasks", "--limit", "0"],
        ["tasks", "--cursor", "garbage"],
        ["tasks", "--sort", "nonsense"],
        ["events", "--type", "Nope"],
        ["tasks", "--db", "mysql://x"],
    ],
)
def test_bad_input_is_one_line_and_exit_2(db_url: str, args: list[str]) -> None:
    proc = zyflow(db_url, *args, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_unreadable_or_binary_file(db_url: str, tmp_path: Path) -> None:
    root = make_project(tmp_path / "p")
    tasks_file(root, "numbered").write_bytes(b"\x00\xff\xfe")
    proc = zyflow(db_url, "sync", str(root), "--change", "numbered", check=False)
    assert proc.returncode == 2 and "binary" in proc.stderr and "Traceback" not in proc.stderr
    proc = zyflow(db_url, "sync", str(root), check=False)
    assert proc.returncode == 2 and "numbered" in proc.stderr
    if os.geteuid() != 0:  # root reads through permissions
        path = tasks_file(root, "phases")
        path.chmod(0)
        proc = zyflow(db_url, "sync", str(root), "--change", "phases", check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
