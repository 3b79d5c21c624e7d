"""Loading rule files strictly, with every problem named by file, line, rule and field.

A rule that is wrong should fail ``remedy check`` and a reload, not an alert
at 3 a.m. So the loader rejects unknown keys, wrong types, bad matchers and
templates, unknown actions and params the action refuses, and it collects
every problem in every file before raising once, so one run shows them all.

The YAML reading itself (lines, strict types) is :mod:`rules.yamlnodes`.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import re
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TypeVar

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from rules.index import RuleSet
from rules.matchers import Matcher, parse_matcher
from rules.promql import Expectation, Precondition, Query
from rules.schema import (
    RULE_SOURCES,
    RULE_STATUSES,
    ActionCatalog,
    ActionStep,
    BlastRadius,
    Guards,
    RateLimit,
    Rule,
    Silence,
    Verify,
)
from rules.template import Template, TemplateSyntaxError, sample_params
from rules.yamlnodes import (
    BOOL,
    FLOAT,
    INT,
    NULL,
    STR,
    TAG,
    Invalid,
    NodeReader,
    Problem,
    RuleLoadError,
    YamlLoader,
    join_path,
    line_of,
    parse_document,
)

DEFAULT_RULES_DIR: Path = Path(__file__).resolve().parent / "defaults"
"""The shipped default rule set (package data), used when the config names no rules."""

RULE_NAME = re.compile(r"[A-Za-z0-9_.:-]+")

_RULE_KEYS = (
    "name",
    "description",
    "match",
    "for",
    "target",
    "guards",
    "actions",
    "verify",
    "on_failure",
    "when",
    "silence",
)
_MATCH_KEYS = ("source", "status", "alertname", "matchers")
_GUARD_KEYS = (
    "rate_limit",
    "cooldown",
    "require_approval",
    "approval_timeout",
    "dry_run",
    "lock_wait",
    "blast_radius",
)
_STEP_KEYS = ("action", "params", "timeout", "retries", "continue_on_error")

T = TypeVar("T")


class _FileReader(NodeReader):
    """Turns the nodes of one rule file into rules, recording problems as it goes."""

    def __init__(
        self,
        file: str,
        loader: YamlLoader,
        catalog: ActionCatalog,
        action_names: Collection[str],
        problems: list[Problem],
    ) -> None:
        super().__init__(file, loader, problems)
        self.catalog = catalog
        self.action_names = action_names

    # -- the rule file ---------------------------------------------------

    def read_file(self, root: Node | None) -> list[Rule]:
        """Every valid rule in the file; problems for the rest."""
        if root is None:
            self.problem(1, "", "expected a mapping with the key 'rules', got an empty file")
            return []
        try:
            fields = self.mapping(
                root,
                "",
                ("rules",),
                ("rules",),
                "a mapping with the key 'rules'",
                extensions=True,
            )
            if "rules" not in fields:
                return []
            items = self.sequence(fields["rules"][1], "rules", "a list of rules")
        except Invalid:
            return []
        rules = []
        for index, item in enumerate(items):
            rule = self.read_rule(item, index)
            if rule is not None:
                rules.append(rule)
        return rules

    def rule_name(self, node: Node, index: int) -> str | None:
        """The rule's name if it has a valid one, so every message can name the rule."""
        if isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode) and key_node.value == "name":
                    if (
                        isinstance(value_node, ScalarNode)
                        and value_node.tag == STR
                        and RULE_NAME.fullmatch(value_node.value)
                    ):
                        return str(value_node.value)
                    self.problem(
                        value_node,
                        f"rules[{index}].name",
                        f"expected a rule name of letters, digits and _.:-,"
                        f" got {self.describe(value_node)}",
                    )
                    return None
        return None

    def read_rule(self, node: Node, index: int) -> Rule | None:
        """One rule, or ``None`` when it has problems (all of them recorded)."""
        before = len(self.problems)
        self.context = None
        self.context = self.rule_name(node, index)
        path = "" if self.context is not None else f"rules[{index}]"
        try:
            fields = self.mapping(node, path, _RULE_KEYS, ("name", "target", "actions"), "a rule")
        except Invalid:
            return None
        description = self.optional(fields, "description", path, self.text, "")
        source, status, alertname, matchers = self.read_match(fields, path)
        for_ = self.optional(fields, "for", path, self.duration, None)
        target = self.optional(fields, "target", path, self.template, None)
        guards = self.optional(fields, "guards", path, self.read_guards, Guards())
        no_steps: tuple[ActionStep, ...] = ()
        actions = self.optional(fields, "actions", path, self.read_actions, no_steps)
        verify = self.optional(fields, "verify", path, self.read_verify, None)
        no_conditions: tuple[Precondition, ...] = ()
        when = self.optional(fields, "when", path, self.read_when, no_conditions)
        silence = self.optional(fields, "silence", path, self.read_silence, None)
        on_failure = self.optional(fields, "on_failure", path, self.read_steps, no_steps)
        if status == "resolved":
            for key in ("for", "verify", "when", "silence"):
                if key in fields:
                    self.problem(
                        fields[key][0],
                        join_path(path, key),
                        "only meaningful for rules that match firing alerts",
                    )
        if len(self.problems) > before or self.context is None or target is None:
            return None
        return Rule(
            name=self.context,
            description=description,
            source=source,
            status=status,
            alertname=alertname,
            matchers=matchers,
            for_=for_,
            target=target,
            guards=guards,
            actions=actions,
            verify=verify,
            on_failure=on_failure,
            file=self.file,
            line=line_of(node),
            when=when,
            silence=silence,
        )

    def read_match(
        self, rule_fields: dict[str, tuple[Node, Node]], rule_path: str
    ) -> tuple[str, str, str | None, tuple[Matcher, ...]]:
        """``match``: source, status, alertname and matchers (defaults: any, firing)."""
        defaults: tuple[str, str, str | None, tuple[Matcher, ...]] = ("any", "firing", None, ())
        if "match" not in rule_fields:
            return defaults
        path = join_path(rule_path, "match")
        try:
            fields = self.mapping(rule_fields["match"][1], path, _MATCH_KEYS)
        except Invalid:
            return defaults
        source = self.optional(
            fields, "source", path, lambda n, p: self.choice(n, p, RULE_SOURCES), "any"
        )
        status = self.optional(
            fields, "status", path, lambda n, p: self.choice(n, p, RULE_STATUSES), "firing"
        )
        alertname = self.optional(fields, "alertname", path, self.string, None)
        no_items: list[tuple[Node, str, Matcher]] = []
        items = self.optional(fields, "matchers", path, self.read_matchers, no_items)
        for item, item_path, matcher in items:
            if (
                alertname is not None
                and matcher.name == "alertname"
                and matcher.op == "="
                and matcher.value != alertname
            ):
                self.problem(
                    item,
                    item_path,
                    f"contradicts alertname {alertname!r}: the rule can never match",
                )
        return source, status, alertname, tuple(matcher for _, _, matcher in items)

    def read_matchers(self, node: Node, path: str) -> list[tuple[Node, str, Matcher]]:
        """A list of matcher strings in Alertmanager syntax, with each item's node and path."""
        matchers = []
        for i, item in enumerate(self.sequence(node, path, "a list of matchers")):
            item_path = join_path(path, i)
            try:
                matchers.append((item, item_path, parse_matcher(self.string(item, item_path))))
            except ValueError as exc:
                self.problem(item, item_path, str(exc))
            except Invalid:
                pass
        return matchers

    def read_guards(self, node: Node, path: str) -> Guards:
        """``guards``: every guard rail is optional."""
        fields = self.mapping(node, path, _GUARD_KEYS)
        require_approval = self.optional(fields, "require_approval", path, self.boolean, False)
        if "approval_timeout" in fields and not require_approval:
            self.problem(
                fields["approval_timeout"][0],
                join_path(path, "approval_timeout"),
                "only meaningful with require_approval: true",
            )
        return Guards(
            rate_limit=self.optional(fields, "rate_limit", path, self.read_rate_limit, None),
            cooldown=self.optional(fields, "cooldown", path, self.duration, None),
            require_approval=require_approval,
            approval_timeout=self.optional(fields, "approval_timeout", path, self.duration, None),
            dry_run=self.optional(fields, "dry_run", path, self.boolean, False),
            lock_wait=self.optional(fields, "lock_wait", path, self.duration, None),
            blast_radius=self.optional(fields, "blast_radius", path, self.read_blast_radius, None),
        )

    def read_rate_limit(self, node: Node, path: str) -> RateLimit:
        """``{count, per}``, both required."""
        fields = self.mapping(node, path, ("count", "per"), ("count", "per"))
        count = self.optional(fields, "count", path, lambda n, p: self.integer(n, p, 1), None)
        per = self.optional(fields, "per", path, self.duration, None)
        if count is None or per is None:
            raise Invalid
        return RateLimit(count=count, per=per)

    def read_blast_radius(self, node: Node, path: str) -> BlastRadius:
        """``{scope, max_targets, per}``, all required."""
        keys = ("scope", "max_targets", "per")
        fields = self.mapping(node, path, keys, keys)
        scope = self.optional(fields, "scope", path, self.template, None)
        max_targets = self.optional(
            fields, "max_targets", path, lambda n, p: self.integer(n, p, 1), None
        )
        per = self.optional(fields, "per", path, self.duration, None)
        if scope is None or max_targets is None or per is None:
            raise Invalid
        return BlastRadius(scope=scope, max_targets=max_targets, per=per)

    def read_verify(self, node: Node, path: str) -> Verify:
        """``{resolved_within}``, ``{query, expect, within}``, or both."""
        fields = self.mapping(node, path, ("resolved_within", "query", "expect", "within"))
        resolved = self.optional(fields, "resolved_within", path, self.duration, None)
        query = self.optional(fields, "query", path, self.promql, None)
        expect = self.optional(fields, "expect", path, self.expectation, Expectation("nonempty"))
        within = self.optional(fields, "within", path, self.duration, None)
        if "query" in fields and "within" not in fields:
            raise self.invalid(node, path, "query needs within: how long it has to hold")
        if "within" in fields and "query" not in fields:
            raise self.invalid(node, path, "within goes with query (the alert has resolved_within)")
        if "expect" in fields and "query" not in fields:
            raise self.invalid(node, path, "expect goes with query")
        if not fields:
            raise self.invalid(node, path, "give resolved_within, or query and within, or both")
        if resolved is None and query is None:
            raise Invalid  # what was wrong with them is recorded
        condition = Precondition(query, expect, line_of(node)) if query is not None else None
        return Verify(resolved_within=resolved, query=condition, within=within)

    def read_when(self, node: Node, path: str) -> tuple[Precondition, ...]:
        """``when``: PromQL preconditions, ``{query, expect}`` (expect defaults to nonempty)."""
        conditions = []
        for i, item in enumerate(self.sequence(node, path, "a list of {query, expect}")):
            item_path = join_path(path, i)
            with contextlib.suppress(Invalid):
                fields = self.mapping(item, item_path, ("query", "expect"), ("query",))
                query = self.optional(fields, "query", item_path, self.promql, None)
                expect = self.optional(
                    fields, "expect", item_path, self.expectation, Expectation("nonempty")
                )
                if query is not None:
                    conditions.append(Precondition(query, expect, line_of(item)))
        return tuple(conditions)

    def read_silence(self, node: Node, path: str) -> Silence:
        """``{duration, comment}``: silence the alert in Alertmanager while it is remediated."""
        fields = self.mapping(node, path, ("duration", "comment"), ("duration",))
        duration = self.optional(fields, "duration", path, self.duration, None)
        comment = self.optional(fields, "comment", path, self.text, "")
        if duration is None:
            raise Invalid
        if duration < 60:
            raise self.invalid(fields["duration"][1], join_path(path, "duration"), "at least 1m")
        return Silence(duration, comment)

    def promql(self, node: Node, path: str) -> Query:
        try:
            return Query.parse(self.string(node, path))
        except TemplateSyntaxError as exc:
            raise self.invalid(node, path, str(exc)) from None

    def expectation(self, node: Node, path: str) -> Expectation:
        try:
            return Expectation.parse(self.string(node, path))
        except ValueError as exc:
            raise self.invalid(node, path, str(exc)) from None

    def read_actions(self, node: Node, path: str) -> tuple[ActionStep, ...]:
        """``actions``: at least one step."""
        if isinstance(node, SequenceNode) and not node.value:
            raise self.invalid(node, path, "expected at least one action")
        return self.read_steps(node, path)

    def read_steps(self, node: Node, path: str) -> tuple[ActionStep, ...]:
        """A list of steps (``actions`` or ``on_failure``)."""
        steps = []
        for i, item in enumerate(self.sequence(node, path, "a list of actions")):
            with contextlib.suppress(Invalid):
                steps.append(self.read_step(item, join_path(path, i)))
        return tuple(steps)

    def read_step(self, node: Node, path: str) -> ActionStep:
        """One step: a known action and params that action accepts."""
        before = len(self.problems)
        fields = self.mapping(node, path, _STEP_KEYS, ("action",), "an action step")
        action = self.optional(fields, "action", path, self.read_action_name, None)
        params: object = {}
        lines: dict[tuple[str | int, ...], int] = {}
        params_path = join_path(path, "params")
        if "params" in fields:
            params_node = fields["params"][1]
            lines[()] = line_of(params_node)
            try:
                if not isinstance(params_node, MappingNode):
                    got = self.describe(params_node)
                    raise self.invalid(params_node, params_path, f"expected a mapping, got {got}")
                params = self.read_param(params_node, params_path, (), lines)
            except Invalid:
                pass
        step = ActionStep(
            action=action or "",
            params=params,
            timeout=self.optional(fields, "timeout", path, self.duration, 60.0),
            retries=self.optional(fields, "retries", path, lambda n, p: self.integer(n, p, 0), 0),
            continue_on_error=self.optional(fields, "continue_on_error", path, self.boolean, False),
            line=line_of(node),
        )
        if len(self.problems) > before or action is None:
            raise Invalid
        default_line = lines.get((), line_of(fields["action"][1]))
        for field, message in self.catalog.check_params(action, sample_params(params)):
            keys = _field_keys(field)
            while keys not in lines and keys:
                keys = keys[:-1]
            self.problem(
                lines.get(keys, default_line),
                f"{params_path}.{field}" if field else params_path,
                message,
            )
        if len(self.problems) > before:
            raise Invalid
        return step

    def read_action_name(self, node: Node, path: str) -> str:
        """An action the catalog knows."""
        name = self.string(node, path)
        if name not in self.action_names:
            known = ", ".join(sorted(self.action_names))
            raise self.invalid(node, path, f"unknown action {name!r} (known: {known})")
        return name

    def read_param(
        self,
        node: Node,
        path: str,
        keys: tuple[str | int, ...],
        lines: dict[tuple[str | int, ...], int],
    ) -> object:
        """JSON-like params with each string compiled as a template; lines by field path."""
        if isinstance(node, MappingNode):
            out: dict[str, object] = {}
            ok = True
            for key, (key_node, value_node) in self.mapping(node, path, None).items():
                sub = (*keys, key)
                lines[sub] = line_of(
                    key_node if isinstance(value_node, MappingNode) else value_node
                )
                try:
                    out[key] = self.read_param(value_node, join_path(path, key), sub, lines)
                except Invalid:
                    ok = False
            if not ok:
                raise Invalid
            return out
        if isinstance(node, SequenceNode):
            items: list[object] = []
            ok = True
            for i, item in enumerate(node.value):
                lines[(*keys, i)] = line_of(item)
                try:
                    items.append(self.read_param(item, join_path(path, i), (*keys, i), lines))
                except Invalid:
                    ok = False
            if not ok:
                raise Invalid
            return items
        if node.tag == STR:
            try:
                return Template.parse(str(node.value))
            except TemplateSyntaxError as exc:
                raise self.invalid(node, path, str(exc)) from None
        if node.tag in (INT, FLOAT, BOOL, NULL):
            return self.construct(node, path)
        tag = node.tag.replace(TAG, "!!")
        raise self.invalid(
            node,
            path,
            f"unsupported value {tag} {self.describe(node)}"
            " (use strings, numbers, booleans, null, lists and mappings)",
        )


