"""PromQL in rules: a query templated with the alert's labels, and what its answer must be.

A label value goes into a query only inside a double-quoted string literal,
escaped as one (``\\`` and ``"`` and newlines), so an alert whose label reads
``"}) or vector(1) #`` asks the same question as any other: the value can
never end the string and add to the query. The loader refuses a reference
outside a string literal, and a query whose brackets or quotes do not pair up.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
from collections.abc import Callable, Sequence

from rules.alert import Alert
from rules.template import Reference, Template, TemplateSyntaxError

_COMPARISON = re.compile(r"^\s*(==|!=|>=|<=|>|<)\s*(\S+)\s*$")
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_PAIRS = {")": "(", "]": "[", "}": "{"}


def escape(value: str) -> str:
    """``value`` as the inside of a PromQL double-quoted string literal.

    Quotes and backslashes are escaped; so is every character that is not
    printable (or U+FFFD, which Prometheus's lexer refuses), as ``\\uXXXX``,
    so that no label value can make the query invalid either.
    """
    out = []
    for char in value:
        if char in {"\\", '"'}:
            out.append("\\" + char)
        elif char.isprintable() and char != "\ufffd":
            out.append(char)
        elif ord(char) > 0xFFFF:
            out.append(f"\\U{ord(char):08x}")
        else:
            out.append(f"\\u{ord(char):04x}")
    return "".join(out)


@dataclasses.dataclass(frozen=True, slots=True)
class Query:
    """A PromQL query template; construct with :meth:`parse`."""

    template: Template

    @classmethod
    def parse(cls, text: str) -> Query:
        """Check the template and its PromQL shape; :class:`TemplateSyntaxError` says what."""
        template = Template.parse(text)
        _check_shape(template)
        return cls(template)

    def render(self, alert: Alert) -> str:
        """The query for ``alert``, every value escaped as a string literal."""
        return self.template.render(alert, escape=escape)

    def __str__(self) -> str:
        return self.template.source


def _check_shape(template: Template) -> None:
    """References only inside double-quoted strings that are not regular expressions;
    brackets and quotes paired; nothing in comments."""
    stack: list[str] = []
    quote: str | None = None  # the open string's quote character
    regex = False  # whether the open string is the pattern of =~ or !~
    comment = False
    outside = ""  # the query's text outside strings so far
    for part in template.parts:
        if isinstance(part, Reference):
            if comment:
                raise TemplateSyntaxError(f"{{{{ {part} }}}} is in a comment")
            if quote != '"':
                raise TemplateSyntaxError(
                    f"{{{{ {part} }}}} must be inside a double-quoted string, e.g."
                    f' job="{{{{ {part} }}}}": a value outside quotes would be PromQL'
                )
            if regex:
                raise TemplateSyntaxError(
                    f"{{{{ {part} }}}} is in a regular expression (=~ or !~), where a value"
                    " would be a pattern: match it with = or !="
                )
            continue
        escaped = False
        for char in part:
            if comment:
                comment = char != "\n"
            elif quote is not None:
                if escaped:
                    escaped = False
                elif char == "\\" and quote != "`":  # raw strings have no escapes
                    escaped = True
                elif char == quote:
                    quote = None
            elif char == "#":
                comment = True
            elif char in "\"'`":
                quote = char
                regex = outside.rstrip().endswith(("=~", "!~"))
            else:
                outside += char
                if char in "([{":
                    stack.append(char)
                elif char in _PAIRS and (not stack or stack.pop() != _PAIRS[char]):
                    raise TemplateSyntaxError(f"unbalanced {char!r} in the query")
    if quote is not None:
        raise TemplateSyntaxError(f"unclosed {quote} in the query")
    if stack:
        raise TemplateSyntaxError(f"unclosed {stack[-1]!r} in the query")


@dataclasses.dataclass(frozen=True, slots=True)
class Expectation:
    """What a query's answer must be: ``nonempty``, ``empty``, or ``OP NUMBER`` of one value."""

    text: str

    @classmethod
    def parse(cls, text: str) -> Expectation:
        """:class:`ValueError` names the forms allowed."""
        if text in ("nonempty", "empty"):
            return cls(text)
        found = _COMPARISON.match(text)
        if found is not None:
            try:
                float(found.group(2))
            except ValueError:
                pass
            else:
                return cls(text)
        raise ValueError(
            f"expected nonempty, empty, or a comparison such as '> 0.5' or '== 0', got {text!r}"
        )

    def holds(self, values: Sequence[float]) -> tuple[bool, str]:
        """Whether the answer (one value per series) meets it, and the answer in words.

        :class:`ValueError` when a comparison gets more than one series: the
        rule asks something the answer cannot say.
        """
        seen = _shown(values)
        if self.text == "nonempty":
            return bool(values), seen
        if self.text == "empty":
            return not values, seen
        found = _COMPARISON.match(self.text)
        assert found is not None  # parsed
        if not values:
            return False, seen
        if len(values) > 1:
            raise ValueError(f"a comparison needs one value, the query gave {seen}")
        value = values[0]
        if math.isnan(value):
            return False, seen
        return _OPERATORS[found.group(1)](value, float(found.group(2))), seen


def _shown(values: Sequence[float]) -> str:
    if not values:
        return "no series"
    if len(values) == 1:
        return f"value {values[0]:g}"
    return f"{len(values)} series ({', '.join(f'{v:g}' for v in values[:5])})"


@dataclasses.dataclass(frozen=True, slots=True)
class Precondition:
    """One ``when:`` entry: a query and what its answer must be before the first step."""

    query: Query
    expect: Expectation
    line: int = 0

    def render(self, alert: Alert) -> dict[str, str]:
        """The condition as a remediation stores it: the query for this alert, the expectation."""
        return {"query": self.query.render(alert), "expect": self.expect.text}
