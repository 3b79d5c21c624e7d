"""The ``remedy`` command as a user runs it: a real subprocess, its exit code and its lines."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from receiver.audit import OUTCOMES, AuditRecord
from receiver.configfile import load_config_text
from receiver.store.sqlite import SQLiteStore
from remediations import builtin_registry
from rules import DEFAULT_RULES_DIR, Problem, load_rules
from tests.conftest import am_alert, am_payload
from tests.support.cloudwatch import alarm


def remedy(
    *args: str, cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "receiver", *args],
        cwd=cwd,
        env={**os.environ, **env} if env else None,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


GOOD = """\
rules:
  - name: warm
    match: {alertname: LowCacheHitRate}
    target: 'cache:{{ labels.instance }}'
    actions:
      - action: http.request
        params: {url: 'http://{{ labels.instance }}/warm', headers: {Authorization: secret-x}}
"""


def test_check_accepts_the_shipped_defaults(tmp_path: Path) -> None:
    result = remedy("check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shipped = load_rules([DEFAULT_RULES_DIR], builtin_registry())
    assert result.stdout.startswith(f"OK: {len(shipped)} rules")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules:\n  - name: a\n    target: x\n   actions: []\n", "bad.yaml:4: invalid YAML"),
        (
            GOOD.replace("    target:", "    targett:"),
            "bad.yaml:4: rule warm: unknown key 'targett' (did you mean 'target'?)",
        ),
        (
            GOOD.replace(
                "match: {alertname: LowCacheHitRate}", "match: {matchers: ['job=~\"(\"']}"
            ),
            "bad.yaml:3: rule warm: match.matchers[0]: ",
        ),
        (
            GOOD.replace("http.request", "http.requests"),
            "bad.yaml:6: rule warm: actions[0].action: unknown action 'http.requests'",
        ),
        (
            GOOD.replace("url:", "uri:"),
            "bad.yaml:7: rule warm: actions[0].params.uri: unknown parameter",
        ),
        (
            GOOD.replace("'http://{{ labels.instance }}/warm'", "'gopher://x/warm'"),
            "bad.yaml:7: rule warm: actions[0].params.url: expected an http:// or https:// URL",
        ),
        (
            GOOD.replace("action: http.request", "action: command.run").replace(
                "url: 'http://{{ labels.instance }}/warm'", "argv: [/usr/bin/true]"
            ),
            "bad.yaml:7: rule warm: actions[0].params: command.run is off:"
            " set backends.command.enabled: true",
        ),
    ],
    ids=[
        "bad-yaml",
        "unknown-key",
        "bad-regex",
        "unknown-action",
        "unknown-param",
        "bad-url",
        "command-off",
    ],
)
def test_check_names_file_line_rule_and_field(tmp_path: Path, text: str, expected: str) -> None:
    write(tmp_path / "bad.yaml", text)
    result = remedy("check", "bad.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert any(line.startswith(expected) for line in result.stderr.splitlines()), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("listen: 9095\n", "remedy.yaml:1: listen: expected a non-empty string, got 9095"),
        ("colour: blue\n", "remedy.yaml:1: unknown key 'colour'"),
        ("retention: 30m\n", "remedy.yaml:1: retention: must be at least 1d"),
        (
            "auth:\n  webhook_tokens: [{value: x}]\n"
            "  api_tokens: [{env: REMEDY_NOPE, role: operator}]\n",
            "remedy.yaml:3: auth.api_tokens[0].env: environment variable REMEDY_NOPE is not set",
        ),
        (
            "auth:\n  webhook_tokens: [{value: x}]\n  api_tokens: [{value: x, role: admin}]\n",
            "remedy.yaml:3: auth.api_tokens[0].role: expected one of viewer, operator",
        ),
        (
            "storage: mysql://remedy:hunter2@db/remedy\n",
            "remedy.yaml:1: storage: expected sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE,"
            " got 'mysql://<redacted>@db/remedy'",
        ),
        (
            "storage: postgresql://remedy:hunter2@db/remedy\n",
            "remedy.yaml:1: storage: a password in the URL would be shown wherever the URL is",
        ),
        ("storage: postgresql://db\n", "remedy.yaml:1: storage: expected postgresql://USER@HOST"),
        (
            "storage_password: {value: hunter2}\n",
            "remedy.yaml:1: storage_password: only a postgresql:// storage takes a password",
        ),
        (
            "storage_lease: 10s\n",
            "remedy.yaml:1: storage_lease: only a postgresql:// storage has replica leases",
        ),
        (
            "storage: postgresql://remedy@db/remedy\nstorage_lease: 500ms\n",
            "remedy.yaml:2: storage_lease: expected at least 1s",
        ),
        (
            "storage: postgresql://remedy@db/remedy\nstorage_password: {env: REMEDY_NOPE}\n",
            "remedy.yaml:2: storage_password.env: environment variable REMEDY_NOPE is not set",
        ),
        (
            "backends:\n  docker: {url: /var/run/docker.sock}\n",
            "remedy.yaml:2: backends.docker.url: expected unix://PATH or tcp://HOST:PORT",
        ),
        (
            "backends:\n  docker: {allow: ['(']}\n",
            "remedy.yaml:2: backends.docker.allow[0]: invalid regular expression",
        ),
        (
            "backends:\n  command: {enabled: true}\n",
            "remedy.yaml:2: backends.command.allow: is required with enabled: true",
        ),
        (
            "backends:\n  aws: {allow_queues: ['-dlq$']}\n",
            "remedy.yaml:2: backends.aws: region is required",
        ),
        (
            "sns:\n  insufficient_data: panic\n",
            "remedy.yaml:2: sns.insufficient_data: expected one of ignore, firing, resolved",
        ),
        (
            "backends:\n  kubernetes: {kubeconfig: k, in_cluster: true}\n",
            "remedy.yaml:2: backends.kubernetes.kubeconfig: give kubeconfig or in_cluster",
        ),
        ("http:\n  max_conections: 10\n", "remedy.yaml:2: http: unknown key 'max_conections'"),
        ("http:\n  idle_timeout: 0s\n", "remedy.yaml:2: http.idle_timeout: duration '0s' must be"),
        (
            "auth:\n  api_tokens: [{value: x, role: viewer}]\n",
            "remedy.yaml:2: auth: webhook_tokens: at least one token is required",
        ),
    ],
)
def test_config_errors_are_one_line_each(tmp_path: Path, text: str, expected: str) -> None:
    write(tmp_path / "remedy.yaml", text)
    result = remedy("check", "--config", "remedy.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(expected), result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "hunter2" not in result.stderr


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "deep.json").write_text("[" * 100_000)
    for args in (
        ["frobnicate"],
        ["test"],
        ["audit", "--limit", "many"],
        ["test", "--alert", "missing.json"],
        ["audit"],
        ["serve", "--listen", "nowhere"],
        ["serve", "--listen", "127.0.0.1:99999"],
        ["test", "--alert", "binary.json"],
        ["test", "--alert", "deep.json"],
        ["audit", "--url", "http://user:hunter2@127.0.0.1:1"],
    ):
        result = remedy(*args, cwd=tmp_path)
        assert result.returncode != 0, args
        assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert "hunter2" not in result.stderr


def test_serve_on_a_port_in_use_says_so(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = remedy("serve", "--listen", f"127.0.0.1:{port}", cwd=tmp_path)
    assert result.returncode == 1
    assert f"remedy: error: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_public_address_without_auth(tmp_path: Path) -> None:
    result = remedy("serve", "--listen", "0.0.0.0:0", cwd=tmp_path)
    assert result.returncode == 1
    assert "refusing to listen on 0.0.0.0" in result.stderr


def test_test_shows_matches_and_rendered_actions_without_running(tmp_path: Path) -> None:
    write(tmp_path / "rules.yaml", GOOD)
    write(tmp_path / "remedy.yaml", "dry_run: false\nrules: [rules.yaml]\n")
    payload = am_payload(
        am_alert("LowCacheHitRate", labels={"instance": "web-1:80"}),
        am_alert("LowCacheHitRate", labels={"job": "x"}),
        am_alert("Other"),
    )
    write(tmp_path / "alert.json", json.dumps(payload))
    result = remedy(
        "test", "--alert", "alert.json", "--config", "remedy.yaml", "--json", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    first, missing, other = report["alerts"]
    (match,) = first["matches"]
    assert match["target"] == "cache:web-1:80"
    assert match["decision"] == "would run"
    assert match["actions"][0]["params"]["url"] == "http://web-1:80/warm"
    assert match["actions"][0]["params"]["headers"]["Authorization"] == "<redacted>"
    assert missing["matches"][0]["decision"] == "skipped (template_error)"
    assert "instance" in missing["matches"][0]["error"]
    assert other["matches"] == []
    human = remedy(
        "test", "--alert", "-", "--config", "remedy.yaml", cwd=tmp_path, stdin=json.dumps(payload)
    )
    assert "rule warm -> target cache:web-1:80: would run" in human.stdout
    assert not (tmp_path / "remedy.db").exists()


def test_test_rejects_a_malformed_alert_in_one_line(tmp_path: Path) -> None:
    result = remedy(
        "test",
        "--alert",
        "-",
        cwd=tmp_path,
        stdin='{"version": "4", "status": "firing", "alerts": 3}',
    )
    assert result.returncode == 1
    assert result.stderr == "remedy: error: invalid alert: alerts: must be a list\n"


def test_audit_reads_and_verifies_the_local_store(tmp_path: Path) -> None:

    async def fill() -> None:
        store = SQLiteStore(tmp_path / "remedy.db")
        await store.open()
        for reason in ("one", "two", "three"):
            await store.record([AuditRecord("paused", actor="oncall", reason=reason)])
        await store.close()

    asyncio.run(fill())
    listing = remedy("audit", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert [line.split()[1] for line in lines] == ["#1", "#2", "#3"]
    assert "reason=two" in lines[1] and "actor=oncall" in lines[1]
    as_json = remedy("audit", "--json", "--outcome", "paused", "--limit", "2", cwd=tmp_path)
    assert [json.loads(line)["id"] for line in as_json.stdout.splitlines()] == [2, 3]
    ok = remedy("audit", "verify", cwd=tmp_path)
    assert (ok.returncode, ok.stdout) == (0, "OK 3 events\n")
    with sqlite3.connect(tmp_path / "remedy.db") as conn:
        conn.execute("UPDATE audit SET data = replace(data, 'two', 'TWO') WHERE id = 2")
    bad = remedy("audit", "verify", cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stderr.startswith("FAIL at event 2:")


def test_audit_without_a_store_says_so(tmp_path: Path) -> None:
    result = remedy("audit", "verify", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "remedy: error: no audit store at remedy.db (use --config or --url)\n"


def test_test_asks_the_guards_against_the_store(tmp_path: Path) -> None:
    write(tmp_path / "rules.yaml", GOOD)
    write(tmp_path / "remedy.yaml", "rules: [rules.yaml]\n")
    payload = json.dumps(am_payload(am_alert("LowCacheHitRate", labels={"instance": "w:80"})))

    async def pause() -> None:
        store = SQLiteStore(tmp_path / "remedy.db")
        await store.open()
        await store.set_paused(True, "oncall", "maintenance", pause_hold=3600)
        await store.close()

    asyncio.run(pause())
    result = remedy(
        "test", "--alert", "-", "--config", "remedy.yaml", "--json", cwd=tmp_path, stdin=payload
    )
    assert result.returncode == 0, result.stderr
    (match,) = json.loads(result.stdout)["alerts"][0]["matches"]
    assert match["decision"] == (
        "held (paused): remedy is paused; it goes through the guards again at resume"
    )
    with sqlite3.connect(tmp_path / "remedy.db") as conn:  # and it wrote nothing
        assert conn.execute("SELECT COUNT(*) FROM remediations").fetchone()[0] == 0


def test_pause_and_resume_a_running_server(tmp_path: Path) -> None:
    port_sock = socket.socket()
    port_sock.bind(("127.0.0.1", 0))
    port = port_sock.getsockname()[1]
    port_sock.close()
    token = "op-token-123"
    write(
        tmp_path / "remedy.yaml",
        (
            "auth:\n"
            "  webhook_tokens: [{value: wh}]\n"
            f"  api_tokens: [{{value: {token}, name: oncall, role: operator}}]\n"
            "log_level: warning\n"
        ),
    )
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "receiver",
            "serve",
            "--config",
            "remedy.yaml",
            "--listen",
            f"127.0.0.1:{port}",
        ],
        cwd=tmp_path,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            probe = remedy(
                "pause", "--url", url, "--token", token, "--reason", "deploy", cwd=tmp_path
            )
            if probe.returncode == 0:
                break
        assert probe.stdout == "paused by oncall\n", probe.stderr
        shown = remedy("status", "--url", url, "--token", token, cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        lines = dict(line.split(None, 1) for line in shown.stdout.splitlines())
        assert lines["state"].startswith("PAUSED by oncall since ")
        assert lines["state"].endswith(": deploy")
        assert lines["held"] == "0"
        as_json = remedy(
            "status", "-o", "json", cwd=tmp_path, env={"REMEDY_URL": url, "REMEDY_TOKEN": token}
        )
        assert json.loads(as_json.stdout)["pause"]["reason"] == "deploy", as_json.stderr
        wrong = remedy("resume", "--url", url, "--token", "nope", cwd=tmp_path)
        assert wrong.returncode == 1
        assert wrong.stderr.startswith("remedy: error: ")
        assert "401" in wrong.stderr
        resumed = remedy("resume", "--url", url, "--token", token, cwd=tmp_path)
        assert resumed.stdout == "resumed by oncall\n"
    finally:
        server.terminate()
        server.wait(timeout=30)
    listing = remedy("audit", "--outcome", "paused", "--json", cwd=tmp_path)
    (event,) = [json.loads(line) for line in listing.stdout.splitlines()]
    assert (event["actor"], event["reason"]) == ("oncall", "deploy")


def test_test_reads_an_sns_delivered_cloudwatch_alarm(tmp_path: Path) -> None:
    write(
        tmp_path / "rules.yaml",
        (
            "rules:\n"
            "  - name: redrive\n"
            "    match: {source: cloudwatch, alertname: orders-dlq-depth}\n"
            "    target: 'sqs:{{ labels.QueueName }}'\n"
            "    actions:\n"
            "      - action: http.request\n"
            "        params: {url: 'http://127.0.0.1:1/redrive/{{ labels.QueueName }}'}\n"
        ),
    )
    write(tmp_path / "remedy.yaml", "rules: [rules.yaml]\n")
    delivery = {"Type": "Notification", "MessageId": "m", "Message": json.dumps(alarm())}
    result = remedy(
        "test",
        "--alert",
        "-",
        "--config",
        "remedy.yaml",
        "--json",
        cwd=tmp_path,
        stdin=json.dumps(delivery),
    )
    assert result.returncode == 0, result.stderr
    (match,) = json.loads(result.stdout)["alerts"][0]["matches"]
    assert (match["rule"], match["target"]) == ("redrive", "sqs:orders-dlq")


def test_version_names_the_installed_package() -> None:
    result = remedy("--version", cwd=Path.cwd())
    assert result.returncode == 0
    assert result.stdout == f"remedy {importlib.metadata.version('remedy')}\n"


def test_a_config_file_without_dry_run_stays_dry_run(tmp_path: Path) -> None:
    write(tmp_path / "rules.yaml", GOOD)
    write(tmp_path / "remedy.yaml", "rules: [rules.yaml]\nlog_level: warning\n")
    checked = remedy("check", "--config", "remedy.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "\nmode     dry-run: records what it would do, touches nothing\n" in checked.stdout
    write(tmp_path / "alert.json", json.dumps(am_payload(GOOD_ALERT)))
    tried = remedy("test", "--alert", "alert.json", "--config", "remedy.yaml", cwd=tmp_path)
    assert "rule warm -> target cache:web-1:80: dry_run" in tried.stdout, tried.stderr


GOOD_ALERT = am_alert("LowCacheHitRate", labels={"instance": "web-1:80"})
DOCKER_RULE = """\
rules:
  - name: restart-web
    match: {alertname: ServiceDown}
    target: 'container:web'
    actions:
      - action: docker.restart
        params: {container: web}
