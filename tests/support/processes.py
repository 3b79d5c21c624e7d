"""``remedy serve`` as a child process, as an operator runs it: started, waited for, settled."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp

from receiver.store.base import FINAL_STATES


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def serve(
    cwd: Path, port: int, config: str = "remedy.yaml", *, stderr: Path | None = None
) -> asyncio.subprocess.Process:
    """``remedy serve --config CONFIG`` in ``cwd`` on ``port``, once it answers ready."""
    err = stderr.open("ab") if stderr is not None else asyncio.subprocess.DEVNULL
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "receiver", "serve", "--config", config),
        *("--listen", f"127.0.0.1:{port}"),
        cwd=cwd,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=err,
    )
    async with aiohttp.ClientSession() as session, asyncio.timeout(30):
        while True:
            if proc.returncode is not None:
                raise AssertionError(f"remedy serve exited with {proc.returncode}")
            try:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return proc
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)


async def stop(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM, as a deployment does, and wait for the exit."""
    if proc.returncode is None:
        proc.terminate()
        await proc.wait()


async def settled(url: str, count: int | None = None) -> list[dict[str, Any]]:
    """Remediations once every one (and at least ``count``) is final (60 s hang guard)."""
    async with aiohttp.ClientSession() as session, asyncio.timeout(60):
        while True:
            async with session.get(f"{url}/api/v1/remediations") as response:
                body = await response.json()
            records: list[dict[str, Any]] = body["remediations"]
            enough = count is None or len(records) >= count
            if enough and all(r["state"] in FINAL_STATES for r in records):
                return records
            await asyncio.sleep(0.2)


async def audit_verify(cwd: Path, config: str = "remedy.yaml") -> str:
    """``remedy audit verify``'s output; fails the test unless it exits 0."""
    verify = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "receiver", "audit", "verify", "--config", config),
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await verify.communicate()
    assert verify.returncode == 0, out.decode()
    return out.decode()
