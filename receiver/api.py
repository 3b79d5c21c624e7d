"""The operators' API: the audit log (page, NDJSON, live tail, verify), status, rules, health."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import datetime
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from receiver.audit import AuditEvent
from receiver.auditquery import MAX_LIMIT, audit_query, bounded_int, encode_cursor
from receiver.ingest import PayloadError
from receiver.middleware import ACTOR, access
from receiver.ruleset import reload_rules
from receiver.service import SERVICE, Service
from receiver.store.base import STATES, AuditQuery, Remediation, StateConflict, Status
from rules import RuleLoadError

NDJSON = "application/x-ndjson"


@access("viewer")
async def audit(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/audit``: a page of events, newest first, or all of them as NDJSON."""
    service = request.app[SERVICE]
    query = audit_query(request.query, service.clock.now())
    if NDJSON in request.headers.get("Accept", ""):
        return await _audit_ndjson(request, query)
    events = await service.store.audit(query)
    next_cursor = encode_cursor(events[-1].id) if len(events) == query.limit else None
    return web.json_response({"events": [e.to_dict() for e in events], "next_cursor": next_cursor})


async def _audit_ndjson(request: web.Request, query: AuditQuery) -> web.StreamResponse:
    service = request.app[SERVICE]
    response = web.StreamResponse(headers={"Content-Type": NDJSON})
    await response.prepare(request)
    page = dataclasses.replace(query, limit=MAX_LIMIT)
    while True:
        events = await service.store.audit(page)
        if events:
            await response.write("".join(json.dumps(e.to_dict()) + "\n" for e in events).encode())
        if len(events) < page.limit:
            break
        page = dataclasses.replace(page, before_id=events[-1].id)
    await response.write_eof()
    return response


@access("viewer")
async def audit_verify(request: web.Request) -> web.Response:
    """``GET /api/v1/audit/verify``: check the hash chain."""
    result = await request.app[SERVICE].store.verify()
    return web.json_response(result.to_dict())


