"""Settings from flags and ``ZYFLOW_*`` environment variables (flags win)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from zyflow.domain.errors import InvalidInput
from zyflow.domain.model import Strategy, parse_strategy


@dataclass(frozen=True, slots=True)
class Settings:
    db: str
    redis: str | None
    data_dir: Path
    host: str
    port: int
    token: str | None
    strategy: Strategy

    @classmethod
    def load(
        cls,
        *,
        db: str | None = None,
        redis: str | None = None,
        data_dir: str | None = None,
        host: str | None = None,
        port: int | None = None,
        strategy: str | None = None,
    ) -> Settings:
        env = os.environ
        data = Path(data_dir or env.get("ZYFLOW_DATA_DIR") or Path.home() / ".zyflow").expanduser()
        db_url = db or env.get("ZYFLOW_DB") or f"sqlite:///{data / 'zyflow.db'}"
        port_text = env.get("ZYFLOW_PORT", "3100")
        if port is None:
            try:
                port = int(port_text)
            except ValueError:
                raise InvalidInput(f"ZYFLOW_PORT is not a number: {port_text!r}") from None
        if not 0 <= port <= 65535:
            raise InvalidInput(f"port out of range: {port}")
        return cls(
            db=db_url,
            redis=redis or env.get("ZYFLOW_REDIS") or None,
            data_dir=data,
            host=host or env.get("ZYFLOW_HOST") or "127.0.0.1",
            port=port,
            token=env.get("ZYFLOW_TOKEN") or None,
            strategy=parse_strategy(strategy or env.get("ZYFLOW_STRATEGY") or "spec-wins"),
        )
