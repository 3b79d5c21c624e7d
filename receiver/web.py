"""The operator web page (``GET /``): status, pause and resume, approvals, the audit timeline.

Rendered on the server with every value escaped (alert labels come from
whoever can post a webhook) and without any script, so it works under a
strict Content-Security-Policy and shows the same state the API does. A
browser signs in with basic auth: any user name, an API token as the
password. Its forms post back with a token derived from the signed-in
credential's name (an attacker's page cannot read it), and the service
refuses any state-changing request another origin sends
(:func:`receiver.middleware.same_origin`).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from receiver import api
from receiver.auditquery import audit_query, encode_cursor
from receiver.ingest import PayloadError
from receiver.middleware import ACTOR, access, read_body
from receiver.service import SERVICE, Service
from receiver.store.base import Remediation, StateConflict, Status

STATIC = Path(__file__).resolve().parent / "static"
FILTERS = ("rule", "target", "outcome", "since")
PAGE_SIZE = 100
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: with no-referrer browsers send `Origin: null`
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
NOTICES = {  # what a form post did, shown once on the page it returns to
    "paused": "Paused: nothing starts until you resume; new work is held.",
    "resumed": "Resumed: breakers closed, held remediations go through the guards again.",
    "approved": "Approved remediation {id}: it runs now.",
    "approved_held": "Approved remediation {id}: it runs when remedy is resumed.",
    "rejected": "Rejected remediation {id}.",
    "conflict": "Remediation {id} is no longer waiting for a decision.",
}
_KEY = os.urandom(32)  # signs the forms' tokens; a restart only means reloading the page


def form_token(request: web.Request) -> str:
    """The token a form must carry back, bound to the credential the page was opened with.

    Keyed with that API token's own secret, so every replica and every restart
    computes the same one; without auth (one process on loopback) with a key
    of this process.
    """
    token = request.app[SERVICE].auth.api_token(request)
    key = token.secret.encode() if token is not None else _KEY
    return hmac.new(key, f"remedy-form:{request[ACTOR]}".encode(), hashlib.sha256).hexdigest()


def may_operate(request: web.Request) -> bool:
    """Whether the page's reader may press its buttons (auth off, or an operator token)."""
    auth = request.app[SERVICE].auth
    token = auth.api_token(request)
    return not auth.enabled or (token is not None and token.role == "operator")


@access("public")
async def stylesheet(request: web.Request) -> web.FileResponse:
    """``GET /ui/style.css``."""
    return web.FileResponse(STATIC / "style.css", headers={"Cache-Control": "max-age=3600"})


@access("page")
async def page(request: web.Request) -> web.Response:
    """``GET /``: the page, with the audit timeline filtered by the query."""
    service = request.app[SERVICE]
    filters = {k: v for k, v in request.query.items() if k in FILTERS and v}
    query_params = {**filters, "limit": str(PAGE_SIZE + 1)}  # one more: are there older?
    if "cursor" in request.query:
        query_params["cursor"] = request.query["cursor"]
    problem = None
    try:
        query = audit_query(query_params, service.clock.now())
    except PayloadError as exc:
        problem = f"{exc.field}: {exc.message}"
        query = audit_query({"limit": str(PAGE_SIZE + 1)}, service.clock.now())
    events = [e.to_dict() for e in await service.store.audit(query)]
    older = None
    if len(events) > PAGE_SIZE:
        events = events[:PAGE_SIZE]
        older = "?" + urlencode({**filters, "cursor": encode_cursor(events[-1]["id"])})
    pending = await service.store.remediations(["pending_approval"])
    body = _document(
        [
            _status(service, await service.store.status(), request),
            _notice(request.query),
            _pending(pending, request),
            _timeline(events, filters, problem, older),
        ]
    )
    return web.Response(
        text=body,
        content_type="text/html",
        charset="utf-8",
        status=400 if problem else 200,
        headers=HEADERS,
    )


@access("page-operator")
async def pause(request: web.Request) -> web.StreamResponse:
    """``POST /ui/pause`` (form): the kill switch."""
    form = await _form(request)
    reason = form.get("reason", "").strip() or None
    await api.set_paused(request.app[SERVICE], True, request[ACTOR], reason, None)
    return _back(request, "paused")


