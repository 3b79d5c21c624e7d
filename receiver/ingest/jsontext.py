"""JSON documents as senders send them, decoded strictly.

Python's decoder is lenient where a receiver should not be: it takes ``NaN``
and ``Infinity`` (not JSON), turns ``1e400`` into an infinity, and keeps the
last of two equal keys, so ``{"alertname": "A", "alertname": "B"}`` would be
whichever the next parser in line picks. Alertmanager and SNS never send any
of these, so each is refused as malformed, naming where the document came
from.
"""

from __future__ import annotations

import json
import math
from typing import Any

from receiver.ingest import PayloadError


class Refused(PayloadError):
    """JSON syntax no sender of ours writes: a duplicate key, NaN, a number past a float."""


class _Refusal(ValueError):
    """Raised from inside the decoder's hooks; becomes :class:`Refused`."""


def decode(data: bytes | str, field: str = "") -> object:
    """The value of the JSON document ``data``; :class:`PayloadError` naming ``field`` if not."""
    what = f"{field} is" if field else "the body is"
    if isinstance(data, bytes):
        try:
            # UTF-8 only (RFC 8259 8.1): json.loads would also guess UTF-16 and UTF-32, and
            # let UTF-8-encoded surrogates through.
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise PayloadError(
                field, f"{what} not UTF-8: {exc.reason} at byte {exc.start}"
            ) from None
    try:
        return _decode(data)
    except _Refusal as exc:
        raise Refused(field, f"{what} refused: {exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(field, f"{what} not valid JSON: {exc}") from None
    except RecursionError:
        raise PayloadError(field, f"{what} nested too deeply") from None


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refusal(f"duplicate key {ascii(key)[:80]} in an object")
            seen.add(key)
    return result


def _constant(name: str) -> Any:
    raise _Refusal(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refusal(f"the number {text[:40]} is out of range")
    return value


_decode = json.JSONDecoder(
    object_pairs_hook=_object, parse_constant=_constant, parse_float=_float
).decode
"""The strict decoder, made once: ``json.loads`` with hooks builds a new one per call."""
