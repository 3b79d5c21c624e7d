"""Who may call what: webhook tokens for senders, API tokens with a role for operators.

Tokens are compared in constant time against every configured token, and
never logged: errors say which kind of credential was wrong, not its value.
"""

from __future__ import annotations

import base64
import dataclasses
import hmac
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # the CLI reads tokens from the config without loading the server
    from aiohttp import web

Access = Literal["public", "webhook", "viewer", "operator", "page", "page-operator"]
"""Who may call a handler. ``page`` and ``page-operator`` are the web page's
viewer and operator: a browser may sign in with basic auth (any user name,
an API token as the password), and is asked to."""
ROLES = ("viewer", "operator")
BASIC_CHALLENGE = 'Basic realm="remedy", charset="UTF-8"'  # browsers then ask for a token


class AuthError(Exception):
    """Missing or wrong credentials (401) or a role too weak (403).

    ``challenge`` is the ``WWW-Authenticate`` a 401 carries.
    """

    def __init__(self, status: int, message: str, challenge: str = 'Bearer realm="remedy"') -> None:
        super().__init__(message)
        self.status = status
        self.challenge = challenge


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class Token:
    """A resolved credential. ``repr`` leaves the secret out."""

    name: str
    secret: str
    role: str = "webhook"
    username: str | None = None

    def __repr__(self) -> str:
        return f"Token(name={self.name!r}, role={self.role!r})"


def _same(given: str, expected: str) -> bool:
    """Constant-time equality of a credential a request carries and a configured secret.

    Header bytes that are not UTF-8 reach us as surrogates; ``surrogatepass``
    lets them be compared (and differ) instead of raising.
    """
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


class Authenticator:
    """Checks requests against the configured tokens; ``enabled=False`` lets everyone in."""

    def __init__(
        self,
        webhook_tokens: Sequence[Token] = (),
        api_tokens: Sequence[Token] = (),
        *,
        enabled: bool = False,
    ) -> None:
        self.webhook_tokens = tuple(webhook_tokens)
        self.api_tokens = tuple(api_tokens)
        self.enabled = enabled

    def check(self, request: web.Request, access: Access) -> str:
        """The actor name for ``request``, or :class:`AuthError`."""
        if access == "public" or not self.enabled:
            return "anonymous" if self.enabled else "system"
        header = request.headers.get("Authorization", "")
        if access == "webhook":
            return self._webhook(header)
        if access in ("page", "page-operator"):
            return self._page(header, "operator" if access == "page-operator" else "viewer")
        return self._api(header, access)

    def api_token(self, request: web.Request) -> Token | None:
        """The API token a request carries (bearer, or a browser's basic auth), if any."""
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                _, value = _basic(value)
            except AuthError:
                return None
        elif scheme.lower() != "bearer":
            return None
        found: Token | None = None
        for token in self.api_tokens:
            if _same(value.strip(), token.secret) and found is None:
                found = token
        return found

    def _page(self, header: str, role: Access) -> str:
        """An API token as a bearer token, or as the password of basic auth (from a browser)."""
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                _, password = _basic(value)
            except AuthError as exc:
                raise AuthError(401, str(exc), BASIC_CHALLENGE) from None
            header = f"Bearer {password}"
        try:
            return self._api(header, role)
        except AuthError as exc:
            raise AuthError(exc.status, str(exc), BASIC_CHALLENGE) from None

    def _webhook(self, header: str) -> str:
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        found: Token | None = None
        if scheme == "bearer":
            # A token with a username is a basic-auth password: that username is part
            # of the credential, and a bare bearer token would skip it.
            for token in self.webhook_tokens:
                if token.username is None and _same(value.strip(), token.secret) and found is None:
                    found = token
        elif scheme == "basic":
            username, password = _basic(value)
            for token in self.webhook_tokens:
                user_ok = token.username is None or _same(username, token.username)
                if _same(password, token.secret) and user_ok and found is None:
                    found = token
        else:
            raise AuthError(401, "webhook requires a bearer token or basic auth")
        if found is None:
            raise AuthError(401, "invalid webhook credentials")
        return found.name

    def _api(self, header: str, access: Access) -> str:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthError(401, "API requires a bearer token")
        found: Token | None = None
        for token in self.api_tokens:
            if _same(value.strip(), token.secret) and found is None:
                found = token
        if found is None:
            raise AuthError(401, "invalid API token")
        if access == "operator" and found.role != "operator":
            raise AuthError(
                403, f"token {found.name!r} has role {found.role!r}; this needs operator"
            )
        return found.name


def _basic(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except ValueError:  # not base64 (binascii.Error), not ASCII, or not UTF-8 inside
        raise AuthError(401, "malformed basic auth header") from None
    username, sep, password = decoded.partition(":")
    if not sep:
        raise AuthError(401, "malformed basic auth header")
    return username, password
