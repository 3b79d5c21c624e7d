"""The operator's page as HTML: what remedy did, what it is about to do, how to stop it.

Pure rendering of a :class:`Snapshot` the page handler gathers: every value is
escaped (alert labels come from whoever can post a webhook), links to alert
sources are only ``http(s)``, and the page needs its one script only for
confirmations and auto-refresh — every form also works without it.
"""

from __future__ import annotations

import dataclasses
import html
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from receiver.audit import OUTCOMES
from receiver.store.base import FINAL_STATES, STATES, Remediation, Status

WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
PROBLEM_STATES = ("failed", "timeout", "ineffective", "interrupted")
EXECUTED_STATES = ("succeeded", "verified", *PROBLEM_STATES)
ROWS = 50
# How each final state counts in a rule's effectiveness, and its colour class.
OUTCOME_CLASSES = (
    ("verified", ("verified",)),
    ("succeeded", ("succeeded",)),
    ("ineffective", ("ineffective",)),
    ("failed", ("failed", "timeout", "interrupted")),
    ("dry_run", ("dry_run",)),
    ("skipped", ("skipped",)),
)
_FINAL_EVENTS = ("succeeded", "failed", "timeout", "verified", "ineffective", "interrupted")
# Events beside a remediation's own steps: its on_failure and its Alertmanager silence.
_ASIDE = ("on_failure", "silence")
# Events whose error (or reason) says how a remediation ended without success.
_ENDING_EVENTS = ("failed", "timeout", "interrupted", "ineffective", "skipped", "rejected")


