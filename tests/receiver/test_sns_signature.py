"""SNS signature verification against real AWS-signed messages and messages signed here.

The certificates are served by a real local HTTP server that records every
request, so "checked before anything is fetched" is asserted on what the
server saw. Messages signed in these tests use a key and a self-signed
certificate generated at test time; their string to sign is built here,
independently of the code under test, from the AWS documentation.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from receiver.clock import timestamp
from receiver.ingest.sns_signature import (
    DEFAULT_CERT_URL_PATTERN,
    CertificateCache,
    SignatureError,
    check_cert_url,
    http_fetcher,
    string_to_sign,
    verify,
)
from tests.support.sns import (
    AWS_CERT,
    FIXTURES,
    CertServer,
    Signer,
    algorithm,
    canonical,
    pem_name,
    self_signed,
    signed,
)

AWS_VECTORS = [
    "notification-with-subject-v1.json",
    "notification-no-subject-v1.json",
    "notification-v2.json",
    "subscription-confirmation-v1.json",
    "unsubscribe-confirmation-v2.json",
]
# The real messages were sent on 2026-03-06 between 19:31 and 20:03 UTC.
NOW = datetime(2026, 3, 6, 20, 5, tzinfo=UTC)
HOUR = 3600.0
TOPIC = "arn:aws:sns:us-east-1:123456789012:alarms"
DEFAULT = re.compile(DEFAULT_CERT_URL_PATTERN)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def fetched() -> list[str]:
    """Every URL the certificate cache asked its fetch for."""
    return []


@pytest.fixture
def certificates(session: aiohttp.ClientSession, fetched: list[str]) -> CertificateCache:
    """The cache the service would use, over the real HTTP fetch, recording what it fetches."""
    fetch = http_fetcher(session)

    async def recording(url: str) -> bytes:
        fetched.append(url)
        return await fetch(url)

    return CertificateCache(recording)


def aws_vector(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def notification(cert_url: str, **fields: Any) -> dict[str, Any]:
    """A CloudWatch alarm as SNS delivers it, 30 s before NOW, not yet signed."""
    alarm = {"AlarmName": "orders-dlq-not-empty", "NewStateValue": "ALARM"}
    message = {
        "Type": "Notification",
        "MessageId": "7f0c2d4e-1111-5a5a-9c9c-0123456789ab",
        "TopicArn": TOPIC,
        "Subject": 'ALARM: "orders-dlq-not-empty" in US East (N. Virginia)',
        "Message": json.dumps(alarm),
        "Timestamp": timestamp(NOW - timedelta(seconds=30)),
        "SigningCertURL": cert_url,
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    }
    return {**message, **fields}


def confirmation(cert_url: str) -> dict[str, Any]:
    """A SubscriptionConfirmation, 30 s before NOW, not yet signed."""
    return {
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37fb687f5d51e6e2425929f52e8e3531",
        "TopicArn": TOPIC,
        "Message": f"You have chosen to subscribe to the topic {TOPIC}.\nTo confirm, visit it.",
        "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
        "Timestamp": timestamp(NOW - timedelta(seconds=30)),
        "SigningCertURL": cert_url,
    }


async def check(
    message: dict[str, Any],
    certificates: CertificateCache,
    pattern: re.Pattern[str],
    *,
    now: datetime = NOW,
    max_age: float | None = HOUR,
) -> None:
    await verify(
        message, certificates=certificates, cert_url_pattern=pattern, now=now, max_age=max_age
    )


async def rejected(
    message: dict[str, Any],
    certificates: CertificateCache,
    pattern: re.Pattern[str],
    **kwargs: Any,
) -> SignatureError:
    with pytest.raises(SignatureError) as caught:
        await check(message, certificates, pattern, **kwargs)
    assert "\n" not in str(caught.value)
    return caught.value


# Real messages signed by AWS.


@pytest.mark.parametrize("name", AWS_VECTORS)
async def test_real_aws_messages_verify(
    name: str, cert_server: CertServer, certificates: CertificateCache
) -> None:
    message = {**aws_vector(name), "SigningCertURL": cert_server.url(AWS_CERT)}
    await check(message, certificates, cert_server.pattern)
    assert cert_server.requests == [f"/{AWS_CERT}"]


@pytest.mark.parametrize("name", AWS_VECTORS)
def test_real_certificate_verifies_the_string_to_sign(name: str) -> None:
    message = aws_vector(name)
    certificate = x509.load_pem_x509_certificate((FIXTURES / AWS_CERT).read_bytes())
    key = certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    data = string_to_sign(message)
    digest = algorithm(message["SignatureVersion"])
    key.verify(base64.b64decode(message["Signature"]), data, padding.PKCS1v15(), digest)
    assert (b"Subject\n" in data) == ("Subject" in message)


def test_string_to_sign_is_the_documented_layout() -> None:
    with_subject = {
        "Type": "Notification",
        "MessageId": "id-1",
        "TopicArn": TOPIC,
        "Subject": "hello",
        "Message": "line one\nline two",
        "Timestamp": "2026-03-06T20:03:34.123Z",
        "SignatureVersion": "2",
        "UnsubscribeURL": "https://example.invalid/unsubscribe",
    }
    assert string_to_sign(with_subject) == (
        b"Message\nline one\nline two\nMessageId\nid-1\nSubject\nhello\n"
        b"Timestamp\n2026-03-06T20:03:34.123Z\nTopicArn\n" + TOPIC.encode() + b"\n"
        b"Type\nNotification\n"
    )
    without_subject = {k: v for k, v in with_subject.items() if k != "Subject"}
    assert b"Subject" not in string_to_sign(without_subject)
    assert string_to_sign({**with_subject, "Subject": None}) == string_to_sign(without_subject)
    subscription = confirmation("https://example.invalid/c.pem")
    assert string_to_sign(subscription) == canonical(subscription)
    assert string_to_sign(subscription).startswith(b"Message\nYou have chosen")


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("notification-with-subject-v1.json", {"Subject": "My message subject!"}),
        ("notification-with-subject-v1.json", {"Subject": None}),
        ("notification-no-subject-v1.json", {"Subject": "added"}),
        ("notification-v2.json", {"Message": "This message uses signature version 3."}),
        ("notification-v2.json", {"SignatureVersion": "1"}),
        ("subscription-confirmation-v1.json", {"SubscribeURL": "https://evil.example/"}),
        ("unsubscribe-confirmation-v2.json", {"TopicArn": TOPIC}),
    ],
)
async def test_a_changed_real_message_is_a_bad_signature(
    name: str, change: dict[str, Any], cert_server: CertServer, certificates: CertificateCache
) -> None:
    message = {**aws_vector(name), "SigningCertURL": cert_server.url(AWS_CERT), **change}
    message = {k: v for k, v in message.items() if v is not None}
    error = await rejected(message, certificates, cert_server.pattern)
    assert error.reason == "bad_signature"


async def test_the_real_certificate_has_expired_since(
    cert_server: CertServer, certificates: CertificateCache
) -> None:
    message = {**aws_vector("notification-v2.json"), "SigningCertURL": cert_server.url(AWS_CERT)}
    later = datetime(2026, 10, 20, tzinfo=UTC)
    error = await rejected(message, certificates, cert_server.pattern, now=later, max_age=None)
    assert error.reason == "expired"
    assert "certificate" in str(error)


# Messages signed here.


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("build", [notification, confirmation])
async def test_a_message_signed_by_the_certificate_verifies(
    version: str,
    build: Callable[[str], dict[str, Any]],
    signer: Signer,
    cert_server: CertServer,
    certificates: CertificateCache,
) -> None:
    message = signed(build(cert_server.url(signer.name)), signer, version)
    await check(message, certificates, cert_server.pattern)


async def test_a_notification_without_subject_verifies(
    signer: Signer, cert_server: CertServer, certificates: CertificateCache
) -> None:
    message = notification(cert_server.url(signer.name))
    del message["Subject"]
    await check(signed(message, signer), certificates, cert_server.pattern)


@pytest.mark.parametrize(
    "change",
    [
        {"Message": json.dumps({"AlarmName": "orders-dlq-not-empty", "NewStateValue": "OK"})},
        {"Subject": 'OK: "orders-dlq-not-empty" in US East (N. Virginia)'},
        {"Subject": None},
        {"TopicArn": "arn:aws:sns:us-east-1:123456789012:other"},
        {"Timestamp": timestamp(NOW - timedelta(seconds=20))},
        {"MessageId": "another"},
        {"Signature": base64.b64encode(b"\x00" * 256).decode()},
    ],
)
async def test_a_tampered_message_is_a_bad_signature(
    change: dict[str, Any], signer: Signer, cert_server: CertServer, certificates: CertificateCache
) -> None:
    message = {**signed(notification(cert_server.url(signer.name)), signer), **change}
    message = {k: v for k, v in message.items() if v is not None}
    error = await rejected(message, certificates, cert_server.pattern)
    assert error.reason == "bad_signature"


async def test_a_tampered_confirmation_token_is_a_bad_signature(
    signer: Signer, cert_server: CertServer, certificates: CertificateCache
) -> None:
    message = {**signed(confirmation(cert_server.url(signer.name)), signer), "Token": "f00d"}
    error = await rejected(message, certificates, cert_server.pattern)
    assert error.reason == "bad_signature"


async def test_a_signature_by_another_key_is_a_bad_signature(
    signer: Signer, cert_server: CertServer, certificates: CertificateCache
) -> None:
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = Signer(other_key, signer.pem, signer.name)
    message = signed(notification(cert_server.url(signer.name)), other)
    error = await rejected(message, certificates, cert_server.pattern)
    assert error.reason == "bad_signature"


@pytest.mark.parametrize("version", ["3", "0", "", "2 "])
async def test_another_signature_version_is_refused_before_any_fetch(
    version: str, signer: Signer, cert_server: CertServer, certificates: CertificateCache
) -> None:
    message = signed(notification(cert_server.url(signer.name)), signer, version)
    error = await rejected(message, certificates, cert_server.pattern)
    assert error.reason == "version"
    assert cert_server.requests == []


async def test_a_timestamp_older_than_max_age_has_expired(
    signer: Signer, cert_server: CertServer, certificates: CertificateCache
) -> None:
    old = timestamp(NOW - timedelta(hours=1, seconds=1))
    message = signed(notification(cert_server.url(signer.name), Timestamp=old), signer)
    error = await rejected(message, certificates, cert_server.pattern, max_age=HOUR)
    assert error.reason == "expired"
    assert "max_age" in str(error)
    assert cert_server.requests == []
    await check(message, certificates, cert_server.pattern, max_age=2 * HOUR)
    await check(message, certificates, cert_server.pattern, max_age=None)


async def test_a_timestamp_far_in_the_future_is_refused(
    signer: Signer, cert_server: CertServer, certificates: CertificateCache
) -> None:
    url = cert_server.url(signer.name)
    ahead = signed(notification(url, Timestamp=timestamp(NOW + timedelta(minutes=6))), signer)
    error = await rejected(ahead, certificates, cert_server.pattern, max_age=None)
    assert error.reason == "expired"
    assert "future" in str(error)
    skewed = signed(notification(url, Timestamp=timestamp(NOW + timedelta(minutes=4))), signer)
    await check(skewed, certificates, cert_server.pattern)


@pytest.mark.parametrize(
    "stamp", ["2026-03-06T20:04:00Z", "2026-03-06T20:04:00.5+00:00", "2026-03-06T21:04:00+01:00"]
)
async def test_rfc3339_timestamps_are_understood(
    stamp: str, signer: Signer, cert_server: CertServer, certificates: CertificateCache
) -> None:
    message = signed(notification(cert_server.url(signer.name), Timestamp=stamp), signer)
    await check(message, certificates, cert_server.pattern, max_age=120)


@pytest.mark.parametrize(
    "start", [datetime(2024, 1, 1, tzinfo=UTC), datetime(2026, 3, 7, tzinfo=UTC)]
)
async def test_a_certificate_not_valid_at_now_is_refused(
    start: datetime, signer: Signer, cert_server: CertServer, certificates: CertificateCache
) -> None:
    old_pem = self_signed(signer.key, start)
    old = Signer(signer.key, old_pem, pem_name(old_pem))
    cert_server.files[old.name] = old.pem
    message = signed(notification(cert_server.url(old.name)), old)
    error = await rejected(message, certificates, cert_server.pattern)
    assert error.reason == "expired"
    assert "certificate" in str(error)


async def test_a_certificate_without_an_rsa_key_is_refused(
    signer: Signer, cert_server: CertServer, certificates: CertificateCache
) -> None:
    ec_pem = self_signed(ec.generate_private_key(ec.SECP256R1()), datetime(2026, 1, 1, tzinfo=UTC))
    cert_server.files[pem_name(ec_pem)] = ec_pem
    message = signed(notification(cert_server.url(pem_name(ec_pem))), signer)
    error = await rejected(message, certificates, cert_server.pattern)
    assert error.reason == "bad_signature"


@pytest.mark.parametrize(
    "change",
    [
        {"MessageId": None},
        {"TopicArn": None},
        {"Signature": None},
        {"SigningCertURL": None},
        {"SignatureVersion": None},
        {"Message": {"AlarmName": "x"}},
        {"Timestamp": 1772827414},
        {"Subject": 7},
        {"Type": "Alarm"},
        {"Type": None},
        {"Signature": "not base64!"},
        {"Timestamp": "2026-03-06 20:04:00"},
        {"Timestamp": "2026-03-06T20:04:00"},
        {"Timestamp": "2026-02-30T20:04:00Z"},
    ],
)
async def test_a_malformed_message_is_refused_before_any_fetch(
    change: dict[str, Any], signer: Signer, cert_server: CertServer, certificates: CertificateCache
) -> None:
    message = {**signed(notification(cert_server.url(signer.name)), signer), **change}
    message = {k: v for k, v in message.items() if v is not None}
    error = await rejected(message, certificates, cert_server.pattern)
    assert error.reason == "malformed"
    assert cert_server.requests == []


async def test_a_confirmation_without_its_token_is_malformed(
    signer: Signer, cert_server: CertServer, certificates: CertificateCache
) -> None:
    message = signed(confirmation(cert_server.url(signer.name)), signer)
    del message["Token"]
    error = await rejected(message, certificates, cert_server.pattern)
    assert error.reason == "malformed"
    assert "Token" in str(error)


# The certificate URL is checked before anything is fetched.


def loose(text: str) -> re.Pattern[str]:
    """A pattern written too loosely: the URL checks must hold without its help."""
    return re.compile(text)


CERT_URL_CASES: list[tuple[str, Callable[[CertServer, str], tuple[str, re.Pattern[str]]]]] = [
    (
        "http where the pattern requires https",
        lambda s, name: (
            s.url(name),
            re.compile(
                rf"^https://127\.0\.0\.1:{s.port}/SimpleNotificationService-[a-f0-9]+\.pem$"
            ),
        ),
    ),
    ("another host", lambda s, name: (f"http://localhost:{s.port}/{name}", s.pattern)),
    ("another port", lambda s, name: (f"http://127.0.0.1:{s.port + 1}/{name}", s.pattern)),
    (
        "an AWS look-alike host, default pattern",
        lambda s, name: (
            "https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-abc.pem",
            DEFAULT,
        ),
    ),
    (
        "an AWS look-alike host, loose pattern",
        lambda s, name: (
            "https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-abc.pem",
            loose(r"^https://sns\..*/SimpleNotificationService-[a-f0-9]+\.pem$"),
        ),
    ),
    (
        "http to an SNS host, default pattern",
        lambda s, name: (
            "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            DEFAULT,
        ),
    ),
    (
        "userinfo, loose pattern",
        lambda s, name: (
            f"http://oncall:s3cr3t@127.0.0.1:{s.port}/{name}",
            loose(rf"^http://.*127\.0\.0\.1:{s.port}/.*$"),
        ),
    ),
    (
        "userinfo hiding the real host, loose pattern",
        lambda s, name: (
            f"http://sns.us-east-1.amazonaws.com@127.0.0.1:{s.port}/{name}",
            loose(r"^http://sns\.us-east-1\.amazonaws\.com.*\.pem$"),
        ),
    ),
    (
        "empty userinfo, loose pattern",
        lambda s, name: (
            f"http://@127.0.0.1:{s.port}/{name}",
            loose(rf"^http://.*127\.0\.0\.1:{s.port}/.*$"),
        ),
    ),
    (
        "not a .pem, loose pattern",
        lambda s, name: (
            f"http://127.0.0.1:{s.port}/{name.removesuffix('.pem')}.txt",
            loose(rf"^http://127\.0\.0\.1:{s.port}/.*$"),
        ),
    ),
    (
        "a query after .pem, loose pattern",
        lambda s, name: (
            f"http://127.0.0.1:{s.port}/{name}?x=.pem",
            loose(rf"^http://127\.0\.0\.1:{s.port}/.*$"),
        ),
    ),
    (
        "a fragment, loose pattern",
        lambda s, name: (
            f"http://127.0.0.1:{s.port}/{name}#.pem",
            loose(rf"^http://127\.0\.0\.1:{s.port}/.*$"),
        ),
    ),
    (
        "more after what a pattern without $ matches",
        lambda s, name: (
            f"http://127.0.0.1:{s.port}/{name}.evil.pem",
            loose(rf"^http://127\.0\.0\.1:{s.port}/SimpleNotificationService-[a-f0-9]+\.pem"),
        ),
    ),
    (
        "a trailing newline",
        lambda s, name: (f"{s.url(name)}\n", s.pattern),
    ),
    (
        "another scheme, loose pattern",
        lambda s, name: (f"file:///tmp/{name}", loose(r"^.*\.pem$")),
    ),
]


@pytest.mark.parametrize(
    "case", [build for _, build in CERT_URL_CASES], ids=[label for label, _ in CERT_URL_CASES]
)
async def test_a_refused_certificate_url_is_never_fetched(
    case: Callable[[CertServer, str], tuple[str, re.Pattern[str]]],
    signer: Signer,
    cert_server: CertServer,
    certificates: CertificateCache,
    fetched: list[str],
) -> None:
    url, pattern = case(cert_server, signer.name)
    message = signed(notification(url), signer)
    error = await rejected(message, certificates, pattern)
    assert error.reason == "cert_url"
    assert "s3cr3t" not in str(error)
    assert fetched == []
    assert cert_server.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-7506a1e35b36ef5a444dd1a8e7cc3ed8.pem",
        "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-0123abcd.pem",
    ],
)
def test_sns_certificate_urls_are_admitted(url: str) -> None:
    check_cert_url(url, DEFAULT)
    check_cert_url(url, loose(r"^https://sns\..*/SimpleNotificationService-[a-f0-9]+\.pem$"))


# The certificate cache and its fetch.


async def test_the_cache_fetches_once_for_two_messages(
    signer: Signer, cert_server: CertServer, certificates: CertificateCache
) -> None:
    url = cert_server.url(signer.name)
    await check(signed(notification(url), signer), certificates, cert_server.pattern)
    await check(signed(confirmation(url), signer, "1"), certificates, cert_server.pattern)
    assert cert_server.requests == [f"/{signer.name}"]


async def test_concurrent_lookups_share_one_fetch(
    signer: Signer, cert_server: CertServer, session: aiohttp.ClientSession
) -> None:
    cache = CertificateCache(http_fetcher(session))
    url = cert_server.url(signer.name)
    got = await asyncio.gather(*(cache.get(url) for _ in range(5)))
    assert len({c.fingerprint(hashes.SHA256()) for c in got}) == 1
    assert cert_server.requests == [f"/{signer.name}"]


async def test_an_entry_is_refetched_after_its_ttl(
    signer: Signer, cert_server: CertServer, session: aiohttp.ClientSession
) -> None:
    now = [1000.0]
    cache = CertificateCache(http_fetcher(session), ttl=60.0, clock=lambda: now[0])
    url = cert_server.url(signer.name)
    await cache.get(url)
    now[0] += 59.0
    await cache.get(url)
    assert len(cert_server.requests) == 1
    now[0] += 1.0
    await cache.get(url)
    assert len(cert_server.requests) == 2


async def test_the_least_recently_used_entry_is_evicted_past_max_entries(
    signer: Signer, cert_server: CertServer, session: aiohttp.ClientSession
) -> None:
    for name in ("a", "b", "c"):
        cert_server.files[f"{name}.pem"] = signer.pem
    cache = CertificateCache(http_fetcher(session), max_entries=2)
    for name in ("a", "b", "a", "c"):
        await cache.get(cert_server.url(f"{name}.pem"))
    assert cert_server.requests == ["/a.pem", "/b.pem", "/c.pem"]
    assert len(cache) == 2
    await cache.get(cert_server.url("a.pem"))
    await cache.get(cert_server.url("c.pem"))
    assert len(cert_server.requests) == 3
    await cache.get(cert_server.url("b.pem"))
    assert cert_server.requests[3:] == ["/b.pem"]
    assert len(cache) == 2


async def test_a_failed_fetch_is_not_cached(
    signer: Signer, cert_server: CertServer, certificates: CertificateCache
) -> None:
    url = cert_server.url("later.pem")
    with pytest.raises(SignatureError) as caught:
        await certificates.get(url)
    assert caught.value.reason == "cert_fetch"
    assert "404" in str(caught.value)
    cert_server.files["later.pem"] = signer.pem
    await certificates.get(url)
    assert cert_server.requests == ["/later.pem", "/later.pem"]


async def test_a_fetch_that_raises_is_a_cert_fetch_error() -> None:
    async def broken(url: str) -> bytes:
        raise ConnectionError("network unreachable")

    with pytest.raises(SignatureError) as caught:
        await CertificateCache(broken).get("https://user:pw@example.invalid/x.pem")
    assert caught.value.reason == "cert_fetch"
    assert "network unreachable" in str(caught.value)
    assert "pw" not in str(caught.value)


async def test_a_redirect_is_not_followed(
    signer: Signer, cert_server: CertServer, certificates: CertificateCache
) -> None:
    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"/{signer.name}")

    cert_server.handlers["moved.pem"] = redirect
    with pytest.raises(SignatureError) as caught:
        await certificates.get(cert_server.url("moved.pem"))
    assert caught.value.reason == "cert_fetch"
    assert cert_server.requests == ["/moved.pem"]


async def test_a_body_that_is_not_a_certificate_is_a_cert_fetch_error(
    cert_server: CertServer, certificates: CertificateCache
) -> None:
    cert_server.files["junk.pem"] = (
        b"-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n"
    )
    with pytest.raises(SignatureError) as caught:
        await certificates.get(cert_server.url("junk.pem"))
    assert caught.value.reason == "cert_fetch"


async def test_an_oversized_certificate_is_refused(
    signer: Signer, cert_server: CertServer, session: aiohttp.ClientSession
) -> None:
    limit = len(signer.pem)
    cert_server.files["exact.pem"] = signer.pem
    cert_server.files["big.pem"] = signer.pem + b"\n"

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(8):
            await response.write(signer.pem)
        await response.write_eof()
        return response

    cert_server.handlers["chunked.pem"] = chunked
    cache = CertificateCache(http_fetcher(session, max_bytes=limit))
    await cache.get(cert_server.url("exact.pem"))
    for name in ("big.pem", "chunked.pem"):
        with pytest.raises(SignatureError) as caught:
            await cache.get(cert_server.url(name))
        assert caught.value.reason == "cert_fetch"
        assert "larger than" in str(caught.value)


async def test_a_slow_server_times_out(
    signer: Signer, cert_server: CertServer, session: aiohttp.ClientSession
) -> None:
    async def slow_headers(request: web.Request) -> web.StreamResponse:
        await cert_server.release.wait()
        return web.Response(body=signer.pem)

    async def slow_body(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = len(signer.pem)
        await response.prepare(request)
        await response.write(signer.pem[:100])
        await cert_server.release.wait()
        with contextlib.suppress(ConnectionError):  # the client gave up long ago, as it should
            await response.write(signer.pem[100:])
        return response

    cert_server.handlers["slow-headers.pem"] = slow_headers
    cert_server.handlers["slow-body.pem"] = slow_body
    cache = CertificateCache(http_fetcher(session, timeout=0.2))
    for name in ("slow-headers.pem", "slow-body.pem"):
        started = asyncio.get_running_loop().time()
        with pytest.raises(SignatureError) as caught:
            async with asyncio.timeout(5):  # a fetch without its own timeout fails, not hangs
                await cache.get(cert_server.url(name))
        assert caught.value.reason == "cert_fetch"
        assert "0.2 s" in str(caught.value)
        assert asyncio.get_running_loop().time() - started < 2.0


def test_cache_bounds_must_be_positive() -> None:
    async def fetch(url: str) -> bytes:
        return b""

    with pytest.raises(ValueError, match="max_entries"):
        CertificateCache(fetch, max_entries=0)
    with pytest.raises(ValueError, match="ttl"):
        CertificateCache(fetch, ttl=0)