@access("viewer")
async def audit_stream(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/audit/stream``: new events as server-sent events."""
    service = request.app[SERVICE]
    pending: asyncio.Queue[list[AuditEvent]] = asyncio.Queue(maxsize=1000)
    overflowed = asyncio.Event()

    def listener(events: list[AuditEvent]) -> None:
        try:
            pending.put_nowait(events)
        except asyncio.QueueFull:
            overflowed.set()

    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    service.store.listeners.append(listener)
    closing = asyncio.ensure_future(service.closing.wait())
    try:
        while not overflowed.is_set() and not service.closing.is_set():
            getting = asyncio.ensure_future(pending.get())
            done, _ = await asyncio.wait(
                {getting, closing}, timeout=15, return_when=asyncio.FIRST_COMPLETED
            )
            if getting not in done:
                getting.cancel()
                if not done:
                    await response.write(b": keep-alive\n\n")
                continue
            for event in getting.result():
                data = json.dumps(event.to_dict())
                await response.write(f"id: {event.id}\nevent: audit\ndata: {data}\n\n".encode())
    finally:
        closing.cancel()
        service.store.listeners.remove(listener)
    return response


@access("viewer")
async def remediations(request: web.Request) -> web.Response:
    """``GET /api/v1/remediations?state=S``: remediation records."""
    states = [s for s in request.query.getall("state", []) for s in s.split(",") if s]
    if unknown := [s for s in states if s not in STATES]:
        raise PayloadError("state", f"unknown state {unknown[0]!r} (known: {', '.join(STATES)})")
    records = await request.app[SERVICE].store.remediations(states)
    return web.json_response({"remediations": [r.to_dict() for r in records]})


@access("viewer")
async def status(request: web.Request) -> web.Response:
    """``GET /api/v1/status``: what an operator checks first."""
    service = request.app[SERVICE]
    executor = service.running_executor
    state = await service.store.status()
    oldest_age = None
    if state.oldest_queued is not None:
        since = datetime.fromisoformat(state.oldest_queued)
        oldest_age = round((service.clock.now() - since).total_seconds(), 3)
    return web.json_response(
        {
            "paused": state.paused,
            "pause": state.pause.to_dict() if state.pause else None,
            "held": state.held,
            "breakers": dict(state.breakers),
            "dry_run": service.config.dry_run,
            "queue_depth": executor.queue_depth,
            "remediations": dict(state.states),
            "oldest_queued_age_seconds": oldest_age,
            "rules": len(service.planner.rules),
            "rules_version": service.planner.rules.version,
            "storage": service.store.backend,
        }
    )


@access("operator")
async def pause(request: web.Request) -> web.Response:
    """``POST /api/v1/pause``: nothing starts once this answers; everything is still recorded."""
    return await _set_paused(request, paused=True)


@access("operator")
async def resume(request: web.Request) -> web.Response:
    """``POST /api/v1/resume``: lift the pause and close every open breaker.

    ``?breaker=scope:prod`` closes only that breaker and leaves a pause in place.
    """
    return await _set_paused(request, paused=False)


async def _set_paused(request: web.Request, *, paused: bool) -> web.Response:
    service = request.app[SERVICE]
    reason = request.query.get("reason")
    breaker = None if paused else request.query.get("breaker")
    state = await set_paused(service, paused, request[ACTOR], reason, breaker)
    return web.json_response(
        {"paused": state.paused, "breakers": dict(state.breakers), "actor": request[ACTOR]}
    )


async def set_paused(
    service: Service, paused: bool, actor: str, reason: str | None, breaker: str | None
) -> Status:
    """Pause, or resume (every breaker, or only ``breaker``); audited with ``actor``.

    Resuming hands the executor the work the pause held.
    """
    released = await service.store.set_paused(
        paused, actor, reason, breaker, pause_hold=service.config.pause_hold
    )
    service.running_executor.handle(released)
    await service.running_scheduler.gauges()
    return await service.store.status()


@access("operator")
async def approve(request: web.Request) -> web.Response:
    """``POST /api/v1/remediations/{id}/approve``: let a pending remediation run."""
    return await _decide(request, approve=True)


@access("operator")
async def reject(request: web.Request) -> web.Response:
    """``POST /api/v1/remediations/{id}/reject?reason=TEXT``: skip a pending remediation."""
    return await _decide(request, approve=False)


async def _decide(request: web.Request, *, approve: bool) -> web.Response:
    try:
        rem = await decide(request, approve=approve)
    except StateConflict as exc:
        return web.json_response({"error": str(exc)}, status=409)
    body: dict[str, Any] = {"remediation": rem.to_dict()}
    if rem.held_since is not None:
        body["message"] = "approved — runs when resumed (remedy is paused)"
    return web.json_response(body)


async def decide(request: web.Request, *, approve: bool, why: str | None = None) -> Remediation:
    """Approve or reject the pending remediation ``{id}`` as the request's actor.

    A rejection's reason is ``why``, else the ``reason`` query parameter.
    :class:`StateConflict` when it is not pending (any more).
    """
    service = request.app[SERVICE]
    rem_id = bounded_int(request.match_info["id"], 1, 2**62)
    if rem_id is None:
        raise PayloadError("id", "expected a remediation id")
    if not approve and why is None:
        why = request.query.get("reason") or None
    rem = await service.store.decide_approval(rem_id, approve, request[ACTOR], why)
    if not approve:
        service.metrics.remediations.labels(rem.rule, "skipped").inc()
        service.metrics.skipped.labels(rem.rule, "rejected").inc()
    elif rem.held_since is None:  # held by a pause: the resume hands it to the executor
        service.running_executor.submit([rem])
    return rem


@access("viewer")
async def rules(request: web.Request) -> web.Response:
    """``GET /api/v1/rules``: the loaded rules."""
    ruleset = request.app[SERVICE].planner.rules
    return web.json_response(
        {
            "version": ruleset.version,
            "rules": [
                {
                    "name": rule.name,
                    "description": rule.description,
                    "file": rule.file,
                    "line": rule.line,
                    "source": rule.source,
                    "status": rule.status,
                    "alertname": rule.alertname,
                    "matchers": [f"{m.name}{m.op}{json.dumps(m.value)}" for m in rule.matchers],
                    "target": rule.target.source,
                    "actions": [step.action for step in rule.actions],
                    "dry_run": rule.guards.dry_run,
                }
                for rule in ruleset.rules
            ],
        }
    )


@access("operator")
async def reload(request: web.Request) -> web.Response:
    """``POST /-/reload``: load the rules from disk again; an invalid set is refused."""
    service = request.app[SERVICE]
    try:
        ruleset = await reload_rules(service, request[ACTOR])
    except RuleLoadError as exc:
        return web.json_response(
            {
                "error": "invalid rules, the loaded set is unchanged",
                "problems": [str(p) for p in exc.problems],
            },
            status=400,
        )
    return web.json_response(
        {"status": "reloaded", "rules": len(ruleset), "version": ruleset.version}
    )


@access("public")
async def healthz(request: web.Request) -> web.Response:
    """``GET /healthz``: the process is alive."""
    return web.json_response({"status": "ok"})


@access("public")
async def readyz(request: web.Request) -> web.Response:
    """``GET /readyz``: storage answers and rules are loaded."""
    service = request.app[SERVICE]
    await service.store.ping()
    return web.json_response({"status": "ready"})


@access("public")
async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text format."""
    registry = request.app[SERVICE].metrics.registry
    response = web.Response(body=generate_latest(registry))
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response
