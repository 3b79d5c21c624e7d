"""The registry of actions by name: an explicit object, filled by a decorator."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, TypeVar

from remediations.base import Action, ParamError, Previews

A = TypeVar("A", bound=type[Action])


class Registry:
    """Actions by name. Build a fresh one per service (and per test)."""

    def __init__(self) -> None:
        self._actions: dict[str, Action] = {}
        self._disabled: dict[str, str] = {}
        self._previewing: set[str] = set()

    def disable(self, name: str, why: str) -> Registry:
        """Keep ``name`` known (for messages) but refuse every rule step that uses it."""
        self.get(name)
        self._disabled[name] = why
        return self

    def register(self, cls: A) -> A:
        """Add an action class (usable as a decorator); its name must be new."""
        if cls.name in self._actions:
            raise ValueError(f"action {cls.name!r} is registered twice")
        action = self._actions[cls.name] = cls()
        if isinstance(action, Previews):  # asked once here: a protocol check is slow
            self._previewing.add(cls.name)
        return cls

    def add(self, *classes: type[Action]) -> Registry:
        """Register several action classes; returns the registry."""
        for cls in classes:
            self.register(cls)
        return self

    def get(self, name: str) -> Action:
        """The action called ``name``; ``KeyError`` when there is none."""
        return self._actions[name]

    def previews(self, name: str) -> bool:
        """Whether the action called ``name`` can tell what it would do (:class:`Previews`)."""
        return name in self._previewing

    def action_names(self) -> Collection[str]:
        """Every registered action name, sorted."""
        return sorted(self._actions)

    def disabled(self, name: str) -> str | None:
        """Why ``name`` is off (see :meth:`disable`), or ``None`` when it may run."""
        return self._disabled.get(name)

    def check_params(self, action: str, params: object) -> list[tuple[str, str]]:
        """Problems with ``params`` for ``action`` as (field, message); empty when valid."""
        if action in self._disabled:
            return [("", f"{action} is off: {self._disabled[action]}")]
        if not isinstance(params, Mapping):
            return [("", "params must be a mapping")]
        try:
            self._actions[action].parse(params)
        except ParamError as exc:
            return [(exc.field, exc.message)]
        return []

    def parse(self, action: str, params: Mapping[str, Any]) -> Any:
        """The parsed params of ``action``; raises :class:`ParamError`."""
        return self._actions[action].parse(params)