"""


WHEN_RULE = """\
rules:
  - name: still-down
    match: {alertname: ServiceDown}
    target: 'svc:{{ labels.job }}'
    when:
      - query: 'up{job="{{ labels.job }}"} == 0'
    actions:
      - {action: http.request, params: {url: 'http://127.0.0.1:9/restart'}}
"""


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            "listen: 0.0.0.0:9095\n",
            "remedy.yaml:1: refusing to listen on 0.0.0.0: without an auth section",
        ),
        (
            "log_level: info\nstorage: sqlite:///missing/remedy.db\n",
            "remedy.yaml:2: storage: the directory {tmp}/missing does not exist",
        ),
        (
            "dry_run: false\nrules: [docker.yaml]\n",
            "docker.yaml:6: rule restart-web: docker.restart needs backends.docker, which the"
            " config lacks: it would fail every time",
        ),
        (
            "dry_run: false\nrules: [when.yaml]\n",
            "when.yaml:6: rule still-down: when: needs backends.prometheus, which the config"
            " lacks: every remediation would end precondition_error",
        ),
        (
            "backends:\n  prometheus: {timeout: 3s}\n",
            "remedy.yaml:2: backends.prometheus: url is required (http://HOST:9090)",
        ),
        (  # a header may be a secret: the error never repeats it
            "backends:\n  prometheus: {url: 'http://p:9090', headers: {X-Key: 8812734561234}}\n",
            "remedy.yaml:2: backends.prometheus.headers.X-Key: expected a quoted string",
        ),
        (
            "auth:\n  webhook_tokens: [{env: REMEDY_TEST_UNSET_TOKEN}]\n",
            "remedy.yaml:2: auth.webhook_tokens[0].env: environment variable"
            " REMEDY_TEST_UNSET_TOKEN is not set or empty",
        ),
        (
            "auth:\n  webhook_tokens: [{value: x}]\n"
            "  api_tokens: [{file: no-such-token, name: ops, role: operator}]\n",
            "remedy.yaml:3: auth.api_tokens[0].file: cannot read no-such-token:"
            " No such file or directory",
        ),
    ],
)
def test_check_fails_on_what_serve_refuses_or_cannot_do(
    tmp_path: Path, config: str, expected: str
) -> None:
    write(tmp_path / "docker.yaml", DOCKER_RULE)
    write(tmp_path / "when.yaml", WHEN_RULE)
    write(tmp_path / "remedy.yaml", config)
    result = remedy("check", "--config", "remedy.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert expected.format(tmp=tmp_path) in result.stderr.splitlines()[0]
    assert "Traceback" not in result.stderr
    assert "8812734561234" not in result.stderr
    assert result.stdout == ""


def test_check_no_secrets_warns_and_prints_what_it_loaded(tmp_path: Path) -> None:
    write(tmp_path / "docker.yaml", DOCKER_RULE)
    write(tmp_path / "rules.yaml", GOOD)
    write(
        tmp_path / "remedy.yaml",
        (
            "dry_run: false\nrules: [docker.yaml, rules.yaml]\n"
            "backends: {docker: {url: 'unix:///run/docker.sock', allow: ['^web$']}}\n"
            "auth:\n  webhook_tokens: [{env: REMEDY_TEST_UNSET_TOKEN}]\n"
        ),
    )
    result = remedy("check", "--no-secrets", "--config", "remedy.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "warning: remedy.yaml:5: auth.webhook_tokens[0].env: environment variable"
        " REMEDY_TEST_UNSET_TOKEN is not set or empty\n"
    )
    lines = result.stdout.splitlines()
    assert lines[0].startswith("OK: 2 rules, version ")
    shown = [line.split(None, 1) for line in lines[1:]]
    assert shown == [
        ["mode", "LIVE: rules act on their targets"],
        ["config", "remedy.yaml"],
        ["listen", "127.0.0.1:9095 (auth: tokens required)"],
        ["storage", "sqlite:///./remedy.db"],
        ["rules", "docker.yaml (1)"],
        ["rules", "rules.yaml (1)"],
        ["actions", "docker.restart, http.request"],
    ]


def test_check_warns_about_dry_run_rules_that_could_not_run_live(tmp_path: Path) -> None:
    write(tmp_path / "docker.yaml", DOCKER_RULE)
    result = remedy("check", "docker.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "warning: backends.docker is not configured: 1 dry-run rule would fail if it ran"
        " live (restart-web)\n"
    )
    assert "\nmode     dry-run: " in result.stdout


def test_test_says_why_a_rule_for_the_alert_did_not_match(tmp_path: Path) -> None:
    write(
        tmp_path / "rules.yaml",
        GOOD.replace(
            "match: {alertname: LowCacheHitRate}",
            "match: {alertname: LowCacheHitRate, matchers: ['env=~\"prod|staging\"']}",
        ),
    )
    write(tmp_path / "remedy.yaml", "rules: [rules.yaml]\n")
    payload = am_payload(
        am_alert("LowCacheHitRate", labels={"instance": "a", "env": "dev"}),
        am_alert("LowCacheHitRate", labels={"instance": "b"}),
        am_alert("LowCacheHitRate", "resolved", labels={"instance": "c", "env": "prod"}),
    )
    write(tmp_path / "alert.json", json.dumps(payload))
    result = remedy("test", "--alert", "alert.json", "--config", "remedy.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    why = [line.strip() for line in result.stdout.splitlines() if "does not match" in line]
    assert why == [
        "rule warm does not match: matcher env=~\"prod|staging\": env is 'dev'",
        'rule warm does not match: matcher env=~"prod|staging": env is absent',
        "rule warm does not match: status: the rule takes firing alerts, this one is resolved",
    ]


def test_audit_reads_the_local_store_without_the_configs_secrets(tmp_path: Path) -> None:
    write(
        tmp_path / "remedy.yaml",
        "auth:\n  webhook_tokens: [{value: x}]\n"
        "  api_tokens: [{env: REMEDY_TEST_UNSET_TOKEN, name: ops, role: operator}]\n",
    )

    async def seed() -> None:
        store = SQLiteStore(tmp_path / "remedy.db")
        await store.open()
        await store.record([AuditRecord("paused", actor="ops", reason="drill")])
        await store.close()

    asyncio.run(seed())
    result = remedy("audit", "--config", "remedy.yaml", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (event,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert (event["event"], event["reason"]) == ("paused", "drill")
    served = remedy("serve", "--config", "remedy.yaml", cwd=tmp_path)  # serve still needs them
    assert served.returncode == 1
    assert "REMEDY_TEST_UNSET_TOKEN is not set" in served.stderr


def test_the_readmes_config_example_loads_with_an_absolute_store(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    start = readme.index("```yaml\nlisten: 0.0.0.0:9095")
    example = readme[start + len("```yaml\n") : readme.index("```", start + 7)]
    unresolved: list[Problem] = []
    config = load_config_text(example, "remedy.yaml", base=tmp_path, unresolved=unresolved)
    assert config.sqlite_path == Path("/var/lib/remedy/remedy.db")
    assert config.dry_run is False
    assert {p.message.split(":")[0] for p in unresolved} == {
        "auth.webhook_tokens[0].env",
        "auth.webhook_tokens[1].file",
        "auth.api_tokens[0].file",
        "auth.api_tokens[1].env",
        "backends.prometheus.headers.Authorization.env",
        "backends.redis.servers[0].password.env",
        "backends.redis.servers[1].password.file",
        "backends.postgresql.servers[0].password.env",
    }
    assert config.redis is not None and config.postgresql is not None


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["pen"], ["pending"]),
        (["re"], ["remediations", "reject", "replay", "resume"]),
        (["pending", "--state", "pe"], ["pending_approval"]),
        (["audit", "--outcome", "rate"], ["rate_limited"]),
        (["status", "-o", ""], ["table", "json"]),
        (["reject", "7", "--r"], ["--reason"]),
        (["audit", "ver"], ["verify"]),
    ],
)
def test_bash_completion_offers_what_the_commands_take(
    tmp_path: Path, words: list[str], expected: list[str]
) -> None:
    script = remedy("completion", "bash", cwd=tmp_path)
    assert script.returncode == 0, script.stderr
    write(tmp_path / "remedy.bash", script.stdout)
    quoted = " ".join(f"'{word}'" for word in ["remedy", *words])
    shell = subprocess.run(
        [
            "bash",
            "-c",
            f"source remedy.bash; COMP_WORDS=({quoted}); COMP_CWORD={len(words)}; _remedy;"
            ' printf "%s\\n" "${COMPREPLY[@]}"',
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert sorted(shell.stdout.split()) == sorted(expected)
    zsh = remedy("completion", "zsh", cwd=tmp_path)
    assert zsh.stdout.startswith("autoload -U +X bashcompinit && bashcompinit\n")
    assert "complete -F _remedy remedy" in zsh.stdout


AM_CONFIG = """\
route:
  receiver: remedy
