"""``remedy serve`` as a process: starts on its config, answers, and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import am_alert, am_payload


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(url: str, proc: subprocess.Popen[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"remedy exited early: {proc.stderr.read() if proc.stderr else ''}"
            )
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("remedy did not become ready")


def post(url: str, payload: object) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        url + "/webhook/alertmanager",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def test_serve_on_defaults_then_sigterm_keeps_every_accepted_alert(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "receiver", "serve", "--listen", f"127.0.0.1:{port}"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_ready(url, proc)
        for i in range(20):
            labels = {"job": f"svc-{i}", "instance": f"svc-{i}:80"}
            status, _ = post(url, am_payload(am_alert("LowCacheHitRate", labels=labels)))
            assert status == 200
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    logs = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    events = [entry["event"] for entry in logs]
    assert "auth.disabled" in events  # it says that it listens on loopback only, and why
    (started,) = [entry for entry in logs if entry["event"] == "service.started"]
    assert started["mode"] == "dry-run: records what it would do, touches nothing"
    assert events[-1] == "service.stopped"
    assert (tmp_path / "remedy.db").exists()
    verify = subprocess.run(
        [sys.executable, "-m", "receiver", "audit", "verify"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    listing = subprocess.run(
        [sys.executable, "-m", "receiver", "audit", "--json", "--outcome", "received"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert len(listing.stdout.splitlines()) == 20
