"""Dry-run previews inform and never get in the way: no backend, no preview; no load either."""

from __future__ import annotations

import asyncio

from receiver.metrics import Metrics
from receiver.queue import PREVIEW, PREVIEW_LIMIT, RUN, WorkQueue
from receiver.store.base import Remediation
from tests.conftest import StartRemedy, am_alert, am_payload

RULE = """
rules:
  - name: clear-fares
    match: {alertname: CacheStale}
    target: cache
    actions:
      - action: redis.delete_keys
        params: {url: 'redis://127.0.0.1:6379', pattern: 'cache:fares:*', max: 100}
"""


async def test_without_its_backend_a_dry_run_has_no_preview(remedy: StartRemedy) -> None:
    server = await remedy(RULE)  # dry-run, and no backends.redis
    status, _ = await server.post_alerts(am_payload(am_alert("CacheStale")))
    assert status == 200
    await server.settle()
    (dry_run,) = await server.events(outcome="dry_run")
    assert dry_run["reason"] != "preview"
    assert await server.events(outcome="preview") == []


def _rem(number: int) -> Remediation:
    return Remediation(
        id=number,
        rule="clear-fares",
        target=None,
        state="dry_run",
        reason=None,
        alert={},
        steps=(),
        on_failure=(),
        dry_run=True,
        created_at="",
        updated_at="",
    )


async def test_previews_wait_behind_live_work_and_never_count_as_load() -> None:
    queue = WorkQueue(Metrics(), max_queue=2)
    queue.put(PREVIEW, [_rem(n) for n in range(PREVIEW_LIMIT + 5)])
    assert (queue.depth, queue.overloaded) == (0, False)  # the webhook still answers 200
    queue.put(RUN, [_rem(1000)])
    assert queue.depth == 1
    first = await queue.take()
    assert (first.kind, first.rem.id) == (RUN, 1000)  # live work first
    kinds = []
    while True:
        try:
            work = await asyncio.wait_for(queue.take(), 0.05)
        except TimeoutError:
            break
        kinds.append(work.kind)
    assert kinds == [PREVIEW] * PREVIEW_LIMIT  # the ones past the limit were dropped
