"""Realistic OpenSpec projects at any scale, for benchmarks and load tests.

Each change gets a tasks.md with the variety real files have: numbered groups and
``Phase`` groups, ``###`` subsections with and without numbers, numbered, plain and
inline-id tasks, indented subtasks, Korean and English titles, some CRLF files.
"""

from __future__ import annotations

import random
from pathlib import Path

VERBS = ["Add", "Implement", "Refactor", "Document", "Test", "Migrate", "Remove", "Validate"]
NOUNS = [
    "webhook receiver", "delivery worker", "search index", "session cache", "audit log",
    "rate limiter", "schema migration", "OpenAPI schema", "retry policy", "SSE endpoint",
    "keyset pagination", "bulk importer", "metrics exporter", "config loader",
]  # fmt: skip
KOREAN = [
    "검색 인덱스 생성", "캐시 무효화 처리", "이벤트 로그 재생", "성능 벤치마크 작성",
    "동기화 충돌 해결", "대시보드 실시간 갱신", "권한 검사 추가", "문서 업데이트",
]  # fmt: skip


def tasks_md(rng: random.Random, n_tasks: int, index: int) -> bytes:
    lines: list[str] = ["# Tasks", ""]
    made = 0
    group = 0
    while made < n_tasks:
        group += 1
        style = rng.random()
        if style < 0.6:
            lines.append(f"## {group}. {rng.choice(NOUNS).title()}")
        elif style < 0.85:
            lines.append(f"## Phase {group}: {rng.choice(NOUNS).title()}")
        else:
            lines.append(f"## {rng.choice(KOREAN)}")
        sub = 0
        for _ in range(rng.randint(3, 9)):
            if made >= n_tasks:
                break
            roll = rng.random()
            if roll < 0.12:
                sub += 1
                lines.append(f"### {group}.{sub} {rng.choice(NOUNS).title()}")
            elif roll < 0.16:
                lines.append(f"### {rng.choice(NOUNS).title()} notes")
            title = (
                rng.choice(KOREAN)
                if rng.random() < 0.25
                else f"{rng.choice(VERBS)} {rng.choice(NOUNS)}"
            )
            box = "x" if rng.random() < 0.4 else " "
            kind = rng.random()
            if kind < 0.6:
                lines.append(f"- [{box}] {group}.{made + 1} {title}")
            elif kind < 0.75:
                lines.append(f"- [{box}] task-{index}-{group}-{made + 1}: {title}")
            else:
                lines.append(f"- [{box}] {title} #{made + 1}")
            made += 1
            if made < n_tasks and rng.random() < 0.15:
                lines.append(f"  - [{' ' if rng.random() < 0.7 else 'x'}] {title} (detail)")
                made += 1
        lines.append("")
    ending = "\r\n" if index % 7 == 3 else "\n"
    return ending.join(lines).encode()


def make_project(root: Path, changes: int, tasks_per_change: int, seed: int = 42) -> Path:
    """Write ``changes`` change folders of ``tasks_per_change`` tasks under ``root``."""
    rng = random.Random(seed)
    base = root / "openspec" / "changes"
    base.mkdir(parents=True, exist_ok=True)
    for i in range(changes):
        folder = base / f"change-{i:05d}"
        folder.mkdir(exist_ok=True)
        (folder / "tasks.md").write_bytes(tasks_md(rng, tasks_per_change, i))
        (folder / "proposal.md").write_text(f"# Change: {rng.choice(NOUNS).title()} {i}\n")
    return root
