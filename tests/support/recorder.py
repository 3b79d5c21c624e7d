"""A real local HTTP server that records what it receives: the target of ``http.request``."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclasses.dataclass
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Recorder:
    """Answers every request with ``status`` and keeps a copy of it.

    ``statuses`` answers the next requests in turn before falling back to ``status``;
    ``delay`` slows every answer; ``gate``, when set, holds answers (only those to
    ``gate_path`` when that is set) until the test opens it.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.status = 200
        self.statuses: list[int] = []
        self.delay = 0.0
        self.gate: asyncio.Event | None = None
        self.gate_path: str | None = None
        self.server: TestServer | None = None

    def url(self, path: str = "/hook") -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(Received(request.method, request.path_qs, dict(request.headers), body))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.gate is not None and self.gate_path in (None, request.path):
            await self.gate.wait()
        status = self.statuses.pop(0) if self.statuses else self.status
        return web.json_response({"ok": status < 400}, status=status)


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    """A started recording server on a loopback port."""
    rec = Recorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    rec.server = TestServer(app)
    await rec.server.start_server()
    yield rec
    await rec.server.close()
