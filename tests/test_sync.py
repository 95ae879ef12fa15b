"""The sync engine end to end on real files, on every backend."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from zyflow.domain.errors import ConcurrencyError, InvalidInput, SpecError
from zyflow.domain.model import Status, Strategy
from zyflow.store.port import EventQuery, Store, TaskQuery
from zyflow.store.replay import replay_verify
from zyflow.sync.engine import SyncEngine

CHECKBOX = re.compile(rb"^[ \t]*[-*+][ \t]+\[([ xX])\]", re.M)

CORPUS = {
    "numbered": "## 1. Setup\n- [x] 1.1 Create schema\n- [ ] 1.2 Seed data\n- [x] 1.3 Indexes\n\n"
    "## 2. API\n- [ ] 2.1 Routes\n- [ ] 2.2 Validation\n",
    "phases": "# Tasks\n\n## Phase 1: Research\n- [x] Survey existing tools\n"
    "- [ ] Write summary\n\n"
    "## Phase 2: Build\n### 2.1 Core\n- [ ] 2.1.1 Engine\n- [ ] 2.1.2 Store\n"
    "#### 2.1.3 Extras\n- [X] 2.1.3.1 Cache\n### Notes section\n- [ ] Unnumbered follow-up\n",
    "inline-ids": "## Webhooks\n- [x] task-1-1-1: Webhook receiver endpoints\n"
    "- [ ] task-1-1-2: Retry policy\n  - [ ] Backoff schedule\n  - [x] Dead-letter queue\n"
    "    - [ ] Alerting on DLQ growth\n- [ ] task-1-1-3: Docs\n",
    "korean-crlf": "## 1. 검색\r\n- [x] 1.1 형태소 분석기 조사\r\n- [ ] 1.2 색인 생성\r\n"
    "* [ ] 1.3 Ranking by recency\r\n\r\n## 2. 테스트\r\n+ [x] 2.1 정확도 테스트\r\n",
    "bom-mixed": "\ufeff## Tasks\n- [ ] Plain one\n- [ ] Plain one\n- [x] Plain two\n"
    "Some prose that stays.\n```\n- [ ] inside a code block is not a task\n```\n",
}


def make_project(root: Path) -> Path:
    changes = root / "openspec" / "changes"
    for name, text in CORPUS.items():
        folder = changes / name
        folder.mkdir(parents=True)
        (folder / "tasks.md").write_bytes(text.encode())
        (folder / "proposal.md").write_text(f"# Change: {name.title()}\n")
    archived = changes / "archive" / "2026-01-15-old-work"
    archived.mkdir(parents=True)
    (archived / "tasks.md").write_text("## Done\n- [x] 1. Finished thing\n- [x] 2. Another\n")
    return root


def tasks_file(project: Path, change: str) -> Path:
    return project / "openspec" / "changes" / change / "tasks.md"


async def all_tasks(store: Store, **filters: object) -> list:  # type: ignore[type-arg]
    out = []
    cursor = None
    while True:
        page = await store.list_tasks(TaskQuery.build(cursor=cursor, limit=500, **filters))  # type: ignore[arg-type]
        out.extend(page.items)
        if not page.next_cursor:
            return out
        cursor = page.next_cursor


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return make_project(tmp_path / "corpus")


async def test_corpus_counts_and_idempotent_resync(store: Store, corpus: Path) -> None:
    engine = SyncEngine(store)
    project = await engine.register(corpus)
    first = await engine.sync_project(project.id)
    assert not first.errors
    files = list((corpus / "openspec" / "changes").rglob("tasks.md"))
    checkboxes = []
    for f in files:
        raw = f.read_bytes()
        # Lines inside a code fence are text, not tasks.
        raw = re.sub(rb"```.*?```", b"", raw, flags=re.S)
        checkboxes.extend(CHECKBOX.findall(raw))
    tasks = await all_tasks(store, status="todo,in-progress,review,done")
    assert len(tasks) == len(checkboxes) == first.tasks_created
    assert sum(t.done for t in tasks) == sum(1 for c in checkboxes if c in (b"x", b"X"))
    changes = {c.id: c for c in await store.list_changes(project=project.id)}
    assert set(changes) == {*CORPUS, "old-work"}
    assert changes["old-work"].status == "archived"
    assert changes["numbered"].title == "Numbered"
    before = await store.last_position()
    second = await engine.sync_project(project.id)
    assert second.events == 0
    forced = await engine.sync_project(project.id, force=True)
    assert forced.events == 0
    assert await store.last_position() == before
    assert (await replay_verify(store)).ok


async def test_update_done_flips_one_byte_and_survives_resync(store: Store, corpus: Path) -> None:
    engine = SyncEngine(store)
    project = await engine.register(corpus)
    await engine.sync_project(project.id)
    path = tasks_file(corpus, "korean-crlf")
    original = path.read_bytes()
    task = next(t for t in await store.tasks_of_change(project.id, "korean-crlf") if not t.done)
    done = await engine.update_task(task.id, status="done", expected_version=task.version)
    assert done.status == Status.DONE and done.version == task.version + 1
    after = path.read_bytes()
    diff = [i for i, (a, b) in enumerate(zip(original, after, strict=True)) if a != b]
    assert len(after) == len(original) and len(diff) == 1
    assert after[diff[0] : diff[0] + 1] == b"x"
    # Our own write is recognised: a sync now appends nothing.
    assert (await engine.sync_project(project.id)).events == 0
    # Back to todo flips it back.
    await engine.update_task(task.id, status="todo")
    assert path.read_bytes() == original
    # in-progress survives a re-sync of the unchecked box, forced or not.
    other = next(t for t in await store.tasks_of_change(project.id, "numbered") if not t.done)
    await engine.update_task(other.id, status="in-progress", assignee="ann", priority="high")
    await engine.sync_project(project.id, force=True)
    path2 = tasks_file(corpus, "numbered")
    path2.write_bytes(path2.read_bytes().replace(b"## 2. API", b"## 2. API\n\nExtra prose."))
    await engine.sync_project(project.id)
    kept = await store.get_task(other.id)
    assert kept is not None
    assert (kept.status, kept.assignee, kept.priority) == ("in-progress", "ann", "high")
    assert (await replay_verify(store)).ok


async def test_rename_in_place_keeps_identity(store: Store, corpus: Path) -> None:
    engine = SyncEngine(store)
    project = await engine.register(corpus)
    await engine.sync_project(project.id)
    tasks = await store.tasks_of_change(project.id, "bom-mixed")
    two = next(t for t in tasks if t.title == "Plain two")
    await engine.update_task(two.id, assignee="kim", tags=["ux"])
    path = tasks_file(corpus, "bom-mixed")
    path.write_bytes(path.read_bytes().replace(b"Plain two", b"Plain two, renamed"))
    report = await engine.sync_project(project.id)
    assert report.tasks_created == 0 and report.tasks_archived == 0 and report.tasks_updated == 1
    renamed = await store.get_task(two.id)
    assert renamed is not None
    assert (renamed.title, renamed.key, renamed.assignee, renamed.tags) == (
        "Plain two, renamed",
        two.key,
        "kim",
        ["ux"],
    )
    # A numbered task renamed keeps its id through its display id.
    path = tasks_file(corpus, "numbered")
    before = {t.display_id: t.id for t in await store.tasks_of_change(project.id, "numbered")}
    path.write_bytes(path.read_bytes().replace(b"1.2 Seed data", b"1.2 Seed demo data"))
    await engine.sync_project(project.id)
    after = {t.display_id: t.id for t in await store.tasks_of_change(project.id, "numbered")}
    assert before == after
    history = await store.read_stream(two.id)
    assert [e.type for e in history] == ["TaskCreated", "TaskUpdated", "TaskUpdated"]
    assert history[-1].data["previous"] == {"title": "Plain two"}
    assert (await replay_verify(store)).ok


async def test_removed_line_archives_and_returning_line_restores(
    store: Store, corpus: Path
) -> None:
    engine = SyncEngine(store)
    project = await engine.register(corpus)
    await engine.sync_project(project.id)
    path = tasks_file(corpus, "numbered")
    original = path.read_bytes()
    routes = next(
        t for t in await store.tasks_of_change(project.id, "numbered") if t.display_id == "2.1"
    )
    await engine.update_task(routes.id, assignee="lee")
    path.write_bytes(original.replace(b"- [ ] 2.1 Routes\n", b""))
    report = await engine.sync_project(project.id)
    assert report.tasks_archived == 1
    archived = await store.get_task(routes.id)
    assert (
        archived is not None and archived.status == Status.ARCHIVED and archived.assignee == "lee"
    )
    assert routes.id not in {t.id for t in await all_tasks(store)}
    change = await store.get_change(project.id, "numbered")
    assert change is not None and change.total == 4
    with pytest.raises(InvalidInput):
        await engine.update_task(routes.id, status="done")
    path.write_bytes(original)
    await engine.sync_project(project.id)
    back = await store.get_task(routes.id)
    assert back is not None and back.status == Status.TODO and back.assignee == "lee"
    assert [e.type for e in await store.read_stream(routes.id)][-2:] == [
        "TaskArchived",
        "TaskUpdated",
    ]
    assert (await replay_verify(store)).ok


async def test_change_archived_and_removed(store: Store, corpus: Path) -> None:
    engine = SyncEngine(store)
    project = await engine.register(corpus)
    await engine.sync_project(project.id)
    changes_dir = corpus / "openspec" / "changes"
    ids = {t.id for t in await store.tasks_of_change(project.id, "phases")}
    shutil.move(changes_dir / "phases", changes_dir / "archive" / "2026-11-01-phases")
    await engine.sync_project(project.id)
    change = await store.get_change(project.id, "phases")
    assert change is not None and change.status == "archived"
    assert {t.id for t in await store.tasks_of_change(project.id, "phases")} == ids
    shutil.rmtree(changes_dir / "inline-ids")
    await engine.sync_project(project.id)
    gone = await store.tasks_of_change(project.id, "inline-ids")
    assert gone and all(t.status == Status.ARCHIVED for t in gone)
    assert (await replay_verify(store)).ok


@pytest.mark.parametrize(
    ("strategy", "status", "checked"),
    [
        (Strategy.SPEC_WINS, "done", True),
        (Strategy.RUNTIME_WINS, "review", False),
        (Strategy.MANUAL, "review", True),
    ],
)
async def test_conflict_strategies(
    store: Store, corpus: Path, strategy: Strategy, status: str, checked: bool
) -> None:
    engine = SyncEngine(store, strategy=strategy)
    project = await engine.register(corpus)
    await engine.sync_project(project.id)
    path = tasks_file(corpus, "numbered")
    task = next(
        t for t in await store.tasks_of_change(project.id, "numbered") if t.display_id == "2.2"
    )
    # Both sides move at once: the file checks the box, the database says "review".
    await engine.update_task(task.id, status="review")
    path.write_bytes(path.read_bytes().replace(b"- [ ] 2.2 Validation", b"- [x] 2.2 Validation"))
    report = await engine.sync_project(project.id)
    assert report.conflicts == 1
    final = await store.get_task(task.id)
    assert final is not None and final.status == status
    assert (b"- [x] 2.2 Validation" in path.read_bytes()) is checked
    kinds = [
        e.type
        for e in await store.read_all(EventQuery(types=("ConflictDetected", "ConflictResolved")))
    ]
    conflicts = await store.list_conflicts()
    assert len(conflicts) == 1
    if strategy == Strategy.MANUAL:
        assert kinds == ["ConflictDetected"] and conflicts[0].status == "open"
        # Re-syncing does not record the same conflict twice.
        assert (await engine.sync_project(project.id, force=True)).conflicts == 0
        await engine.resolve_conflict(conflicts[0].id, "runtime")
        assert b"- [ ] 2.2 Validation" in path.read_bytes()
        settled = await store.get_task(task.id)
        assert settled is not None and settled.status == "review"
        assert (await store.list_conflicts("open")) == []
    else:
        assert kinds == ["ConflictDetected", "ConflictResolved"]
        assert conflicts[0].status == "resolved"
    assert (await engine.sync_project(project.id)).conflicts == 0
    assert (await replay_verify(store)).ok


async def test_bad_files_fail_clearly_and_lose_nothing(store: Store, corpus: Path) -> None:
    engine = SyncEngine(store)
    project = await engine.register(corpus)
    await engine.sync_project(project.id)
    before = len(await store.tasks_of_change(project.id, "numbered"))
    path = tasks_file(corpus, "numbered")
    path.write_bytes(b"\x00\x01binary\xff")
    with pytest.raises(SpecError, match="binary"):
        await engine.sync_change(project.id, "numbered")
    report = await engine.sync_project(project.id)
    assert report.errors and "binary" in report.errors[0]["error"]
    assert len(await store.tasks_of_change(project.id, "numbered")) == before
    failed = await store.read_all(EventQuery(types=("SyncFailed",)))
    assert len(failed) == 1  # recorded once, not on every retry
    with pytest.raises(InvalidInput):
        await engine.register(corpus / "nope")
    (corpus / "openspec" / "changes" / "escape").symlink_to("/etc")
    await engine.sync_project(project.id)
    assert await store.get_change(project.id, "escape") is None
    assert (await replay_verify(store)).ok


async def test_stale_expected_version_is_refused(store: Store, corpus: Path) -> None:
    engine = SyncEngine(store)
    project = await engine.register(corpus)
    await engine.sync_project(project.id)
    task = (await store.tasks_of_change(project.id, "numbered"))[0]
    await engine.update_task(task.id, assignee="a", expected_version=task.version)
    with pytest.raises(ConcurrencyError):
        await engine.update_task(task.id, assignee="b", expected_version=task.version)
    current = await store.get_task(task.id)
    assert current is not None and current.assignee == "a"


def test_find_agrees_with_discover(corpus: Path) -> None:
    from zyflow.spec import layout

    root = corpus.resolve()
    changes = root / "openspec" / "changes"
    (changes / "archive" / "2026-02-01-numbered").mkdir(parents=True)  # archived twice
    (changes / "archive" / "2025-12-01-old-work").mkdir(parents=True)
    found = layout.discover(root)
    for change, location in found.items():
        assert layout.find(root, change) == location, change
    assert layout.find(root, "nope") is None
    assert layout.find(root, "../etc") is None
