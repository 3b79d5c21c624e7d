"""``remedy serve`` under idle and slow clients: the webhook keeps answering, the log stays small.

Each test runs the real ``remedy serve`` as a process, with a file limit of
its own where that matters, and real sockets: idle connections, slow bodies,
more connections than descriptors.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import am_alert, am_payload
from tests.receiver.test_serve import free_port, post, wait_ready
from tests.support.engines import missing


class Served:
    """A running ``remedy serve`` and its log file."""

    def __init__(self, proc: subprocess.Popen[str], url: str, port: int, log: Path) -> None:
        self.proc = proc
        self.url = url
        self.port = port
        self.log = log

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def events(self, name: str) -> list[dict[str, object]]:
        found = []
        for line in self.lines():
            if line.startswith("{") and f'"{name}"' in line:
                entry = json.loads(line)
                if entry.get("event") == name:
                    found.append(entry)
        return found


@contextlib.contextmanager
def serve(
    tmp_path: Path,
    config: str = "",
    *,
    files: tuple[int, int] | None = None,
    storage: str = "sqlite:///remedy.db",
) -> Iterator[Served]:
    """Start ``remedy serve`` on a free port; ``files`` is its (soft, hard) open-file limit."""
    port = free_port()
    (tmp_path / "remedy.yaml").write_text(
        f"listen: 127.0.0.1:{port}\nstorage: {storage}\ndry_run: true\n{config}"
    )
    log = tmp_path / "stderr.log"

    def limit() -> None:
        if files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, files)

    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "receiver", "serve", "--config", "remedy.yaml"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
            preexec_fn=limit,  # noqa: PLW1509 - only setrlimit, before exec
        )
    served = Served(proc, f"http://127.0.0.1:{port}", port, log)
    try:
        try:
            wait_ready(served.url, proc)
        except AssertionError as exc:
            raise AssertionError(f"{exc} {log.read_text()}") from None
        yield served
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def idle_connections(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` TCP connections that send nothing, closed on exit."""
    opened: list[socket.socket] = []
    try:
        for _ in range(count):
            with contextlib.suppress(OSError):  # past the backlog a connect may time out
                opened.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        yield opened
    finally:
        for sock in opened:
            sock.close()


def alert(i: int) -> object:
    return am_payload(am_alert("FloodTest", labels={"job": f"svc-{i}", "instance": f"svc-{i}:80"}))


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) within ``within`` seconds."""
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


@pytest.fixture
def many_files() -> Iterator[None]:
    """This test process opens more than a thousand sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 4096:
        if hard != resource.RLIM_INFINITY and hard < 4096:
            missing(f"the test needs 4096 open files, the hard limit is {hard}: raise it")
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_webhooks_are_answered_while_1100_idle_connections_exceed_a_1024_file_limit(
    tmp_path: Path, many_files: None
) -> None:
    with (
        serve(tmp_path, files=(1024, 1024)) as served,
        idle_connections(served.port, 1100) as idle,
    ):
        assert len(idle) == 1100
        started = time.monotonic()
        for i in range(20):
            status, body = post(served.url, alert(i))
            assert status == 200, body
        assert time.monotonic() - started < 30  # generous: it used to take 75 s each
        # The longest idle connections made room; the newest are still open.
        assert closed_by_server(idle[0], within=5)
        assert not closed_by_server(idle[-1], within=0.2)
    lines = served.lines()
    (listening,) = served.events("http.listening")
    assert listening["open_files"] == 1024
    assert listening["max_connections"] == 768  # the rest is kept for the store and backends
    # Evicted sockets close on the loop's next turn, so a burst of connects can still meet
    # the file limit for a moment: then it is one throttled line, never a flood.
    failed = [line for line in lines if "Too many open files" in line]
    assert len(failed) == len(served.events("http.accept_failed")) <= 3
    assert not [line for line in lines if "Traceback" in line]
    assert len(served.events("http.connection_closed")) <= 3  # once per 10 s, with a count
    assert len(lines) < 100


