"""Slow down repeated failed logins from one client: each failure in the window adds delay, and past
a hard limit attempts are refused outright (429) until old failures leave the window."""

from __future__ import annotations

import asyncio
import time
from collections import deque

from portside.errors import TooManyRequests


class LoginThrottle:
    def __init__(self, *, free_failures: int = 5, window_seconds: float = 300, max_delay: float = 5.0,
                 hard_limit: int = 30) -> None:
        self.free_failures = free_failures
        self.hard_limit = hard_limit
        self.window = window_seconds
        self.max_delay = max_delay
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str) -> deque[float]:
        q = self._failures.setdefault(client, deque())
        cutoff = time.monotonic() - self.window
        while q and q[0] < cutoff:
            q.popleft()
        return q

    def delay_for(self, client: str) -> float:
        excess = len(self._recent(client)) - self.free_failures
        return 0.0 if excess < 0 else min(self.max_delay, 0.25 * 2 ** min(excess, 8))

    async def before_attempt(self, client: str) -> None:
        recent = self._recent(client)
        if len(recent) >= self.hard_limit:
            retry = max(1, int(recent[0] + self.window - time.monotonic()) + 1)
            raise TooManyRequests(f"too many failed sign-in attempts; try again in {retry} s", retry_after=retry)
        delay = self.delay_for(client)
        if delay:
            await asyncio.sleep(delay)

    def failed(self, client: str) -> None:
        self._recent(client).append(time.monotonic())
        if len(self._failures) > 10_000:  # bound memory under a spray of clients
            for key in list(self._failures)[:5_000]:
                self._failures.pop(key, None)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)
