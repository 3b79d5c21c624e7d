"""The ingest endpoints: parse, plan, store durably, then answer.

The answer comes only after the store committed: a 200 means the alerts and
their remediations survive a crash; any failure before that is a 5xx, which
Alertmanager retries.
"""

from __future__ import annotations

import re
import urllib.parse
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from receiver.audit import AuditRecord
from receiver.ingest import Overloaded, PayloadError, jsontext, unicode_text
from receiver.ingest.alertmanager import parse_webhook
from receiver.ingest.cloudwatch import is_alarm, parse_alarm
from receiver.ingest.sns import TYPES as SNS_TYPES
from receiver.ingest.sns import check_envelope
from receiver.ingest.sns_signature import SignatureError, verify
from receiver.middleware import read_body, webhook
from receiver.service import SERVICE, Service
from receiver.store.base import Due, IngestResult
from rules.alert import Alert

log = structlog.get_logger("remedy.webhook")


# The content codings a body may come in, with the zlib window that reads each one.
_CODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


async def read_json(request: web.Request) -> object:
    """The decoded body, within the size limit; :class:`PayloadError` when it is not JSON.

    The app reads bodies as sent (aiohttp's own decompression answers a coding
    it cannot read in plain text, before any handler runs), so the content
    coding is undone here: gzip and deflate, bounded by the same limit as a
    plain body; any other coding is a 415 naming ``Content-Encoding``.
    """
    limit = request.app[SERVICE].config.max_body_bytes
    codings = _content_codings(request)
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    try:
        body = await read_body(request)
    except RequestPayloadError as exc:  # a broken chunked body
        raise PayloadError("", f"the body could not be read: {type(exc).__name__}") from None
    for coding in reversed(codings):
        body = _decompressed(body, coding, limit)
    return jsontext.decode(body)


def _content_codings(request: web.Request) -> list[str]:
    """The codings applied to the body, in the order they were applied (``identity`` left out)."""
    header = request.headers.get("Content-Encoding")
    if not header:  # the common case: a plain body
        return []
    codings = [c for c in (part.strip().lower() for part in header.split(",")) if c]
    codings = [c for c in codings if c != "identity"]
    for coding in codings:
        if coding not in _CODINGS:
            raise PayloadError(
                "Content-Encoding",
                f"content coding {ascii(coding)[:40]} is not supported: send gzip, deflate or none",
                status=415,
                reason="encoding",
            )
    return codings


def _decompressed(body: bytes, coding: str, limit: int) -> bytes:
    """``body`` with ``coding`` undone, refused once it inflates past ``limit`` bytes."""
    wbits = _CODINGS[coding]
    if coding == "deflate" and not _zlib_header(body):
        wbits = -zlib.MAX_WBITS  # raw deflate, as some clients send it
    decompressor = zlib.decompressobj(wbits)
    try:
        data = decompressor.decompress(body, limit + 1)
    except zlib.error:
        raise PayloadError("Content-Encoding", f"the body is not valid {coding} data") from None
    if len(data) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(data))
    if not decompressor.eof or decompressor.unused_data:
        raise PayloadError("Content-Encoding", f"the {coding} body is cut short or runs on")
    return data


def _zlib_header(data: bytes) -> bool:
    return len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0


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
    plans = service.planner.plan_all(alerts)
    result = await service.store.ingest(plans, message_id, executor.claim_now())
    executor.handle(Due(result.queued, (), result.finished))
    executor.claimed(result.claimed)
    if result.waiting:
        service.running_scheduler.wake()
    return result


@webhook("alertmanager")
async def alertmanager(request: web.Request) -> web.Response:
    """``POST /webhook/alertmanager``: an Alertmanager webhook, version 4."""
    service = request.app[SERVICE]
    message = parse_webhook(await read_json(request))
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
        queued=result.ready,
    )
    return web.json_response(
        {
            "status": "accepted",
            "alerts": len(message.alerts),
            "stored": result.stored,
            "duplicates": result.duplicates,
            "remediations": result.ready,
        }
    )


