"""Shared fixtures: a store per backend, real services or a clear skip (a failure on CI)."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from zyflow.store import open_store
from zyflow.store.port import Store

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "demo"
PG_URL = os.environ.get("ZYFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ZYFLOW_TEST_REDIS", "redis://127.0.0.1:6379/0")
REQUIRED = os.environ.get("ZYFLOW_REQUIRE_SERVICES") == "1"


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def need_service(name: str, host: str, port: int) -> None:
    """Skip with a reason on a laptop without the service; fail where CI requires it."""
    if _answers(host, port):
        return
    message = f"{name} is not answering on {host}:{port}"
    if REQUIRED:
        pytest.fail(message + " (ZYFLOW_REQUIRE_SERVICES=1)")
    pytest.skip(message)


def pg_url(schema: str) -> str:
    return f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}"


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'zyflow.db'}"
        return
    need_service("PostgreSQL", "127.0.0.1", 5432)
    schema = "zt_" + secrets.token_hex(6)
    yield pg_url(schema)
    import asyncio

    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(PG_URL)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    s = await open_store(db_url)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A fresh copy of the demo project: tests write to it freely."""
    target = tmp_path / "project"
    shutil.copytree(DEMO, target)
    return target
