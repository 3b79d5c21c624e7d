"""Waiting for remote state (an API, a target, another process) as a user would: by polling."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def wait_for(predicate: Callable[[], Awaitable[object]], within: float = 10.0) -> None:
    """Poll ``predicate`` until it holds; ``within`` seconds is the hang guard."""
    async with asyncio.timeout(within):
        while not await predicate():  # noqa: ASYNC110 - the condition is remote state
            await asyncio.sleep(0.05)
