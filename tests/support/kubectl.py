"""The real kubectl, run against the fake API server: the judge of "same effect as kubectl".

The machine image carries kubectl 1.27 to 1.33 side by side; the ``kubectl`` on
the PATH picks the one matching the server's ``/version``. Each run gets the
fake's kubeconfig and a discovery cache of its own (ports are reused between
tests, and a cache keyed by one would describe another fake).
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from pathlib import Path

import pytest

from tests.support.engines import missing
from tests.support.kube import FakeKube


@dataclasses.dataclass(frozen=True, slots=True)
class Ran:
    """What one kubectl command did."""

    code: int
    out: str
    err: str


@dataclasses.dataclass(frozen=True, slots=True)
class Kubectl:
    """Runs kubectl against one fake."""

    binary: str
    cache: Path

    async def __call__(self, kube: FakeKube, *args: str, stdin: str | None = None) -> Ran:
        """``kubectl --kubeconfig FAKE ARGS...``, within 60 s."""
        process = await asyncio.create_subprocess_exec(
            self.binary,
            "--kubeconfig",
            str(kube.kubeconfig),
            "--cache-dir",
            str(self.cache),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        data = stdin.encode() if stdin is not None else None
        try:
            out, err = await asyncio.wait_for(process.communicate(data), 60)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        assert process.returncode is not None
        return Ran(process.returncode, out.decode(), err.decode())


@pytest.fixture(name="kubectl")
def kubectl_fixture(tmp_path: Path) -> Kubectl:
    """``kubectl``: the machine's real kubectl (a failure under REMEDY_REQUIRE_ENGINES=1)."""
    binary = shutil.which("kubectl")
    if binary is None:
        missing("kubectl is not on the PATH (the machine image carries kubectl 1.27 to 1.33)")
    assert binary is not None
    return Kubectl(binary, tmp_path / "kubectl-cache")
