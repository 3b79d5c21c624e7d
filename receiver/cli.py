"""The ``remedy`` command line: serve, check, test, replay, audit, status, pause, resume.

Every error a user can cause ends in one line on stderr and a non-zero exit;
a traceback is a bug. The commands that load rules, actions or the server
import them when they run, so that ``remedy audit`` and ``remedy status``
answer without loading every action's SDK.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from receiver import logs
from receiver.auditquery import audit_query
from receiver.clock import SystemClock
from receiver.config import BackendError, Config, is_postgresql
from receiver.configfile import ConfigError, load_config
from receiver.ingest import PayloadError
from receiver.remote import (
    RemoteError,
    follow_remote,
    post_control,
    read_remote,
    read_status,
    verify_remote,
)
from receiver.store.base import AuditQuery, StoreCorrupt, StoreUnavailable
from receiver.store.postgres import PostgresStore
from receiver.store.sqlite import SQLiteStore
from rules import RuleLoadError
from rules.duration import parse_duration


class UsageError(Exception):
    """A mistake on the command line or in a file the user named."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="remedy", description="Auto-remediation receiver for alerts.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = commands.add_parser("serve", help="run the service")
    serve.add_argument("--config", help="config file (default: built-in defaults, dry-run)")
    serve.add_argument("--listen", help="HOST:PORT to listen on (overrides the config)")

    check = commands.add_parser("check", help="validate the config and rule files")
    check.add_argument("--config")
    check.add_argument("rules", nargs="*", help="rule files, directories or globs")

    test = commands.add_parser("test", help="show what an alert would trigger; runs nothing")
    test.add_argument("--alert", required=True, help="webhook body file, or - for stdin")
    test.add_argument("--config")
    test.add_argument("--json", action="store_true", help="machine-readable output")

    replay = commands.add_parser(
        "replay", help="what-if: a recorded alert stream through the rules and guards"
    )
    replay.add_argument("stream", help='NDJSON file (or -): {"received_at": ..., "body": ...}')
    replay.add_argument("--config")
    replay.add_argument("--json", action="store_true", help="machine-readable output")
    replay.add_argument(
        "--until", help="let timers run on after the last line: a time, or a duration after it"
    )

    for name, text in (("pause", "stop all new executions"), ("resume", "lift a pause")):
        control = commands.add_parser(name, help=f"{text} on a running server")
        control.add_argument("--url", default="http://127.0.0.1:9095")
        control.add_argument("--token", help="operator API token (or REMEDY_TOKEN)")
        control.add_argument("--reason", help="recorded in the audit log")

    status = commands.add_parser("status", help="a running server's state: pause, held work")
    status.add_argument("--url", default=os.environ.get("REMEDY_URL", "http://127.0.0.1:9095"))
    status.add_argument("--token", help="API token (or REMEDY_TOKEN)")
    status.add_argument("-o", "--output", choices=("table", "json"), default="table")

    audit = commands.add_parser("audit", help="read the audit log")
    _audit_source_args(audit)
    audit.add_argument("--since", help="RFC 3339 time or duration ago, e.g. 1h")
    audit.add_argument("--until")
    audit.add_argument("--rule")
    audit.add_argument("--target")
    audit.add_argument("--outcome", help="event (succeeded, skipped...) or reason (duplicate...)")
    audit.add_argument("--alert", help="alert fingerprint")
    audit.add_argument("--limit", type=int, default=100)
    audit.add_argument("--follow", action="store_true", help="keep printing new events")
    audit.add_argument("--json", action="store_true", help="one JSON event per line")
    audit_commands = audit.add_subparsers(dest="audit_command", parser_class=_Parser)
    verify = audit_commands.add_parser("verify", help="check the audit hash chain")
    _audit_source_args(verify)
    return parser


