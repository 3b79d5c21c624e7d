"""The ingest endpoints: parse, plan, store durably, then answer.

The answer comes only after the store committed: a 200 means the alerts and
their remediations survive a crash; any failure before that is a 5xx, which
Alertmanager retries.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from receiver.ingest import Overloaded, PayloadError
from receiver.ingest.alertmanager import parse_webhook
from receiver.middleware import access
from receiver.service import SERVICE, Service
from receiver.store.base import Due, IngestResult
from rules.alert import Alert

log = structlog.get_logger("remedy.webhook")


async def read_json(request: web.Request, source: str) -> object:
    """The decoded body, within the size limit; :class:`PayloadError` when it is not JSON."""
    service = request.app[SERVICE]
    limit = service.config.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        service.metrics.webhook_rejected.labels(source, "too_large").inc()
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        service.metrics.webhook_rejected.labels(source, "too_large").inc()
        raise
    except RequestPayloadError as exc:  # a broken chunked or compressed body
        service.metrics.webhook_rejected.labels(source, "malformed").inc()
        raise PayloadError("", f"the body could not be read: {type(exc).__name__}") from None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        service.metrics.webhook_rejected.labels(source, "malformed").inc()
        raise PayloadError("", f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        service.metrics.webhook_rejected.labels(source, "malformed").inc()
        raise PayloadError("", "the body is nested too deeply") from None


async def ingest_alerts(service: Service, alerts: Sequence[Alert]) -> IngestResult:
    """Plan, store durably, and hand ready work to the executor: the one ingest path.

    The webhooks and ``remedy replay`` both come through here.
    """
    executor = service.running_executor
    if executor.overloaded:
        service.metrics.webhook_rejected.labels("any", "overloaded").inc()
        raise Overloaded(f"{executor.queue_depth} remediations are queued")
    result = await service.store.ingest(service.planner.plan_all(alerts))
    executor.handle(Due(result.queued, (), result.finished))
    if result.waiting:
        service.running_scheduler.wake()
    return result


@access("webhook")
async def alertmanager(request: web.Request) -> web.Response:
    """``POST /webhook/alertmanager``: an Alertmanager webhook, version 4."""
    service = request.app[SERVICE]
    payload = await read_json(request, "alertmanager")
    try:
        message = parse_webhook(payload)
    except PayloadError:
        service.metrics.webhook_rejected.labels("alertmanager", "malformed").inc()
        raise
    if message.truncated_alerts:
        service.metrics.alerts_truncated.inc(message.truncated_alerts)
        log.warning(
            "webhook.truncated", group_key=message.group_key, truncated=message.truncated_alerts
        )
    result = await ingest_alerts(service, message.alerts)
    for alert in message.alerts:
        service.metrics.alerts_received.labels(alert.source, alert.status).inc()
    if result.duplicates:
        service.metrics.alerts_duplicate.labels("alertmanager").inc(result.duplicates)
    log.info(
        "webhook.accepted",
        source="alertmanager",
        alerts=len(message.alerts),
        stored=result.stored,
        duplicates=result.duplicates,
        queued=len(result.queued),
    )
    return web.json_response(
        {
            "status": "accepted",
            "alerts": len(message.alerts),
            "stored": result.stored,
            "duplicates": result.duplicates,
            "remediations": len(result.queued),
        }
    )
