"""``aws.lambda_concurrency``: set a Lambda function's reserved concurrency, within a bound.

What ``aws lambda put-function-concurrency`` does: read the reservation,
put the new value, clamped to ``[min, max]``.

A function without a reservation draws on the account's unreserved pool,
which has no number to add a ``delta`` to: treating it as 0 would turn
"raise by 5" into a cap of 5 on a function that had none. So ``delta`` on
such a function is a permanent error that says so; give ``reserved`` to
set the first reservation.

Params:
    function: the function's name or ARN (no version or alias: the reservation is per
        function; an ARN in another region than ``backends.aws.region`` is refused)
    reserved: the reservation to set, or
    delta: how much to add to the current reservation (negative to lower it)
    max: the upper bound, required: a storm of alerts never reserves past it
    min: the lower bound (default 1; 0 lets a remediation stop the function altogether)

Result: ``function`` and ``reserved`` ``{before, after}`` (``before`` is
``null`` when there was no reservation).

Permissions (IAM): ``lambda:GetFunctionConcurrency``,
``lambda:PutFunctionConcurrency`` on the function.

Example::

    - action: aws.lambda_concurrency
      params: {function: '{{ labels.FunctionName }}', delta: 10, max: 200}
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from remediations.aws.errors import translated
from remediations.aws.session import aws_session
from remediations.base import ActionContext, ParamError, PermanentError
from remediations.params import BoundedChange, Fields

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME, or the partial ACCOUNT:function:NAME
# (AWS checks the account; a rule's templated ARN is checked with placeholders.)
_ARN = re.compile(
    r"(?:arn:[a-z-]+:lambda:(?P<region>[a-z0-9-]+):[^:]+|\d{12})"
    r":function:(?P<name>[^:]+)(?P<q>:.*)?"
)


@dataclasses.dataclass(frozen=True, slots=True)
class ConcurrencyParams:
    """A validated ``aws.lambda_concurrency``."""

    function: str  # as given: the API takes a name or an ARN
    name: str
    region: str | None  # from an ARN; None for a name (this region)
    change: BoundedChange

    def target(self, current: int | None) -> int:
        """The reservation to put from the current one (see :class:`BoundedChange`)."""
        if current is None and self.change.absolute is None:
            raise PermanentError(
                f"function {self.name} has no reserved concurrency (it uses the account's "
                f"unreserved pool), so there is nothing to add a delta to; give reserved"
            )
        return self.change.target(current or 0)


def parse_function(
    value: str, unqualified: str = "reserved concurrency is per function, not per version or alias"
) -> tuple[str, str | None]:
    """The function's name and region, from a name or a (partial) ARN without a qualifier.

    ``unqualified`` says why a qualifier (``:live``, ``:3``) is refused.
    """
    found = _ARN.fullmatch(value)
    name = found.group("name") if found else value
    if found and found.group("q"):
        raise ParamError("function", f"{unqualified}: drop {found.group('q')!r} from {value!r}")
    if not _NAME.fullmatch(name):
        raise ParamError("function", f"expected a function name or ARN, got {value!r}")
    return name, found.group("region") if found else None


class LambdaConcurrency:
    """Put a function's reserved concurrency, never past ``max``."""

    name: ClassVar[str] = "aws.lambda_concurrency"

    def parse(self, params: Mapping[str, Any]) -> ConcurrencyParams:
        """See the module docstring."""
        fields = Fields(params, ("function", "reserved", "delta", "min", "max"))
        function = fields.string("function")
        name, region = parse_function(function)
        return ConcurrencyParams(function, name, region, BoundedChange.parse(fields, "reserved"))

    def subject(self, params: ConcurrencyParams) -> str:
        """The function's name, what ``backends.aws.allow_functions`` must admit."""
        return params.name

    async def run(self, params: ConcurrencyParams, ctx: ActionContext) -> Mapping[str, Any]:
        """Read the reservation, put the clamped one; report it before and after."""
        aws = aws_session(ctx)
        what = f"function {params.name}"
        aws.check_region(params.region, what)
        async with aws.client("lambda") as api:
            with translated(what):
                current = await api.get_function_concurrency(FunctionName=params.function)
            before = current.get("ReservedConcurrentExecutions")
            before = None if before is None else int(before)
            target = params.target(before)
            result: dict[str, Any] = {
                "function": params.name,
                "reserved": {"before": before, "after": before},
            }
            if target == before:
                result["unchanged"] = (
                    f"already at {before} (bounds {params.change.minimum}..{params.change.maximum})"
                )
                return result
            with translated(what):
                put = await api.put_function_concurrency(
                    FunctionName=params.function, ReservedConcurrentExecutions=target
                )
        result["reserved"]["after"] = int(put.get("ReservedConcurrentExecutions", target))
        return result
