"""A server's address as rules and the config name it, and its password kept beside it.

Redis URLs and PostgreSQL DSNs share one shape (``SCHEME://[USER@]HOST[:PORT]...``)
and one rule: the address is shown wherever the server is named (rules, the
allow-list, errors, the audit log), so it never holds a password, which comes
from the config only and travels as :class:`Server`'s ``password``.

What is said about a wrong address never repeats a password that was put in
it: the userinfo is everything between ``://`` and the *last* ``@`` (a
password may hold ``/``, ``?``, ``#`` or ``@``, where ``urlsplit`` would see
a host ``:pa`` and a port ``pa`` in ``redis://:pa/ss@host``), and
``urlsplit``'s own words, which may quote such a port, are never passed on.
"""

from __future__ import annotations

import dataclasses
import re
import ssl
from collections.abc import Callable, Mapping
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from remediations.base import ParamError

REDACTED = "<redacted>"
_SECRET_PARAM = re.compile(r"pass|secret|token|key", re.IGNORECASE)
_DELIMITERS = frozenset("/?#@")


@dataclasses.dataclass(frozen=True, slots=True)
class Server:
    """One allowed server: its address and its password (never shown)."""

    address: str
    password: str | None = dataclasses.field(default=None, repr=False)


def userinfo(value: str) -> str | None:
    """What comes between ``://`` and the last ``@``; ``None`` when there is no such ``@``."""
    _, sep, rest = value.partition("://")
    if not sep or "@" not in rest:
        return None
    return rest.rpartition("@")[0]


def shown(value: str) -> str:
    """An address as an error may echo it: no password, no secret-looking query value.

    The user name stays when it plainly is one (nothing that ends a userinfo
    in it); otherwise the whole userinfo goes.
    """
    info = userinfo(value)
    if info is not None:
        scheme, _, rest = value.partition("://")
        user, colon, _ = info.partition(":")
        if _DELIMITERS.intersection(user):
            info = REDACTED
        elif colon:
            info = f"{user}:{REDACTED}"
        value = f"{scheme}://{info}@{rest.rpartition('@')[2]}"
    try:
        parts = urlsplit(value)
    except ValueError:
        return "<not a valid URL>"
    query = [
        (key, REDACTED if _SECRET_PARAM.search(key) else item)
        for key, item in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(
        parts._replace(
            query=urlencode(query, safe="<>"),
            fragment=REDACTED if parts.fragment else "",  # it may be a password's tail
        )
    )


def host_port(address: str) -> str:
    """``cache-1:6379``: the server of an address in its one spelling, without user or path."""
    return urlsplit(address).netloc.rpartition("@")[2]


@dataclasses.dataclass(frozen=True, slots=True)
class Form:
    """How one backend writes its addresses: the schemes, the default port, the words."""

    noun: str  # "URL", "DSN"
    schemes: Mapping[str, str]  # as given -> as spelled
    default_port: int
    shape: str  # the expected form, for messages
    backend: str  # where the password is given instead

    def refused(self, what: str = "a password") -> str:
        """Why a secret in the address is refused, and where it goes instead."""
        return (
            f"{what} in the {self.noun} would be shown wherever the {self.noun} is: give it"
            f" in {self.backend} as password: {{env: VAR}} or {{file: PATH}}"
        )

    def split(self, value: str) -> SplitResult:
        """The parts of an address with a host, a port and no password.

        Raises ``ValueError`` saying what is wrong, never repeating what was given.
        """
        info = userinfo(value)
        if info is not None and ":" in info:
            raise ValueError(self.refused())
        if info is not None and _DELIMITERS.intersection(info):
            raise ValueError(
                f"not a valid {self.noun}: an @ other than the one before the host is written %40"
            )
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - reading the port is the check
        except ValueError:
            raise ValueError(f"not a valid {self.noun}: expected {self.shape}") from None
        if parts.scheme not in self.schemes or not parts.hostname:
            raise ValueError(f"expected {self.shape}")
        return parts

    def origin(self, parts: SplitResult) -> str:
        """``SCHEME://[USER@]HOST:PORT`` in its one spelling: lower-case, the port always."""
        host = (parts.hostname or "").lower()
        host = f"[{host}]" if ":" in host else host
        user = f"{parts.username}@" if parts.username else ""
        port = parts.port or self.default_port
        return f"{self.schemes[parts.scheme]}://{user}{host}:{port}"


def param(spell: Callable[[str], str], value: str, field: str) -> str:
    """A rule's address param as ``spell`` writes it; :class:`ParamError` naming ``field``."""
    try:
        return spell(value)
    except ValueError as exc:
        raise ParamError(field, f"{exc} (got {shown(value)!r})") from None


def scrub(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` cut out, should a server or a driver ever echo it."""
    return text.replace(secret, REDACTED) if secret else text


def said(exc: BaseException, secret: str | None) -> str:
    """What an error says (its type's name when it says nothing), the secret cut out."""
    return scrub(str(exc) or type(exc).__name__, secret)


def certificate_refused(exc: BaseException) -> bool:
    """Whether the server's TLS certificate was not trusted, here or in what caused it.

    A driver may wrap the ``ssl`` error in its own connection error; asking
    again meets the same certificate, so this is never a temporary failure.
    """
    seen: BaseException | None = exc
    for _ in range(10):  # a cause chain is short; a cycle is not followed forever
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
