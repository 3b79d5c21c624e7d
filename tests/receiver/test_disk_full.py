"""A full disk: writes answer 503, ``/readyz`` fails, ingest resumes once a little space returns.

The store lives on a small tmpfs the test mounts (as root), so the disk
really fills: SQLite gets ENOSPC from the kernel, nothing is simulated.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import am_alert, am_payload
from tests.receiver.test_listener import serve
from tests.receiver.test_serve import post
from tests.support.engines import missing

TMPFS_SIZE = "8m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of a few MB, unmounted after the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        missing(
            "the disk-full test mounts a small tmpfs and needs root with mount(8): "
            f"{result.stderr.strip() or 'mount failed'}"
        )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


def fill(path: Path) -> None:
    """Append to ``path`` until the file system has no room left."""
    chunk = b"\0" * 65536
    with path.open("ab", buffering=0) as filler:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    filler.write(chunk[:size])
    if os.statvfs(path.parent).f_bavail != 0:
        raise AssertionError("the filler did not fill the disk")


def status(url: str, path: str) -> int:
    try:
        with urllib.request.urlopen(url + path, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def post_status(url: str, payload: object) -> int:
    try:
        return post(url, payload)[0]
    except urllib.error.HTTPError as exc:
        return exc.code


def batch(start: int, count: int) -> object:
    """One webhook with ``count`` alerts no rule matches (only the alerts are stored)."""
    return am_payload(
        *[
            am_alert("DiskFillTest", labels={"job": f"svc-{i}", "instance": f"svc-{i}:80"})
            for i in range(start, start + count)
        ]
    )


def test_a_full_disk_fails_readiness_and_ingest_resumes_when_a_little_space_returns(
    tmp_path: Path, small_disk: Path
) -> None:
    with serve(tmp_path, storage=f"sqlite:///{small_disk}/remedy.db") as served:
        url = served.url
        for n in range(5):
            assert post_status(url, batch(n * 20, 20)) == 200
        filler = small_disk / "filler"
        fill(filler)
        n = 10_000
        answers: list[int] = []
        while not answers or answers[-1] == 200:
            answers.append(post_status(url, batch(n, 20)))
            n += 20
            assert len(answers) < 1000, "the disk never filled"
        assert answers[-1] == 503  # storage unavailable: Alertmanager retries
        # remedy gives its WAL's space back when it can: take that too, until it has none.
        for _ in range(10):
            fill(filler)
            time.sleep(1.5)  # its recovery attempts, once a second
            if os.statvfs(small_disk).f_bavail == 0 and status(url, "/readyz") == 503:
                break
        else:
            raise AssertionError("/readyz never failed while the disk was full")
        assert post_status(url, batch(n, 5)) == 503
        assert status(url, "/readyz") == 503
        assert status(url, "/healthz") == 200  # alive: a restart would not help

        # A little space returns: a megabyte of the eight.
        os.truncate(filler, filler.stat().st_size - 1024 * 1024)
        deadline = time.monotonic() + 10
        while status(url, "/readyz") != 200:
            assert time.monotonic() < deadline, "not ready again within 10 s"
            time.sleep(0.2)
        for _ in range(40):  # and not just for a few requests
            n += 20
            assert post_status(url, batch(n, 20)) == 200
        assert status(url, "/readyz") == 200
    assert served.events("store.unwritable")
    assert served.events("store.writable")
