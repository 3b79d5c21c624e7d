"""The CLI's client for a running server's operator API (``--url``).

aiohttp is imported by the calls that use it: the local commands never load it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import yarl


class RemoteError(Exception):
    """The server refused or failed a request; the message is one line for the user."""


def _headers(token: str | None) -> dict[str, str]:
    token = token or os.environ.get("REMEDY_TOKEN")
    if token and not token.isprintable():
        raise RemoteError("the token contains control characters")
    return {"Authorization": f"Bearer {token}"} if token else {}


def _shown(url: str) -> str:
    """The URL as messages may show it: no userinfo, no query."""
    try:
        parsed = yarl.URL(url)
        return str(parsed.with_user(None).with_query(None))
    except (ValueError, TypeError):
        return "<invalid URL>"


async def _get_json(url: str, token: str | None, params: dict[str, str] | None = None) -> Any:
    return await _call("GET", url, token, params)


async def _call(
    method: str, url: str, token: str | None, params: dict[str, str] | None = None
) -> Any:
    import aiohttp  # noqa: PLC0415 - see the module's docstring

    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
            session.request(method, url, params=params, headers=_headers(token)) as response,
        ):
            if response.status >= 400:
                try:
                    reason = (await response.json()).get("error", response.reason)
                except (ValueError, AttributeError, aiohttp.ContentTypeError):
                    reason = response.reason
                raise RemoteError(f"{_shown(url)} answered {response.status}: {reason}")
            return await response.json()
    except aiohttp.ContentTypeError:
        raise RemoteError(f"{_shown(url)} did not answer with JSON: is it remedy?") from None
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise RemoteError(f"cannot reach {_shown(url)}: {type(exc).__name__}") from None


async def _get_list(
    base: str, path: str, token: str | None, params: dict[str, str], *, key: str, what: str
) -> list[Any]:
    """The list under ``key`` of ``GET path`` (else it is not remedy that answered)."""
    url = base.rstrip("/") + path
    body = await _get_json(url, token, params)
    if not isinstance(body, dict) or not isinstance(body.get(key), list):
        raise RemoteError(f"{_shown(url)} did not answer with {what}: is it remedy?")
    found: list[Any] = body[key]
    return found


async def read_remote(base: str, token: str | None, params: dict[str, str]) -> list[Any]:
    """One page of audit events from ``GET /api/v1/audit``."""
    return await _get_list(base, "/api/v1/audit", token, params, key="events", what="audit events")


async def _get_object(base: str, path: str, token: str | None, key: str, what: str) -> Any:
    """A JSON object from ``GET path`` that must carry ``key`` (else it is not remedy)."""
    url = base.rstrip("/") + path
    result = await _get_json(url, token)
    if not isinstance(result, dict) or key not in result:
        raise RemoteError(f"{_shown(url)} did not answer with {what}: is it remedy?")
    return result


async def verify_remote(base: str, token: str | None) -> dict[str, Any]:
    """The server's chain check from ``GET /api/v1/audit/verify``."""
    result: dict[str, Any] = await _get_object(
        base, "/api/v1/audit/verify", token, "ok", "a verification"
    )
    return result


async def follow_remote(
    base: str, token: str | None, emit: Callable[[dict[str, Any]], None]
) -> None:
    """Print new events as the server streams them (server-sent events)."""
    import aiohttp  # noqa: PLC0415 - see the module's docstring

    url = base.rstrip("/") + "/api/v1/audit/stream"
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, headers=_headers(token)) as response,
        ):
            if response.status >= 400:
                raise RemoteError(f"{_shown(url)} answered {response.status}")
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("data: "):
                    emit(json.loads(line.removeprefix("data: ")))
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise RemoteError(f"the stream from {_shown(url)} broke: {type(exc).__name__}") from None


async def read_status(base: str, token: str | None) -> dict[str, Any]:
    """The server's ``GET /api/v1/status``."""
    result: dict[str, Any] = await _get_object(base, "/api/v1/status", token, "paused", "a status")
    return result


async def post_control(
    base: str, token: str | None, command: str, params: dict[str, str | None]
) -> dict[str, Any]:
    """``POST /api/v1/pause`` or ``/resume`` with ``params`` (those given); the server's answer."""
    url = base.rstrip("/") + f"/api/v1/{command}"
    given = {key: value for key, value in params.items() if value is not None}
    result = await _call("POST", url, token, given or None)
    if not isinstance(result, dict) or "paused" not in result:
        raise RemoteError(f"{_shown(url)} did not answer as remedy does")
    return result


async def read_remediations(base: str, token: str | None, states: list[str]) -> list[Any]:
    """``GET /api/v1/remediations``, only ``states`` when some are given."""
    params = {"state": ",".join(states)} if states else {}
    path = "/api/v1/remediations"
    return await _get_list(base, path, token, params, key="remediations", what="remediations")


async def decide_remote(
    base: str, token: str | None, rem_id: int, command: str, reason: str | None
) -> dict[str, Any]:
    """``POST /api/v1/remediations/{id}/approve`` or ``/reject``; the server's answer."""
    url = base.rstrip("/") + f"/api/v1/remediations/{rem_id}/{command}"
    result = await _call("POST", url, token, {"reason": reason} if reason else None)
    if not isinstance(result, dict) or not isinstance(result.get("remediation"), dict):
        raise RemoteError(f"{_shown(url)} did not answer as remedy does")
    return result
