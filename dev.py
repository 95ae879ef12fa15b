#!/usr/bin/env python3
"""Bootstrap and run ZyFlow from a fresh clone with nothing but Python 3.11+.

    python3 dev.py demo     # serve the bundled demo project on http://127.0.0.1:3100
    python3 dev.py test     # lint, type-check and run the test suite
    python3 dev.py zyflow ARGS...   # any zyflow command inside the project's venv

Each command creates ``.venv`` on first use and reinstalls when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".zyflow-installed"


def ensure_venv() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"ZyFlow needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if PYTHON.exists() and STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not PYTHON.exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    print("installing zyflow and its test tools into .venv ...", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[test]"], check=True)
    STAMP.write_text(wanted)


def run(*args: str) -> int:
    return subprocess.call(list(args), cwd=ROOT)


def demo(extra: list[str]) -> int:
    target = ROOT / ".zyflow-demo"
    project = target / "project"
    if not project.exists():
        # Serve a copy: write-back flips checkboxes, and the repository's demo stays pristine.
        shutil.copytree(ROOT / "demo", project)
    args = [str(BIN / "zyflow"), "serve", str(project), "--data-dir", str(target / "data")]
    return run(*args, *extra)


def test(extra: list[str]) -> int:
    steps = [
        [str(BIN / "ruff"), "check", "src", "tests"],
        [str(BIN / "ruff"), "format", "--check", "src", "tests"],
        [str(BIN / "mypy"), "src"],
        [str(PYTHON), "-m", "pytest", "-q", *extra],
    ]
    for step in steps:
        print("$", " ".join(Path(step[0]).name if i == 0 else a for i, a in enumerate(step)))
        code = run(*step)
        if code != 0:
            return code
    return 0


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in {"demo", "test", "zyflow"}:
        print(__doc__)
        return 2
    ensure_venv()
    command, extra = sys.argv[1], sys.argv[2:]
    if command == "demo":
        return demo(extra)
    if command == "test":
        return test(extra)
    return run(str(BIN / "zyflow"), *extra)


if __name__ == "__main__":
    sys.exit(main())
