"""The ingest endpoints: parse, plan, store durably, then answer.

The answer comes only after the store committed: a 200 means the alerts and
their remediations survive a crash; any failure before that is a 5xx, which
Alertmanager retries.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from receiver.audit import AuditRecord
from receiver.ingest import Overloaded, PayloadError
from receiver.ingest.alertmanager import parse_webhook
from receiver.ingest.cloudwatch import is_alarm, parse_alarm
from receiver.ingest.sns_signature import SignatureError, verify
from receiver.middleware import access, read_body
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
        body = await read_body(request)
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


async def ingest_alerts(
    service: Service, alerts: Sequence[Alert], message_id: str | None = None
) -> IngestResult:
    """Plan, store durably, and hand ready work to the executor: the one ingest path.

    The webhooks and ``remedy replay`` both come through here.
    """
    executor = service.running_executor
    if executor.overloaded:
        service.metrics.webhook_rejected.labels("any", "overloaded").inc()
        raise Overloaded(f"{executor.queue_depth} remediations are queued")
    result = await service.store.ingest(service.planner.plan_all(alerts), message_id)
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


SNS_TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")


@access("webhook")
async def sns(request: web.Request) -> web.Response:
    """``POST /webhook/sns``: SNS deliveries of CloudWatch alarms, signatures verified.

    ``Type`` is read from the body (the ``x-amz-sns-message-type`` header may be
    absent). A raw CloudWatch body (raw message delivery) carries no signature:
    it is taken only when webhook auth vouches for the sender, or when signature
    verification is off.
    """
    service = request.app[SERVICE]
    settings = service.config.sns
    body = await read_json(request, "sns")
    if not settings.allowed_topics:
        return await _sns_rejected(
            service, 403, "topic", "sns.allowed_topics is empty: no topic is trusted yet"
        )
    if is_alarm(body) and isinstance(body, Mapping) and "Type" not in body:
        if settings.verify_signature and not service.auth.enabled:
            return await _sns_rejected(
                service,
                403,
                "unsigned",
                "a raw delivery carries no signature: configure webhook "
                "auth, or turn sns.verify_signature off",
            )
        raw_topic = request.headers.get("x-amz-sns-topic-arn")
        if raw_topic not in settings.allowed_topics:
            return await _sns_rejected(
                service, 403, "topic", f"topic {_shown(raw_topic)} is not allowed"
            )
        return await _sns_alarm(service, body, request.headers.get("x-amz-sns-message-id"))
    if not isinstance(body, Mapping) or body.get("Type") not in SNS_TYPES:
        return await _sns_rejected(
            service, 400, "malformed", f"Type must be one of {', '.join(SNS_TYPES)}"
        )
    topic = body.get("TopicArn")
    if topic not in settings.allowed_topics:
        return await _sns_rejected(service, 403, "topic", f"topic {_shown(topic)} is not allowed")
    if settings.verify_signature:
        try:
            await verify(
                body,
                certificates=service.running_certificates,
                cert_url_pattern=re.compile(settings.cert_url_pattern),
                now=service.clock.now(),
                max_age=settings.max_age,
            )
        except SignatureError as exc:
            # A certificate that could not be fetched is worth a retry: SNS retries 5xx.
            status = {"malformed": 400, "cert_fetch": 503}.get(exc.reason, 403)
            return await _sns_rejected(service, status, exc.reason, str(exc))
    kind = body["Type"]
    if kind == "SubscriptionConfirmation":
        return await _sns_confirm(service, body)
    if kind == "UnsubscribeConfirmation":
        await service.store.record(
            [
                AuditRecord(
                    "received",
                    reason="sns_unsubscribed",
                    error=f"topic {_shown(topic)} unsubscribed remedy",
                )
            ]
        )
        return web.json_response({"status": "recorded"})
    try:
        message = json.loads(body.get("Message") or "")
    except (ValueError, TypeError, RecursionError):
        return await _sns_rejected(service, 400, "malformed", "Message is not JSON")
    if not is_alarm(message):
        return await _sns_rejected(service, 400, "malformed", "Message is not a CloudWatch alarm")
    return await _sns_alarm(service, message, str(body.get("MessageId") or "") or None)


async def _sns_alarm(
    service: Service, message: Mapping[str, Any], message_id: str | None
) -> web.Response:
    try:
        alert = parse_alarm(message, service.config.sns.insufficient_data)  # type: ignore[arg-type]
    except PayloadError:
        service.metrics.webhook_rejected.labels("sns", "malformed").inc()
        raise
    if alert is None:
        await service.store.record(
            [
                AuditRecord(
                    "skipped",
                    reason="insufficient_data",
                    error=f"alarm {message.get('AlarmName')} has insufficient data"
                    " (sns.insufficient_data: ignore)",
                )
            ]
        )
        return web.json_response({"status": "ignored", "reason": "insufficient_data"})
    result = await ingest_alerts(service, [alert], message_id)
    service.metrics.alerts_received.labels("cloudwatch", alert.status).inc()
    if result.duplicates:
        service.metrics.alerts_duplicate.labels("cloudwatch").inc(result.duplicates)
    return web.json_response(
        {
            "status": "accepted",
            "stored": result.stored,
            "duplicates": result.duplicates,
            "remediations": len(result.queued),
        }
    )


async def _sns_confirm(service: Service, body: Mapping[str, Any]) -> web.Response:
    """Confirm a subscription by fetching its SubscribeURL (signature and topic passed).

    Only with signatures verified, and only a URL that looks like SNS's own
    confirmation for this very topic: remedy never fetches an address a
    sender made up.
    """
    settings = service.config.sns
    url = body.get("SubscribeURL")
    if not settings.verify_signature:
        return await _sns_rejected(
            service, 403, "unsigned", "subscriptions are confirmed only with signatures verified"
        )
    if not isinstance(url, str) or not re.match(settings.subscribe_url_pattern, url):
        return await _sns_rejected(
            service, 400, "malformed", "SubscribeURL is not an SNS confirmation URL"
        )
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    if query.get("TopicArn") != [body.get("TopicArn")]:
        return await _sns_rejected(service, 400, "malformed", "SubscribeURL confirms another topic")
    http = service.http
    assert http is not None  # the service is running
    try:
        async with http.get(
            url, timeout=aiohttp.ClientTimeout(total=5), allow_redirects=False
        ) as response:
            confirmed = response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        confirmed = False
    topic = body.get("TopicArn")
    await service.store.record(
        [
            AuditRecord(
                "received",
                reason="sns_subscription_confirmed" if confirmed else "sns_subscription_failed",
                error=None if confirmed else f"confirming the subscription to {topic} failed",
            )
        ]
    )
    if not confirmed:
        return web.json_response({"error": "could not confirm the subscription"}, status=502)
    return web.json_response({"status": "confirmed", "topic": topic})


def _shown(value: object) -> str:
    """A sender's value as logs and the audit may show it: a string, cut short."""
    text = value if isinstance(value, str) else repr(value)
    return text[:200] + ("..." if len(text) > 200 else "")


async def _sns_rejected(service: Service, status: int, reason: str, message: str) -> web.Response:
    service.metrics.webhook_rejected.labels("sns", reason).inc()
    log.warning("sns.rejected", reason=reason, detail=message)
    await service.store.record([AuditRecord("skipped", reason=f"sns_{reason}", error=message)])
    return web.json_response({"error": message, "reason": reason}, status=status)
