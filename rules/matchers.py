"""Alertmanager's label matchers (``job=~".*-service"``), so rules select alerts the
way routes and silences already do.

The syntax and semantics follow Alertmanager's classic matcher parser: a label
name, one of ``=``, ``!=``, ``=~``, ``!~``, and a value that is either double
quoted (escapes ``\\"``, ``\\\\`` and ``\\n``) or bare. A label the alert does not
carry counts as the empty string, and regexes are anchored at both ends.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Literal, cast

Op = Literal["=", "!=", "=~", "!~"]

OPS: tuple[str, ...] = ("=", "!=", "=~", "!~")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

# The name is anything before the first operator so that a bad name gets its own message.
_SPLIT = re.compile(r"^\s*(?P<name>[^=!~\s]*)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>.*?)\s*$", re.DOTALL)


@dataclasses.dataclass(frozen=True, slots=True)
class Matcher:
    """One label condition of a rule: ``name op value``."""

    name: str
    op: Op
    value: str
    _regex: re.Pattern[str] | None = dataclasses.field(
        init=False, repr=False, compare=False, default=None
    )

    def __post_init__(self) -> None:
        if not LABEL_NAME.fullmatch(self.name):
            raise ValueError(f"invalid label name {self.name!r} (must match {LABEL_NAME.pattern})")
        if self.op not in OPS:
            raise ValueError(f"invalid matcher operator {self.op!r} (use =, !=, =~ or !~)")
        if self.op in ("=~", "!~"):
            try:
                regex = re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"invalid regex {self.value!r}: {exc}") from None
            # Frozen: the compiled pattern is a cache derived from ``value``.
            object.__setattr__(self, "_regex", regex)

    def matches_value(self, value: str) -> bool:
        """Whether a label value (``""`` when the label is absent) satisfies the matcher."""
        if self._regex is None:
            return (value == self.value) == (self.op == "=")
        return (self._regex.fullmatch(value) is not None) == (self.op == "=~")

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a label set satisfies the matcher; a missing label counts as ``""``."""
        return self.matches_value(labels.get(self.name, ""))

    def __str__(self) -> str:
        """The matcher in the syntax :func:`parse_matcher` reads back."""
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'


def _unquote(raw: str) -> str:
    """The value of a bare or double-quoted matcher value, as Alertmanager reads it.

    An escape other than ``\\"``, ``\\\\`` or ``\\n`` keeps its backslash, so
    regexes such as ``"\\d+"`` mean what they say.
    """
    quoted = raw.startswith('"')
    body = raw[1:] if quoted else raw
    out: list[str] = []
    closed = False
    i = 0
    while i < len(body):
        char = body[i]
        if closed:
            raise ValueError(f"unexpected text after the closing quote in {raw}")
        if char == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append({"n": "\n", '"': '"', "\\": "\\"}.get(nxt, "\\" + nxt))
            i += 2
            continue
        if char == '"':
            if not quoted:
                raise ValueError(f"unescaped double quote in value {raw}")
            closed = True
        else:
            out.append(char)
        i += 1
    if quoted and not closed:
        raise ValueError(f"missing closing double quote in value {raw}")
    return "".join(out)


def parse_matcher(text: str) -> Matcher:
    """Parse one matcher such as ``severity="critical"`` or ``job=~".*-service"``.

    Raises ``ValueError`` naming what is wrong: the label name, the operator,
    the quoting, or the regex.
    """
    found = _SPLIT.match(text)
    if found is None:
        raise ValueError(f"invalid matcher {text!r}: expected NAME followed by =, !=, =~ or !~")
    name, op, raw = found.group("name", "op", "value")
    if not name:
        raise ValueError(f"invalid matcher {text!r}: missing label name")
    if not LABEL_NAME.fullmatch(name):
        raise ValueError(
            f"invalid matcher {text!r}: invalid label name {name!r}"
            f" (must match {LABEL_NAME.pattern})"
        )
    try:
        value = _unquote(raw)
        return Matcher(name, cast(Op, op), value)
    except ValueError as exc:
        raise ValueError(f"invalid matcher {text!r}: {exc}") from None