def _field_keys(field: str) -> tuple[str | int, ...]:
    """``headers.X`` or ``expect_status[1]`` as the keys that lead to it."""
    keys: list[str | int] = []
    for part in field.split("."):
        name, *indexes = part.split("[")
        if name:
            keys.append(name)
        for index in indexes:
            digits = index.rstrip("]")
            keys.append(int(digits) if digits.isdigit() else digits)
    return tuple(keys)


def _source_files(sources: Sequence[str | Path], problems: list[Problem]) -> list[Path]:
    """The rule files named by files, directories (their ``*.yaml``/``*.yml``) and globs."""
    files: list[Path] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        if path.is_dir():
            for child in sorted(path.iterdir()):
                if child.suffix in (".yaml", ".yml") and child.is_file():
                    add(child)
            return
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            files.append(path)

    for source in sources:
        path = Path(source)
        if path.exists():
            add(path)
        elif any(char in str(source) for char in "*?["):
            matches = sorted(glob.glob(str(source)))
            if not matches:
                problems.append(Problem(str(source), 0, None, "no files match this pattern"))
            for match in matches:
                add(Path(match))
        else:
            problems.append(Problem(str(source), 0, None, "no such file or directory"))
    return files


def _read_rules(
    texts: Sequence[tuple[str, str]], catalog: ActionCatalog, problems: list[Problem]
) -> RuleSet:
    """Rules from (file name, text) pairs; raises :class:`RuleLoadError` with every problem."""
    names = catalog.action_names()
    digest = hashlib.sha256()
    rules: list[Rule] = []
    first_seen: dict[str, Rule] = {}
    for file, text in texts:
        digest.update(f"{len(text)}:".encode())
        digest.update(text.encode())
        document = parse_document(text, file, problems)
        if document is None:
            continue
        loader, root = document
        try:
            reader = _FileReader(file, loader, catalog, names, problems)
            for rule in reader.read_file(root):
                first = first_seen.setdefault(rule.name, rule)
                if first is not rule:
                    problems.append(
                        Problem(
                            file,
                            rule.line,
                            rule.name,
                            f"duplicate rule name, first defined at {first.file}:{first.line}",
                        )
                    )
                else:
                    rules.append(rule)
        finally:
            loader.dispose()
    if problems:
        order = {file: i for i, (file, _) in enumerate(texts)}
        problems.sort(key=lambda p: (order.get(p.file, -1), p.line))
        raise RuleLoadError(problems)
    return RuleSet(rules, version=digest.hexdigest()[:12])


def load_rules(sources: Sequence[str | Path], catalog: ActionCatalog) -> RuleSet:
    """Load every rule from files, directories and glob patterns, validated against ``catalog``.

    All files are read and every problem collected before one
    :class:`RuleLoadError` is raised, so a reload either takes the whole new
    set or nothing. The version is a digest of the source texts.
    """
    problems: list[Problem] = []
    texts: list[tuple[str, str]] = []
    for path in _source_files(sources, problems):
        try:
            texts.append((str(path), path.read_text(encoding="utf-8")))
        except UnicodeDecodeError:
            problems.append(Problem(str(path), 0, None, "not valid UTF-8"))
        except OSError as exc:
            problems.append(Problem(str(path), 0, None, f"cannot read: {exc.strerror}"))
    return _read_rules(texts, catalog, problems)


def load_rules_text(text: str, file: str, catalog: ActionCatalog) -> RuleSet:
    """Load the rules in one YAML text as if read from ``file`` (for tests and ``remedy test``)."""
    return _read_rules([(file, text)], catalog, [])
