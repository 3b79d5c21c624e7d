"""A TLS listener with a certificate no one trusts, for the backends' certificate errors.

``postgres=True`` answers PostgreSQL's SSLRequest (``S``) before the
handshake, as a server with ``ssl = on`` does; otherwise the handshake
starts at once, as a Redis ``tls-port`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path


@contextlib.asynccontextmanager
async def untrusted_tls(directory: Path, *, postgres: bool = False) -> AsyncIterator[int]:
    """The port of a local TLS listener whose certificate fails verification.

    Self-signed, for ``untrusted.invalid``: untrusted by the system's CAs, and
    for another host than 127.0.0.1 even where ``directory/cert.pem`` is the
    root a client is told to trust.
    """
    cert, key = directory / "cert.pem", directory / "key.pem"
    made = await asyncio.create_subprocess_exec(
        *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
        *("-subj", "/CN=untrusted.invalid", "-keyout", str(key), "-out", str(cert)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert await made.wait() == 0, "openssl could not make a certificate"
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