@webhook("sns")
async def sns(request: web.Request) -> web.Response:
    """``POST /webhook/sns``: SNS deliveries of CloudWatch alarms, signatures verified.

    ``Type`` is read from the body (the ``x-amz-sns-message-type`` header may be
    absent). A raw CloudWatch body (raw message delivery) carries no signature:
    it is taken only when webhook auth vouches for the sender, or when signature
    verification is off.
    """
    service = request.app[SERVICE]
    settings = service.config.sns
    body = await read_json(request)
    if not settings.allowed_topics:
        return await _sns_rejected(
            service, 403, "topic", "sns.allowed_topics is empty: no topic is trusted yet"
        )
    if is_alarm(body) and "Type" not in body:
        if settings.verify_signature and not service.auth.enabled:
            return await _sns_rejected(
                service,
                403,
                "unsigned",
                "a raw delivery carries no signature: configure webhook "
                "auth, or turn sns.verify_signature off",
            )
        raw_topic = _header(request, "x-amz-sns-topic-arn")
        message_id = _header(request, "x-amz-sns-message-id")
        if raw_topic not in settings.allowed_topics:
            return await _sns_rejected(
                service,
                403,
                "topic",
                f"topic {_shown(raw_topic)} is not allowed",
                "x-amz-sns-topic-arn",
            )
        return await _sns_alarm(service, body, message_id or None)
    if not isinstance(body, Mapping) or body.get("Type") not in SNS_TYPES:
        return await _sns_rejected(
            service, 400, "malformed", f"Type must be one of {', '.join(SNS_TYPES)}", "Type"
        )
    check_envelope(body)
    topic = body.get("TopicArn")
    if topic not in settings.allowed_topics:
        return await _sns_rejected(
            service, 403, "topic", f"topic {_shown(topic)} is not allowed", "TopicArn"
        )
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
    text = body.get("Message")
    try:
        message = jsontext.decode(text if isinstance(text, str) else "", "Message")
    except jsontext.Refused as exc:
        return await _sns_rejected(service, 400, "malformed", exc.message, "Message")
    except PayloadError:
        return await _sns_rejected(service, 400, "malformed", "Message is not JSON", "Message")
    if not is_alarm(message):
        return await _sns_rejected(
            service, 400, "malformed", "Message is not a CloudWatch alarm", "Message"
        )
    message_id = body.get("MessageId")
    if message_id is not None and not isinstance(message_id, str):
        raise PayloadError("MessageId", "must be a string")
    return await _sns_alarm(service, message, message_id or None)


async def _sns_alarm(
    service: Service, message: Mapping[str, Any], message_id: str | None
) -> web.Response:
    alert = parse_alarm(message, service.config.sns.insufficient_data)  # type: ignore[arg-type]
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
            "remediations": result.ready,
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


def _header(request: web.Request, name: str) -> str | None:
    """A request header as text; :class:`PayloadError` naming it when its bytes are not UTF-8."""
    value = request.headers.get(name)
    return None if value is None else unicode_text(value, name)


def _shown(value: object) -> str:
    """A sender's value as logs and the audit may show it: a string, cut short, encodable."""
    text = value if isinstance(value, str) else repr(value)
    text = text.encode("utf-8", "backslashreplace").decode()
    return text[:200] + ("..." if len(text) > 200 else "")


async def _sns_rejected(
    service: Service, status: int, reason: str, message: str, field: str | None = None
) -> web.Response:
    """Refuse an SNS delivery: counted, logged and audited (``message`` is shown text)."""
    service.metrics.webhook_rejected.labels("sns", reason).inc()
    log.warning("sns.rejected", reason=reason, detail=message)
    await service.store.record([AuditRecord("skipped", reason=f"sns_{reason}", error=message)])
    answer = {"error": message, "reason": reason, **({"field": field} if field else {})}
    return web.json_response(answer, status=status)
