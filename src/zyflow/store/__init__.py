"""Store backends behind one port; ``open_store`` picks one from a URL."""

from __future__ import annotations

import os
from pathlib import Path

from zyflow.domain.errors import InvalidInput
from zyflow.store.port import Store


def default_url() -> str:
    return f"sqlite:///{Path.home() / '.zyflow' / 'zyflow.db'}"


async def open_store(url: str | None = None, *, migrate: bool = True) -> Store:
    """``sqlite:///path`` (the default) or ``postgresql://...``; migrated unless told not."""
    url = url or os.environ.get("ZYFLOW_DB") or default_url()
    store: Store
    if url.startswith("sqlite:///"):
        from zyflow.store.sqlite import SqliteStore

        path = url[len("sqlite:///") :]
        store = SqliteStore(os.path.expanduser(path) if path != ":memory:" else path)
    elif url.startswith(("postgresql://", "postgres://")):
        from zyflow.store.postgres import PostgresStore

        try:
            store = await PostgresStore.connect(url)
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"cannot connect to {url}: {exc}") from None
    else:
        raise InvalidInput(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://")
    if migrate:
        await store.migrate()
    return store
