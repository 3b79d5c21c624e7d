"""Strict YAML reading with line numbers: the shared base of the rule and config loaders.

YAML is read into nodes (not plain Python values) so each problem points at
the exact line of the key or value at fault. Two YAML 1.1 surprises are turned
off: only ``true``/``false`` are booleans (``yes``, ``on`` and ``no`` stay
strings, and are rejected where a boolean is expected), and dates stay strings.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Sequence
from typing import TypeVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from rules.duration import parse_duration
from rules.template import Template, TemplateSyntaxError

T = TypeVar("T")

TAG = "tag:yaml.org,2002:"
MERGE = TAG + "merge"
STR, INT, FLOAT, BOOL, NULL = (
    TAG + "str",
    TAG + "int",
    TAG + "float",
    TAG + "bool",
    TAG + "null",
)


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the rules, where it is and which rule it belongs to.

    ``line`` is 1-based; 0 means the problem concerns the whole file (it cannot
    be read, or a pattern matches nothing).
    """

    file: str
    line: int
    rule: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line > 0 else self.file
        if self.rule is not None:
            return f"{where}: rule {self.rule}: {self.message}"
        return f"{where}: {self.message}"


class RuleLoadError(Exception):
    """The rules are invalid; ``problems`` lists every problem found, in file order."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


class YamlLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans and no timestamps (see the module docstring)."""


YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (BOOL, TAG + "timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
YamlLoader.add_implicit_resolver(
    BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def line_of(node: Node) -> int:
    return int(node.start_mark.line) + 1


def join_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class Invalid(Exception):
    """A problem was recorded for this value; the caller skips it."""


class NodeReader:
    """Reads typed values out of the nodes of one file, recording a :class:`Problem` per fault.

    ``context`` names what is being read (a rule's name) and prefixes every problem.
    """

    def __init__(self, file: str, loader: YamlLoader, problems: list[Problem]) -> None:
        self.file = file
        self.loader = loader
        self.problems = problems
        self.context: str | None = None

    # -- recording -------------------------------------------------------

    def problem(self, line: int | Node, path: str, message: str) -> None:
        """Record a problem at a node (or line) for the field ``path``."""
        if isinstance(line, Node):
            line = line_of(line)
        text = f"{path}: {message}" if path else message
        self.problems.append(Problem(self.file, line, self.context, text))

    def invalid(self, node: Node, path: str, message: str) -> Invalid:
        """Record a problem and return the exception that abandons the value."""
        self.problem(node, path, message)
        return Invalid()

    def optional(
        self,
        fields: dict[str, tuple[Node, Node]],
        key: str,
        path: str,
        read: Callable[[Node, str], T],
        default: T,
    ) -> T:
        """``read`` the field if present; the default when it is absent or invalid."""
        if key not in fields:
            return default
        try:
            return read(fields[key][1], join_path(path, key))
        except Invalid:
            return default

    # -- node readers ----------------------------------------------------

    def describe(self, node: Node) -> str:
        """How a wrong value is shown in a message: ``'x'``, ``12``, ``a list``."""
        if isinstance(node, MappingNode):
            return "a mapping"
        if isinstance(node, SequenceNode):
            return "a list"
        if node.tag == STR:
            return repr(node.value)
        if node.tag == NULL:
            return "null"
        return str(node.value)

    def mapping(
        self,
        node: Node,
        path: str,
        allowed: Sequence[str] | None,
        required: Sequence[str] = (),
        what: str = "a mapping",
        *,
        extensions: bool = False,
    ) -> dict[str, tuple[Node, Node]]:
        """The (key node, value node) of each field, after rejecting unknown and repeated keys.

        ``allowed=None`` admits any string key (action params). ``extensions``
        admits, and leaves out of the result, keys starting with ``x-``: a
        place for YAML anchors, as in docker-compose files.
        """
        if not isinstance(node, MappingNode):
            raise self.invalid(node, path, f"expected {what}, got {self.describe(node)}")
        merged, own = self.entries(node, path)
        fields: dict[str, tuple[Node, Node]] = {}
        written: set[str] = set()
        # Merged entries first, then the mapping's own: a key written here
        # overrides a merged one, as YAML's merge key defines.
        for key_node, value_node, is_own in [
            *((key, value, False) for key, value in merged),
            *((key, value, True) for key, value in own),
        ]:
            key = self.key(key_node, path)
            if key is None or (is_own and self.repeated(key_node, key, written, path)):
                continue
            if not is_own and key in fields:
                continue  # an earlier merged mapping wins over a later one
            if extensions and key.startswith("x-"):
                continue
            if allowed is not None and key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
                self.problem(key_node, path, f"unknown key {key!r} ({hint})")
                continue
            fields[key] = (key_node, value_node)
        for key in required:
            if key not in fields:
                self.problem(node, path, f"missing required key {key!r}")
        return fields

    def entries(
        self, node: MappingNode, path: str, active: frozenset[int] = frozenset()
    ) -> tuple[list[tuple[Node, Node]], list[tuple[Node, Node]]]:
        """The entries ``<<`` merge keys bring into ``node``, and its own entries.

        Merged entries come in precedence order (an earlier mapping of
        ``<<: [*a, *b]`` before a later one). Nothing is modified, unlike
        PyYAML's ``flatten_mapping``: an anchored mapping may be merged into
        many places and read again as itself. A mapping merged in is checked
        for keys written twice in it, since it is never read on its own.
        """
        merged: list[tuple[Node, Node]] = []
        own: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag != MERGE:
                own.append((key_node, value_node))
                continue
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in sources:
                if not isinstance(source, MappingNode) or id(source) in active | {id(node)}:
                    raise self.invalid(
                        source, path, "invalid merge: expected a mapping or a list of mappings"
                    )
                inner, inner_own = self.entries(source, path, active | {id(node)})
                written: set[str] = set()
                for key_node_, _ in inner_own:
                    key = self.key(key_node_, path)
                    if key is not None:
                        self.repeated(key_node_, key, written, path)
                merged.extend(inner_own)
                merged.extend(inner)
        return merged, own

    def key(self, node: Node, path: str) -> str | None:
        """A mapping key, which must be a string; ``None`` (and a problem) otherwise."""
        if isinstance(node, ScalarNode) and node.tag == STR:
            return str(node.value)
        self.problem(node, path, f"expected a string key, got {self.describe(node)}")
        return None

    def repeated(self, node: Node, key: str, written: set[str], path: str) -> bool:
        """Whether ``key`` was already written in the same mapping (a problem if so)."""
        if key in written:
            self.problem(node, path, f"duplicate key {key!r}")
            return True
        written.add(key)
        return False

    def sequence(self, node: Node, path: str, what: str) -> list[Node]:
        """The item nodes of a list."""
        if not isinstance(node, SequenceNode):
            raise self.invalid(node, path, f"expected {what}, got {self.describe(node)}")
        return list(node.value)

    def string(self, node: Node, path: str) -> str:
        """A non-empty string."""
        if not (isinstance(node, ScalarNode) and node.tag == STR) or not node.value:
            raise self.invalid(
                node, path, f"expected a non-empty string, got {self.describe(node)}"
            )
        return str(node.value)

    def text(self, node: Node, path: str) -> str:
        """A string, possibly empty."""
        if not (isinstance(node, ScalarNode) and node.tag == STR):
            raise self.invalid(node, path, f"expected a string, got {self.describe(node)}")
        return str(node.value)

    def choice(self, node: Node, path: str, choices: Sequence[str]) -> str:
        """One of a few fixed strings."""
        value = node.value if isinstance(node, ScalarNode) and node.tag == STR else None
        if value not in choices:
            raise self.invalid(
                node, path, f"expected one of {', '.join(choices)}, got {self.describe(node)}"
            )
        return str(value)

    def boolean(self, node: Node, path: str) -> bool:
        """A YAML ``true`` or ``false``."""
        if not (isinstance(node, ScalarNode) and node.tag == BOOL):
            raise self.invalid(node, path, f"expected true or false, got {self.describe(node)}")
        return bool(self.construct(node, path))

    def integer(self, node: Node, path: str, minimum: int) -> int:
        """An integer (not a boolean) at least ``minimum``."""
        bound = "> 0" if minimum == 1 else f">= {minimum}"
        value = self.construct(node, path) if node.tag == INT else None
        if not isinstance(value, int) or value < minimum:
            raise self.invalid(
                node, path, f"expected an integer {bound}, got {self.describe(node)}"
            )
        return value

    def duration(self, node: Node, path: str) -> float:
        """A duration string such as ``30s``, in seconds (a bare number is ambiguous)."""
        if not (isinstance(node, ScalarNode) and node.tag == STR):
            got = self.describe(node)
            raise self.invalid(node, path, f"expected a duration such as 30s, 10m or 1h, got {got}")
        try:
            return parse_duration(node.value)
        except ValueError as exc:
            raise self.invalid(node, path, str(exc)) from None

    def template(self, node: Node, path: str) -> Template:
        """A template string, checked now so it can only fail for a missing value later."""
        source = self.string(node, path)
        try:
            return Template.parse(source)
        except TemplateSyntaxError as exc:
            raise self.invalid(node, path, str(exc)) from None

    def construct(self, node: Node, path: str) -> object:
        """The Python value of a scalar node."""
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            raise self.invalid(node, path, str(exc.problem)) from None


MAX_NODES = 100_000
"""Nodes a document may have once aliases are expanded: a bound on alias bombs."""


def parse_document(
    text: str, file: str, problems: list[Problem]
) -> tuple[YamlLoader, Node | None] | None:
    """The loader and root node of one YAML document; ``None`` (and a problem) if it is invalid.

    The caller disposes of the loader.
    """
    loader = YamlLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        loader.dispose()
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        context = f"{exc.context}: " if exc.context else ""
        problems.append(Problem(file, line, None, f"invalid YAML: {context}{exc.problem}"))
        return None
    except RecursionError:
        loader.dispose()
        problems.append(Problem(file, 0, None, "invalid YAML: nested too deeply"))
        return None
    if root is not None and _expanded_size(root) > MAX_NODES:
        loader.dispose()
        problems.append(
            Problem(
                file,
                line_of(root),
                None,
                f"too large: over {MAX_NODES} values once aliases are expanded",
            )
        )
        return None
    return loader, root


def _expanded_size(root: Node) -> int:
    """How many nodes a reader visits, counting an aliased node each time it is used."""
    count = 0
    stack: list[Node] = [root]
    while stack and count <= MAX_NODES:
        node = stack.pop()
        count += 1
        if isinstance(node, MappingNode):
            for key, value in node.value:
                stack.append(key)
                stack.append(value)
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)
    return count