@access("page-operator")
async def resume(request: web.Request) -> web.StreamResponse:
    """``POST /ui/resume`` (form): lift the pause and close breakers (or one)."""
    form = await _form(request)
    breaker = form.get("breaker") or None
    await api.set_paused(request.app[SERVICE], False, request[ACTOR], None, breaker)
    return _back(request, "resumed")


@access("page-operator")
async def approve(request: web.Request) -> web.StreamResponse:
    """``POST /ui/remediations/{id}/approve`` (form)."""
    return await _decide(request, approve=True)


@access("page-operator")
async def reject(request: web.Request) -> web.StreamResponse:
    """``POST /ui/remediations/{id}/reject`` (form)."""
    return await _decide(request, approve=False)


async def _decide(request: web.Request, *, approve: bool) -> web.StreamResponse:
    form = await _form(request)
    rem_id = request.match_info["id"]
    why = None if approve else (form.get("reason", "").strip() or None)
    try:
        rem = await api.decide(request, approve=approve, why=why)
    except StateConflict:
        return _back(request, "conflict", rem_id)
    if not approve:
        return _back(request, "rejected", rem_id)
    return _back(request, "approved_held" if rem.held_since else "approved", rem_id)


async def _form(request: web.Request) -> Mapping[str, str]:
    """The posted form, once its token proves it came from this page for this credential."""
    await read_body(request)  # within the body timeout; post() parses what it read
    try:
        form = await request.post()
    except (ValueError, LookupError):  # not UTF-8, or a charset Python does not know
        raise web.HTTPForbidden(reason="the form cannot be read, so it has no token") from None
    given = form.get("token")
    expected = form_token(request).encode()
    # compare_digest takes str only when it is ASCII: compare the bytes of whatever was sent
    if not isinstance(given, str) or not hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected
    ):
        raise web.HTTPForbidden(reason="the form's token is missing or stale: reload the page")
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _back(request: web.Request, notice: str, rem_id: str | None = None) -> web.StreamResponse:
    """See other: the page again, saying what was done (post/redirect/get).

    The Location is relative, so the page works behind a proxy that mounts
    it under a path of its own.
    """
    query = {"notice": notice, **({"id": rem_id} if rem_id else {})}
    up = "../" * (request.path.count("/") - 1)
    return web.Response(status=303, headers={"Location": f"{up or './'}?{urlencode(query)}"})


# -- rendering ---------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _document(sections: Iterable[str]) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        "<title>remedy</title><link rel=stylesheet href='ui/style.css'></head>"
        "<body><header><h1>remedy</h1><a href='.'>refresh</a></header>\n"
        + "\n".join(s for s in sections if s)
        + "\n</body></html>\n"
    )


def _form_html(request: web.Request, action: str, button: str, fields: str = "") -> str:
    token = form_token(request)
    return (
        f"<form method=post action='{_e(action)}'>{fields}"
        f"<input type=hidden name=token value='{token}'>"
        f"<button type=submit>{_e(button)}</button></form>"
    )


def _status(service: Service, state: Status, request: web.Request) -> str:
    mode = "PAUSED" if state.paused else "running"
    if state.pause is not None:
        why = f": {state.pause.reason}" if state.pause.reason else ""
        mode = f"PAUSED by {state.pause.actor} since {state.pause.since}{why}"
    dry_run = "dry-run: records what it would do, touches nothing"
    rules = service.planner.rules
    items = [
        f"<li class={'alarm' if state.paused else 'ok'}>{_e(mode)}</li>",
        f"<li>{dry_run if service.config.dry_run else 'live'}</li>",
        f"<li>queue depth {service.running_executor.queue_depth}</li>",
        f"<li>held by the pause {state.held}</li>",
        f"<li>rules {len(rules)} (version {_e(rules.version)})</li>",
        f"<li>storage {_e(service.store.backend)}</li>",
    ]
    counts = ", ".join(f"{_e(k)} {v}" for k, v in sorted(state.states.items()))
    operator = may_operate(request)
    breakers = ""
    for scope, why in sorted(state.breakers.items()):
        field = f"<input type=hidden name=breaker value='{_e(scope)}'>"
        close = _form_html(request, "ui/resume", "close", field) if operator else ""
        breakers += f"<li class=alarm>breaker {_e(scope)} open: {_e(why)}{close}</li>"
    if not operator:
        controls = "<p>Sign in with an operator token to pause, resume or decide.</p>"
    elif state.paused or state.breakers:
        controls = _form_html(request, "ui/resume", "Resume")
    else:
        controls = _form_html(
            request,
            "ui/pause",
            "Pause everything",
            "<input name=reason placeholder='reason (audited)' aria-label=reason>",
        )
    return (
        "<section id=status><h2>Status</h2>"
        f"<ul>{''.join(items)}{breakers}</ul>"
        f"<p>remediations: {counts or 'none yet'}</p>{controls}</section>"
    )


