"""``backends.redis`` and ``backends.postgresql`` in remedy.yaml: strict reading, secrets
never echoed, the servers as the allow-list, and what the rules may use."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from receiver.allowlist import compile_allow, denial
from receiver.config import Config
from receiver.configfile import ConfigError, load_config_text
from receiver.preflight import findings
from receiver.ruleset import load_ruleset, registry_for
from rules import RuleLoadError

CONFIG = """
backends:
  redis:
    servers:
      - {url: 'redis://Cache-1:6379', password: {env: REMEDY_TEST_REDIS_PASSWORD}}
      - url: 'rediss://remedy@cache-2'
  postgresql:
    servers:
      - {dsn: 'postgres://remedy@orders-db/postgres', password: {file: pg-password}}
"""


def test_servers_are_read_with_their_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMEDY_TEST_REDIS_PASSWORD", "redis-secret")
    (tmp_path / "pg-password").write_text("pg-secret\n")
    config = load_config_text(CONFIG, "remedy.yaml", base=tmp_path)
    assert config.redis is not None and config.postgresql is not None
    assert [(s.address, s.password) for s in config.redis.servers] == [
        ("redis://cache-1:6379", "redis-secret"),
        ("rediss://remedy@cache-2:6379", None),
    ]
    assert config.redis.allow_flush is False
    assert [(s.address, s.password) for s in config.postgresql.servers] == [
        ("postgresql://remedy@orders-db:5432/postgres", "pg-secret")
    ]
    assert "secret" not in repr(config)
    # the servers are the allow-list, matched whole
    allow = compile_allow(config.allow)
    registry = registry_for(config)

    def step(url: str) -> dict[str, object]:
        return {"action": "redis.delete_keys", "params": {"url": url, "pattern": "a:*", "max": 1}}

    assert denial(registry, allow, [step("redis://CACHE-1")]) is None
    other = step("redis://cache-1:6380")
    assert denial(registry, allow, [other]) == (
        "redis.delete_keys: redis://cache-1:6380 is outside backends.redis.servers"
    )


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "backends:\n  redis:\n    servers:\n      - url: 'redis://:hunter2@cache:6379'\n",
            4,
            "backends.redis.servers[0].url: a password in the URL would be shown",
        ),
        (
            "backends:\n  postgresql:\n    servers:\n      - dsn: 'postgresql://u:hunter2@db/x'\n",
            4,
            "backends.postgresql.servers[0].dsn: a password in the DSN would be shown",
        ),
        # a password holding what ends a userinfo for urlsplit: refused, never quoted
        *(
            (
                f"backends:\n  redis:\n    servers:\n      - url: '{url}'\n",
                4,
                "backends.redis.servers[0].url: a password in the URL would be shown",
            )
            for url in (
                "redis://:hunter2/x@cache:6379",
                "redis://remedy:hunter2?x@cache:6379",
                "redis://:hunter2#x@cache",
                "redis://:hunter2@x@cache:6379",
            )
        ),
        *(
            (
                f"backends:\n  postgresql:\n    servers:\n      - dsn: '{dsn}'\n",
                4,
                "backends.postgresql.servers[0].dsn: a password in the DSN would be shown",
            )
            for dsn in (
                "postgresql://u:hunter2/x@db:5432/x",
                "postgresql://u:hunter2?x@db/x",
                "postgresql://u:hunter2#x@db/x",
                "postgresql://u:hunter2@x@db/x",
            )
        ),
        (
            "backends:\n  redis:\n    servers:\n      - url: 'redis://hunter2/x@cache'\n",
            4,
            "backends.redis.servers[0].url: not a valid URL",
        ),
        (
            "storage: 'postgresql://u:hunter2/x@db:5432/x'\n",
            1,
            "storage: a password in the URL would be shown",
        ),
        ("backends:\n  redis: {allow_flush: true}\n", 2, "backends.redis: servers is required"),
        ("backends:\n  redis: {servers: []}\n", 2, "at least one server is required"),
        (
            "backends:\n  redis:\n    servers: ['redis://cache']\n",
            3,
            "backends.redis.servers[0]: expected a mapping",
        ),
        (
            "backends:\n  redis:\n    servers:\n      - {url: 'redis://cache'}\n"
            "      - {url: 'redis://CACHE:6379'}\n",
            5,
            "redis://cache:6379 is listed twice",
        ),
        (
            "backends:\n  redis:\n    servers:\n      - {url: 'redis://cache', pasword: x}\n",
            4,
            "unknown key 'pasword' (did you mean 'password'?)",
        ),
        (
            "backends:\n  redis:\n    servers:\n      - {url: 'redis://cache/2'}\n",
            4,
            "the database is the action's db",
        ),
    ],
)
def test_a_bad_server_names_file_line_and_field_and_never_the_password(
    text: str, line: int, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "remedy.yaml")
    (problem,) = caught.value.problems
    assert (problem.file, problem.line) == ("remedy.yaml", line)
    assert message in str(problem)
    assert "hunter2" not in str(problem)


FLUSH = """
rules:
  - name: flush-sessions
    match: {alertname: SessionsCorrupt}
    target: redis:sessions
    guards: {rate_limit: {count: 1, per: 1h}}
    actions:
      - action: redis.flushdb
        params: {url: 'redis://cache:6379', db: 3}
"""


def test_flushdb_loads_only_with_allow_flush(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(FLUSH)
    without = load_config_text(
        "backends:\n  redis: {servers: [{url: 'redis://cache'}]}\n", "remedy.yaml"
    )
    with pytest.raises(RuleLoadError, match=re.escape("set backends.redis.allow_flush: true")):
        load_ruleset([str(rules)], registry_for(without))
    allowed = load_config_text(
        "backends:\n  redis: {servers: [{url: 'redis://cache'}], allow_flush: true}\n",
        "remedy.yaml",
    )
    assert len(load_ruleset([str(rules)], registry_for(allowed))) == 1


def test_check_fails_a_live_rule_whose_backend_is_missing(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(FLUSH.replace("redis.flushdb", "redis.delete_keys").replace(
        "db: 3}", "pattern: 'x:*', max: 5}"
    ))  # fmt: skip
    config = Config(rules=(str(rules),), dry_run=False, storage=f"sqlite:///{tmp_path}/r.db")
    ruleset = load_ruleset(config.rules, registry_for(config))
    (problem,) = [f for f in findings(config, ruleset) if f.level == "error"]
    assert "redis.delete_keys needs backends.redis" in problem.message
