"""A real AWS API for the tests: moto's server on 127.0.0.1 (SPEC §9).

One ``ThreadedMotoServer`` per test session, on a free loopback port. The
``moto_server`` fixture hands each test its endpoint URL with moto's state
reset and dummy credentials in the environment (restored after the test),
so the standard credential chain of the code under test finds them and
nothing ever reaches AWS itself.

Load it with ``pytest_plugins = ["tests.support.moto"]`` (or import the
fixtures into a test module).
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator

import pytest

from tests.support.engines import missing

REGION = "us-east-1"
# The whole credential chain: dummy keys first, nothing from files, profiles or IMDS.
_ENV: dict[str, str | None] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_SESSION_TOKEN": None,
    "AWS_SECURITY_TOKEN": None,
    "AWS_PROFILE": None,
    "AWS_DEFAULT_PROFILE": None,
    "AWS_CONFIG_FILE": "/nonexistent/remedy-tests/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/remedy-tests/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(scope="session", name="moto_process")
def moto_process_fixture() -> Iterator[str]:
    """``moto_process``: moto's server for the whole session; its endpoint URL."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        missing("install moto[server] (pip install 'moto[server]')")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(name="aws_credentials")
def aws_credentials_fixture() -> Iterator[None]:
    """``aws_credentials``: dummy credentials and region in the environment for one test."""
    saved = {name: os.environ.get(name) for name in _ENV}
    _apply(_ENV)
    try:
        yield
    finally:
        _apply(saved)


@pytest.fixture(name="moto_server")
def moto_server_fixture(moto_process: str, aws_credentials: None) -> str:
    """``moto_server``: the endpoint URL of a freshly reset moto, with dummy credentials set."""
    del aws_credentials
    # no proxy, whatever the environment says: tests talk to 127.0.0.1 only
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    reset = urllib.request.Request(f"{moto_process}/moto-api/reset", method="POST")
    with opener.open(reset, timeout=10) as answer:
        assert answer.status == 200
    return moto_process


def _apply(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
