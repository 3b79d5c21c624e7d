"""Signing SNS messages in the tests: a test key, its certificate, and a server for it.

Messages signed here use a key and a self-signed certificate generated at test
time; their string to sign is built here, independently of the code under
test, from the AWS documentation. The certificate server records every request,
so "checked before anything is fetched" is asserted on what it saw.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sns"
AWS_CERT = "SimpleNotificationService-7506a1e35b36ef5a444dd1a8e7cc3ed8.pem"

# The fields AWS documents as signed, per message type, in order.
SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
SIGNED_FIELDS["UnsubscribeConfirmation"] = SIGNED_FIELDS["SubscriptionConfirmation"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class CertServer:
    """A local HTTP server serving certificates by file name; records every path asked for.

    ``files`` answers ``GET /NAME`` with the bytes; ``handlers`` gives a name a
    special behaviour (slow, redirecting, chunked). Slow handlers wait on
    ``release``, which the fixture sets before it closes the server.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.handlers: dict[str, Handler] = {}
        self.requests: list[str] = []
        self.release = asyncio.Event()
        self.server: TestServer | None = None

    @property
    def port(self) -> int:
        assert self.server is not None and self.server.port is not None
        return self.server.port

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    @property
    def pattern(self) -> re.Pattern[str]:
        """Like the default pattern, but for this server over http."""
        return re.compile(
            rf"^http://127\.0\.0\.1:{self.port}/SimpleNotificationService-[a-f0-9]+\.pem$"
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.requests.append(request.path_qs)
        if name in self.handlers:
            return await self.handlers[name](request)
        if name in self.files:
            return web.Response(body=self.files[name], content_type="application/x-pem-file")
        return web.Response(status=404, text="no such certificate")


@dataclasses.dataclass(frozen=True)
class Signer:
    """A test signing key and its self-signed certificate, served as ``name``."""

    key: rsa.RSAPrivateKey
    pem: bytes
    name: str


def self_signed(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, start: datetime) -> bytes:
    """A one-year self-signed certificate for ``key`` named like SNS's, from ``start``."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def pem_name(pem: bytes) -> str:
    """A certificate file name the patterns admit, unique to ``pem``."""
    return f"SimpleNotificationService-{hashlib.sha256(pem).hexdigest()[:32]}.pem"


@pytest.fixture(scope="session")
def signer() -> Signer:
    """One RSA key per module: generating it is the slow part."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = self_signed(key, datetime(2026, 1, 1, tzinfo=UTC))
    return Signer(key, pem, pem_name(pem))


@pytest.fixture
async def cert_server(signer: Signer) -> AsyncIterator[CertServer]:
    """The running certificate server, serving the real AWS certificate and the test one."""
    served = CertServer()
    served.files[AWS_CERT] = (FIXTURES / AWS_CERT).read_bytes()
    served.files[signer.name] = signer.pem
    app = web.Application()
    app.router.add_get("/{name}", served.handle)
    served.server = TestServer(app, host="127.0.0.1")
    await served.server.start_server()
    yield served
    served.release.set()
    await served.server.close()


def canonical(message: dict[str, Any]) -> bytes:
    """The string to sign as AWS documents it, built here independently of the module."""
    fields = SIGNED_FIELDS[message["Type"]]
    return "".join(f"{k}\n{message[k]}\n" for k in fields if k in message).encode()


def algorithm(version: str) -> hashes.HashAlgorithm:
    """The digest of a SignatureVersion (anything but "1" is signed with SHA-256 here)."""
    if version == "1":
        return hashes.SHA1()  # noqa: S303 - SNS SignatureVersion 1 is SHA1withRSA by definition
    return hashes.SHA256()


def signed(message: dict[str, Any], signer: Signer, version: str = "2") -> dict[str, Any]:
    """``message`` with SignatureVersion and Signature, signed with the test key."""
    message = {**message, "SignatureVersion": version}
    signature = signer.key.sign(canonical(message), padding.PKCS1v15(), algorithm(version))
    return {**message, "Signature": base64.b64encode(signature).decode()}
