"""Verify that an SNS HTTP(S) delivery was really signed by Amazon SNS.

Anyone who can reach ``POST /webhook/sns`` can post a JSON body that looks like
an SNS message; only the signature tells a CloudWatch alarm that SNS delivered
from a forged one that would trigger a remediation. SNS signs each message
with the key of a certificate it serves at ``SigningCertURL``, so verification
is: build the documented "string to sign", fetch that certificate, and check
the RSA signature over the string (SignatureVersion ``1`` is SHA1withRSA,
``2`` is SHA256withRSA, both PKCS#1 v1.5).

Trust comes from *where* the certificate is fetched, not from a certificate
chain: SNS signing certificates are served over HTTPS from SNS hosts, so the
certificate URL must match the configured pattern (the default admits only
``https://sns.<region>.amazonaws.com[.cn]/SimpleNotificationService-<hex>.pem``)
and is checked before anything is fetched. Otherwise the sender would choose
the key its own forgery is checked against, and remedy would make requests
to wherever the sender points it. Fetched certificates are cached (bounded,
with a TTL) because every delivery names one and SNS rotates them rarely.

A ``Timestamp`` older than ``max_age`` is rejected, so a captured delivery
cannot be replayed later; a ``MessageId`` seen before is the caller's
business (the store dedups).

Every failure is a :class:`SignatureError` whose ``reason`` is one short word
the webhook maps to an HTTP status and a metric label.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from yarl import URL

__all__ = [
    "DEFAULT_CERT_URL_PATTERN",
    "CertificateCache",
    "SignatureError",
    "check_cert_url",
    "http_fetcher",
    "string_to_sign",
    "verify",
]

DEFAULT_CERT_URL_PATTERN: str = (
    r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/SimpleNotificationService-[a-f0-9]+\.pem$"
)
"""Certificate URLs admitted by default: HTTPS, an SNS host of a region, a signing certificate."""

# The fields of the string to sign, in the order AWS documents, per message type.
_NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
_SIGNED_FIELDS: Mapping[str, tuple[str, ...]] = {
    "Notification": _NOTIFICATION_FIELDS,
    "SubscriptionConfirmation": _CONFIRMATION_FIELDS,
    "UnsubscribeConfirmation": _CONFIRMATION_FIELDS,
}
_OPTIONAL_FIELDS = frozenset({"Subject"})
_ENVELOPE_FIELDS = ("SignatureVersion", "Signature", "SigningCertURL")

_HASHES: Mapping[str, Callable[[], hashes.HashAlgorithm]] = {
    "1": hashes.SHA1,  # SNS's SignatureVersion 1 is SHA1withRSA; not our choice to make
    "2": hashes.SHA256,
}

# SNS stamps its own clock; a few minutes ahead is skew, more is a forged or broken sender.
_MAX_FUTURE_SKEW = timedelta(minutes=5)

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
# Printable ASCII without space or backslash: anything else in a URL invites the two
# parsers below (and the server) to disagree about which host it names.
_URL_CHARS = re.compile(r"[!-\[\]-~]+", re.ASCII)
_AWS_DOMAIN_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn")
_SHOWN_URL_CHARS = 200


class SignatureError(Exception):
    """An SNS message that must not be trusted, and why.

    ``reason`` is one machine word for metrics and the HTTP answer:
    ``malformed`` (fields missing or of the wrong type), ``version`` (a
    SignatureVersion other than 1 or 2), ``cert_url`` (the certificate URL is
    not one we fetch from), ``expired`` (the Timestamp is too old or too far
    ahead, or the certificate is not valid at that time), ``cert_fetch`` (the
    certificate could not be fetched or parsed) and ``bad_signature``.
    ``str()`` is one human line that never contains credentials.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def string_to_sign(message: Mapping[str, Any]) -> bytes:
    """The bytes SNS signed for ``message``, built as the AWS documentation describes.

    Each signed field in its documented order as ``Key\\nValue\\n``;
    ``Subject`` of a Notification only when the message has one. Raises
    :class:`SignatureError` (``malformed``) for an unknown ``Type`` or a missing
    or non-string field, since no signature could then cover the message.
    """
    kind = message.get("Type")
    fields = _SIGNED_FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        problem = _field_problem("Type", kind) if kind is None else f"unknown Type {_shown(kind)}"
        raise SignatureError("malformed", problem)
    parts: list[str] = []
    for field in fields:
        value = message.get(field)
        if value is None and field in _OPTIONAL_FIELDS:
            continue
        if not isinstance(value, str):
            raise SignatureError("malformed", _field_problem(field, value))
        parts.append(f"{field}\n{value}\n")
    return "".join(parts).encode("utf-8")


