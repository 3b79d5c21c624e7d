"""Real Prometheus and Alertmanager for the tests: Debian's binaries as subprocesses (SPEC §9).

The ``monitoring`` fixture installs the Debian packages ``prometheus`` and
``prometheus-alertmanager`` when they are missing, starts each server on a
free loopback port with its config, data and log in the test's tmp dir, and
stops them after the test, whatever happened. Alertmanager runs with its
cluster (gossip) off, Prometheus with the resend delay its evaluation
interval allows, so alerts move in seconds rather than minutes.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.support.engines import ensure_debian_packages

PROMETHEUS = "prometheus"
ALERTMANAGER = "prometheus-alertmanager"  # Debian's name for the alertmanager binary
START_DEADLINE = 60.0  # seconds; only so that a server that never gets ready cannot hang a test


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Daemon:
    """One server process, its base URL and its log file."""

    def __init__(self, name: str, argv: list[str], url: str, workdir: Path) -> None:
        self.name = name
        self.url = url
        self.log = workdir / f"{name}.log"
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(
                argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink
            )

    def tail(self, lines: int = 25) -> str:
        """The end of the log, to put in a failure message."""
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return f"--- {self.name}: no log ---"
        return f"--- {self.name} log (last {lines} lines) ---\n" + "\n".join(
            text.splitlines()[-lines:]
        )

    async def get_json(self, path: str, **params: str) -> Any:
        """GET ``path`` of the server's HTTP API; the decoded JSON."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}{path}", params=params) as response,
        ):
            response.raise_for_status()
            return await response.json()

    async def get_text(self, path: str) -> str:
        """GET ``path`` as text (``/metrics``)."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}{path}") as response,
        ):
            response.raise_for_status()
            return await response.text()

    async def ready(self) -> None:
        """Wait until ``/-/ready`` answers 200; fail with the log if the process dies or hangs."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_DEADLINE
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode}\n{self.tail()}")
            try:
                await self.get_text("/-/ready")
            except aiohttp.ClientError:
                pass
            else:
                return
            if loop.time() > deadline:
                pytest.fail(f"{self.name} was not ready after {START_DEADLINE:.0f}s\n{self.tail()}")
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        """Terminate the process and reap it (kill it if it does not stop)."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Prometheus(Daemon):
    """A running Prometheus: instant queries and the alerts it holds."""

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """The result vector of an instant query (``/api/v1/query``)."""
        body = await self.get_json("/api/v1/query", query=expr)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def value(self, expr: str) -> float | None:
        """The value of a query that yields at most one series; ``None`` for none."""
        result = await self.query(expr)
        if not result:
            return None
        assert len(result) == 1, f"{expr} gave {len(result)} series: {result}"
        return float(result[0]["value"][1])


class Alertmanager(Daemon):
    """A running Alertmanager; its own metrics say how its notifications went."""

    async def counter(self, name: str, **labels: str) -> float:
        """The sum of a counter's samples whose labels include ``labels`` (0 when none)."""
        total = 0.0
        for line in (await self.get_text("/metrics")).splitlines():
            series, _, value = line.rpartition(" ")
            if not series.startswith(f"{name}{{") and series != name:
                continue
            if all(f'{key}="{val}"' in series for key, val in labels.items()):
                total += float(value)
        return total


class Monitoring:
    """Starts Prometheus and Alertmanager for one test; the fixture stops them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.daemons: list[Daemon] = []

    async def alertmanager(self, config: Mapping[str, Any]) -> Alertmanager:
        """Start Alertmanager with ``config`` (alertmanager.yml as a mapping), gossip off."""
        workdir = self._dir("alertmanager")
        config_file = _write_yaml(workdir / "alertmanager.yml", config)
        port = free_port()
        argv = [
            ALERTMANAGER,
            f"--config.file={config_file}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # a single instance: no gossip, no peer wait
            "--log.level=debug",  # the log then shows each notification and its answer
        ]
        daemon = Alertmanager("alertmanager", argv, f"http://127.0.0.1:{port}", workdir)
        self.daemons.append(daemon)
        await daemon.ready()
        return daemon

    async def prometheus(
        self, config: Mapping[str, Any], rules: Mapping[str, Any] | None = None
    ) -> Prometheus:
        """Start Prometheus with ``config`` (prometheus.yml as a mapping) and a rule file.

        ``rules`` becomes ``rules.yml`` beside the config, and the config's
        ``rule_files`` names it.
        """
        workdir = self._dir("prometheus")
        settings = dict(config)
        if rules is not None:
            _write_yaml(workdir / "rules.yml", rules)
            settings["rule_files"] = ["rules.yml"]  # relative to the config file
        config_file = _write_yaml(workdir / "prometheus.yml", settings)
        port = free_port()
        argv = [
            PROMETHEUS,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            # Firing alerts are sent again at most this often (default 1m); the
            # first notification and the resolved one are sent at once anyway.
            "--rules.alert.resend-delay=1s",
        ]
        daemon = Prometheus("prometheus", argv, f"http://127.0.0.1:{port}", workdir)
        self.daemons.append(daemon)
        await daemon.ready()
        return daemon

    def tails(self) -> str:
        """Every started server's log tail, for failure messages."""
        return "\n".join(daemon.tail() for daemon in self.daemons)

    def stop(self) -> None:
        """Stop every server, last started first."""
        for daemon in reversed(self.daemons):
            daemon.stop()

    def _dir(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir()
        return path


def _write_yaml(path: Path, content: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(content), sort_keys=False))
    return path


@pytest.fixture
def monitoring(tmp_path: Path) -> Iterator[Monitoring]:
    """Real Prometheus and Alertmanager, started by the test, stopped after it."""
    ensure_debian_packages({PROMETHEUS: "prometheus", ALERTMANAGER: "prometheus-alertmanager"})
    stack = Monitoring(tmp_path / "monitoring")
    stack.workdir.mkdir()
    try:
        yield stack
    finally:
        stack.stop()
