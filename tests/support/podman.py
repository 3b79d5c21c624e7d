"""A real Docker Engine API for the tests: Debian's podman with runc, on a unix socket.

The session fixture installs podman, runc and busybox-static when missing,
builds a tiny image from the static busybox with ``podman import`` (no
registry is reachable here), and serves the Docker API on a socket of its
own. Containers run with the flags this sandbox needs (SPEC §9).
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from tests.support.engines import ensure_debian_packages, missing

IMAGE = "localhost/remedy-busybox:test"
BUSYBOX = "/bin/busybox"
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


class Podman:
    """The running engine: its Docker API URL, and helpers that use the podman CLI."""

    def __init__(self, socket: Path) -> None:
        self.url = f"unix://{socket}"
        self.created: list[str] = []

    def run(self, name: str | None = None, labels: Mapping[str, str] | None = None) -> str:
        """Start a long-running container; its name (made unique when not given)."""
        return self.run_command([BUSYBOX, "sleep", "100000"], name=name, labels=labels)

    def run_command(
        self,
        command: Sequence[str],
        *,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
        network: str = "none",
    ) -> str:
        """Start a container running ``command`` on ``network``; its name.

        ``network="host"`` shares the host's network namespace, so a server in
        the container listens on the host's loopback like any local process.
        """
        name = name or f"remedy-test-{uuid.uuid4().hex[:8]}"
        argv = ["run", "-d", "--name", name, "--network", network, *LIMITS]
        for key, value in (labels or {}).items():
            argv += ["--label", f"{key}={value}"]
        self.created.append(name)  # removed after the session even if the start fails
        _podman([*argv, IMAGE, *command])
        return name

    def stop(self, name: str) -> None:
        """Stop a container at once (SIGKILL, no grace period): a crash, as a service sees it."""
        _podman(["stop", "--time", "0", name])

    def logs(self, name: str) -> str:
        """What a container wrote to stdout and stderr (empty when it cannot be read)."""
        result = subprocess.run(
            [*PODMAN, "logs", name], capture_output=True, text=True, check=False, timeout=30
        )
        return result.stdout + result.stderr

    def inspect(self, name: str) -> dict[str, object]:
        """``podman inspect``'s State of a container: Status, StartedAt..."""
        out = _podman(["inspect", name])
        state: dict[str, object] = json.loads(out)[0]["State"]
        return state

    def exists(self, name: str) -> bool:
        """Whether a container of that name exists."""
        return subprocess.run([*PODMAN, "container", "exists", name], check=False).returncode == 0

    def remove_all(self) -> None:
        """Remove every container this fixture made."""
        for name in self.created:
            subprocess.run([*PODMAN, "rm", "-f", "-t", "0", name], capture_output=True, check=False)


def _podman(args: list[str]) -> str:
    result = subprocess.run(
        [*PODMAN, *args], capture_output=True, text=True, check=False, timeout=120
    )
    if result.returncode != 0:
        raise RuntimeError(f"podman {args[0]} failed: {result.stderr.strip()}")
    return result.stdout


def _image(workdir: Path) -> None:
    """Import a one-binary busybox image unless it is there already."""
    if subprocess.run([*PODMAN, "image", "exists", IMAGE], check=False).returncode == 0:
        return
    archive = workdir / "busybox.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in ("sh", "sleep"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
    _podman(["import", str(archive), IMAGE])


@pytest.fixture(scope="session")
def podman_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    """Podman serving the Docker API on a unix socket for the whole session."""
    ensure_debian_packages({"podman": "podman", "runc": "runc", BUSYBOX: "busybox-static"})
    workdir = tmp_path_factory.mktemp("podman")
    socket = workdir / "docker.sock"
    try:
        _image(workdir)
    except RuntimeError as exc:
        missing(f"podman cannot build the test image: {exc}")
    log = workdir / "service.log"
    with log.open("wb") as sink:
        service = subprocess.Popen(
            [*PODMAN, "system", "service", "--time", "0", f"unix://{socket}"],
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    deadline = time.monotonic() + 30
    while not socket.exists():
        if service.poll() is not None or time.monotonic() > deadline:
            service.kill()
            service.wait()
            missing(f"podman system service did not start: {log.read_text()[-300:]}")
        time.sleep(0.05)
    engine = Podman(socket)
    try:
        yield engine
    finally:
        engine.remove_all()
        service.terminate()
        try:
            service.wait(timeout=20)
        except subprocess.TimeoutExpired:
            service.kill()
