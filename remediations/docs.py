"""What an action documents about itself, read from its module's docstring.

Every action module's docstring follows one layout, so the README's rule
reference can be generated from it (and checked against the params the
action accepts)::

    ``name``: one line saying what it does.

    More prose...

    Params:
        param: what it is
        first, second: what they are
    (or, inline, ``Params: as ``other.action`` ...``)

    Permissions (RBAC): what it needs.

    Example::

        - action: name
          params: {...}
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import textwrap

from remediations.base import Action, ParamError

_SUMMARY = re.compile(r"^``(?P<name>[a-z_.]+)``: (?P<text>.+)$")
_PARAM = re.compile(r"^(?P<names>[a-z_][a-z_, ()+]*?): (?P<text>.+)$")
_PARAM_NAME = re.compile(r"[a-z_]+")
_SAME_AS = re.compile(r"^as ``(?P<name>[a-z_.]+)``")
_PERMISSIONS = re.compile(r"^Permissions(?: \((?P<kind>[A-Za-z][A-Za-z ]*)\))?: ")


@dataclasses.dataclass(frozen=True, slots=True)
class ParamDoc:
    """One line of the Params section: the params it names and what it says."""

    names: tuple[str, ...]
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class ActionDoc:
    """An action's documentation: summary, params, permissions and example."""

    name: str
    summary: str
    params: tuple[ParamDoc, ...]
    params_as: str | None  # "as ``docker.restart``": the params are that action's
    params_note: str  # the rest of an inline Params line
    permissions_kind: str | None  # RBAC, IAM, or None (Docker API, network)
    permissions: str
    example: str


class DocError(ValueError):
    """An action's docstring does not follow the layout; says which part."""


def describe(action: Action) -> ActionDoc:
    """The documentation of ``action``, from its module's docstring."""
    module = inspect.getmodule(type(action))
    doc = inspect.cleandoc(module.__doc__ or "") if module is not None else ""
    paragraphs = [p for p in re.split(r"\n\s*\n", doc) if p.strip()]
    if not paragraphs:
        raise DocError(f"{action.name}: its module has no docstring")
    summary = _SUMMARY.match(_join(paragraphs[0]))
    if summary is None or summary["name"] != action.name:
        raise DocError(f"{action.name}: the docstring must start with ``{action.name}``: ...")
    params, params_as, note = _params(action.name, doc)
    kind, permissions = _permissions(action.name, paragraphs)
    return ActionDoc(
        name=action.name,
        summary=_markdown(summary["text"]),
        params=params,
        params_as=params_as,
        params_note=note,
        permissions_kind=kind,
        permissions=_markdown(permissions),
        example=_example(action.name, doc),
    )


def accepted_params(action: Action) -> tuple[str, ...]:
    """The params ``action.parse`` accepts, as its own unknown-parameter error lists them."""
    probe = "__remedy_probe__"
    try:
        action.parse({probe: None})
    except ParamError as exc:
        found = re.search(r"allowed: ([a-z_, ]+)\)", str(exc))
        if exc.field == probe and found:
            return tuple(name.strip() for name in found[1].split(","))
    raise DocError(f"{action.name}: parse does not name the params it allows")


def _params(name: str, doc: str) -> tuple[tuple[ParamDoc, ...], str | None, str]:
    """The Params section: a block of ``names: text`` lines, or an inline reference."""
    found = re.search(r"^Params:(?P<inline>.*)\n(?P<block>(?:[ ]{4}.*\n?)*)", doc, re.MULTILINE)
    if found is None:
        raise DocError(f"{name}: the docstring has no Params section")
    inline = found["inline"].strip()
    if inline:
        same = _SAME_AS.match(inline)
        if same is None:
            raise DocError(f"{name}: an inline Params line must read 'as ``other.action``'")
        return (), same["name"], _markdown(inline[same.end() :].strip(" ;(),."))
    entries: list[ParamDoc] = []
    for line in textwrap.dedent(found["block"]).splitlines():
        if not line.strip():
            continue
        if line.startswith(" ") and entries:  # a continuation of the previous entry
            last = entries.pop()
            entries.append(ParamDoc(last.names, f"{last.text} {_markdown(line.strip())}"))
            continue
        entry = _PARAM.match(line)
        if entry is None:
            raise DocError(f"{name}: cannot read the Params line {line!r}")
        names = tuple(_PARAM_NAME.findall(entry["names"]))
        entries.append(ParamDoc(names, _markdown(entry["text"])))
    return tuple(entries), None, ""


def _permissions(name: str, paragraphs: list[str]) -> tuple[str | None, str]:
    for paragraph in paragraphs:
        found = _PERMISSIONS.match(paragraph)
        if found:
            return found["kind"], _join(paragraph[found.end() :])
    raise DocError(f"{name}: the docstring has no Permissions paragraph")


def _example(name: str, doc: str) -> str:
    found = re.search(r"^Example::\n\n(?P<code>(?:[ ]{4}.*\n?|\n)+)", doc, re.MULTILINE)
    if found is None:
        raise DocError(f"{name}: the docstring has no Example:: block")
    return textwrap.dedent(found["code"]).strip("\n")


def _join(paragraph: str) -> str:
    return " ".join(line.strip() for line in paragraph.splitlines())


def _markdown(text: str) -> str:
    """reStructuredText literals (````x````) as Markdown code (```x```)."""
    return text.replace("``", "`")
