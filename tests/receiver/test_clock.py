"""Waiting loops stop when told: the shutdown of the timers and of the audit tail."""

from __future__ import annotations

import asyncio

import pytest

from receiver.clock import woken


async def a_waiting_loop(event: asyncio.Event) -> None:
    """The shape of the scheduler's and the audit tail's loops."""
    while True:
        event.clear()
        await woken(event, 5.0)


@pytest.mark.parametrize("steps_between", range(6))
async def test_a_stop_that_arrives_with_a_wake_up_is_not_lost(steps_between: int) -> None:
    """A commit's notification at the moment of shutdown once hung ``remedy serve`` forever."""
    event = asyncio.Event()
    loop = asyncio.create_task(a_waiting_loop(event))
    await asyncio.sleep(0.01)
    event.set()
    for _ in range(steps_between):
        await asyncio.sleep(0)
    loop.cancel()
    done, _ = await asyncio.wait([loop], timeout=1.0)
    assert done == {loop}
    assert loop.cancelled()


async def test_woken_says_whether_the_event_came() -> None:
    event = asyncio.Event()
    assert await woken(event, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await woken(event, 5.0) is True
