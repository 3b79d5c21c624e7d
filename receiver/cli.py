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
import importlib.metadata
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from receiver import completion, logs
from receiver.audit import OUTCOMES
from receiver.auditquery import audit_query
from receiver.clock import SystemClock
from receiver.config import BackendError, Config, is_postgresql
from receiver.configfile import ConfigError, load_config
from receiver.ingest import PayloadError
from receiver.remote import (
    RemoteError,
    decide_remote,
    follow_remote,
    post_control,
    read_remediations,
    read_remote,
    read_status,
    verify_remote,
)
from receiver.store.base import STATES, AuditQuery, StoreCorrupt, StoreUnavailable
from receiver.store.postgres import PostgresStore
from receiver.store.sqlite import SQLiteStore
from rules import Problem, RuleLoadError, RuleSet
from rules.duration import parse_duration


class UsageError(Exception):
    """A mistake on the command line or in a file the user named."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


DEFAULT_URL = "http://127.0.0.1:9095"


def _version() -> str:
    try:
        return importlib.metadata.version("remedy")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="remedy", description="Auto-remediation receiver for alerts.")
    parser.add_argument("--version", action="version", version=f"remedy {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = commands.add_parser("serve", help="run the service")
    serve.add_argument("--config", help="config file (default: built-in defaults, dry-run)")
    serve.add_argument("--listen", help="HOST:PORT to listen on (overrides the config)")

    check = commands.add_parser("check", help="validate the config and rule files")
    check.add_argument("--config")
    check.add_argument("rules", nargs="*", help="rule files, directories or globs")
    check.add_argument(
        "--alertmanager",
        metavar="FILE",
        help="also check that this Alertmanager config delivers to remedy",
    )
    check.add_argument(
        "--no-secrets",
        action="store_true",
        help="an {env:} or {file:} secret that cannot be read is a warning (for CI)",
    )

    test = commands.add_parser("test", help="show what an alert would trigger; runs nothing")
    test.add_argument("--alert", help="webhook body file, or - for stdin")
    test.add_argument("--config")
    test.add_argument("--json", action="store_true", help="machine-readable output")
    test_commands = test.add_subparsers(dest="test_command", parser_class=_Parser)
    rule_tests = test_commands.add_parser(
        "rules", help="run rule unit tests (timelines and expected remediations)"
    )
    rule_tests.add_argument("files", nargs="+", help="test files")

    replay = commands.add_parser(
        "replay", help="what-if: a recorded alert stream through the rules and guards"
    )
    replay.add_argument("stream", help='NDJSON file (or -): {"received_at": ..., "body": ...}')
    replay.add_argument("--config")
    replay.add_argument("--json", action="store_true", help="machine-readable output")
    replay.add_argument(
        "--until", help="let timers run on after the last line: a time, or a duration after it"
    )

    pause = commands.add_parser("pause", help="stop all new executions on a running server")
    _remote_args(pause)
    pause.add_argument("--reason", help="recorded in the audit log and shown with the pause")
    resume = commands.add_parser("resume", help="lift a pause and close open breakers")
    _remote_args(resume)
    resume.add_argument("--breaker", help="close only this breaker (e.g. scope:prod); keep a pause")
    resume.add_argument("--reason", help="recorded in the audit log")

    status = commands.add_parser("status", help="a running server's state: pause, held work")
    _remote_args(status)

    listing = commands.add_parser(
        "remediations",
        aliases=["pending"],
        help="a running server's remediations (pending: those awaiting approval)",
    )
    _remote_args(listing)
    listing.add_argument(
        "--state",
        action="append",
        help=f"only these states (repeat or comma-separate): {', '.join(STATES)}",
    )
    decisions = {"approve": "let a pending remediation run", "reject": "refuse it, saying why"}
    for name, text in decisions.items():
        decide = commands.add_parser(name, help=text)
        _remote_args(decide)
        decide.add_argument("id", help="the remediation's id")
        if name == "reject":
            decide.add_argument("--reason", required=True, help="why: kept in the audit log")

    completion = commands.add_parser(
        "completion", help="shell completion: source <(remedy completion bash)"
    )
    completion.add_argument("shell", choices=("bash", "zsh"))

    audit = commands.add_parser("audit", help="read the audit log")
    _audit_source_args(audit)
    audit.add_argument("--since", help="RFC 3339 time or duration ago, e.g. 1h")
    audit.add_argument("--until")
    audit.add_argument("--rule")
    audit.add_argument("--target")
    audit.add_argument(
        "--outcome", help="an event (succeeded, skipped...) or a reason (duplicate, cooldown...)"
    )
    audit.add_argument("--alert", help="alert fingerprint")
    audit.add_argument("--limit", type=int, default=100)
    audit.add_argument("--follow", action="store_true", help="keep printing new events")
    audit.add_argument("--json", action="store_true", help="one JSON event per line")
    audit_commands = audit.add_subparsers(dest="audit_command", parser_class=_Parser)
    verify = audit_commands.add_parser("verify", help="check the audit hash chain")
    _audit_source_args(verify)
    return parser


def _remote_args(parser: argparse.ArgumentParser) -> None:
    """``--url``, ``--token`` and ``-o`` of the commands that ask a running server."""
    parser.add_argument(
        "--url",
        default=os.environ.get("REMEDY_URL", DEFAULT_URL),
        help=f"the server (default: REMEDY_URL, else {DEFAULT_URL})",
    )
    parser.add_argument("--token", help="API token (default: REMEDY_TOKEN)")
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")


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
        if args.command == "completion":
            values = {"--state": STATES, "--outcome": OUTCOMES}
            print(completion.script(_parser(), args.shell, values), end="")
            return 0
        if args.command in REMOTE_COMMANDS:
            return asyncio.run(REMOTE_COMMANDS[args.command](args))
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


def _config(path: str | None, unresolved: list[Problem] | None = None) -> Config:
    if path is None:
        return Config()
    return load_config(Path(path), unresolved)


# -- serve --------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    from receiver import listener, preflight  # noqa: PLC0415 - the server, only to serve
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
    service = build_service(config)
    found = preflight.findings(config, service.planner.rules)
    if refusals := [finding for finding in found if finding.refuses]:
        raise UsageError(refusals[0].message)
    logs.configure(config.log_level)
    for finding in found:
        if finding.level == "error":  # what cannot work; check also shows the warnings
            logs.warn_preflight(str(finding))
    # The store's writer thread and the event loop share the GIL; the default 5 ms
    # switch interval would make every request wait for the writer's turn.
    sys.setswitchinterval(0.0005)
    if config.auth is None:
        logs.warn_no_auth(config.host, config.port)
    try:
        listener.serve(build_app(service), config, service.metrics)
    except OSError as exc:
        raise UsageError(f"cannot listen on {config.host}:{config.port}: {exc.strerror}") from None
    return 0


# -- check and test -----------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    from receiver import preflight  # noqa: PLC0415 - with the rules, the actions
    from receiver.ruleset import load_ruleset, registry_for  # noqa: PLC0415

    unresolved: list[Problem] | None = [] if args.no_secrets else None
    config = _config(args.config, unresolved)
    sources = tuple(args.rules) or config.rules
    ruleset = load_ruleset(sources, registry_for(config))
    found = [
        *(preflight.Finding("warning", "", str(p)) for p in unresolved or ()),
        *preflight.findings(config, ruleset),
    ]
    if args.alertmanager:
        from receiver.amcheck import check_alertmanager  # noqa: PLC0415 - only when asked

        tokens_known = not any(
            p.message.startswith("auth.webhook_tokens") for p in unresolved or ()
        )
        found += check_alertmanager(Path(args.alertmanager), config, tokens_known=tokens_known)
    for finding in found:
        label = "" if finding.level == "error" else "warning: "
        sys.stderr.write(f"{label}{finding}\n")
    if errors := sum(1 for finding in found if finding.level == "error"):
        sys.stderr.write(f"remedy: check failed: {errors} problem{'s' * (errors > 1)}\n")
        return 1
    print(f"OK: {len(ruleset)} rules, version {ruleset.version}")
    print(_render_loaded(config, ruleset, preflight.mode(config, ruleset)))
    return 0


def _render_loaded(config: Config, ruleset: RuleSet, mode: str) -> str:
    """What ``remedy check`` loaded, in the words an operator checks before serving."""
    files: dict[str, int] = {}
    actions: set[str] = set()
    for rule in ruleset:
        files[rule.file] = files.get(rule.file, 0) + 1
        actions.update(step.action for step in (*rule.actions, *rule.on_failure))
    auth = "tokens required" if config.auth else "none: loopback only"
    rows = [
        ("mode", mode),
        ("config", config.file or "built-in defaults"),
        ("listen", f"{config.host}:{config.port} (auth: {auth})"),
        ("storage", config.storage),
        *(("rules", f"{file} ({n})") for file, n in files.items()),
        ("actions", ", ".join(sorted(actions)) or "none"),
    ]
    return "\n".join(f"{key:<8} {value}" for key, value in rows)


def _test(args: argparse.Namespace) -> int:
    if args.test_command == "rules":
        return _test_rules(args.files)
    if args.alert is None:
        raise UsageError("test needs --alert FILE (or: remedy test rules FILE...)")

    config = _config(args.config)
    report = asyncio.run(_describe(_read_input(args.alert), config))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(_render_report(report))
    return 0


def _test_rules(files: Sequence[str]) -> int:
    """Every case of every file: PASS or FAIL with its differences; exit 1 on any failure."""
    from receiver.ruletests import RuleTestError, run_file  # noqa: PLC0415 - the pipeline

    failed = 0
    for name in files:
        try:
            outcomes = asyncio.run(run_file(Path(name)))
        except RuleTestError as exc:
            raise UsageError(str(exc)) from None
        for outcome in outcomes:
            if not outcome.differences:
                print(f"PASS {name}: {outcome.name}")
                continue
            failed += 1
            print(f"FAIL {name}: {outcome.name}")
            for difference in outcome.differences:
                print(f"  {difference}")
    return 1 if failed else 0


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
        for miss in item["not_matched"]:
            lines.append(f"  rule {miss['rule']} does not match: {miss['why']}")
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


async def _pause(args: argparse.Namespace) -> int:
    result = await post_control(args.url, args.token, "pause", {"reason": args.reason})
    _emit(args, result, f"paused by {result.get('actor')}")
    return 0


async def _resume(args: argparse.Namespace) -> int:
    params = {"reason": args.reason, "breaker": args.breaker}
    result = await post_control(args.url, args.token, "resume", params)
    if args.breaker:
        _emit(args, result, f"breaker {args.breaker} closed by {result.get('actor')}")
    else:
        _emit(args, result, f"resumed by {result.get('actor')}")
    return 0


async def _status(args: argparse.Namespace) -> int:
    state = await read_status(args.url, args.token)
    _emit(args, state, _render_status(state))
    return 0


async def _remediations(args: argparse.Namespace) -> int:
    states = [s for given in args.state or () for s in given.split(",") if s]
    if unknown := [s for s in states if s not in STATES]:
        raise UsageError(f"--state: unknown state {unknown[0]!r} (known: {', '.join(STATES)})")
    if args.command == "pending" and not states:
        states = ["pending_approval"]
    records = await read_remediations(args.url, args.token, states)
    _emit(args, {"remediations": records}, _render_remediations(records))
    return 0


async def _decide(args: argparse.Namespace) -> int:
    if not (args.id.isascii() and args.id.isdigit()) or not 0 < int(args.id) < 2**62:
        raise UsageError(f"expected a remediation id (a positive number), got {args.id!r}")
    reason = getattr(args, "reason", None)
    if reason is not None and not reason.strip():
        raise UsageError("--reason must say why: it is what the audit log keeps")
    result = await decide_remote(args.url, args.token, int(args.id), args.command, reason)
    rem = result["remediation"]
    done = "approved" if args.command == "approve" else "rejected"
    text = f"remediation {rem.get('id')} {done}: {rem.get('rule')} on {rem.get('target')}"
    if result.get("message"):
        text += f" ({result['message']})"
    _emit(args, result, text)
    return 0


REMOTE_COMMANDS = {
    "pause": _pause,
    "resume": _resume,
    "status": _status,
    "remediations": _remediations,
    "pending": _remediations,
    "approve": _decide,
    "reject": _decide,
}


def _emit(args: argparse.Namespace, document: Any, table: str) -> None:
    """A remote command's answer: the server's JSON with ``-o json``, else ``table``."""
    print(json.dumps(document, indent=2, sort_keys=True) if args.output == "json" else table)


def _render_remediations(records: Sequence[dict[str, Any]]) -> str:
    """One line per remediation, in the server's order (oldest first), as amtool lists alerts."""
    if not records:
        return "no remediations"
    header = ("ID", "STATE", "MODE", "RULE", "TARGET", "UPDATED", "REASON")
    rows = [
        (
            str(r.get("id")),
            str(r.get("state")),
            "dry-run" if r.get("dry_run") else "live",
            str(r.get("rule")),
            str(r.get("target")),
            str(r.get("updated_at")),
            str(r.get("reason") or ""),
        )
        for r in records
    ]
    return _columns([header, *rows])


def _columns(rows: Sequence[Sequence[str]]) -> str:
    """Rows as aligned columns, two spaces apart; the last column is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join([*padded, row[-1]]).rstrip())
    return "\n".join(lines)


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
    query = _checked_query(_query(args))  # a typo is named here, for the server too
    if args.url:
        events = await read_remote(args.url, args.token, _query(args))
        _print_events(events, args.json)
        if args.follow:
            await follow_remote(args.url, args.token, lambda e: _print_events([e], args.json))
        return 0
    store = await _open_local(args.config)
    try:
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
    """The config's store, read-only; of its secrets only the store's password is needed."""
    unresolved: list[Problem] = []
    config = _config(config_path, unresolved)
    if needed := [p for p in unresolved if p.message.startswith("storage_password")]:
        raise ConfigError(needed)
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