def test_failing_accepts_are_logged_once_per_interval_and_counted(
    tmp_path: Path, many_files: None
) -> None:
    # A bound above what the file limit allows: accept() runs out of descriptors.
    with serve(tmp_path, "http: {max_connections: 5000}\n", files=(1024, 1024)) as served:
        with idle_connections(served.port, 1100):
            time.sleep(3)
        failures = served.events("http.accept_failed")
        assert 1 <= len(failures) <= 2, failures
        assert failures[0]["error"] == "Too many open files"
        deadline = time.monotonic() + 20
        while True:  # the idle connections are gone: it answers again
            try:
                with urllib.request.urlopen(served.url + "/metrics", timeout=5) as response:
                    metrics = response.read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
    counted = [
        line for line in metrics.splitlines() if line.startswith("remedy_http_accept_errors")
    ]
    assert float(counted[0].split()[-1]) >= len(failures)
    assert not [line for line in served.lines() if "Traceback" in line]


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """remedy with short timeouts and a small bound, started under a soft file limit of 256."""
    config = (
        "http:\n"
        "  max_connections: 8\n"
        "  header_timeout: 1s\n"
        "  body_timeout: 3s\n"
        "  idle_timeout: 2s\n"
    )
    with serve(tmp_path_factory.mktemp("strict"), config, files=(256, 1024)) as served:
        yield served


def raw_request(port: int, head: str, body: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(head.replace("\n", "\r\n").encode() + body)
    return sock


def webhook_head(length: int) -> str:
    return (
        "POST /webhook/alertmanager HTTP/1.1\nHost: 127.0.0.1\n"
        f"Content-Type: application/json\nContent-Length: {length}\n\n"
    )


def test_the_file_limit_is_raised_to_its_hard_maximum_at_start(strict: Served) -> None:
    (listening,) = strict.events("http.listening")
    assert listening["open_files"] == 1024
    assert listening["max_connections"] == 8  # as configured


def test_a_connection_that_sends_no_request_is_closed_after_the_header_timeout(
    strict: Served,
) -> None:
    partial_head = "POST /webhook/alertmanager HTTP/1.1\nHost: x"
    with (
        socket.create_connection(("127.0.0.1", strict.port)) as silent,
        raw_request(strict.port, partial_head) as partial,
    ):
        started = time.monotonic()
        assert closed_by_server(silent, within=10)
        assert closed_by_server(partial, within=10)
        assert time.monotonic() - started < 5


def test_a_slow_body_is_answered_408_after_the_body_timeout(strict: Served) -> None:
    with raw_request(strict.port, webhook_head(1000), b'{"version": "4", ') as slow:
        started = time.monotonic()
        answer = slow.recv(65536).decode()
        assert time.monotonic() - started < 10
    assert answer.startswith("HTTP/1.1 408"), answer
    assert "did not arrive within 3s" in answer


def test_an_idle_kept_alive_connection_is_closed_after_the_idle_timeout(strict: Served) -> None:
    body = json.dumps(alert(1)).encode()
    with raw_request(strict.port, webhook_head(len(body)), body) as conn:
        assert conn.recv(65536).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert closed_by_server(conn, within=10)
        assert 1 < time.monotonic() - started < 8


def test_at_the_bound_the_longest_idle_connection_makes_room(strict: Served) -> None:
    with idle_connections(strict.port, 8) as idle:
        status, _ = post(strict.url, alert(2))
        assert status == 200
        assert closed_by_server(idle[0], within=0.5)  # well before its header timeout


def test_at_the_bound_with_every_connection_busy_a_newcomer_gets_503(strict: Served) -> None:
    busy = [raw_request(strict.port, webhook_head(100), b"{") for _ in range(8)]
    try:
        time.sleep(0.2)  # their handlers are waiting for the rest of the bodies
        with socket.create_connection(("127.0.0.1", strict.port), timeout=5) as newcomer:
            answer = newcomer.recv(65536).decode()
        assert answer.startswith("HTTP/1.1 503"), answer
        assert answer.endswith('{"error": "too many connections"}\n')
    finally:
        for sock in busy:
            sock.close()


def test_serve_reads_bodies_as_sent_and_undoes_gzip_itself(strict: Served) -> None:
    plain = json.dumps(alert(3)).encode()
    head = webhook_head(len(plain)).replace("\n\n", "\nContent-Encoding: br\n\n")
    with raw_request(strict.port, head, plain) as conn:
        answer = conn.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 415"), answer
    assert '"field": "Content-Encoding"' in answer
    packed = gzip.compress(plain)
    head = webhook_head(len(packed)).replace("\n\n", "\nContent-Encoding: gzip\n\n")
    with raw_request(strict.port, head, packed) as conn:
        assert conn.recv(65536).startswith(b"HTTP/1.1 200")
