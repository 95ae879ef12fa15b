"""The ``zyflow`` command line. Every failure a user can cause is one line and exit code 2."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer

from zyflow.bootstrap import Services, build
from zyflow.config import Settings
from zyflow.domain.errors import ZyflowError
from zyflow.store.port import EventQuery, TaskQuery
from zyflow.store.replay import replay_verify
from zyflow.sync.engine import UNSET, SyncReport, Unset

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Keep OpenSpec tasks.md files and a runtime task database in step.",
)

T = TypeVar("T")

DbOpt = Annotated[
    str | None, typer.Option("--db", help="sqlite:///PATH or postgresql://... (ZYFLOW_DB)")
]
RedisOpt = Annotated[str | None, typer.Option("--redis", help="redis://... (ZYFLOW_REDIS)")]
DataDirOpt = Annotated[str | None, typer.Option("--data-dir", help="ZYFLOW_DATA_DIR")]
HostOpt = Annotated[str | None, typer.Option("--host", help="ZYFLOW_HOST (127.0.0.1)")]
PortOpt = Annotated[int | None, typer.Option("--port", help="ZYFLOW_PORT (3100)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON, as the API returns it")]
StrategyOpt = Annotated[
    str | None,
    typer.Option(
        "--strategy",
        help="conflict strategy: spec-wins, runtime-wins, last-write-wins, manual "
        "(ZYFLOW_STRATEGY)",
    ),
]


def fail(message: str) -> None:
    typer.echo(f"zyflow: error: {message}", err=True)
    raise typer.Exit(2)


def emit_json(value: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n")


def run(settings: Settings, work: Callable[[Services], Awaitable[T]]) -> T:
    """Build the services, run ``work``, close; user errors become one line and exit 2."""

    async def main() -> T:
        services = await build(settings)
        try:
            return await work(services)
        finally:
            await services.close()

    try:
        return asyncio.run(main())
    except ZyflowError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}".rstrip(": "))
    raise AssertionError("unreachable")


def settings_from(
    db: str | None = None,
    redis: str | None = None,
    data_dir: str | None = None,
    host: str | None = None,
    port: int | None = None,
    strategy: str | None = None,
) -> Settings:
    try:
        return Settings.load(
            db=db, redis=redis, data_dir=data_dir, host=host, port=port, strategy=strategy
        )
    except ZyflowError as exc:
        fail(str(exc))
        raise


def _print_report(report: SyncReport, as_json: bool) -> None:
    if as_json:
        emit_json(report.to_json())
        return
    typer.echo(
        f"synced {report.changes} changed change(s): {report.tasks_created} created, "
        f"{report.tasks_updated} updated, {report.tasks_archived} archived, "
        f"{report.conflicts} conflicts, {report.events} events in {report.duration_ms:.1f} ms"
    )
    for error in report.errors:
        typer.echo(f"  {error['change']}: {error['error']}", err=True)


@app.command()
def sync(
    project_dir: Annotated[Path, typer.Argument(help="the project directory (with openspec/)")],
    change: Annotated[str | None, typer.Option("--change", help="only this change")] = None,
    force: Annotated[bool, typer.Option("--force", help="re-read unchanged files too")] = False,
    json: JsonOpt = False,
    db: DbOpt = None,
    redis: RedisOpt = None,
    data_dir: DataDirOpt = None,
    strategy: StrategyOpt = None,
) -> None:
    """Register a project if needed and sync it once."""
    settings = settings_from(db, redis, data_dir, strategy=strategy)

    async def work(services: Services) -> SyncReport:
        project = await services.engine.register(project_dir)
        if change:
            return await services.engine.sync_change(project.id, change, force=force, actor="cli")
        return await services.engine.sync_project(project.id, force=force, actor="cli")

    report = run(settings, work)
    _print_report(report, json)
    if report.errors and not json:
        raise typer.Exit(2)


@app.command()
def tasks(
    project: Annotated[str | None, typer.Option("--project")] = None,
    change: Annotated[str | None, typer.Option("--change")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="one or more, comma-separated")
    ] = None,
    assignee: Annotated[str | None, typer.Option("--assignee")] = None,
    priority: Annotated[str | None, typer.Option("--priority")] = None,
    q: Annotated[str | None, typer.Option("--q", help="full-text search")] = None,
    sort: Annotated[str | None, typer.Option("--sort", help="position, -updated_at, ...")] = None,
    limit: Annotated[int | None, typer.Option("--limit")] = None,
    cursor: Annotated[str | None, typer.Option("--cursor")] = None,
    json: JsonOpt = False,
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List tasks with the API's filters."""
    settings = settings_from(db, data_dir=data_dir)

    async def work(services: Services) -> dict[str, Any]:
        query = TaskQuery.build(
            project=project, change=change, status=status, assignee=assignee,
            priority=priority, q=q, sort=sort, limit=limit, cursor=cursor,
        )  # fmt: skip
        return (await services.store.list_tasks(query)).to_json()

    page = run(settings, work)
    if json:
        emit_json(page)
        return
    for item in page["items"]:
        mark = "x" if item["done"] else " "
        shown = item["display_id"] or ""
        typer.echo(
            f"{item['id']}  [{mark}] {item['status']:<11} {item['change']:<24} "
            f"{shown:<8} {item['title']}"
        )
    if page["next_cursor"]:
        typer.echo(f"next: --cursor {page['next_cursor']}")


