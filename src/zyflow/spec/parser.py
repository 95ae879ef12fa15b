"""The tasks.md grammar: bytes in, a list of tasks (with their byte positions) out.

The parser never rewrites a file. It splits the raw bytes into line segments
(each keeping its own line ending) so that ``render`` can join them back into
exactly the same bytes, flipping only the checkbox characters it is asked to.
Everything that is not a heading or a checkbox line is kept verbatim.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from zyflow.domain.errors import SpecError

BOM = b"\xef\xbb\xbf"
MAX_FILE_BYTES = 8 * 1024 * 1024
TAB_WIDTH = 4

_TASK = re.compile(rb"^([ \t]*)([-*+])[ \t]+\[([ xX])\](?:[ \t]+(.*?))?[ \t]*\r?$")
_HEADING = re.compile(rb"^(#{1,6})[ \t]+(.*?)[ \t#]*\r?$")
_FENCE = re.compile(rb"^[ \t]{0,3}(```|~~~)")
_NUMBERED_TASK = re.compile(r"^(\d+(?:\.\d+)*)\.?(?:[ \t]+|$)(.*)$")
_INLINE_ID = re.compile(r"^([A-Za-z][A-Za-z0-9._-]*\d[A-Za-z0-9._-]*):[ \t]+(.+)$")
_WORDS = re.compile(r"[\W_]+", re.UNICODE)


@dataclass(frozen=True, slots=True)
class ParsedTask:
    """One checkbox line, as the file says it."""

    key: str
    display_id: str | None
    title: str
    group: str | None
    section: str | None
    done: bool
    indent: int
    line: int  # 1-based line number
    ordinal: int  # 0-based position among the file's tasks
    checkbox_offset: int  # byte offset of the character inside [ ]
    parent_key: str | None


@dataclass(frozen=True, slots=True)
class ParsedDoc:
    """A parsed tasks.md: its raw line segments and the tasks found in them."""

    segments: tuple[bytes, ...]
    tasks: tuple[ParsedTask, ...]
    checksum: str
    has_bom: bool

    @property
    def raw(self) -> bytes:
        return b"".join(self.segments)

    def by_key(self) -> dict[str, ParsedTask]:
        return {t.key: t for t in self.tasks}


def checksum(raw: bytes) -> str:
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def normalize(text: str) -> str:
    """Lower-case, NFKC, punctuation and runs of spaces folded: the basis of title keys."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _WORDS.sub(" ", folded).strip()


def _decode(segment: bytes, line_no: int) -> str:
    try:
        return segment.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"line {line_no}: invalid UTF-8 ({exc.reason})") from None


def _indent_width(ws: bytes) -> int:
    width = 0
    for ch in ws:
        width = (width // TAB_WIDTH + 1) * TAB_WIDTH if ch == 0x09 else width + 1
    return width


def split_segments(raw: bytes) -> list[bytes]:
    """Split into lines that keep their terminators; joining them gives ``raw`` back."""
    segments = raw.split(b"\n")
    out = [s + b"\n" for s in segments[:-1]]
    if segments[-1]:
        out.append(segments[-1])
    return out


def _split_task_title(text: str) -> tuple[str | None, str]:
    m = _NUMBERED_TASK.match(text)
    if m and m.group(2):
        return m.group(1), m.group(2).strip()
    m = _INLINE_ID.match(text)
    if m:
        return m.group(1), m.group(2).strip()
    return None, text.strip()


def parse(raw: bytes) -> ParsedDoc:
    """Parse tasks.md bytes. Raises SpecError for binary, oversized or non-UTF-8 input."""
    if len(raw) > MAX_FILE_BYTES:
        raise SpecError(f"file is {len(raw)} bytes; the limit is {MAX_FILE_BYTES}")
    if b"\x00" in raw:
        raise SpecError("file looks binary (it contains NUL bytes)")
    has_bom = raw.startswith(BOM)
    segments = split_segments(raw)
    tasks: list[ParsedTask] = []
    group: str | None = None
    section: str | None = None
    in_fence: bytes | None = None
    offset = 0
    seen_keys: dict[str, int] = {}
    # (indent, key) of the open tasks above, for nesting.
    stack: list[tuple[int, str]] = []
    for index, segment in enumerate(segments):
        line_no = index + 1
        body = segment[3:] if index == 0 and has_bom else segment
        body_offset = offset + (3 if index == 0 and has_bom else 0)
        offset += len(segment)
        fence = _FENCE.match(body)
        if fence:
            marker = fence.group(1)
            if in_fence is None:
                in_fence = marker
            elif marker == in_fence:
                in_fence = None
            continue
        if in_fence is not None:
            continue
        heading = _HEADING.match(body)
        if heading:
            level = len(heading.group(1))
            text = _decode(heading.group(2), line_no).strip()
            stack.clear()
            if level == 2:
                # "## 1. Setup", "## Phase 2: Build" and "## Notes" all name a group;
                # the heading text (numbering included) is the group's name.
                group, section = text, None
            elif level >= 3:
                section = text
            continue
        m = _TASK.match(body)
        if not m:
            if body.strip(b" \t\r\n"):
                _decode(body, line_no)  # validate: invalid UTF-8 anywhere is an error
                # A non-indented, non-blank line closes any open task nesting.
                if not body[:1].isspace():
                    stack.clear()
            continue
        indent = _indent_width(m.group(1))
        text = _decode(m.group(4) or b"", line_no)
        display_id, title = _split_task_title(text)
        base_key = display_id or "~" + " / ".join(
            normalize(part) for part in (group or "", section or "", title)
        )
        count = seen_keys.get(base_key, 0) + 1
        seen_keys[base_key] = count
        key = base_key if count == 1 else f"{base_key}#{count}"
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent_key = stack[-1][1] if stack else None
        stack.append((indent, key))
        tasks.append(
            ParsedTask(
                key=key,
                display_id=display_id,
                title=title,
                group=group,
                section=section,
                done=m.group(3) != b" ",
                indent=indent,
                line=line_no,
                ordinal=len(tasks),
                checkbox_offset=body_offset + m.start(3),
                parent_key=parent_key,
            )
        )
    return ParsedDoc(
        segments=tuple(segments),
        tasks=tuple(tasks),
        checksum=checksum(raw),
        has_bom=has_bom,
    )


def render(doc: ParsedDoc, checkboxes: Mapping[str, bool] | None = None) -> bytes:
    """Join the segments back, setting the checkbox of each task key given to its value.

    Only the one character inside ``[ ]`` changes for a flipped task; a task already in
    the wanted state is left byte-for-byte alone (an ``X`` stays an ``X``).
    """
    raw = bytearray(doc.raw)
    if not checkboxes:
        return bytes(raw)
    by_key = doc.by_key()
    for key, done in checkboxes.items():
        task = by_key.get(key)
        if task is None:
            raise SpecError(f"no task with key {key!r} in this file")
        if task.done != done:
            raw[task.checkbox_offset] = ord("x") if done else ord(" ")
    return bytes(raw)


def title_of_proposal(raw: bytes) -> str | None:
    """First ``# `` heading of proposal.md, without a leading ``Change:``."""
    text = raw.decode("utf-8", errors="replace").lstrip("\ufeff")
    for line in text.splitlines():
        if line.startswith("# "):
            title = line[2:].strip().rstrip("#").strip()
            if title.lower().startswith("change:"):
                title = title[len("change:") :].strip()
            return title or None
    return None


__all__ = [
    "ParsedDoc",
    "ParsedTask",
    "checksum",
    "normalize",
    "parse",
    "render",
    "title_of_proposal",
]
