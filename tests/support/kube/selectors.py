"""Label and field selectors, parsed and matched as the API server does."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

from tests.support.kube.errors import bad_request
from tests.support.kube.resources import PODS, Obj, Resource


@dataclasses.dataclass(frozen=True, slots=True)
class Requirement:
    """One term of a label selector, such as ``app=web`` or ``tier in (api,web)``."""

    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!", ">", "<"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an object with these labels is selected."""
        value = labels.get(self.key)
        if self.operator in ("=", "in"):
            return value is not None and value in self.values
        if self.operator in ("!=", "notin"):
            return value is None or value not in self.values
        if self.operator == "exists":
            return value is not None
        if self.operator == "!":
            return value is None
        if value is None or not value.lstrip("-").isdigit():
            return False
        bound = int(self.values[0])
        return int(value) > bound if self.operator == ">" else int(value) < bound

    def __str__(self) -> str:
        if self.operator == "exists":
            return self.key
        if self.operator == "!":
            return f"!{self.key}"
        if self.operator in ("in", "notin"):
            return f"{self.key} {self.operator} ({','.join(sorted(self.values))})"
        return f"{self.key}{self.operator}{self.values[0]}"


_SELECTOR_TOKEN = re.compile(r"\s*(?:(==|!=|=|!|\(|\)|,|<|>)|([^\s=!(),<>]+))")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def parse_label_selector(text: str) -> tuple[Requirement, ...]:
    """Parse a ``labelSelector`` query value; raises ``ValueError`` as the API's parser does.

    Takes the whole grammar: ``k``, ``!k``, ``k=v``, ``k==v``, ``k!=v``,
    ``k in (a,b)``, ``k notin (a,b)``, ``k>1`` and ``k<1``, joined by commas.
    """
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        found = _SELECTOR_TOKEN.match(text, pos)
        if found is None:  # pragma: no cover - the pattern matches any non-blank text
            raise ValueError(f"unable to parse requirement: {text!r}")
        op, word = found.groups()
        tokens.append(("op", op) if op else ("word", word))
        pos = found.end()
    requirements: list[Requirement] = []
    i = 0

    def take() -> tuple[str, str] | None:
        nonlocal i
        token = tokens[i] if i < len(tokens) else None
        i += 1
        return token

    def peek() -> tuple[str, str] | None:
        return tokens[i] if i < len(tokens) else None

    def expect_word(what: str) -> str:
        token = take()
        if token is None or token[0] != "word":
            raise ValueError(f"unable to parse requirement: expected {what} in {text!r}")
        return token[1]

    def key_of(value: str) -> str:
        if not _LABEL_KEY.match(value):
            raise ValueError(f"unable to parse requirement: invalid label key {value!r}")
        return value

    def value_of(value: str) -> str:
        if not _LABEL_VALUE.match(value):
            raise ValueError(f"unable to parse requirement: invalid label value {value!r}")
        return value

    while tokens:
        first = take()
        if first is None:
            raise ValueError(f"unable to parse requirement: expected a key in {text!r}")
        if first == ("op", "!"):
            requirements.append(Requirement(key_of(expect_word("a key")), "!"))
        elif first[0] == "word":
            key = key_of(first[1])
            after = peek()
            if after is None or after == ("op", ","):
                requirements.append(Requirement(key, "exists"))
            elif after[1] in ("=", "==", "!="):
                take()
                operator = "!=" if after[1] == "!=" else "="
                nxt = peek()
                value = ""
                if nxt is not None and nxt[0] == "word":
                    value = value_of(expect_word("a value"))
                requirements.append(Requirement(key, operator, (value,)))
            elif after[1] in (">", "<"):
                take()
                bound = expect_word("a number")
                if not bound.lstrip("-").isdigit():
                    raise ValueError(f"unable to parse requirement: {bound!r} is not an integer")
                requirements.append(Requirement(key, after[1], (bound,)))
            elif after in (("word", "in"), ("word", "notin")):
                take()
                if take() != ("op", "("):
                    raise ValueError(f"unable to parse requirement: expected '(' in {text!r}")
                values: list[str] = []
                while True:
                    values.append(value_of(expect_word("a value")))
                    closer = take()
                    if closer == ("op", ")"):
                        break
                    if closer != ("op", ","):
                        raise ValueError(f"unable to parse requirement: expected ')' in {text!r}")
                requirements.append(Requirement(key, after[1], tuple(values)))
            else:
                raise ValueError(f"unable to parse requirement: unexpected {after[1]!r}")
        else:
            raise ValueError(f"unable to parse requirement: unexpected {first[1]!r}")
        if peek() is None:
            break
        if take() != ("op", ","):
            raise ValueError(f"unable to parse requirement: expected ',' in {text!r}")
    return tuple(requirements)


def selector_requirements(selector: Mapping[str, Any]) -> tuple[Requirement, ...]:
    """The requirements of a ``LabelSelector`` object (matchLabels and matchExpressions)."""
    requirements = [
        Requirement(key, "=", (str(value),))
        for key, value in (selector.get("matchLabels") or {}).items()
    ]
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expression in selector.get("matchExpressions") or []:
        operator = operators[expression["operator"]]
        requirements.append(
            Requirement(expression["key"], operator, tuple(expression.get("values") or ()))
        )
    return tuple(sorted(requirements, key=lambda r: r.key))


def format_selector(selector: Mapping[str, Any]) -> str:
    """A ``LabelSelector`` object as the query string form (``metav1.FormatLabelSelector``)."""
    return ",".join(str(r) for r in selector_requirements(selector))


def matches_requirements(requirements: Iterable[Requirement], obj: Obj) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(r.matches(labels) for r in requirements)


_FIELDS = {
    "metadata.name": ("metadata", "name"),
    "metadata.namespace": ("metadata", "namespace"),
}
_POD_FIELDS = {
    "spec.nodeName": ("spec", "nodeName"),
    "spec.restartPolicy": ("spec", "restartPolicy"),
    "spec.schedulerName": ("spec", "schedulerName"),
    "spec.serviceAccountName": ("spec", "serviceAccountName"),
    "status.phase": ("status", "phase"),
    "status.podIP": ("status", "podIP"),
    "status.nominatedNodeName": ("status", "nominatedNodeName"),
}


def field_filter(res: Resource, text: str) -> list[tuple[tuple[str, str], bool, str]]:
    fields = {**_FIELDS, **(_POD_FIELDS if res is PODS else {})}
    terms = []
    for term in filter(None, (t.strip() for t in text.split(","))):
        found = re.fullmatch(r"([^=!]+)(==|=|!=)(.*)", term)
        if found is None:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        field, operator, value = found.groups()
        if field not in fields:
            raise bad_request(
                f'"{field}" is not a known field selector: only "metadata.name", '
                f'"metadata.namespace"'
            )
        terms.append((fields[field], operator != "!=", value))
    return terms


def fields_match(terms: list[tuple[tuple[str, str], bool, str]], obj: Obj) -> bool:
    for (part, field), equal, value in terms:
        actual = str((obj.get(part) or {}).get(field, ""))
        if (actual == value) != equal:
            return False
    return True