@dataclasses.dataclass(frozen=True, slots=True)
class Row:
    """One remediation with what its audit events tell: duration, result, the events."""

    rem: Remediation
    events: Sequence[Mapping[str, Any]] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the page shows, read once per request."""

    now: datetime
    status: Status
    mode: str
    live: bool
    queue_depth: int
    storage: str
    rules: int
    rules_version: str
    pending: Sequence[Remediation]
    rows: Sequence[Row]
    problems: Sequence[Row]
    choices: Mapping[str, Sequence[str]]
    filters: Mapping[str, str]
    window: str
    outcomes: Sequence[tuple[str, str, str | None, int]]
    operator: bool
    form_token: str


def e(value: object) -> str:
    """``value`` as text on the page: escaped, ``None`` as nothing."""
    return html.escape("" if value is None else str(value), quote=True)


def table(header: Sequence[str], rows: Sequence[Sequence[str]], css: str = "") -> str:
    """A table whose cells carry their column's name, for the phone layout."""
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td data-label='{e(name)}'>{cell}</td>"
            for name, cell in zip(header, row, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    kind = f" class='{css}'" if css else ""
    return f"<table{kind}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def form(token: str, action: str, button: str, confirm: str, fields: str = "") -> str:
    """A form that posts back with the page's token, confirmed with what it will do."""
    return (
        f"<form method=post action='{e(action)}' data-confirm='{e(confirm)}'>{fields}"
        f"<input type=hidden name=token value='{e(token)}'>"
        f"<button type=submit>{e(button)}</button></form>"
    )


def when(moment: str | None, now: datetime) -> str:
    """A relative time with the absolute one on hover."""
    if not moment:
        return ""
    try:
        then = datetime.fromisoformat(moment)
    except ValueError:
        return e(moment)
    seconds = (now - then).total_seconds()
    words = f"{_span(abs(seconds))} ago" if seconds >= 0 else f"in {_span(-seconds)}"
    return f"<time datetime='{e(moment)}' title='{e(moment)}'>{e(words)}</time>"


def _span(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


# -- sections ------------------------------------------------------------------------


def status_bar(snap: Snapshot) -> str:
    """Running or PAUSED (always with its button), mode, breakers, queue, store, rules."""
    state = snap.status
    if state.pause is not None:
        why = f": {state.pause.reason}" if state.pause.reason else ""
        since = when(state.pause.since, snap.now)
        running = f"<li class='alarm big'>PAUSED by {e(state.pause.actor)} {since}{e(why)}</li>"
    elif state.paused:
        running = "<li class='alarm big'>PAUSED</li>"
    else:
        running = "<li class='ok big'>running</li>"
    mode = "LIVE" if snap.live else "dry-run"
    items = [
        running,
        f"<li class='mode {mode.lower()}' title='{e(snap.mode)}'>{mode}</li>",
        f"<li>queue {snap.queue_depth}</li>",
        f"<li>held by the pause {state.held}</li>",
        f"<li>storage {e(snap.storage)}</li>",
        f"<li>rules {snap.rules} (version {e(snap.rules_version)})</li>",
    ]
    breakers = ""
    for scope, why in sorted(state.breakers.items()):
        field = f"<input type=hidden name=breaker value='{e(scope)}'>"
        close = ""
        if snap.operator:
            close = form(
                snap.form_token,
                "ui/resume",
                "Close",
                f"Close breaker {scope}: its remediations may run again.",
                field,
            )
        breakers += f"<li class=alarm>breaker {e(scope)} open: {e(why)} {close}</li>"
    if not snap.operator:
        controls = "<p>Sign in with an operator token to pause, resume or decide.</p>"
    elif state.paused:
        controls = form(
            snap.form_token,
            "ui/resume",
            "Resume",
            "Resume: held remediations go through the guards again and open breakers close.",
        )
    else:
        reason = "<input name=reason placeholder='why (audited)' aria-label='reason to pause'>"
        controls = form(
            snap.form_token,
            "ui/pause",
            "Pause everything",
            "Pause everything: nothing starts until someone resumes; new work is held.",
            reason,
        )
    refresh = (
        "<label class=refresh><input type=checkbox id=auto-refresh checked> auto-refresh</label>"
    )
    return (
        "<section id=status><h2>Status</h2>"
        f"<ul class=bar>{''.join(items)}{breakers}</ul>{controls}{refresh}</section>"
    )


def approvals(snap: Snapshot) -> str:
    """What waits for a person, first on the page: approve, or reject with a reason."""
    if not snap.pending:
        return "<section id=approvals><h2>Waiting for approval</h2><p>Nothing.</p></section>"
    rows = []
    for rem in snap.pending:
        data = rem.to_dict()
        runs = "<br>".join(_step(step) for step in data["steps"])
        decide = ""
        if snap.operator:
            what = "; ".join(str(step.get("action")) for step in data["steps"])
            decide = form(
                snap.form_token,
                f"ui/remediations/{rem.id}/approve",
                "Approve",
                f"Approve remediation {rem.id}: {what} on {rem.target} runs now.",
            )
            why = "<input name=reason placeholder='why (audited)' aria-label='reason to reject'>"
            decide += form(
                snap.form_token,
                f"ui/remediations/{rem.id}/reject",
                "Reject",
                f"Reject remediation {rem.id}: it never runs.",
                why,
            )
        rows.append(
            [
                e(rem.id),
                e(rem.rule),
                e(rem.target),
                _alert(rem),
                runs,
                f"expires {when(rem.due_at, snap.now)}" if rem.due_at else "",
                decide,
            ]
        )
    header = ["id", "rule", "target", "alert", "would run", "expires", "decide"]
    return (
        "<section id=approvals><h2>Waiting for approval</h2>"
        f"{table(header, rows, 'cards')}</section>"
    )


def problems(snap: Snapshot) -> str:
    """Failed, timed out, ineffective or interrupted in the last 24 h."""
    if not snap.problems:
        return ""
    listing = "".join(remediation(row, snap.now) for row in snap.problems)
    return (
        f"<section id=attention><h2>Did not work (last 24 h)</h2>{_list_head()}{listing}</section>"
    )


def remediations(snap: Snapshot) -> str:
    """One row per remediation, newest first, each opening onto its events and params."""
    selects = "".join(
        _select(name, snap.choices.get(name, ()), snap.filters.get(name, ""))
        for name in ("rule", "target", "state")
    )
    filters = (
        "<form method=get action='.' class=filters>"
        f"{selects}<input type=hidden name=window value='{e(snap.window)}'>"
        "<button>show</button></form>"
    )
    listing = "".join(remediation(row, snap.now) for row in snap.rows)
    body = f"{_list_head()}{listing}" if listing else "<p>No remediations.</p>"
    return f"<section id=remediations><h2>Remediations</h2>{filters}{body}</section>"


def remediation(row: Row, now: datetime) -> str:
    """A remediation as a row that opens onto its audit events and rendered params."""
    rem = row.rem
    started, ended = _bounds(row.events)
    duration = _duration(started, ended)
    mode = " <span class=badge>dry-run</span>" if rem.dry_run else ""
    summary = (
        f"<span class=id>#{rem.id}</span>"
        f"<span class='state {e(rem.state)}'>{e(rem.state)}{mode}</span>"
        f"<span class=rule>{e(rem.rule)}</span>"
        f"<span class=target>{e(rem.target)}</span>"
        f"<span class=alert>{_alert(rem)}</span>"
        f"<span class=age>{when(rem.created_at, now)}</span>"
        f"<span class=duration>{e(duration)}</span>"
        f"<span class=result>{e(result(rem, row.events))}</span>"
    )
    steps = json.dumps(rem.to_dict()["steps"], indent=2, sort_keys=True)
    events = "".join(
        f"<li><time title='{e(ev.get('ts'))}'>{e(str(ev.get('ts', ''))[11:23])}</time> "
        f"<span class='event {e(ev.get('event'))}'>{e(ev.get('event'))}</span> "
        f"{e(ev.get('action') or '')} {e(ev.get('reason') or '')} {e(ev.get('error') or '')}"
        f"{_result_text(ev)} <span class=actor>{e(ev.get('actor'))}</span></li>"
        for ev in sorted(row.events, key=lambda ev: int(ev.get("id", 0)))
    )
    return (
        f"<details class=rem id=rem-{rem.id}><summary>{summary}</summary>"
        f"<div class=detail><h3>Events</h3><ol class=events>{events or '<li>none</li>'}</ol>"
        f"<h3>Rendered actions</h3><pre>{e(steps)}</pre></div></details>"
    )


def effectiveness(snap: Snapshot) -> str:
    """Per rule over the window: executed, verified, ineffective, failed, skipped by reason."""
    links = " ".join(
        f"<a href='?{e(urlencode({**snap.filters, 'window': name}))}#effectiveness'"
        f"{' aria-current=true' if name == snap.window else ''}>{name}</a>"
        for name in WINDOWS
    )
    per_rule: dict[str, Counter[str]] = {}
    skipped: dict[str, Counter[str]] = {}
    for rule, state, reason, count in snap.outcomes:
        if state not in FINAL_STATES:
            continue
        per_rule.setdefault(rule, Counter())[state] += count
        if state == "skipped":
            skipped.setdefault(rule, Counter())[reason or "?"] += count
    if not per_rule:
        return (
            f"<section id=effectiveness><h2>Effectiveness</h2><p>{links}</p>"
            "<p>Nothing finished in this window.</p></section>"
        )
    rows = []
    for rule, counts in sorted(per_rule.items()):
        executed = sum(counts[s] for s in EXECUTED_STATES)
        failed = counts["failed"] + counts["timeout"] + counts["interrupted"]
        why = ", ".join(f"{reason} {n}" for reason, n in sorted(skipped.get(rule, {}).items()))
        rows.append(
            [
                e(rule),
                _bar(counts),
                str(executed),
                str(counts["verified"]),
                str(counts["succeeded"]),
                str(counts["ineffective"]),
                str(failed),
                str(counts["dry_run"]),
                f"{counts['skipped']}{f' ({e(why)})' if why else ''}",
            ]
        )
    header = [
        "rule",
        "outcomes",
        "executed",
        "verified",
        "succeeded",
        "ineffective",
        "failed",
        "dry-run",
        "skipped",
    ]
    return (
        f"<section id=effectiveness><h2>Effectiveness, last {e(snap.window)}</h2><p>{links}</p>"
        f"{table(header, rows, 'numbers')}</section>"
    )


# -- pieces ----------------------------------------------------------------------------


def result(rem: Remediation, events: Sequence[Mapping[str, Any]]) -> str:
    """What the remediation came to, in a few words: what the action reported, or why not."""
    ordered = sorted(events, key=lambda ev: int(ev.get("id", 0)))
    followed = any(ev.get("reason") == "on_failure" for ev in ordered)
    said = _outcome(rem, [ev for ev in ordered if ev.get("reason") not in _ASIDE])
    return f"{said} (on_failure ran)" if followed else said


def _outcome(rem: Remediation, ordered: Sequence[Mapping[str, Any]]) -> str:
    """The last word of the remediation's own steps (not of its on_failure)."""
    for ev in reversed(ordered):
        if ev.get("event") in ("succeeded", "dry_run") and isinstance(ev.get("result"), Mapping):
            said = summarize(ev["result"])
            if said:
                return said
        if ev.get("event") in _ENDING_EVENTS:
            text = str(ev.get("error") or ev.get("reason") or ev.get("event"))
            if ev.get("event") == "rejected" and ev.get("error"):
                text = f"rejected: {text}"
            return text if len(text) <= 120 else text[:119] + "…"
    if rem.state == "pending_approval":
        return "waits for an operator"
    if rem.state == "waiting":
        return "waits for the alert to last (for:)"
    return rem.reason or ""


def summarize(report: Mapping[str, Any]) -> str:
    """An action's result in a line: changes as before→after, counts, then the rest.

    Names that only identify the target (namespace, name, id...) are left out:
    the row shows the target already.
    """
    parts = []
    for key, value in report.items():
        if key in ("kind", "namespace", "name", "id", "cluster", "service", "function", "task"):
            continue
        if isinstance(value, Mapping) and "before" in value and "after" in value:
            parts.append(f"{key} {value['before']}→{value['after']}")
        elif isinstance(value, list):
            parts.append(f"{key} {len(value):,}")
        elif isinstance(value, bool):
            parts.append(key if value else f"not {key}")
        elif isinstance(value, int):
            parts.append(f"{key} {value:,}")
        elif isinstance(value, str) and len(value) <= 60:
            parts.append(f"{key} {value}")
    return ", ".join(parts)


def _result_text(ev: Mapping[str, Any]) -> str:
    if isinstance(ev.get("result"), Mapping) and (said := summarize(ev["result"])):
        return f" — {e(said)}"
    return ""


def _bounds(events: Sequence[Mapping[str, Any]]) -> tuple[str | None, str | None]:
    """When the first step started and when the last outcome came, from the events."""
    own = [ev for ev in events if ev.get("reason") != "silence"]
    started = min((ev["ts"] for ev in own if ev.get("event") == "started"), default=None)
    ended = max((ev["ts"] for ev in own if ev.get("event") in _FINAL_EVENTS), default=None)
    return started, ended


def _duration(started: str | None, ended: str | None) -> str:
    if started is None or ended is None:
        return ""
    seconds = (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else _span(seconds)


def _alert(rem: Remediation) -> str:
    """The alert's name (linked to where its source shows it) and its distinguishing labels."""
    alert = rem.alert or {}
    name = e(alert.get("name"))
    if rem.link and urlsplit(rem.link).scheme in ("http", "https"):
        name = f"<a href='{e(rem.link)}' rel=noreferrer>{name}</a>"
    labels = alert.get("labels") or {}
    shown = " ".join(
        f"<code>{e(k)}={e(v)}</code>" for k, v in sorted(labels.items()) if k != "alertname"
    )
    return f"{name} {shown}".strip()


def _step(step: Mapping[str, Any]) -> str:
    params = json.dumps(step.get("params"), sort_keys=True)
    return f"{e(step.get('action'))} <code>{e(params)}</code>"


def _select(name: str, values: Iterable[str], chosen: str) -> str:
    options = [f"<option value=''>every {e(name)}</option>"]
    for value in values:
        picked = " selected" if value == chosen else ""
        options.append(f"<option value='{e(value)}'{picked}>{e(value)}</option>")
    return f"<label>{e(name)} <select name={e(name)}>{''.join(options)}</select></label>"


def _list_head() -> str:
    names = ("id", "state", "rule", "target", "alert", "age", "duration", "result")
    return "<div class=rem-head>" + "".join(f"<span>{n}</span>" for n in names) + "</div>"


def _bar(counts: Counter[str]) -> str:
    """A stacked bar of a rule's outcomes, drawn on the server (no script)."""
    total = sum(counts[state] for _, states in OUTCOME_CLASSES for state in states)
    width, x, parts = 200, 0.0, []
    for css, states in OUTCOME_CLASSES:
        n = sum(counts[state] for state in states)
        if not n:
            continue
        w = width * n / total
        parts.append(
            f"<rect class='o-{css}' x='{x:.1f}' y='0' width='{w:.1f}' height='14'>"
            f"<title>{e(css)} {n}</title></rect>"
        )
        x += w
    label = ", ".join(
        f"{css} {sum(counts[s] for s in states)}"
        for css, states in OUTCOME_CLASSES
        if sum(counts[s] for s in states)
    )
    return (
        f"<svg class=bar width='{width}' height='14' viewBox='0 0 {width} 14' role=img"
        f" aria-label='{e(label)}'>{''.join(parts)}</svg>"
    )


def filter_choices(rems: Iterable[Remediation]) -> dict[str, list[str]]:
    """The values the filters offer: those in the data, states in lifecycle order."""
    rules, targets, states = set(), set(), set()
    for rem in rems:
        rules.add(rem.rule)
        targets.add(rem.target or "")
        states.add(rem.state)
    return {
        "rule": sorted(rules),
        "target": sorted(t for t in targets if t),
        "state": [s for s in STATES if s in states],
    }


def timeline(
    events: Sequence[Mapping[str, Any]],
    filters: Mapping[str, str],
    problem: str | None,
    older: str | None,
) -> str:
    """The audit log, newest first, filtered by rule, target, outcome or since."""
    outcome = _select("outcome", OUTCOMES, filters.get("outcome", ""))
    inputs = "".join(
        f"<label>{name} <input name={name} value='{e(filters.get(name, ''))}'></label>"
        for name in ("rule", "target")
    )
    since = f"<label>since <input name=since value='{e(filters.get('since', ''))}'></label>"
    search = (
        f"<form method=get action='.' class=filters>{inputs}{outcome}{since}"
        "<button>filter</button></form>"
    )
    error = f"<p class=alarm role=alert>{e(problem)}</p>" if problem else ""
    rows = []
    for event in events:
        alert = event.get("alert") or {}
        what = f"{e(alert.get('name'))} [{e(alert.get('status'))}]" if alert else ""
        detail = event.get("error") or event.get("reason") or ""
        rows.append(
            [
                e(event["ts"]),
                e(event["id"]),
                f"<span class='event {e(event['event'])}'>{e(event['event'])}</span>",
                what,
                e(event.get("rule")),
                e(event.get("target")),
                e(event.get("action")),
                e(detail),
                e(event.get("actor")),
            ]
        )
    header = ["time", "#", "event", "alert", "rule", "target", "action", "reason / error", "actor"]
    listing = table(header, rows, "log") if rows else "<p>No events.</p>"
    more = f"<p><a href='{e(older)}'>older events</a></p>" if older else ""
    return f"<section id=timeline><h2>Audit log</h2>{search}{error}{listing}{more}</section>"
