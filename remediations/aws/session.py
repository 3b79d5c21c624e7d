"""One aiobotocore session per process, and the clients the AWS actions open from it.

Credentials come from the standard chain (environment, shared files, the
instance or task role); ``endpoint_url`` points every client at a local
endpoint such as moto's server.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiobotocore.session import get_session


class AwsSession:
    """The process's AWS session with its region and endpoint."""

    def __init__(self, region: str, endpoint_url: str | None = None) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        self._session = get_session()

    @contextlib.asynccontextmanager
    async def client(self, service: str) -> AsyncIterator[Any]:
        """An API client for ``service`` (``sqs``, ``lambda``, ``ecs``), closed after use."""
        async with self._session.create_client(
            service, region_name=self.region, endpoint_url=self.endpoint_url
        ) as api:
            yield api
