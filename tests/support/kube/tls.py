"""A test certificate authority and a serving certificate for 127.0.0.1, made once per run.

kubectl sends its bearer token only over HTTPS, so the fake serves HTTPS as a real
API server does, with a certificate its kubeconfig's ``certificate-authority-data``
vouches for. P-256 keys keep the cost to a few milliseconds.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import shutil
import ssl
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from tests.support.tls import issue, write_pem


@dataclasses.dataclass(frozen=True, slots=True)
class ServingCertificate:
    """The CA's certificate (what clients trust) and the server's chain and key on disk."""

    ca_pem: bytes
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        """The TLS context the fake listens with."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A TLS context that trusts the fake (for tests that speak raw HTTP to it)."""
        return ssl.create_default_context(cadata=self.ca_pem.decode("ascii"))


@functools.cache
def serving_certificate() -> ServingCertificate:
    """The run's certificate for ``127.0.0.1``, signed by the run's own CA."""
    ca = issue("fake-kubernetes-ca", ca=True)
    server = issue("kube-apiserver", signer=ca, hosts=["127.0.0.1", "localhost"])
    where = Path(tempfile.mkdtemp(prefix="fake-kube-tls-"))
    atexit.register(shutil.rmtree, where, ignore_errors=True)
    cert_file, key_file = where / "apiserver.crt", where / "apiserver.key"
    write_pem(server, cert_file, key_file)
    return ServingCertificate(ca[0].public_bytes(serialization.Encoding.PEM), cert_file, key_file)