def check_cert_url(url: str, pattern: re.Pattern[str]) -> None:
    """Raise :class:`SignatureError` (``cert_url``) unless ``url`` may be fetched.

    Called before any fetch: the URL comes from the unauthenticated message,
    and both the key it yields and the request to it are the sender's choice
    otherwise. The URL must fully match ``pattern``, carry no userinfo, no
    query and no fragment, use http(s) (the pattern decides which) and have a
    path ending in ``.pem``. Independently of the pattern, a host that names an
    AWS domain must lie inside it, so ``sns.us-east-1.amazonaws.com.evil.example``
    is refused even when a loose pattern would admit it.
    """
    if not _URL_CHARS.fullmatch(url):
        raise SignatureError(
            "cert_url", "SigningCertURL contains spaces, control or non-ASCII characters"
        )
    try:
        parsed = URL(url)
        split = urllib.parse.urlsplit(url)
        split_host = split.hostname
    except ValueError:
        raise SignatureError("cert_url", "SigningCertURL is not a valid URL") from None
    # Checked before the URL is ever shown, so an error never echoes a password.
    if parsed.user is not None or parsed.password is not None or "@" in split.netloc:
        raise SignatureError("cert_url", "SigningCertURL must not carry userinfo (user@)")
    shown = _shown(url)
    if not pattern.fullmatch(url):
        raise SignatureError("cert_url", f"SigningCertURL {shown} does not match cert_url_pattern")
    host = parsed.host
    if parsed.scheme not in ("https", "http") or not host:
        raise SignatureError(
            "cert_url", f"SigningCertURL {shown} is not an http(s) URL with a host"
        )
    if split_host is None or split_host.lower() != host.lower():
        raise SignatureError("cert_url", f"SigningCertURL {shown} names its host ambiguously")
    if parsed.raw_query_string or parsed.raw_fragment or "?" in url or "#" in url:
        raise SignatureError("cert_url", f"SigningCertURL {shown} has a query or a fragment")
    if not parsed.raw_path.endswith(".pem"):
        raise SignatureError("cert_url", f"SigningCertURL {shown} does not name a .pem file")
    lowered = host.lower()
    if "amazonaws" in lowered and not lowered.endswith(_AWS_DOMAIN_SUFFIXES):
        raise SignatureError(
            "cert_url", f"SigningCertURL {shown} names a host outside amazonaws.com"
        )


