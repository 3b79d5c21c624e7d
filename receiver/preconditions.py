"""A rule's ``when:``, asked of Prometheus just before its remediation is claimed.

Each query was rendered for the alert when it arrived; here it is asked of
the present (after ``for:``, after approval). Not met → the claim skips the
remediation with reason ``precondition``; Prometheus unreachable, slow, or
refusing the query → ``precondition_error``: it does not run (fail closed).
The audit event says which query, what it answered and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp

from receiver.config import ApiServer
from receiver.guards import Decision
from receiver.store.base import Remediation
from rules.promql import Expectation


class PrometheusError(Exception):
    """Prometheus could not answer the query; the message is safe to show."""


class Asks(Protocol):
    """What answers PromQL: the real Prometheus, or a rule test's answers."""

    async def values(self, query: str) -> list[float]:
        """One value per series of an instant query; :class:`PrometheusError` if none."""
        ...


class Prometheus:
    """Instant queries against ``backends.prometheus`` on the service's shared session."""

    def __init__(self, session: aiohttp.ClientSession, config: ApiServer) -> None:
        self.session = session
        self.config = config

    async def values(self, query: str) -> list[float]:
        """One value per series of an instant query (a scalar answer is one value)."""
        status = 0
        try:
            async with self.session.post(
                f"{self.config.url}/api/v1/query",
                data={"query": query},
                headers=dict(self.config.headers),
                timeout=aiohttp.ClientTimeout(total=self.config.timeout),
            ) as response:
                status = response.status
                body = await response.json(content_type=None)
        except TimeoutError:
            raise PrometheusError(f"no answer within {self.config.timeout:g}s") from None
        except aiohttp.ClientError as exc:
            raise PrometheusError(f"cannot reach Prometheus: {type(exc).__name__}") from None
        except ValueError:
            raise PrometheusError(f"answered {status} without JSON") from None
        return _values(body, status)


def _values(body: Any, status: int) -> list[float]:
    if not isinstance(body, Mapping):
        raise PrometheusError(f"answered {status} with something other than a query result")
    if body.get("status") != "success":
        raise PrometheusError(f"{body.get('errorType', status)}: {body.get('error', '')}".strip())
    data = body.get("data")
    if not isinstance(data, Mapping):
        raise PrometheusError(f"answered {status} without data")
    kind: Any = data.get("resultType")
    result: Any = data.get("result")
    try:
        if kind == "vector":
            return [float(sample["value"][1]) for sample in result]
        if kind == "scalar":
            return [float(result[1])]
    except (TypeError, KeyError, IndexError, ValueError):
        pass
    raise PrometheusError(f"expected an instant vector or a scalar, got {kind}")


async def ask(prometheus: Asks | None, query: str, expect: str) -> tuple[bool | None, str]:
    """Whether ``query`` meets ``expect`` now — ``None`` when Prometheus cannot say — and the
    query with its answer (or why there is none), in words for the audit log."""
    if prometheus is None:
        return None, f"{query}: backends.prometheus is not configured"
    try:
        values = await prometheus.values(query)
        met, seen = Expectation.parse(expect).holds(values)
    except (PrometheusError, ValueError) as exc:
        return None, f"{query}: {exc}"
    return met, f"{query}: {seen}, expected {expect}"


class Preconditions:
    """Asks a remediation's ``when:`` of Prometheus; the claim's precondition decision."""

    def __init__(self, prometheus: Asks | None) -> None:
        self.prometheus = prometheus

    async def check(self, rem: Remediation) -> Decision | None:
        """``None`` when the rule has no ``when:``; else met (allowed) or why not."""
        if not rem.when:
            return None
        for condition in rem.when:
            decision = await self._one(condition)
            if not decision.allowed:
                return decision
        return Decision()

    async def _one(self, condition: Mapping[str, str]) -> Decision:
        met, said = await ask(self.prometheus, condition["query"], condition["expect"])
        if met is None:
            return Decision("precondition_error", said)
        return Decision() if met else Decision("precondition", said)