receivers:
  - name: remedy
    webhook_configs:
      - url: http://remedy:9095/webhook/alertmanager
        send_resolved: {resolved}
        max_alerts: {max_alerts}
        http_config:
          authorization: {{type: Bearer, credentials_file: am-token}}
"""


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, []),
        (
            {"resolved": "false"},
            [
                "alertmanager.yml:7: receiver remedy: send_resolved: false — remedy would never"
                " hear that an alert resolved (resolves cancel waiting work and verify fixes)"
            ],
        ),
        (
            {"token": "stale-token"},
            [
                "alertmanager.yml:10: receiver remedy: its bearer token is not one of remedy's"
                " auth.webhook_tokens: every delivery would be answered 401"
            ],
        ),
        (
            {"max_alerts": "5"},
            [
                "warning: alertmanager.yml:8: receiver remedy: max_alerts: 5 — Alertmanager"
                " drops the alerts of a group beyond it, and remedy never sees them (use 0)"
            ],
        ),
        (
            {"url": "http://remedy:9095/api/v1/alerts"},
            [
                "alertmanager.yml: no receiver has a webhook_config whose url ends in"
                " /webhook/alertmanager: Alertmanager sends remedy nothing"
            ],
        ),
    ],
)
def test_check_alertmanager_delivers_resolves_with_remedys_token(
    tmp_path: Path, change: dict[str, str], expected: list[str]
) -> None:
    settings = {"resolved": "true", "max_alerts": "0", "token": "hook-secret"} | change
    text = AM_CONFIG.format(**settings)
    if "url" in change:
        text = text.replace("http://remedy:9095/webhook/alertmanager", change["url"])
    write(tmp_path / "alertmanager.yml", text)
    write(tmp_path / "am-token", settings["token"] + "\n")
    write(tmp_path / "remedy.yaml", "auth:\n  webhook_tokens: [{value: hook-secret}]\n")
    result = remedy(
        "check", "--config", "remedy.yaml", "--alertmanager", "alertmanager.yml", cwd=tmp_path
    )
    problems = [line for line in result.stderr.splitlines() if "alertmanager.yml" in line]
    assert problems == expected
    failed = any(not line.startswith("warning: ") for line in expected)
    assert result.returncode == (1 if failed else 0), result.stderr


def test_check_the_shipped_deployment_against_the_shipped_alertmanager_config() -> None:
    root = Path(__file__).parents[2]
    result = remedy(
        "check",
        "--no-secrets",
        "--config",
        "deploy/compose/remedy.yaml",
        "--alertmanager",
        "deploy/alertmanager/alertmanager.yml",
        cwd=root,
    )
    assert result.returncode == 0, result.stderr
    assert "alertmanager.yml" not in result.stderr


@pytest.mark.parametrize(
    ("http_config", "expected"),
    [
        ("basic_auth: {username: am, password_file: secrets/pw}", []),
        ("basic_auth: {username: am, password: wrong}", ["basic auth for user am is not one"]),
        ("bearer_token_file: secrets/pw", []),
        ("bearer_token: nope", ["its bearer token is not one of remedy's"]),
        ("authorization: {type: Token, credentials: x}", ["authorization type Token"]),
        ("{}", ["sends no credentials"]),
    ],
)
def test_check_alertmanager_reads_files_beside_its_config_and_every_credential(
    tmp_path: Path, http_config: str, expected: list[str]
) -> None:
    """Alertmanager reads relative files from its config's folder; a token without a
    username takes any basic-auth user, as remedy's server does."""
    (tmp_path / "am" / "secrets").mkdir(parents=True)
    write(tmp_path / "am" / "secrets" / "pw", "s3cret\n")
    write(tmp_path / "am" / "url", "http://remedy:9095/webhook/alertmanager\n")
    write(
        tmp_path / "am" / "alertmanager.yml",
        "route: {receiver: remedy}\nreceivers:\n  - name: remedy\n    webhook_configs:\n"
        f"      - url_file: url\n        http_config: {{{http_config}}}\n"
        if not http_config.startswith("{")
        else "route: {receiver: remedy}\nreceivers:\n  - name: remedy\n    webhook_configs:\n"
        "      - url_file: url\n",
    )
    write(tmp_path / "remedy.yaml", "auth:\n  webhook_tokens: [{value: s3cret}]\n")
    result = remedy(
        "check", "--config", "remedy.yaml", "--alertmanager", "am/alertmanager.yml", cwd=tmp_path
    )
    problems = [line for line in result.stderr.splitlines() if "alertmanager.yml" in line]
    assert len(problems) == len(expected), result.stderr
    for line, words in zip(problems, expected, strict=True):
        assert words in line
    assert result.returncode == (1 if expected else 0), result.stderr


def test_every_reason_the_code_writes_is_one_the_filters_know() -> None:
    """``--outcome`` and ``?outcome=`` refuse unknown words: every reason written must be known."""
    root = Path(__file__).parents[2] / "receiver"
    patterns = (
        r'reason="([a-z_]+)"',
        r'Decision\("([a-z_]+)"',
        r'Move\("skipped", "([a-z_]+)"',
        r'\("skipped", "([a-z_]+)"',
        r'\("rejected", "([a-z_]+)"',
    )
    written = set()
    for source in root.rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        for pattern in patterns:
            written.update(re.findall(pattern, text))
        if source.name == "sns_signature.py":
            written.update(f"sns_{w}" for w in re.findall(r'SignatureError\(\s*"([a-z_]+)"', text))
        if source.name == "webhooks.py":
            written.update(
                f"sns_{w}" for w in re.findall(r'_sns_rejected\([^)]*?"([a-z_]+)"', text, re.S)
            )
    written -= {"allowed", "running"}  # guard decisions that let it run: no event carries them
    assert written, "the patterns found nothing: the test would pass whatever the code writes"
    assert {"sns_topic", "sns_bad_signature", "cooldown"} <= written
    assert written - set(OUTCOMES) == set()
