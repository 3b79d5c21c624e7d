"""The rule template language: ``{{ labels.NAME }}`` and a few alert fields, nothing else.

Rules put alert data into targets and action params. The language is kept
deliberately tiny — references only, no expressions, filters or code — so a
rule file can never run anything, every template is checked when the rules
load, and rendering is a string join. A reference to a label or annotation the
alert does not carry is an error, never an empty string: acting on
``docker:`` instead of ``docker:web-1`` is how remediations hit the wrong thing.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Literal

from rules.alert import Alert

ALERT_FIELDS: tuple[str, ...] = ("name", "fingerprint", "source", "status")
PLACEHOLDER = "placeholder"

_OPEN = "{{"
_CLOSE = "}}"
_REFERENCE = re.compile(
    r"\s*(?:(?P<kind>labels|annotations)\.(?P<key>[a-zA-Z_][a-zA-Z0-9_]*)"
    r"|alert\.(?P<field>name|fingerprint|source|status))\s*"
)
_ALLOWED = (
    "labels.NAME, annotations.NAME, alert.name, alert.fingerprint, alert.source, alert.status"
)


class TemplateSyntaxError(ValueError):
    """A template that cannot be parsed; raised when the rules load."""


class TemplateError(Exception):
    """A template that cannot be rendered for one alert, e.g. a missing label."""


@dataclasses.dataclass(frozen=True, slots=True)
class Reference:
    """One ``{{ kind.name }}`` in a template."""

    kind: Literal["labels", "annotations", "alert"]
    name: str

    def resolve(self, alert: Alert) -> str:
        """The referenced value; :class:`TemplateError` when the alert lacks it.

        An empty value counts as missing, as Prometheus treats an empty label.
        """
        if self.kind == "labels":
            value = alert.labels.get(self.name)
            if not value:
                raise TemplateError(f"label {self.name!r} is missing")
            return value
        if self.kind == "annotations":
            value = alert.annotations.get(self.name)
            if not value:
                raise TemplateError(f"annotation {self.name!r} is missing")
            return value
        value = getattr(alert, self.name)
        assert isinstance(value, str)
        return value

    def __str__(self) -> str:
        return f"{self.kind}.{self.name}"


def _split(text: str) -> tuple[str | Reference, ...]:
    parts: list[str | Reference] = []
    pos = 0
    while (start := text.find(_OPEN, pos)) != -1:
        end = text.find(_CLOSE, start + len(_OPEN))
        if end == -1:
            raise TemplateSyntaxError(f"unclosed '{{{{' at offset {start} in {text!r}")
        inner = text[start + len(_OPEN) : end]
        found = _REFERENCE.fullmatch(inner)
        if found is None:
            raise TemplateSyntaxError(
                f"unsupported expression '{{{{{inner}}}}}' (allowed: {_ALLOWED})"
            )
        if start > pos:
            parts.append(text[pos:start])
        if found.group("kind") == "labels":
            parts.append(Reference("labels", found.group("key")))
        elif found.group("kind") == "annotations":
            parts.append(Reference("annotations", found.group("key")))
        else:
            parts.append(Reference("alert", found.group("field")))
        pos = end + len(_CLOSE)
    if pos < len(text):
        parts.append(text[pos:])
    return tuple(parts)


@dataclasses.dataclass(frozen=True, slots=True)
class Template:
    """A parsed template string; construct with :meth:`parse`.

    The text is split into literal and reference parts once, at parse time, so
    rendering for each alert is a lookup per reference and a join.
    """

    source: str
    _parts: tuple[str | Reference, ...] = dataclasses.field(
        init=False, repr=False, compare=False, default=()
    )

    def __post_init__(self) -> None:
        # Frozen: the parts are derived from ``source`` and cached for rendering.
        object.__setattr__(self, "_parts", _split(self.source))

    @classmethod
    def parse(cls, text: str) -> Template:
        """Parse ``text``; :class:`TemplateSyntaxError` names the first bad ``{{ }}``."""
        return cls(text)

    @property
    def is_literal(self) -> bool:
        """Whether the template references nothing, so it renders to its source."""
        return not any(isinstance(part, Reference) for part in self._parts)

    @property
    def references(self) -> tuple[Reference, ...]:
        """Every reference, in order of appearance."""
        return tuple(part for part in self._parts if isinstance(part, Reference))

    @property
    def parts(self) -> tuple[str | Reference, ...]:
        """Literal text and references, in order."""
        return self._parts

    def render(self, alert: Alert, escape: Callable[[str], str] | None = None) -> str:
        """The template filled in from ``alert``; :class:`TemplateError` if a value is missing.

        ``escape`` (a PromQL string literal's, say) is applied to every value.
        """
        if escape is None:
            return "".join(
                part if isinstance(part, str) else part.resolve(alert) for part in self._parts
            )
        return "".join(
            part if isinstance(part, str) else escape(part.resolve(alert)) for part in self._parts
        )

    def sample(self, placeholder: str = PLACEHOLDER) -> str:
        """The template with every reference replaced by ``placeholder``."""
        return "".join(part if isinstance(part, str) else placeholder for part in self._parts)

    def __str__(self) -> str:
        return self.source


def compile_params(obj: object, path: str = "params") -> object:
    """A params structure with every string parsed as a :class:`Template`.

    Mappings and lists are copied, other scalars kept. Raises
    :class:`TemplateSyntaxError` naming the path of the bad string, e.g.
    ``params.json.text: unclosed '{{' ...``.
    """
    if isinstance(obj, str):
        try:
            return Template.parse(obj)
        except TemplateSyntaxError as exc:
            raise TemplateSyntaxError(f"{path}: {exc}") from None
    if isinstance(obj, Mapping):
        return {key: compile_params(value, f"{path}.{key}") for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [compile_params(value, f"{path}[{i}]") for i, value in enumerate(obj)]
    if obj is None or isinstance(obj, bool | int | float):
        return obj
    raise TypeError(f"{path}: unsupported value of type {type(obj).__name__}")


def render_params(obj: object, alert: Alert) -> object:
    """Plain JSON-like data: compiled params with every template rendered for ``alert``.

    Raises :class:`TemplateError` on the first missing label or annotation.
    """
    if isinstance(obj, Template):
        return obj.render(alert)
    if isinstance(obj, Mapping):
        return {key: render_params(value, alert) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [render_params(value, alert) for value in obj]
    return obj


def sample_params(obj: object) -> object:
    """Compiled params rendered with each reference replaced by ``"placeholder"``.

    Lets an action validate the shape of its params when the rules load,
    before any alert exists.
    """
    if isinstance(obj, Template):
        return obj.sample()
    if isinstance(obj, Mapping):
        return {key: sample_params(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [sample_params(value) for value in obj]
    return obj


def params_are_literal(obj: object) -> bool:
    """Whether compiled params reference nothing, so every alert renders them the same."""
    if isinstance(obj, Template):
        return obj.is_literal
    if isinstance(obj, Mapping):
        return all(params_are_literal(value) for value in obj.values())
    if isinstance(obj, list | tuple):
        return all(params_are_literal(value) for value in obj)
    return True