class CertificateCache:
    """Signing certificates by URL: a bounded LRU whose entries live ``ttl`` seconds.

    SNS names the same certificate in every delivery, so fetching it once per
    message would put a network round trip (and a dependency on AWS being
    reachable) on every alarm. The bound keeps a sender cycling through many
    admissible URLs from growing memory; the TTL lets a replaced certificate
    be picked up. Concurrent requests for one URL share a single fetch.
    Failed fetches are not cached. ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        fetch: Callable[[str], Awaitable[bytes]],
        *,
        max_entries: int = 32,
        ttl: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self._fetch = fetch
        self._max_entries = max_entries
        self._ttl = ttl
        self._clock = clock
        self._entries: collections.OrderedDict[str, tuple[float, x509.Certificate]] = (
            collections.OrderedDict()
        )
        self._pending: dict[str, asyncio.Task[x509.Certificate]] = {}

    def __len__(self) -> int:
        """How many certificates are held (expired ones until they are next looked up)."""
        return len(self._entries)

    async def get(self, url: str) -> x509.Certificate:
        """The certificate at ``url``, from the cache or fetched.

        Raises :class:`SignatureError` (``cert_fetch``) when the fetch fails or
        the body is not a PEM certificate. ``url`` must already have passed
        :func:`check_cert_url`; the cache fetches whatever it is given.
        """
        entry = self._entries.get(url)
        if entry is not None:
            expires, certificate = entry
            if self._clock() < expires:
                self._entries.move_to_end(url)
                return certificate
            del self._entries[url]
        task = self._pending.get(url)
        if task is None:
            task = asyncio.create_task(self._load(url))
            self._pending[url] = task
            task.add_done_callback(lambda done: self._settle(url, done))
        # Shielded: one caller giving up (its request cancelled) must not fail the others.
        return await asyncio.shield(task)

    async def _load(self, url: str) -> x509.Certificate:
        shown = _shown_url(url)
        try:
            body = await self._fetch(url)
        except SignatureError:
            raise
        except Exception as exc:  # any fetch failure means the same thing: no certificate
            raise SignatureError(
                "cert_fetch", f"could not fetch the signing certificate {shown}: {_describe(exc)}"
            ) from exc
        try:
            return x509.load_pem_x509_certificate(body)
        except ValueError:
            raise SignatureError(
                "cert_fetch", f"the body at {shown} is not a PEM certificate"
            ) from None

    def _settle(self, url: str, task: asyncio.Task[x509.Certificate]) -> None:
        if self._pending.get(url) is task:
            del self._pending[url]
        if task.cancelled() or task.exception() is not None:
            return  # failures are not cached; exception() also marks it retrieved
        self._entries[url] = (self._clock() + self._ttl, task.result())
        self._entries.move_to_end(url)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)


def http_fetcher(
    session: aiohttp.ClientSession, *, timeout: float = 5.0, max_bytes: int = 64 * 1024
) -> Callable[[str], Awaitable[bytes]]:
    """A certificate fetch for :class:`CertificateCache` over ``session``.

    A plain GET that follows no redirect (a redirect would lead away from the
    checked URL), gives up after ``timeout`` seconds in all, and refuses a
    body over ``max_bytes`` (a certificate is ~2 KiB; the sender must not make
    remedy download anything large). Failures raise :class:`SignatureError`
    with reason ``cert_fetch``.
    """

    async def fetch(url: str) -> bytes:
        shown = _shown_url(url)
        try:
            async with asyncio.timeout(timeout):
                async with session.get(url, allow_redirects=False) as response:
                    if response.status != 200:
                        raise SignatureError(
                            "cert_fetch", f"GET {shown} answered HTTP {response.status}"
                        )
                    if response.content_length is not None and response.content_length > max_bytes:
                        raise _too_large(shown, max_bytes)
                    body = bytearray()
                    while chunk := await response.content.read(max_bytes + 1 - len(body)):
                        body += chunk
                        if len(body) > max_bytes:
                            raise _too_large(shown, max_bytes)
                    return bytes(body)
        except TimeoutError:
            raise SignatureError(
                "cert_fetch", f"GET {shown} did not complete within {timeout:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise SignatureError("cert_fetch", f"GET {shown} failed: {_describe(exc)}") from None

    return fetch


async def verify(
    message: Mapping[str, Any],
    *,
    certificates: CertificateCache,
    cert_url_pattern: re.Pattern[str],
    now: datetime,
    max_age: float | None,
) -> None:
    """Return when ``message`` is a genuine, fresh SNS message; raise :class:`SignatureError`.

    Cheap checks come first and the certificate URL is checked before the
    cache can fetch it: fields (``malformed``), SignatureVersion
    (``version``), certificate URL (``cert_url``), Timestamp no older than
    ``max_age`` seconds (``None``: no limit) and no more than 5 minutes ahead
    of ``now`` (``expired``), the certificate (``cert_fetch``), which must be
    valid at ``now`` (``expired``: an out-of-date certificate is untrusted
    for now, not unreachable), and finally the signature (``bad_signature``).
    ``now`` must be timezone-aware; it is a parameter so that replays and
    tests judge messages at their own time.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    signed = string_to_sign(message)
    for field in _ENVELOPE_FIELDS:
        value = message.get(field)
        if not isinstance(value, str):
            raise SignatureError("malformed", _field_problem(field, value))
    try:
        signature = base64.b64decode(message["Signature"], validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("malformed", "Signature is not valid base64") from None
    version: str = message["SignatureVersion"]
    algorithm = _HASHES.get(version)
    if algorithm is None:
        raise SignatureError("version", f"unsupported SignatureVersion {_shown(version)}")
    cert_url: str = message["SigningCertURL"]
    check_cert_url(cert_url, cert_url_pattern)
    _check_timestamp(message["Timestamp"], now, max_age)

    certificate = await certificates.get(cert_url)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise SignatureError(
            "expired",
            f"the signing certificate is valid from {certificate.not_valid_before_utc:%Y-%m-%d}"
            f" to {certificate.not_valid_after_utc:%Y-%m-%d}, not at {now:%Y-%m-%dT%H:%M:%SZ}",
        )
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SignatureError("bad_signature", "the signing certificate's key is not RSA")
    try:
        key.verify(signature, signed, padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise SignatureError(
            "bad_signature", f"the signature of SNS message {_shown(message['MessageId'])} is wrong"
        ) from None


def _check_timestamp(value: str, now: datetime, max_age: float | None) -> None:
    if not _RFC3339.fullmatch(value):
        raise SignatureError("malformed", f"Timestamp {_shown(value)} is not an RFC 3339 time")
    try:
        sent = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise SignatureError(
            "malformed", f"Timestamp {_shown(value)} is not a valid time"
        ) from None
    age = (now - sent).total_seconds()
    if max_age is not None and age > max_age:
        raise SignatureError(
            "expired", f"Timestamp {value} is {age:.0f} s old, over max_age {max_age:g} s"
        )
    if -age > _MAX_FUTURE_SKEW.total_seconds():
        raise SignatureError("expired", f"Timestamp {value} is {-age:.0f} s in the future")


def _field_problem(field: str, value: object) -> str:
    if value is None:
        return f"the SNS message has no {field}"
    return f"{field} must be a string, not {type(value).__name__}"


def _too_large(shown: str, max_bytes: int) -> SignatureError:
    return SignatureError("cert_fetch", f"the body at {shown} is larger than {max_bytes} bytes")


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:_SHOWN_URL_CHARS]}" if text else type(exc).__name__


def _shown_url(url: str) -> str:
    """``url`` for a message, without any userinfo it may carry."""
    try:
        split = urllib.parse.urlsplit(url)
    except ValueError:
        return "an unparseable URL"
    if "@" in split.netloc:
        url = urllib.parse.urlunsplit(split._replace(netloc=split.netloc.rpartition("@")[2]))
    return _shown(url)


def _shown(value: object) -> str:
    """A sender-supplied value fit for a one-line message: quoted, escaped and short."""
    text = repr(value)
    if len(text) > _SHOWN_URL_CHARS:
        return text[: _SHOWN_URL_CHARS - 3] + "..."
    return text
