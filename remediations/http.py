"""``http.request``: call an HTTP endpoint — cache warm/flush hooks, chat and paging.

Params:
    method: GET, POST, PUT, PATCH, DELETE or HEAD (default POST)
    url: http:// or https:// URL (templated)
    headers: mapping of header to a string, or to a secret reference
        ``{env: VAR}`` / ``{file: PATH}`` resolved only when the request is sent,
        so the secret is never rendered into the store or the audit log
    json: a JSON body (templated strings inside)
    expect_status: an integer or a list of integers (default: any 2xx)
    timeout: duration for the whole request (default 10s)

Permissions: network egress to the URL; nothing in a cluster or cloud account.

Example::

    - action: http.request
      params:
        method: POST
        url: 'http://{{ labels.instance }}/cache/warm'
        headers: {Authorization: {env: CACHE_ADMIN_TOKEN}}
        json: {reason: '{{ alert.name }}'}
        expect_status: [200, 202]
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp
import yarl

from remediations.base import (
    ActionContext,
    ActionTimeout,
    ParamError,
    PermanentError,
    TemporaryError,
)
from remediations.params import Fields

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
_RESPONSE_CAP = 64 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class SecretRef:
    """A header value read from the environment or a file at send time."""

    env: str | None = None
    file: str | None = None

    def resolve(self, header: str) -> str:
        """The secret's value; a missing secret is a permanent error naming only its source."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise PermanentError(f"header {header}: environment variable {self.env} is not set")
            return value
        assert self.file is not None
        try:
            return Path(self.file).read_text().strip()
        except OSError as exc:
            raise PermanentError(
                f"header {header}: cannot read {self.file}: {exc.strerror}"
            ) from None


@dataclasses.dataclass(frozen=True, slots=True)
class RequestParams:
    """A validated ``http.request``."""

    method: str
    url: str
    headers: Mapping[str, str | SecretRef]
    json: Any
    expect_status: frozenset[int] | None
    timeout: float


def _header_value(field: str, value: object) -> str | SecretRef:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and len(value) == 1:
        ((kind, ref),) = value.items()
        if kind in ("env", "file") and isinstance(ref, str) and ref:
            return SecretRef(**{kind: ref})
    raise ParamError(field, "expected a string or a secret reference {env: VAR} or {file: PATH}")


def _expect_status(value: object) -> frozenset[int] | None:
    if value is None:
        return None
    codes = value if isinstance(value, list) else [value]
    if not codes or not all(
        isinstance(c, int) and not isinstance(c, bool) and 100 <= c <= 599 for c in codes
    ):
        raise ParamError(
            "expect_status", f"expected a status code or a list of them, got {value!r}"
        )
    return frozenset(codes)


class HttpRequest:
    """Send one HTTP request; succeed on the expected status."""

    name: ClassVar[str] = "http.request"

    def parse(self, params: Mapping[str, Any]) -> RequestParams:
        """Validate params (see the module docstring)."""
        fields = Fields(params, ("method", "url", "headers", "json", "expect_status", "timeout"))
        method = fields.string("method", "POST").upper()
        if method not in METHODS:
            raise ParamError("method", f"expected one of {', '.join(METHODS)}, got {method!r}")
        url = fields.string("url")
        try:
            parsed = yarl.URL(url)
            port = parsed.port
        except (ValueError, TypeError):
            raise ParamError("url", f"not a valid URL: {_safe_url(url)!r}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host or port is None:
            raise ParamError(
                "url", f"expected an http:// or https:// URL with a host, got {_safe_url(url)!r}"
            )
        if any(c in url for c in "\r\n\t "):
            raise ParamError("url", "must not contain whitespace or line breaks")
        headers = {
            name: _header_value(f"headers.{name}", value)
            for name, value in fields.mapping("headers", {}).items()
        }
        return RequestParams(
            method=method,
            url=url,
            headers=headers,
            json=fields.raw("json", None),
            expect_status=_expect_status(fields.raw("expect_status", None)),
            timeout=fields.duration("timeout", "10s"),
        )

    def subject(self, params: RequestParams) -> str:
        """The URL without userinfo or query: what ``backends.http.allow`` patterns match."""
        return _safe_url(params.url)

    async def run(self, params: RequestParams, ctx: ActionContext) -> Mapping[str, Any]:
        """Send the request; 429 and 5xx are temporary, other unexpected codes permanent."""
        headers = {
            name: value.resolve(name) if isinstance(value, SecretRef) else value
            for name, value in params.headers.items()
        }
        kwargs: dict[str, Any] = {"headers": headers, "allow_redirects": False}
        if params.json is not None:
            kwargs["json"] = params.json
        try:
            async with ctx.http.request(
                params.method,
                params.url,
                timeout=aiohttp.ClientTimeout(total=params.timeout),
                **kwargs,
            ) as response:
                body = await response.content.read(_RESPONSE_CAP)
                status = response.status
        except TimeoutError:
            raise ActionTimeout(
                f"{params.method} {_safe_url(params.url)}: no answer within {params.timeout:g}s"
            ) from None
        except aiohttp.ClientConnectionError as exc:
            raise TemporaryError(
                f"{params.method} {_safe_url(params.url)}: {type(exc).__name__}{_errno_text(exc)}"
            ) from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise PermanentError(
                f"{params.method} {_safe_url(params.url)}: {type(exc).__name__}"
            ) from None
        ok = status in params.expect_status if params.expect_status else 200 <= status < 300
        if not ok:
            message = f"{params.method} {_safe_url(params.url)} answered {status}"
            if status == 429 or status >= 500:
                raise TemporaryError(message)
            raise PermanentError(message)
        return {"status": status, "response_bytes": len(body)}


def _safe_url(url: str) -> str:
    """The URL without userinfo or query, which may carry credentials."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "<invalid URL>"
    if not parts.scheme:
        return parts.path
    return f"{parts.scheme}://{host}{parts.path}"


def _errno_text(exc: BaseException) -> str:
    """``: Connection refused`` from the OS error under a connection error, if any."""
    cause = getattr(exc, "os_error", None) or exc.__cause__
    text = getattr(cause, "strerror", None)
    return f": {text}" if text else ""
