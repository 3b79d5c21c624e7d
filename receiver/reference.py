"""The README's rule reference, generated from the code.

Two parts of README.md are written by this module and checked by the tests:
the actions (from each action module's docstring: params, permissions,
example) and the shipped rules (from rules/defaults). Regenerate them after
changing either::

    python -m receiver.reference            # rewrites README.md in place
    python -m receiver.reference --check    # exit 1 if README.md is stale
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from remediations import Registry, builtin_registry
from remediations.docs import ActionDoc, describe
from rules import DEFAULT_RULES_DIR, Rule, RuleSet, load_rules
from rules.duration import format_duration

README = Path(__file__).resolve().parent.parent / "README.md"
_BLOCK = re.compile(
    r"(?P<begin><!-- BEGIN (?P<name>[a-z-]+)[^>]*-->\n)"
    r"(?P<body>.*?)"
    r"(?P<end><!-- END (?P=name) -->)",
    re.DOTALL,
)
_SOURCES = {"alertmanager": "Alertmanager alerts", "cloudwatch": "CloudWatch alarms"}


def actions_markdown(registry: Registry) -> str:
    """Every action: what it does, its params, the permissions it needs, an example."""
    docs = {name: describe(registry.get(name)) for name in registry.action_names()}
    return "\n".join(_action(doc) for doc in docs.values())


def _action(doc: ActionDoc) -> str:
    lines = [f"#### `{doc.name}`", "", doc.summary[:1].upper() + doc.summary[1:], ""]
    if doc.params_as is not None:
        note = f"; {doc.params_note}" if doc.params_note else ""
        lines += [f"Params: as [`{doc.params_as}`](#{_anchor(doc.params_as)}){note}.", ""]
    else:
        lines += ["| param | |", "|---|---|"]
        for param in doc.params:
            names = ", ".join(f"`{name}`" for name in param.names)
            text = param.text.replace("|", r"\|")
            lines.append(f"| {names} | {text} |")
        lines.append("")
    kind = f" ({doc.permissions_kind})" if doc.permissions_kind else ""
    lines += [f"Permissions{kind}: {doc.permissions}", ""]
    lines += ["```yaml", doc.example, "```", ""]
    return "\n".join(lines)


def _anchor(name: str) -> str:
    """GitHub's heading anchor for ``#### `name` ``."""
    return re.sub(r"[^a-z0-9_ -]", "", name.lower()).replace(" ", "-")


def rules_markdown(ruleset: RuleSet) -> str:
    """Every shipped rule by file: what it matches, runs and is guarded by, and why."""
    by_file: dict[str, list[Rule]] = {}
    for rule in ruleset:
        by_file.setdefault(Path(rule.file).name, []).append(rule)
    lines: list[str] = []
    for file, rules in sorted(by_file.items()):
        lines += [f"#### `rules/defaults/{file}`", ""]
        for rule in rules:
            lines += [f"- **`{rule.name}`**: {rule.description}"]
            lines += [f"  - matches: {_matches(rule)}"]
            lines += [f"  - runs: {_runs(rule)}"]
            lines += [f"  - guards: {'; '.join(_guards(rule))}"]
        lines.append("")
    return "\n".join(lines)


def _matches(rule: Rule) -> str:
    conditions = [f'`alertname="{rule.alertname}"`'] if rule.alertname else []
    conditions += [f"`{m}`" for m in rule.matchers if not (m.name == "alertname" and m.op == "=")]
    what = _SOURCES.get(rule.source, "alerts")
    status = "" if rule.status == "firing" else f" ({rule.status})"
    return f"{what}{status} with {', '.join(conditions)}; target `{rule.target.source}`"


def _runs(rule: Rule) -> str:
    text = _steps(step.action for step in rule.actions)
    if rule.on_failure:
        text += f"; on failure or when ineffective, {_steps(s.action for s in rule.on_failure)}"
    return text


def _steps(actions: Iterable[str]) -> str:
    return ", then ".join(f"[`{name}`](#{_anchor(name)})" for name in actions)


def _guards(rule: Rule) -> list[str]:
    guards = rule.guards
    parts = []
    if rule.for_ is not None:
        parts.append(f"for {format_duration(rule.for_)}")
    if guards.require_approval:
        expires = guards.approval_timeout
        parts.append(
            "operator approval"
            + (f" (expires after {format_duration(expires)})" if expires else "")
        )
    if guards.rate_limit is not None:
        limit = guards.rate_limit
        parts.append(f"at most {limit.count} per {format_duration(limit.per)}")
    if guards.cooldown is not None:
        parts.append(f"cooldown {format_duration(guards.cooldown)}")
    if guards.lock_wait is not None:
        parts.append(f"waits up to {format_duration(guards.lock_wait)} for the target's lock")
    if guards.blast_radius is not None:
        radius = guards.blast_radius
        parts.append(
            f"at most {radius.max_targets} targets per `{radius.scope.source}`"
            f" in {format_duration(radius.per)}"
        )
    if rule.verify is not None and rule.verify.resolved_within is not None:
        parts.append(f"verified if resolved within {format_duration(rule.verify.resolved_within)}")
    if rule.verify is not None and rule.verify.query is not None and rule.verify.within:
        parts.append(
            f"verified if `{rule.verify.query.query}` is {rule.verify.query.expect.text}"
            f" within {format_duration(rule.verify.within)}"
        )
    if rule.when:
        parts.append(
            "only while " + " and ".join(f"`{c.query}` is {c.expect.text}" for c in rule.when)
        )
    return parts


def generated(readme: str, registry: Registry, ruleset: RuleSet) -> str:
    """``readme`` with its generated blocks rewritten from the code."""
    bodies = {"actions": actions_markdown(registry), "shipped-rules": rules_markdown(ruleset)}
    seen: set[str] = set()

    def body(found: re.Match[str]) -> str:
        name = found["name"]
        if name not in bodies:
            raise ValueError(f"README.md: unknown generated block {name!r}")
        seen.add(name)
        return f"{found['begin']}\n{bodies[name]}\n{found['end']}"

    text = _BLOCK.sub(body, readme)
    if missing := sorted(set(bodies) - seen):
        raise ValueError(f"README.md: no generated block for {', '.join(missing)}")
    return text


def main(argv: list[str] | None = None) -> int:
    """Rewrite README.md's generated blocks, or with ``--check`` say whether they are stale."""
    parser = argparse.ArgumentParser(prog="python -m receiver.reference")
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    registry = builtin_registry()
    try:
        current = args.readme.read_text(encoding="utf-8")
        fresh = generated(current, registry, load_rules([DEFAULT_RULES_DIR], registry))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"python -m receiver.reference: {exc}", file=sys.stderr)
        return 1
    if args.check:
        if fresh != current:
            print(f"{args.readme}: the rule reference is stale; run python -m receiver.reference")
            return 1
        return 0
    if fresh != current:
        args.readme.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
