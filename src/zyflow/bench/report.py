"""The bench report: a table for the terminal, Markdown and JSON for files, the machine."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import psutil

from zyflow.bench.runner import Row


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str] = {"python": sys.version.split()[0]}
    for command in (["sqlite3", "--version"], ["psql", "--version"], ["wrk", "--version"]):
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=5)
            versions[command[0]] = (out.stdout or out.stderr).strip().splitlines()[0][:80]
        except (OSError, subprocess.SubprocessError, IndexError):
            versions[command[0]] = "not found"
    import sqlite3

    versions["sqlite (python module)"] = sqlite3.sqlite_version
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "versions": versions,
    }


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".strip()


def verdict(row: Row) -> str:
    if row.passed is None:
        return "—"
    return "pass" if row.passed else "falls short"


def table_rows(rows: list[Row]) -> list[list[str]]:
    out = []
    for row in rows:
        spread = (
            f"{_fmt(min(row.samples))} – {_fmt(max(row.samples))}" if len(row.samples) > 1 else ""
        )
        out.append(
            [
                row.name,
                row.seed or "—",
                row.goal or "—",
                _fmt(row.median if row.samples else None, row.unit),
                spread,
                f"{_fmt(row.ceiling)} ({row.ceiling_label})" if row.ceiling is not None else "—",
                f"{row.ratio:.2f}" if row.ratio is not None else "—",
                verdict(row),
                row.notes,
            ]
        )
    return out


HEADERS = ["measure", "seed", "goal", "median", "min – max", "ceiling", "ratio", "verdict", "notes"]


def markdown(rows: list[Row], info: dict[str, Any], commit: str | None) -> str:
    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    for cells in table_rows(rows):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    header = [
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, {info['os']}",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
    ]
    if commit:
        header.insert(0, f"Commit: {commit}")
    return "\n".join(header) + "\n\n" + "\n".join(lines) + "\n"


def print_table(rows: list[Row]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False)
    for header in HEADERS:
        table.add_column(header, overflow="fold")
    for cells in table_rows(rows):
        table.add_row(*cells)
    Console(width=220).print(table)


def write_report(out: Path, rows: list[Row], info: dict[str, Any], commit: str | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.md").write_text(markdown(rows, info, commit))
    payload = {"commit": commit, "machine": info, "rows": [r.to_json() for r in rows]}
    (out / "bench.json").write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
    charts(out, rows)


def charts(out: Path, rows: list[Row]) -> None:
    """PNG charts when matplotlib is installed (``pip install zyflow[bench]``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    api = [r for r in rows if r.bench == "api" and r.unit == "req/s" and r.samples]
    if api:
        fig, ax = plt.subplots(figsize=(10, 4))
        ax.barh([r.name for r in api], [r.median for r in api])
        ax.set_xlabel("requests/s (median)")
        ax.set_title("Throughput vs connections (bare Starlette is the ceiling)")
        fig.tight_layout()
        fig.savefig(out / "throughput.png")
        plt.close(fig)
        latency = [r for r in api if "p50_ms" in r.extra]
        fig, ax = plt.subplots(figsize=(10, 4))
        labels = [r.name for r in latency]
        for key in ("p50_ms", "p95_ms", "p99_ms"):
            ax.plot(labels, [r.extra[key] for r in latency], marker="o", label=key)
        ax.set_ylabel("ms")
        ax.set_yscale("log")
        ax.legend()
        ax.tick_params(axis="x", rotation=60, labelsize=7)
        ax.set_title("Latency percentiles")
        fig.tight_layout()
        fig.savefig(out / "latency.png")
        plt.close(fig)
    growth = [r for r in rows if r.name.startswith("cost growth") and r.extra]
    if growth:
        fig, ax = plt.subplots(figsize=(7, 4))
        for r in growth:
            sizes = sorted(int(s) for s in r.extra)
            ax.plot(sizes, [r.extra[str(s)]["complex_ms"] for s in sizes], marker="o",
                    label=r.name.split(", ")[-1] + " complex")  # fmt: skip
            ax.plot(sizes, [r.extra[str(s)]["single_ms"] for s in sizes], marker="s",
                    label=r.name.split(", ")[-1] + " single")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("tasks")
        ax.set_ylabel("ms (median)")
        ax.legend()
        ax.set_title("Query cost as the data grows")
        fig.tight_layout()
        fig.savefig(out / "growth.png")
        plt.close(fig)
    sync = [r for r in rows if r.bench == "sync" and r.samples and r.unit in ("s", "ms")]
    if sync:
        fig, ax = plt.subplots(figsize=(9, 4))
        ax.barh([r.name for r in sync], [r.median * (1000 if r.unit == "s" else 1) for r in sync])
        ax.set_xscale("log")
        ax.set_xlabel("ms (median)")
        ax.set_title("Sync time vs size")
        fig.tight_layout()
        fig.savefig(out / "sync.png")
        plt.close(fig)
