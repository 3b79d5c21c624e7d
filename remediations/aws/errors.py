"""botocore's errors, translated once into the two kinds the executor understands.

Throttling, 5xx, ``ServiceUnavailable``, 409 conflicts ("an update is in
progress") and an unreachable endpoint are temporary; everything else AWS
refuses — AccessDenied, a missing queue, function or service, a validation
error — is permanent, with AWS's own message and error code. botocore has
already retried throttling and 5xx answers by the time an error gets here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

# botocore ships no type information (its clients are used as Any anyway).
from botocore import exceptions as boto  # type: ignore[import-untyped, unused-ignore]

from remediations.base import PermanentError, TemporaryError

TEMPORARY_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "SlowDown",
        "KmsThrottled",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ServerException",  # ECS
        "ServiceException",  # Lambda
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "ResourceConflictException",  # Lambda: another update of the function is in progress
        "PreconditionFailedException",  # Lambda: the alias changed since it was read
        "UpdateInProgressException",  # ECS
    }
)
# Where the caller's own credentials or request are wrong: retrying repeats the mistake.
_PERMANENT_LOCAL = (
    boto.NoCredentialsError,
    boto.PartialCredentialsError,
    boto.NoRegionError,
    boto.ParamValidationError,
)


def error_codes(exc: Any) -> set[str]:
    """The error codes of a ``ClientError``: its code, and SQS's query-protocol code."""
    error = exc.response.get("Error", {}) if isinstance(exc.response, Mapping) else {}
    return {str(c) for c in (error.get("Code"), error.get("QueryErrorCode")) if c}


def status_code(exc: Any) -> int:
    """The HTTP status a ``ClientError`` came with (0 when unknown)."""
    metadata = exc.response.get("ResponseMetadata", {}) if isinstance(exc.response, Mapping) else {}
    return int(metadata.get("HTTPStatusCode") or 0)


def describe(exc: Any) -> str:
    """AWS's message, codes and status: ``Access denied (AccessDenied, HTTP 403)``."""
    error = exc.response.get("Error", {}) if isinstance(exc.response, Mapping) else {}
    codes = [str(error.get("Code") or "")]
    query_code = str(error.get("QueryErrorCode") or "")
    if query_code and query_code not in codes:
        codes.append(query_code)
    message = error.get("Message") or exc.response.get("message") or "no message"
    status = status_code(exc)
    detail = ", ".join(c for c in codes if c) or "no code"
    return f"{message} ({detail}{f', HTTP {status}' if status else ''})"


def is_temporary(exc: Any) -> bool:
    """Whether a ``ClientError`` may go away by itself: throttling, 409, 5xx."""
    status = status_code(exc)
    return bool(error_codes(exc) & TEMPORARY_CODES) or status in (409, 429) or status >= 500


def _retry_after(exc: Any) -> float | None:
    """The delay AWS asked for (``Retry-After``), when it did."""
    metadata = exc.response.get("ResponseMetadata", {}) if isinstance(exc.response, Mapping) else {}
    headers = metadata.get("HTTPHeaders") or {}
    value = headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Run AWS calls, turning botocore's errors into permanent or temporary ones.

    ``what`` says what was being done (``queue orders-dlq``), for the audit log.
    """
    try:
        yield
    except boto.ClientError as exc:
        message = f"{what}: {describe(exc)}"
        if is_temporary(exc):
            raise TemporaryError(message, delay=_retry_after(exc)) from None
        raise PermanentError(message) from None
    except (boto.ConnectionError, boto.HTTPClientError) as exc:
        # EndpointConnectionError, timeouts, a dropped connection
        raise TemporaryError(f"{what}: cannot reach AWS ({type(exc).__name__}: {exc})") from None
    except _PERMANENT_LOCAL as exc:
        raise PermanentError(f"{what}: {exc}") from None
    except boto.BotoCoreError as exc:
        # credentials that could not be fetched right now, a response cut short...
        raise TemporaryError(f"{what}: {type(exc).__name__}: {exc}") from None
    except TimeoutError:
        raise TemporaryError(f"{what}: AWS did not answer in time") from None
