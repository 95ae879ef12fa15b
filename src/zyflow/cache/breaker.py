"""A circuit breaker for a dependency that may go away (Redis): skip it within
milliseconds while it is down, try it again by itself after a pause."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class BreakerOpen(Exception):
    pass


class CircuitBreaker:
    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"

    def __init__(
        self,
        name: str,
        *,
        failures_to_open: int = 3,
        reset_after: float = 1.0,
        call_timeout: float = 0.05,
        on_change: Callable[[str, str], None] | None = None,
    ) -> None:
        self.name = name
        self.failures_to_open = failures_to_open
        self.reset_after = reset_after
        self.call_timeout = call_timeout
        self.state = self.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.on_change = on_change
        self.opens = 0
        self._trial = False

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            if state == self.OPEN:
                self.opens += 1
            if self.on_change is not None:
                self.on_change(self.name, state)

    def allow(self) -> bool:
        if self.state == self.CLOSED:
            return True
        if self.state == self.OPEN and time.monotonic() - self.opened_at >= self.reset_after:
            self._set(self.HALF_OPEN)
            self._trial = False
        if self.state == self.HALF_OPEN and not self._trial:
            self._trial = True  # exactly one probe at a time
            return True
        return False

    def success(self) -> None:
        self.failures = 0
        self._trial = False
        self._set(self.CLOSED)

    def failure(self) -> None:
        self.failures += 1
        self._trial = False
        if self.state == self.HALF_OPEN or self.failures >= self.failures_to_open:
            self.opened_at = time.monotonic()
            self._set(self.OPEN)

    async def call(self, make: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
        if not self.allow():
            raise BreakerOpen(self.name)
        try:
            result = await asyncio.wait_for(make(), timeout or self.call_timeout)
        except Exception:  # TimeoutError included
            self.failure()
            raise
        self.success()
        return result