def _audit_source_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config")
    parser.add_argument("--url", help="read from a running server instead of the local store")
    parser.add_argument("--token", help="API token for --url (or REMEDY_TOKEN)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``remedy`` console script."""
    args = _parser().parse_args(argv)
    logs.configure("warning")  # serve sets its own level; other commands keep stdout clean
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "check":
            return _check(args)
        if args.command == "test":
            return _test(args)
        if args.command == "replay":
            return _replay(args)
        if args.command in ("pause", "resume"):
            return asyncio.run(_control(args))
        if args.command == "status":
            return asyncio.run(_status(args))
        if args.command == "audit":
            if args.audit_command == "verify":
                return asyncio.run(_audit_verify(args))
            return asyncio.run(_audit(args))
    except RuleLoadError as exc:
        for problem in exc.problems:
            sys.stderr.write(f"{problem}\n")
        return 1
    except ConfigError as exc:
        for problem in exc.problems:
            sys.stderr.write(f"{problem}\n")
        return 1
    except (UsageError, StoreUnavailable, StoreCorrupt, RemoteError, BackendError) as exc:
        sys.stderr.write(f"remedy: error: {exc}\n")
        return 1
    except PayloadError as exc:
        sys.stderr.write(f"remedy: error: invalid alert: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug; still one line, with what to report
        sys.stderr.write(f"remedy: internal error: {type(exc).__name__}: {exc}\n")
        return 70
    raise AssertionError(args.command)  # argparse only admits the commands above


def _read_input(path: str) -> str:
    """A file's text, or standard input for ``-``; a user error when it cannot be read."""
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text") from None


def _config(path: str | None) -> Config:
    if path is None:
        return Config()
    return load_config(Path(path))


# -- serve --------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    from receiver import listener  # noqa: PLC0415 - the server, only to serve
    from receiver.app import build_app, build_service  # noqa: PLC0415

    config = _config(args.config)
    if args.listen:
        host, sep, port = args.listen.rpartition(":")
        if not sep or not port.isascii() or not port.isdigit() or not 0 <= int(port) < 65536:
            raise UsageError(
                f"--listen expects HOST:PORT with a port up to 65535, got {args.listen!r}"
            )
        host = host.strip("[]") or "127.0.0.1"
        config = dataclasses.replace(config, host=host, port=int(port))
    if config.auth is None and not _is_loopback(config.host):
        raise UsageError(
            f"refusing to listen on {config.host}: without an auth section remedy listens "
            "only on loopback (configure auth: or listen on 127.0.0.1)"
        )
    logs.configure(config.log_level)
    # The store's writer thread and the event loop share the GIL; the default 5 ms
    # switch interval would make every request wait for the writer's turn.
    sys.setswitchinterval(0.0005)
    service = build_service(config)
    if config.auth is None:
        logs.warn_no_auth(config.host, config.port)
    try:
        listener.serve(build_app(service), config, service.metrics)
    except OSError as exc:
        raise UsageError(f"cannot listen on {config.host}:{config.port}: {exc.strerror}") from None
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- check and test -----------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    from receiver.ruleset import load_ruleset, registry_for  # noqa: PLC0415 - the actions

    config = _config(args.config)
    sources = tuple(args.rules) or config.rules
    ruleset = load_ruleset(sources, registry_for(config))
    print(f"OK: {len(ruleset)} rules, version {ruleset.version}")
    return 0


def _test(args: argparse.Namespace) -> int:

    config = _config(args.config)
    report = asyncio.run(_describe(_read_input(args.alert), config))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(_render_report(report))
    return 0


async def _describe(text: str, config: Config) -> dict[str, Any]:
    """Ask the guards against the configured store, or an empty one when there is none yet."""
    from receiver.dryrun import describe_alerts  # noqa: PLC0415 - the actions
    from receiver.ruleset import load_ruleset, registry_for  # noqa: PLC0415

    ruleset = load_ruleset(config.rules, registry_for(config))
    with tempfile.TemporaryDirectory(prefix="remedy-test-") as tmp:
        store: SQLiteStore | PostgresStore
        if is_postgresql(config.storage):
            store = PostgresStore(config.storage, config.storage_password, readonly=True)
        elif config.sqlite_path.exists():
            store = SQLiteStore(config.sqlite_path, readonly=True)
        else:
            store = SQLiteStore(Path(tmp) / "empty.db")
        await store.open()
        try:
            return await describe_alerts(text, ruleset, config, store)
        finally:
            await store.close()


def _render_report(report: dict[str, Any]) -> str:
    lines = []
    for item in report["alerts"]:
        alert = item["alert"]
        lines.append(f"alert {alert['name']} ({alert['status']}, {alert['fingerprint']})")
        if not item["matches"]:
            lines.append("  no rule matches")
        for match in item["matches"]:
            lines.append(f"  rule {match['rule']} -> target {match['target']}: {match['decision']}")
            if match.get("error"):
                lines.append(f"    error: {match['error']}")
            for step in match["actions"]:
                lines.append(f"    {step['action']} {json.dumps(step['params'], sort_keys=True)}")
    return "\n".join(lines)


# -- replay and operator controls ---------------------------------------------


def _replay(args: argparse.Namespace) -> int:
    from receiver.replay import read_stream, replay  # noqa: PLC0415 - the whole pipeline

    config = _config(args.config)
    deliveries = read_stream(_read_input(args.stream).splitlines(), args.stream)
    until = _until(args.until, deliveries[-1].received_at) if args.until and deliveries else None
    report = asyncio.run(replay(deliveries, config, until))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for item in report["decisions"]:
        print(
            f"{item['at']}  #{item['remediation']:<5} {item['decision']:<14} "
            f"rule={item['rule']}  target={item['target']}"
        )
    totals = ", ".join(f"{n} {decision}" for decision, n in report["totals"].items())
    print(f"{len(report['decisions'])} remediations: {totals or 'none'}")
    return 0


def _until(text: str, last: datetime) -> datetime:
    """``--until``: a duration after the last line, or a time."""
    with contextlib.suppress(ValueError):
        return last + timedelta(seconds=parse_duration(text))
    try:
        until = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--until expects a time or a duration, got {text!r}") from None
    if until.tzinfo is None:
        raise UsageError("--until needs a time with a timezone")
    return until


async def _control(args: argparse.Namespace) -> int:
    result = await post_control(args.url, args.token, args.command, args.reason)
    print(f"{'paused' if result.get('paused') else 'resumed'} by {result.get('actor')}")
    return 0


async def _status(args: argparse.Namespace) -> int:
    state = await read_status(args.url, args.token)
    if args.output == "json":
        print(json.dumps(state, indent=2, sort_keys=True))
    else:
        print(_render_status(state))
    return 0


def _render_status(state: dict[str, Any]) -> str:
    """``remedy status`` as a small table: the pause first, then what waits."""
    pause = state.get("pause")
    if isinstance(pause, dict):
        why = f": {pause.get('reason')}" if pause.get("reason") else ""
        mode = f"PAUSED by {pause.get('actor')} since {pause.get('since')}{why}"
    else:
        mode = "PAUSED" if state.get("paused") else "running"
    breakers = state.get("breakers") or {}
    counts = state.get("remediations") or {}
    rows = [
        ("state", mode),
        ("held", str(state.get("held", 0))),
        ("mode", "dry-run" if state.get("dry_run") else "live"),
        ("breakers", ", ".join(f"{k} ({v})" for k, v in breakers.items()) or "none open"),
        ("queue", f"{state.get('queue_depth')} (oldest {state.get('oldest_queued_age_seconds')}s)"),
        ("remediations", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"),
        ("rules", f"{state.get('rules')} (version {state.get('rules_version')})"),
        ("storage", str(state.get("storage"))),
    ]
    return "\n".join(f"{key:<13} {value}" for key, value in rows)


# -- audit --------------------------------------------------------------------


def _query(args: argparse.Namespace) -> dict[str, str]:
    return {
        key: str(value)
        for key in ("since", "until", "rule", "target", "outcome", "alert", "limit")
        if (value := getattr(args, key)) is not None
    }


async def _audit(args: argparse.Namespace) -> int:
    if args.url:
        events = await read_remote(args.url, args.token, _query(args))
        _print_events(events, args.json)
        if args.follow:
            await follow_remote(args.url, args.token, lambda e: _print_events([e], args.json))
        return 0
    store = await _open_local(args.config)
    try:
        query = _checked_query(_query(args))
        events = [e.to_dict() for e in await store.audit(query)]
        _print_events(events, args.json)
        if args.follow:
            last = max((e["id"] for e in events), default=0)
            while True:
                await asyncio.sleep(1)
                newer = await store.audit(_follow_query(query, last))
                if newer:
                    _print_events([e.to_dict() for e in newer], args.json)
                    last = max(e.id for e in newer)
    finally:
        await store.close()
    return 0


def _follow_query(query: AuditQuery, after: int) -> AuditQuery:
    return dataclasses.replace(query, after_id=after, before_id=None, limit=1000)


def _checked_query(params: dict[str, str]) -> AuditQuery:
    try:
        return audit_query(params, SystemClock().now())
    except PayloadError as exc:
        raise UsageError(f"--{exc.field}: {exc.message}") from None


async def _audit_verify(args: argparse.Namespace) -> int:
    if args.url:
        result = await verify_remote(args.url, args.token)
    else:
        store = await _open_local(args.config)
        try:
            result = (await store.verify()).to_dict()
        finally:
            await store.close()
    if result["ok"]:
        print(f"OK {result['events']} events")
    else:
        sys.stderr.write(f"FAIL at event {result['first_bad_id']}: {result.get('reason')}\n")
    if pruned := result.get("pruned"):
        print(
            f"{pruned['events']} older events were pruned by retention (through"
            f" #{pruned['through']}, last at {pruned['at']}): the chain is checked from there"
        )
    return 0 if result["ok"] else 1


async def _open_local(config_path: str | None) -> SQLiteStore | PostgresStore:
    config = _config(config_path)
    if is_postgresql(config.storage):
        database = PostgresStore(config.storage, config.storage_password, readonly=True)
        await database.open()
        return database
    path = config.sqlite_path
    if not path.exists():
        raise UsageError(f"no audit store at {path} (use --config or --url)")
    store = SQLiteStore(path, readonly=True)
    await store.open()
    return store


def _print_events(events: Sequence[dict[str, Any]], as_json: bool) -> None:
    ordered = sorted(events, key=lambda e: e["id"])
    for event in ordered:
        if as_json:
            print(json.dumps(event, sort_keys=True))
        else:
            print(format_event(event))
    sys.stdout.flush()


def format_event(event: dict[str, Any]) -> str:
    """One readable line per audit event."""
    alert = event.get("alert") or {}
    parts = [event["ts"], f"#{event['id']}", f"{event['event']:<12}"]
    if alert:
        parts.append(f"alert={alert.get('name')}[{alert.get('status')}]")
    for key in ("rule", "target", "action", "reason"):
        if event.get(key):
            parts.append(f"{key}={event[key]}")
    if event.get("duration_ms") is not None:
        parts.append(f"{event['duration_ms']}ms")
    if event.get("actor") not in (None, "system"):
        parts.append(f"actor={event['actor']}")
    if event.get("error"):
        parts.append(f"error={json.dumps(event['error'])}")
    return "  ".join(parts)
