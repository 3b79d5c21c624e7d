"""The operator's commands against a running ``remedy serve``, as on-call runs them.

``remedy pending``, ``approve``, ``reject``, ``remediations``, ``pause``,
``resume`` and ``status``, with ``--url``/``--token`` and with ``REMEDY_URL``
/``REMEDY_TOKEN``, and the mistakes they must refuse in one line.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import am_alert, am_payload
from tests.receiver.test_cli import remedy, write
from tests.support.processes import free_port, serve, stop

OPERATOR = "op-secret-1"
VIEWER = "view-secret-1"
RULES = """\
rules:
  - name: warm-cache
    match: {alertname: LowCacheHitRate}
    target: 'cache:{{ labels.instance }}'
    guards: {require_approval: true, approval_timeout: 1h}
    actions:
      - action: http.request
        params: {url: 'http://127.0.0.1:9/{{ labels.instance }}/warm'}
"""
CONFIG = f"""\
rules: [rules.yaml]
log_level: warning
auth:
  webhook_tokens: [{{value: hook-secret, name: alertmanager}}]
  api_tokens:
    - {{value: {OPERATOR}, name: oncall, role: operator}}
    - {{value: {VIEWER}, name: dashboard, role: viewer}}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A server with three remediations waiting for approval (ids 1-3)."""
    work = tmp_path_factory.mktemp("operator")
    write(work / "rules.yaml", RULES)
    write(work / "remedy.yaml", CONFIG)
    port = free_port()
    loop = asyncio.new_event_loop()
    proc = loop.run_until_complete(serve(work, port))
    url = f"http://127.0.0.1:{port}"
    try:
        alerts = [am_alert("LowCacheHitRate", labels={"instance": f"web-{i}"}) for i in (1, 2, 3)]
        request = urllib.request.Request(
            f"{url}/webhook/alertmanager",
            data=json.dumps(am_payload(*alerts)).encode(),
            headers={"Authorization": "Bearer hook-secret", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200
        yield url, work
    finally:
        loop.run_until_complete(stop(proc))
        loop.close()


def as_operator(url: str) -> dict[str, str]:
    return {"REMEDY_URL": url, "REMEDY_TOKEN": OPERATOR}


def test_pending_lists_what_waits_for_a_person(server: tuple[str, Path]) -> None:
    url, work = server
    listed = remedy("pending", "--url", url, "--token", VIEWER, cwd=work)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["ID", "STATE", "MODE", "RULE", "TARGET", "UPDATED", "REASON"]
    pending = [row.split()[:5] for row in rows]
    assert ["1", "pending_approval", "dry-run", "warm-cache", "cache:web-1"] in pending
    as_json = remedy(
        "remediations", "--state", "pending_approval", "-o", "json", cwd=work, env=as_operator(url)
    )
    records = json.loads(as_json.stdout)["remediations"]
    assert {r["target"] for r in records} >= {"cache:web-2", "cache:web-3"}


def test_approve_and_reject_with_a_reason_from_the_environment(server: tuple[str, Path]) -> None:
    url, work = server
    approved = remedy("approve", "2", cwd=work, env=as_operator(url))
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.startswith("remediation 2 approved: warm-cache on cache:web-2")
    rejected = remedy(
        "reject",
        "3",
        "--reason",
        "cache is being rebuilt",
        "-o",
        "json",
        cwd=work,
        env=as_operator(url),
    )
    assert rejected.returncode == 0, rejected.stderr
    record = json.loads(rejected.stdout)["remediation"]
    assert (record["state"], record["reason"]) == ("skipped", "rejected")
    # The reason and who gave it are in the audit log.
    listing = remedy(
        "audit",
        "--url",
        url,
        "--outcome",
        "rejected",
        "--json",
        cwd=work,
        env={"REMEDY_TOKEN": VIEWER},
    )
    assert listing.returncode == 0, listing.stderr
    (event,) = [json.loads(line) for line in listing.stdout.splitlines()]
    assert (event["actor"], event["error"], event["remediation"]) == (
        "oncall",
        "cache is being rebuilt",
        3,
    )
    # Deciding again is a conflict, said in one line.
    again = remedy("approve", "3", cwd=work, env=as_operator(url))
    assert again.returncode == 1
    assert again.stderr.strip().splitlines() == [
        f"remedy: error: {url}/api/v1/remediations/3/approve answered 409:"
        " remediation 3 is skipped, not pending"
    ]


def test_pause_status_and_resume_from_the_environment(server: tuple[str, Path]) -> None:
    url, work = server
    paused = remedy("pause", "--reason", "incident 42", cwd=work, env=as_operator(url))
    assert paused.stdout == "paused by oncall\n", paused.stderr
    status = remedy("status", cwd=work, env=as_operator(url))
    fields = dict(line.split(None, 1) for line in status.stdout.splitlines())
    assert fields["state"].startswith("PAUSED by oncall since ")
    assert fields["state"].endswith(": incident 42")
    assert fields["mode"] == "dry-run"
    resumed = remedy("resume", "-o", "json", cwd=work, env=as_operator(url))
    assert json.loads(resumed.stdout)["paused"] is False, resumed.stderr
    assert json.loads(resumed.stdout)["actor"] == "oncall"


@pytest.mark.parametrize(
    ("args", "token", "expected"),
    [
        (["pending", "--state", "pendng"], OPERATOR, "--state: unknown state 'pendng' (known: "),
        (["approve", "abc"], OPERATOR, "expected a remediation id (a positive number), got 'abc'"),
        (["approve", "0"], OPERATOR, "expected a remediation id"),
        (["approve", "99"], OPERATOR, "answered 404: remediation 99 does not exist"),
        (["approve", "1"], VIEWER, "answered 403"),
        (["pause"], VIEWER, "answered 403"),
        (["approve", "1"], "wrong", "answered 401"),
        (["audit", "--outcome", "faild"], OPERATOR, "--outcome: unknown outcome 'faild' (known: "),
    ],
)
def test_operator_mistakes_are_one_line(
    server: tuple[str, Path], args: list[str], token: str, expected: str
) -> None:
    url, work = server
    if args[0] == "audit":
        args = [*args, "--url", url]
    result = remedy(*args, cwd=work, env={"REMEDY_URL": url, "REMEDY_TOKEN": token})
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert expected in line
    assert token not in line
    still = remedy(
        "remediations", "--state", "pending_approval", "-o", "json", cwd=work, env=as_operator(url)
    )
    assert 1 in [r["id"] for r in json.loads(still.stdout)["remediations"]]


def test_reject_needs_a_reason(server: tuple[str, Path]) -> None:
    url, work = server
    result = remedy("reject", "1", cwd=work, env=as_operator(url))
    assert result.returncode == 2
    assert "--reason" in result.stderr


def test_without_a_server_it_says_where_it_looked(tmp_path: Path) -> None:
    port = free_port()
    result = remedy("pending", cwd=tmp_path, env={"REMEDY_URL": f"http://127.0.0.1:{port}"})
    assert result.returncode == 1
    assert result.stderr == (
        f"remedy: error: cannot reach http://127.0.0.1:{port}/api/v1/remediations:"
        " ClientConnectorError\n"
    )