def _notice(query: Mapping[str, str]) -> str:
    template = NOTICES.get(query.get("notice", ""))
    rem_id = query.get("id", "")
    if template is None or ("{id}" in template and not (rem_id.isascii() and rem_id.isdigit())):
        return ""  # only what a form of this page says, never text from a link
    return f"<p class=notice role=status>{_e(template.format(id=rem_id))}</p>"


def _pending(records: Sequence[Remediation], request: web.Request) -> str:
    if not records:
        return "<section id=approvals><h2>Waiting for approval</h2><p>Nothing.</p></section>"
    rows = []
    for rem in records:
        data = rem.to_dict()
        alert = data["alert"] or {}
        steps = "<br>".join(
            f"{_e(step.get('action'))} {_e(json.dumps(step.get('params'), sort_keys=True))}"
            for step in data["steps"]
        )
        decide = ""
        if may_operate(request):
            decide = _form_html(request, f"ui/remediations/{rem.id}/approve", "Approve")
            why = "<input name=reason placeholder='why (recorded)' aria-label='reason to reject'>"
            decide += _form_html(request, f"ui/remediations/{rem.id}/reject", "Reject", why)
        rows.append(
            [
                _e(rem.id),
                _e(rem.rule),
                _e(rem.target),
                f"{_e(alert.get('name'))} {_labels(alert.get('labels') or {})}",
                steps,
                _e(data["due_at"]),
                decide,
            ]
        )
    header = ["id", "rule", "target", "alert", "would run", "expires", ""]
    return f"<section id=approvals><h2>Waiting for approval</h2>{_table(header, rows)}</section>"


def _timeline(
    events: Sequence[Mapping[str, Any]],
    filters: Mapping[str, str],
    problem: str | None,
    older: str | None,
) -> str:
    inputs = "".join(
        f"<label>{name} <input name={name} value='{_e(filters.get(name, ''))}'></label>"
        for name in FILTERS
    )
    form = f"<form method=get action='.' class=filters>{inputs}<button>filter</button></form>"
    error = f"<p class=alarm role=alert>{_e(problem)}</p>" if problem else ""
    rows = []
    for event in events:
        alert = event.get("alert") or {}
        what = f"{_e(alert.get('name'))} [{_e(alert.get('status'))}]" if alert else ""
        detail = event.get("error") or event.get("reason") or ""
        rows.append(
            [
                _e(event["ts"]),
                _e(event["id"]),
                f"<span class='event {_e(event['event'])}'>{_e(event['event'])}</span>",
                what,
                _e(event.get("rule")),
                _e(event.get("target")),
                _e(event.get("action")),
                _e(detail),
                _e(event.get("actor")),
            ]
        )
    header = ["time", "#", "event", "alert", "rule", "target", "action", "reason / error", "actor"]
    table = _table(header, rows) if rows else "<p>No events.</p>"
    more = f"<p><a href='{_e(older)}'>older events</a></p>" if older else ""
    return f"<section id=timeline><h2>Audit log</h2>{form}{error}{table}{more}</section>"


def _labels(labels: Mapping[str, Any]) -> str:
    return " ".join(
        f"<code>{_e(k)}={_e(v)}</code>" for k, v in sorted(labels.items()) if k != "alertname"
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
