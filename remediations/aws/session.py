"""One aiobotocore session per process, and the clients the AWS actions open from it.

Credentials come from the standard chain (environment, shared files, the
instance or task role); ``endpoint_url`` points every client at a local
endpoint such as moto's server.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from remediations.base import ActionContext, PermanentError

# One attempt and no retries: for a probe whose failure only means "use another way".
NO_RETRIES = AioConfig(retries={"total_max_attempts": 1})


class AwsSession:
    """The process's AWS session with its region and endpoint."""

    def __init__(self, region: str, endpoint_url: str | None = None) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        self._session = get_session()

    @contextlib.asynccontextmanager
    async def client(self, service: str, config: Any = None) -> AsyncIterator[Any]:
        """An API client for ``service`` (``sqs``, ``lambda``, ``ecs``), closed after use.

        ``config`` is an ``AioConfig`` for this client (such as :data:`NO_RETRIES`);
        by default botocore's own retries apply.
        """
        async with self._session.create_client(
            service, region_name=self.region, endpoint_url=self.endpoint_url, config=config
        ) as api:
            yield api

    def check_region(self, region: str | None, what: str) -> None:
        """Refuse a resource another region names: remedy acts only in its own.

        An alarm from another region (or an ARN in a rule) would otherwise act
        on a namesake here; ``region=None`` (a bare name) means this region.
        """
        if region is not None and region != self.region:
            raise PermanentError(
                f"{what} is in region {region}, and backends.aws.region is {self.region}: "
                "remedy acts only in its own region"
            )


def aws_session(ctx: ActionContext) -> AwsSession:
    """The service's AWS session; a permanent error when ``backends.aws`` is not configured."""
    if ctx.aws is None:
        raise PermanentError("backends.aws is not configured in remedy.yaml")
    return ctx.aws
