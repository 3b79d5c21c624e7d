"""Test certificates, and a TLS listener with a certificate no one trusts.

:func:`issue` makes a P-256 certificate (self-signed, or signed by a CA made
the same way) in a few milliseconds. :func:`untrusted_tls` serves one for the
backends' certificate errors: with ``postgres=True`` it answers PostgreSQL's
SSLRequest (``S``) before the handshake, as a server with ``ssl = on`` does;
otherwise the handshake starts at once, as a Redis ``tls-port`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Issued = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def issue(
    common_name: str,
    *,
    ca: bool = False,
    signer: Issued | None = None,
    hosts: Sequence[str] = (),
) -> Issued:
    """A certificate for ``common_name`` valid for a day: a CA, or a server's for ``hosts``.

    Self-signed without a ``signer``. ``hosts`` are IP addresses or DNS names.
    """
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    issuer_cert, issuer_key = signer if signer else (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_cert.subject if issuer_cert else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), True)
    )
    if ca:
        usage = dict.fromkeys(
            (
                "content_commitment",
                "key_encipherment",
                "data_encipherment",
                "key_agreement",
                "encipher_only",
                "decipher_only",
            ),
            False,
        )
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, **usage),
            critical=True,
        )
    else:
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256()), key


def write_pem(issued: Issued, cert_file: Path, key_file: Path) -> None:
    """The certificate and its unencrypted key as PEM files."""
    cert, key = issued
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@contextlib.asynccontextmanager
async def untrusted_tls(directory: Path, *, postgres: bool = False) -> AsyncIterator[int]:
    """The port of a local TLS listener whose certificate fails verification.

    Self-signed, for ``untrusted.invalid``: untrusted by the system's CAs, and
    for another host than 127.0.0.1 even where ``directory/cert.pem`` is the
    root a client is told to trust.
    """
    cert, key = directory / "cert.pem", directory / "key.pem"
    write_pem(issue("untrusted.invalid", hosts=["untrusted.invalid"]), cert, key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    writers: list[asyncio.StreamWriter] = []

    async def handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(OSError):
            await reader.read()
        writer.close()

    async def ssl_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # "S", then the bytes go to the TLS listener, which does the handshake
        writers.append(writer)
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await reader.readexactly(8)
            writer.write(b"S")
            await writer.drain()
            tls_reader, tls_writer = await asyncio.open_connection("127.0.0.1", tls_port)
            writers.append(tls_writer)
            await asyncio.gather(_copy(reader, tls_writer), _copy(tls_reader, writer))
        writer.close()

    servers = [await asyncio.start_server(handshake, "127.0.0.1", 0, ssl=context)]
    tls_port = int(servers[0].sockets[0].getsockname()[1])
    if postgres:
        servers.append(await asyncio.start_server(ssl_request, "127.0.0.1", 0))
    try:
        yield int(servers[-1].sockets[0].getsockname()[1])
    finally:
        for server in servers:
            server.close()
        for writer in writers:
            writer.close()
        for server in servers:
            await server.wait_closed()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()
