"""The operator web page (``GET /``): its handlers, forms and the tokens that guard them.

The page (rendered by :mod:`receiver.console`) escapes every value (alert
labels come from whoever can post a webhook) and loads one script of its own
under a strict Content-Security-Policy, for confirmations and auto-refresh;
every form works without it. A browser signs in with basic auth: any user
name, an API token as the password. Its forms post back with a token derived
from the signed-in credential's name (an attacker's page cannot read it), and
the service refuses any state-changing request another origin sends
(:func:`receiver.middleware.same_origin`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from aiohttp import web

from receiver import api, console, preflight
from receiver.auditquery import audit_query, encode_cursor
from receiver.clock import timestamp
from receiver.ingest import PayloadError
from receiver.middleware import ACTOR, access, read_body
from receiver.service import SERVICE
from receiver.store.base import AuditQuery, Remediation, StateConflict, Store

STATIC = Path(__file__).resolve().parent / "static"
FILTERS = ("rule", "target", "outcome", "since")
PAGE_SIZE = 100
NEWEST = 500  # remediations the page reads to list, filter and find the failures of the day
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
        "form-action 'self'; "
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


@access("public")
async def script(request: web.Request) -> web.FileResponse:
    """``GET /ui/page.js``: confirmations and auto-refresh; the page works without it."""
    return web.FileResponse(STATIC / "page.js", headers={"Cache-Control": "max-age=3600"})


@access("page")
async def page(request: web.Request) -> web.Response:
    """``GET /``: status, what needs attention, remediations, effectiveness, the audit log."""
    service = request.app[SERVICE]
    now = service.clock.now()
    filters = {k: v for k, v in request.query.items() if k in FILTERS and v}
    query_params = {**filters, "limit": str(PAGE_SIZE + 1)}  # one more: are there older?
    if "cursor" in request.query:
        query_params["cursor"] = request.query["cursor"]
    problem = None
    try:
        query = audit_query(query_params, now)
    except PayloadError as exc:
        problem = f"{exc.field}: {exc.message}"
        query = audit_query({"limit": str(PAGE_SIZE + 1)}, now)
    events = [e.to_dict() for e in await service.store.audit(query)]
    older = None
    if len(events) > PAGE_SIZE:
        events = events[:PAGE_SIZE]
        older = "?" + urlencode({**filters, "cursor": encode_cursor(events[-1]["id"])})
    snapshot = await _snapshot(request, now)
    body = _document(
        [
            console.status_bar(snapshot),
            _notice(request.query),
            console.approvals(snapshot),
            console.problems(snapshot),
            console.remediations(snapshot),
            console.effectiveness(snapshot),
            console.timeline(events, filters, problem, older),
        ]
    )
    return web.Response(
        text=body,
        content_type="text/html",
        charset="utf-8",
        status=400 if problem else 200,
        headers=HEADERS,
    )


async def _snapshot(request: web.Request, now: datetime) -> console.Snapshot:
    """What the page shows, read from the store once."""
    service = request.app[SERVICE]
    store = service.store
    window = request.query.get("window", "24h")
    if window not in console.WINDOWS:
        window = "24h"
    chosen = {k: request.query[k] for k in ("rule", "target", "state") if request.query.get(k)}
    newest = await store.newest(NEWEST)
    day_ago = timestamp(now - timedelta(hours=24))
    shown = [r for r in newest if all(getattr(r, k) == v for k, v in chosen.items())]
    failed = [r for r in newest if r.state in console.PROBLEM_STATES and r.created_at >= day_ago]
    return console.Snapshot(
        now=now,
        status=await store.status(),
        mode=preflight.mode(service.config, service.planner.rules),
        live=not service.config.dry_run,
        queue_depth=service.running_executor.queue_depth,
        storage=store.backend,
        rules=len(service.planner.rules),
        rules_version=service.planner.rules.version,
        pending=await store.remediations(["pending_approval"]),
        rows=await _with_events(store, shown[: console.ROWS]),
        problems=await _with_events(store, failed[: console.ROWS]),
        choices=console.filter_choices(newest),
        filters=chosen,
        window=window,
        outcomes=await store.outcomes(timestamp(now - console.WINDOWS[window])),
        operator=may_operate(request),
        form_token=form_token(request),
    )


async def _with_events(store: Store, rems: Sequence[Remediation]) -> list[console.Row]:
    """Each remediation with its audit events (found by its rule and target, then its id).

    Read oldest first from the remediation's creation, so that later events
    of the same rule and target (a storm of repeats) do not crowd its own out.
    """
    rows = []
    for rem in rems:
        since = datetime.fromisoformat(rem.created_at) - timedelta(seconds=1)
        query = AuditQuery(
            rule=rem.rule, target=rem.target, since=timestamp(since), after_id=0, limit=200
        )
        events = await store.audit(query)
        mine = [ev.to_dict() for ev in events if ev.record.remediation == rem.id]
        rows.append(console.Row(rem, mine))
    return rows


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


def _document(sections: Iterable[str]) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        "<title>remedy</title><link rel=stylesheet href='ui/style.css'>"
        "<script src='ui/page.js' defer></script></head>"
        "<body><header><h1>remedy</h1><a href='.'>refresh</a></header>\n"
        + "\n".join(s for s in sections if s)
        + "\n</body></html>\n"
    )


def _notice(query: Mapping[str, str]) -> str:
    template = NOTICES.get(query.get("notice", ""))
    rem_id = query.get("id", "")
    if template is None or ("{id}" in template and not (rem_id.isascii() and rem_id.isdigit())):
        return ""  # only what a form of this page says, never text from a link
    return f"<p class=notice role=status>{console.e(template.format(id=rem_id))}</p>"
