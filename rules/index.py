"""A loaded set of rules, indexed by alert name so matching does not scan every rule.

Most rules name the one alert they handle; an alert is checked only against
the rules for its name plus the few rules that name none, which keeps a
thousand-rule set fast during an alert storm.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterator, Sequence

from rules.alert import Alert
from rules.schema import Rule


class RuleSet:
    """An ordered, immutable set of rules with unique names and a version."""

    __slots__ = ("_by_alertname", "_by_name", "_rules", "_unindexed", "version")

    def __init__(self, rules: Sequence[Rule], version: str | None = None) -> None:
        """Index ``rules``; ``version`` identifies the source texts (the loader passes it).

        Without a version, one is derived from the rules themselves.
        """
        self._rules = tuple(rules)
        self._by_name: dict[str, Rule] = {}
        for rule in self._rules:
            if rule.name in self._by_name:
                raise ValueError(f"duplicate rule name {rule.name!r}")
            self._by_name[rule.name] = rule
        self.version: str = version if version is not None else _digest(repr(self._rules))
        # Positions keep the merged candidate lists in rule order.
        self._by_alertname: dict[str, list[tuple[int, Rule]]] = {}
        self._unindexed: list[tuple[int, Rule]] = []
        for position, rule in enumerate(self._rules):
            key = rule.fixed_alertname
            if key is None:
                self._unindexed.append((position, rule))
            else:
                self._by_alertname.setdefault(key, []).append((position, rule))

    @property
    def rules(self) -> tuple[Rule, ...]:
        """Every rule, in file order."""
        return self._rules

    def match(self, alert: Alert) -> list[Rule]:
        """The rules that match ``alert``, in rule order."""
        name = alert.name
        label_name = alert.labels.get("alertname", name)
        indexed = self._by_alertname.get(name, [])
        if label_name != name:
            # A matcher on the alertname label looks at the label, match.alertname at the name.
            indexed = list(heapq.merge(indexed, self._by_alertname.get(label_name, [])))
        if not indexed:
            candidates: Sequence[tuple[int, Rule]] = self._unindexed
        elif not self._unindexed:
            candidates = indexed
        else:
            candidates = list(heapq.merge(indexed, self._unindexed))
        return [rule for _, rule in candidates if rule.matches(alert)]

    def by_name(self, name: str) -> Rule | None:
        """The rule called ``name``, or ``None``."""
        return self._by_name.get(name)

    def __len__(self) -> int:
        return len(self._rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self._rules)

    def __repr__(self) -> str:
        return f"RuleSet({len(self._rules)} rules, version={self.version!r})"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]
