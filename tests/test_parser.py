"""The tasks.md grammar, and the byte-exact write-back properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zyflow.domain.errors import SpecError
from zyflow.spec.parser import parse, render, title_of_proposal

SAMPLE = """# Tasks

## 1. Setup
- [ ] 1.1 Create table
- [x] 1.2 Add index
  - [ ] Nested subtask
    - [X] Deeper subtask
- [ ] Plain task

## Phase 2: Build
### 2.1 API
- [ ] 2.1.1 Endpoint
#### 2.1.2 Details
* [x] task-2-1-2: Inline id task
### Notes
+ [ ] Unnumbered under plain subsection

## Extra
- [ ] 한국어 작업 제목
```
- [ ] not a task (code block)
```
Free text line
"""


def test_grammar() -> None:
    doc = parse(SAMPLE.encode())
    tasks = doc.tasks
    assert [t.title for t in tasks] == [
        "Create table",
        "Add index",
        "Nested subtask",
        "Deeper subtask",
        "Plain task",
        "Endpoint",
        "Inline id task",
        "Unnumbered under plain subsection",
        "한국어 작업 제목",
    ]
    by_title = {t.title: t for t in tasks}
    assert by_title["Create table"].display_id == "1.1"
    assert by_title["Create table"].group == "1. Setup"
    assert by_title["Add index"].done
    assert by_title["Nested subtask"].parent_key == by_title["Add index"].key
    assert by_title["Deeper subtask"].parent_key == by_title["Nested subtask"].key
    assert by_title["Deeper subtask"].done  # [X]
    assert by_title["Plain task"].parent_key is None
    assert by_title["Plain task"].display_id is None
    assert by_title["Endpoint"].group == "Phase 2: Build"
    assert by_title["Endpoint"].section == "2.1 API"
    assert by_title["Inline id task"].display_id == "task-2-1-2"
    assert by_title["Inline id task"].section == "2.1.2 Details"
    assert by_title["Unnumbered under plain subsection"].section == "Notes"
    assert by_title["한국어 작업 제목"].group == "Extra"
    assert len({t.key for t in tasks}) == len(tasks)
    # The lines are 1-based positions in the file.
    assert by_title["Create table"].line == 4


def test_crlf_bom_and_offsets() -> None:
    raw = b"\xef\xbb\xbf## 1. G\r\n- [ ] 1.1 A\r\n- [x] 1.2 B\r\n"
    doc = parse(raw)
    assert doc.has_bom
    assert [t.title for t in doc.tasks] == ["A", "B"]
    assert raw[doc.tasks[0].checkbox_offset] == ord(" ")
    flipped = render(doc, {doc.tasks[0].key: True})
    assert flipped == raw.replace(b"- [ ] 1.1", b"- [x] 1.1")
    assert render(doc) == raw


def test_duplicate_titles_get_distinct_keys() -> None:
    doc = parse(b"## G\n- [ ] Same\n- [ ] Same\n")
    assert len({t.key for t in doc.tasks}) == 2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"- [ ] ok\x00binary", "binary"),
        (b"- [ ] caf\xe9\n", "UTF-8"),
        (b"## \xff\xfe\n", "UTF-8"),
    ],
)
def test_bad_input_is_a_spec_error(raw: bytes, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse(raw)


def test_proposal_title() -> None:
    assert title_of_proposal(b"# Change: Add X\n") == "Add X"
    assert title_of_proposal("\ufeff# 제목\n".encode()) == "제목"
    assert title_of_proposal(b"no heading") is None


_line = st.one_of(
    st.sampled_from(
        [
            "## 1. Group",
            "## Phase 3: Later",
            "### 1.2 Sub",
            "### Plain sub",
            "#### 1.2.3 Deep",
            "- [ ] 1.1 Task",
            "- [x] Task done",
            "  - [ ] Sub task",
            "\t* [X] tabbed",
            "+ [ ] task-1-2: inline",
            "```",
            "",
            "text",
            "- [ ]",
            "-  [x]  spaced  ",
        ]
    ),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\n")),
)
_doc = st.tuples(st.lists(_line, max_size=30), st.sampled_from(["\n", "\r\n"]), st.booleans())


def _bytes(parts: tuple[list[str], str, bool]) -> bytes:
    lines, ending, bom = parts
    raw = ending.join(lines).encode()
    return (b"\xef\xbb\xbf" if bom else b"") + raw


@settings(max_examples=300, deadline=None)
@given(_doc)
def test_parse_then_render_is_identity(parts: tuple[list[str], str, bool]) -> None:
    raw = _bytes(parts)
    doc = parse(raw)
    assert render(doc) == raw
    assert render(doc, {t.key: t.done for t in doc.tasks}) == raw


@settings(max_examples=300, deadline=None)
@given(_doc, st.data())
def test_toggling_one_task_changes_exactly_one_byte(
    parts: tuple[list[str], str, bool], data: st.DataObject
) -> None:
    raw = _bytes(parts)
    doc = parse(raw)
    if not doc.tasks:
        return
    task = data.draw(st.sampled_from(doc.tasks))
    out = render(doc, {task.key: not task.done})
    assert len(out) == len(raw)
    diff = [i for i, (a, b) in enumerate(zip(raw, out, strict=True)) if a != b]
    assert diff == [task.checkbox_offset]
    again = parse(out)
    assert [t.key for t in again.tasks] == [t.key for t in doc.tasks]
    assert again.by_key()[task.key].done is (not task.done)
