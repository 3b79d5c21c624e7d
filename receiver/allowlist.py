"""Allow-lists per backend (``backends.<name>.allow``): what an action may touch at all.

Checked in the claim, before anything runs: a step outside its backend's
allow-list makes the remediation ``denied`` and the target is never contacted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from remediations import ParamError, Registry

AllowLists = Mapping[str, tuple[re.Pattern[str], ...]]
SETTING = {  # where the config holds each allow-list, by backend or by action
    "kubernetes": "backends.kubernetes.namespaces",
    "redis": "backends.redis.servers",
    "postgresql": "backends.postgresql.servers",
    "aws.sqs_redrive": "backends.aws.allow_queues",
    "aws.lambda_concurrency": "backends.aws.allow_functions",
    "aws.lambda_rollback": "backends.aws.allow_functions",
    "aws.ecs_redeploy": "backends.aws.allow_services",
}


def setting(key: str) -> str:
    """Where the config holds an allow-list, for messages: backends.docker.allow."""
    return SETTING.get(key, f"backends.{key}.allow")


def patterns_for(allow: AllowLists, action: str) -> tuple[re.Pattern[str], ...] | None:
    """The allow-list an action answers to: its own (AWS), else its backend's.

    When a backend has allow-lists for some of its actions only, the others
    admit nothing: configuring one list must not leave its siblings open.
    """
    if action in allow:
        return allow[action]
    backend = action.split(".", 1)[0]
    if backend in allow:
        return allow[backend]
    if any(key.startswith(backend + ".") for key in allow):
        return ()
    return None


def compile_allow(patterns: Mapping[str, Sequence[str]]) -> AllowLists:
    """The config's patterns, compiled once (they were validated when the config loaded)."""
    return {backend: tuple(re.compile(p) for p in items) for backend, items in patterns.items()}


def denial(registry: Registry, allow: AllowLists, steps: Sequence[Mapping[str, Any]]) -> str | None:
    """Why a step falls outside its backend's allow-list, or ``None`` when all are inside.

    A backend without an allow-list admits everything. An action the config
    turned off is refused too: work stored while it was on (a pending
    approval, a queued step, an on_failure) never runs once it is off.
    """
    for step in steps:
        if (off := registry.disabled(step["action"])) is not None:
            return f"{step['action']} is off: {off}"
        key = step["action"] if step["action"] in allow else step["action"].split(".", 1)[0]
        patterns = patterns_for(allow, step["action"])
        if patterns is None:
            continue
        try:
            action = registry.get(step["action"])
            subject = action.subject(action.parse(step["params"]))
        except (KeyError, ParamError):
            return f"{step['action']}: its params cannot be checked against {setting(key)}"
        if subject is None:
            continue  # known only at run time: the action checks ctx.allowed itself
        if not patterns:
            return f"{step['action']}: no allow-list admits it while others of its backend are set"
        if not any(pattern.search(subject) for pattern in patterns):
            return f"{step['action']}: {subject} is outside {setting(key)}"
    return None