@app.command()
def changes(
    project: Annotated[str | None, typer.Option("--project")] = None,
    status: Annotated[str | None, typer.Option("--status", help="active or archived")] = None,
    json: JsonOpt = False,
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List changes with their progress."""
    settings = settings_from(db, data_dir=data_dir)
    if status not in (None, "active", "archived"):
        fail("status must be active or archived")

    async def work(services: Services) -> list[dict[str, Any]]:
        found = await services.store.list_changes(project=project, status=status)
        return [c.to_json() for c in found]

    items = run(settings, work)
    if json:
        emit_json({"items": items, "next_cursor": None})
        return
    for item in items:
        p = item["progress"]
        typer.echo(
            f"{item['project']:<16} {item['id']:<32} {item['status']:<8} "
            f"{p['done']:>4}/{p['total']:<4} {item['title']}"
        )


@app.command()
def events(
    aggregate_id: Annotated[str | None, typer.Option("--aggregate-id")] = None,
    type: Annotated[str | None, typer.Option("--type")] = None,
    after: Annotated[int | None, typer.Option("--after", help="global position")] = None,
    limit: Annotated[int | None, typer.Option("--limit")] = None,
    json: JsonOpt = False,
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List events from the log."""
    settings = settings_from(db, data_dir=data_dir)

    async def work(services: Services) -> dict[str, Any]:
        query = EventQuery.build(aggregate_id=aggregate_id, type=type, after=after, limit=limit)
        found = await services.store.read_all(query)
        more = len(found) == query.limit
        return {
            "items": [e.to_json() for e in found],
            "next_cursor": str(found[-1].position) if found and more else None,
        }

    page = run(settings, work)
    if json:
        emit_json(page)
        return
    for item in page["items"]:
        typer.echo(
            f"{item['position']:>8} {item['timestamp']} {item['type']:<18} "
            f"{item['aggregate_id']} v{item['version']}"
        )


@app.command()
def update(
    task_id: Annotated[str, typer.Argument(help="the task's id")],
    status: Annotated[str | None, typer.Option("--status")] = None,
    assignee: Annotated[str | None, typer.Option("--assignee", help="'' clears")] = None,
    priority: Annotated[str | None, typer.Option("--priority", help="'' clears")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="repeat; replaces tags")] = None,
    expected_version: Annotated[int | None, typer.Option("--expected-version")] = None,
    json: JsonOpt = False,
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Change a task's status, assignee, priority or tags (done flips its checkbox)."""
    settings = settings_from(db, data_dir=data_dir)
    if status is None and assignee is None and priority is None and tag is None:
        fail("nothing to update: give --status, --assignee, --priority or --tag")
    new_assignee: str | Unset | None = UNSET if assignee is None else (assignee or None)
    new_priority: str | Unset | None = UNSET if priority is None else (priority or None)

    async def work(services: Services) -> dict[str, Any]:
        task = await services.engine.update_task(
            task_id, status=status, assignee=new_assignee, priority=new_priority, tags=tag,
            expected_version=expected_version, actor="cli",
        )  # fmt: skip
        return task.to_json()

    task = run(settings, work)
    if json:
        emit_json(task)
    else:
        typer.echo(f"{task['id']} {task['status']} v{task['version']} {task['title']}")


@app.command()
def replay(
    verify: Annotated[
        bool, typer.Option("--verify", help="exit 1 if the rebuilt read models differ")
    ] = False,
    json: JsonOpt = False,
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Rebuild the read models from the event log into a scratch copy and compare."""
    settings = settings_from(db, data_dir=data_dir)

    async def work(services: Services) -> dict[str, Any]:
        return (await replay_verify(services.store)).to_json()

    result = run(settings, work)
    if json:
        emit_json(result)
    else:
        rows = ", ".join(f"{n} {t}" for t, n in result["rows"].items())
        verdict = "identical" if result["ok"] else f"{result['difference_count']} differences"
        typer.echo(f"replayed {result['events']} events: {rows}: {verdict}")
        for diff in result["differences"][:10]:
            typer.echo(f"  {diff}", err=True)
    if verify and not result["ok"]:
        raise typer.Exit(1)


@app.command()
def serve(
    project_dirs: Annotated[list[Path] | None, typer.Argument(help="projects to serve")] = None,
    db: DbOpt = None,
    redis: RedisOpt = None,
    data_dir: DataDirOpt = None,
    host: HostOpt = None,
    port: PortOpt = None,
    strategy: StrategyOpt = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="allow a non-loopback host without ZYFLOW_TOKEN")
    ] = False,
    workers: Annotated[int, typer.Option("--workers", help="server worker processes")] = 1,
) -> None:
    """Register, sync and watch projects; serve the API and the dashboard."""
    settings = settings_from(db, redis, data_dir, host, port, strategy)
    from zyflow.api.server import ServeError, serve_forever

    try:
        serve_forever(settings, [str(p) for p in project_dirs or []], insecure, workers)
    except (ServeError, ZyflowError) as exc:
        fail(str(exc))


@app.command("dead-letters")
def dead_letters(
    limit: Annotated[int, typer.Option("--limit")] = 100,
    json: JsonOpt = False,
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Writes that could not be committed after bounded retries, with their error."""
    settings = settings_from(db, data_dir=data_dir)
    if not 1 <= limit <= 10_000:
        fail("limit must be between 1 and 10000")

    async def work(services: Services) -> list[dict[str, Any]]:
        return await services.store.list_dead_letters(limit)

    items = run(settings, work)
    if json:
        emit_json({"items": items, "next_cursor": None})
        return
    for item in items:
        typer.echo(
            f"{item['id']:>6} {item['created_at']} {len(item['events'])} events: {item['error']}"
        )
    if not items:
        typer.echo("no dead letters")


@app.command()
def worker(
    name: Annotated[str, typer.Option("--name", help="this consumer's name in the group")],
    db: DbOpt = None,
    redis: RedisOpt = None,
    data_dir: DataDirOpt = None,
    claim_idle_ms: Annotated[int, typer.Option("--claim-idle-ms")] = 2000,
) -> None:
    """Consume the Redis event stream in the shared consumer group (the activity feed)."""
    settings = settings_from(db, redis, data_dir)
    if not settings.redis:
        fail("a worker needs --redis or ZYFLOW_REDIS")
    from zyflow.events.workers import run_worker

    run(settings, lambda services: run_worker(services, name, claim_idle_ms))


@app.command()
def bench(
    quick: Annotated[
        bool, typer.Option("--quick", help="small sizes; checks the suite runs")
    ] = False,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="api, queries, sync, events, memory")
    ] = None,
    json: JsonOpt = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="write bench.md, bench.json, charts")
    ] = None,
    pg: Annotated[
        str | None, typer.Option("--pg", help="PostgreSQL URL for the PostgreSQL rows")
    ] = "postgresql://postgres@127.0.0.1:5432/test",
) -> None:
    """Measure every performance target beside a ceiling measured in the same run."""
    from zyflow.bench import report
    from zyflow.bench.runner import BENCHES, run_benches

    names = only or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        fail(f"unknown bench {unknown[0]!r}; expected one of {', '.join(BENCHES)}")

    def log(message: str) -> None:
        typer.echo(message, err=True)

    rows = asyncio.run(run_benches(names, quick, pg or None, log))
    info = report.machine()
    commit = _git_commit()
    if out is not None:
        report.write_report(out, rows, info, commit)
        log(f"report written to {out}/")
    if json:
        emit_json({"commit": commit, "machine": info, "rows": [r.to_json() for r in rows]})
    else:
        report.print_table(rows)


def _git_commit() -> str | None:
    import subprocess

    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except OSError:
        return None
    return proc.stdout.strip() or None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
