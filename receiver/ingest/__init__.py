"""Ingest adapters: turn a sender's payload into :class:`rules.Alert` values."""

from __future__ import annotations


class PayloadError(ValueError):
    """A payload we refuse; ``field`` names where (``alerts[3].startsAt``).

    ``status`` is the HTTP answer (400 unless the request itself is unusable,
    e.g. 415 for a content coding we cannot read) and ``reason`` the bounded
    label it is counted under in ``remedy_webhook_rejected_total``.
    """

    def __init__(
        self, field: str, message: str, *, status: int = 400, reason: str = "malformed"
    ) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message
        self.status = status
        self.reason = reason


class Overloaded(Exception):
    """The work queue is over its bound: answer 503 so the sender retries later."""


def unicode_text(text: str, field: str) -> str:
    """``text`` when it is valid Unicode text, else :class:`PayloadError` naming ``field``.

    JSON may escape a lone surrogate (``"\\ud800"``) and aiohttp hands on header
    bytes that are not UTF-8 as surrogates: both decode to a ``str`` that no
    UTF-8 encoder, hash, database or log line accepts. Refused at the edge, a
    sender's text can be trusted everywhere inside.
    """
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            raise PayloadError(field, "is not valid Unicode text") from None
    return text
