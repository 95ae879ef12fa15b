"""Where an OpenSpec project keeps its changes, and safe access to them.

``openspec/changes/<id>/`` holds active changes and ``openspec/changes/archive/
<date>-<id>/`` archived ones. Only ``tasks.md`` and ``proposal.md`` are ever read,
and only after their real path is shown to lie inside the project root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from zyflow.domain.errors import InvalidInput, PathOutsideProject, SpecError
from zyflow.domain.model import CHANGE_ID

CHANGES_DIR = Path("openspec") / "changes"
ARCHIVE = "archive"
_DATED = re.compile(r"^\d{4}-\d{2}-\d{2}-(.+)$")


@dataclass(frozen=True, slots=True)
class ChangeLocation:
    change: str
    directory: Path
    archived: bool
    rel_path: str

    @property
    def tasks_file(self) -> Path:
        return self.directory / "tasks.md"

    @property
    def proposal_file(self) -> Path:
        return self.directory / "proposal.md"


def project_root(path: str | Path) -> Path:
    root = Path(path).expanduser()
    if not root.exists():
        raise InvalidInput(f"no such directory: {path}")
    if not root.is_dir():
        raise InvalidInput(f"not a directory: {path}")
    root = root.resolve()
    if not (root / CHANGES_DIR).is_dir():
        raise InvalidInput(f"not an OpenSpec project (no {CHANGES_DIR}/ in {root})")
    return root


def inside(root: Path, path: Path) -> Path:
    """The real path of ``path``, refused unless it lies inside ``root``."""
    real = path.resolve()
    if real != root and root not in real.parents:
        raise PathOutsideProject(f"{path} resolves outside the project root")
    return real


def discover(root: Path) -> dict[str, ChangeLocation]:
    """Every change of a project by id; an active change hides an archived one of the same id."""
    base = root / CHANGES_DIR
    found: dict[str, ChangeLocation] = {}
    archive = base / ARCHIVE
    if archive.is_dir():
        for entry in sorted(archive.iterdir()):
            m = _DATED.match(entry.name)
            change = m.group(1) if m else entry.name
            if entry.is_dir() and CHANGE_ID.match(change) and _safe(root, entry):
                found[change] = ChangeLocation(change, entry, True, str(entry.relative_to(root)))
    for entry in sorted(base.iterdir()):
        if entry.name == ARCHIVE or not entry.is_dir() or not CHANGE_ID.match(entry.name):
            continue
        if _safe(root, entry):
            found[entry.name] = ChangeLocation(
                entry.name, entry, False, str(entry.relative_to(root))
            )
    return found


def find(root: Path, change: str) -> ChangeLocation | None:
    """One change's location without listing every change: the active folder if it
    exists, else the newest dated folder in the archive."""
    if not CHANGE_ID.match(change):
        return None
    base = root / CHANGES_DIR
    active = base / change
    if change != ARCHIVE and active.is_dir() and _safe(root, active):
        return ChangeLocation(change, active, False, str(active.relative_to(root)))
    archive = base / ARCHIVE
    if archive.is_dir():
        # The same precedence as ``discover``: an undated folder, then the newest date.
        plain = archive / change
        if plain.is_dir() and _safe(root, plain):
            return ChangeLocation(change, plain, True, str(plain.relative_to(root)))
        for entry in sorted(archive.glob(f"*-{change}"), reverse=True):
            m = _DATED.match(entry.name)
            if m and m.group(1) == change and entry.is_dir() and _safe(root, entry):
                return ChangeLocation(change, entry, True, str(entry.relative_to(root)))
    return None


def _safe(root: Path, entry: Path) -> bool:
    try:
        inside(root, entry)
    except PathOutsideProject:
        return False
    return True


def locate(root: Path, path: Path) -> str | None:
    """The change id a changed file belongs to, or None if it is not a change's file."""
    try:
        rel = path.relative_to(root / CHANGES_DIR)
    except ValueError:
        return None
    parts = rel.parts
    if len(parts) >= 2 and parts[0] == ARCHIVE:
        m = _DATED.match(parts[1])
        return m.group(1) if m else parts[1]
    if parts and parts[0] != ARCHIVE:
        return parts[0]
    return None


def read_bytes(root: Path, path: Path, limit: int) -> bytes | None:
    """A file's bytes (None if absent), refusing paths outside the root and huge files."""
    if not path.exists():
        return None
    # The change folder was checked by ``discover``; only a symlinked file can still leave.
    real = inside(root, path) if path.is_symlink() else path
    if not real.is_file():
        raise SpecError(f"{path.name} is not a regular file")
    size = real.stat().st_size
    if size > limit:
        raise SpecError(f"{path.name} is {size} bytes; the limit is {limit}")
    try:
        return real.read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot read {path.name}: {exc.strerror}") from None
