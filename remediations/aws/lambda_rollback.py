"""``aws.lambda_rollback``: point a Lambda alias back at an earlier published version.

What ``aws lambda update-alias --function-version N`` does after a bad
deploy. By default the version is the one before the alias' current one:
the highest published version lower than it, read from the function's
published versions (``ListVersionsByFunction``). That is the version the
alias pointed to before when versions are published and aliased in order,
as deploy pipelines do; give ``to_version`` when a deploy skipped or
reused versions. An alias on ``$LATEST`` has no version before it: give
``to_version``.

An alias in the middle of a canary (weighted routing: ``FunctionVersion``
the old release, ``AdditionalVersionWeights`` the new one) goes back by
dropping the weights and keeping its own version, as CodeDeploy's rollback
does: the failing release is the additional one. Given ``to_version``, the
alias goes there and the weights go too.

The update names the alias' revision as it was read, so an alias that
someone moved in between is not overwritten (a temporary error: the next
attempt reads it again).

In dry-run it reads the alias and the versions and reports the version it
would go back to.

Params:
    function: the function's name or ARN (no version or alias: that is ``alias``; an ARN in
        another region than ``backends.aws.region`` is refused)
    alias: the alias to move (``live``)
    to_version: the published version to point it at (default: the highest published
        version lower than the alias' current one, or for a canary the alias' own version)

Result: ``function``, ``alias``, ``version`` ``{before, after}`` and, when
the alias had weighted routing, ``routing_before`` (the weights removed).

Permissions (IAM): ``lambda:GetAlias``, ``lambda:ListVersionsByFunction``,
``lambda:UpdateAlias`` on the function.

Example::

    - action: aws.lambda_rollback
      params: {function: '{{ labels.FunctionName }}', alias: live}
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from remediations.aws.errors import translated
from remediations.aws.lambda_concurrency import parse_function
from remediations.aws.session import aws_session
from remediations.base import ActionContext, ParamError, PermanentError
from remediations.params import Fields

_ALIAS = re.compile(r"(?!^[0-9]+$)[A-Za-z0-9_-]{1,128}")
_VERSION = re.compile(r"[1-9][0-9]*")


@dataclasses.dataclass(frozen=True, slots=True)
class RollbackParams:
    """A validated ``aws.lambda_rollback``."""

    function: str  # as given: the API takes a name or an ARN
    name: str
    region: str | None  # from an ARN; None for a name (this region)
    alias: str
    to_version: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class _Plan:
    before: str
    after: str
    revision: str | None
    weights: Mapping[str, Any]


class LambdaRollback:
    """UpdateAlias to an earlier published version."""

    name: ClassVar[str] = "aws.lambda_rollback"

    def parse(self, params: Mapping[str, Any]) -> RollbackParams:
        """See the module docstring."""
        fields = Fields(params, ("function", "alias", "to_version"))
        function = fields.string("function")
        name, region = parse_function(
            function, "the alias is given as alias, not as the function's qualifier"
        )
        alias = fields.string("alias")
        if not _ALIAS.fullmatch(alias):
            raise ParamError("alias", f"expected an alias name such as live, got {alias!r}")
        version = fields.raw("to_version", None)
        if version is not None:
            version = str(version) if isinstance(version, int | str) else None
            if version is None or not _VERSION.fullmatch(version):
                raise ParamError(
                    "to_version",
                    f"expected a published version number, got {fields.raw('to_version')!r}",
                )
        return RollbackParams(function, name, region, alias, version)

    def subject(self, params: RollbackParams) -> str:
        """The function's name, what ``backends.aws.allow_functions`` must admit."""
        return params.name

    async def run(self, params: RollbackParams, ctx: ActionContext) -> Mapping[str, Any]:
        """Read the alias and versions, update the alias; report the versions."""
        aws = aws_session(ctx)
        what = f"alias {params.alias} of function {params.name}"
        aws.check_region(params.region, what)
        async with aws.client("lambda") as api:
            plan = await _plan(api, params, what)
            result = _result(params, plan)
            if plan.after == plan.before and not plan.weights:
                result["unchanged"] = f"the alias already points to version {plan.before}"
                return result
            update: dict[str, Any] = {
                "FunctionName": params.function,
                "Name": params.alias,
                "FunctionVersion": plan.after,
            }
            if plan.revision:
                update["RevisionId"] = plan.revision
            if plan.weights:
                update["RoutingConfig"] = {"AdditionalVersionWeights": {}}
            with translated(what):
                updated = await api.update_alias(**update)
        result["version"]["after"] = str(updated.get("FunctionVersion", plan.after))
        return result

    async def preview(self, params: RollbackParams, ctx: ActionContext) -> Mapping[str, Any]:
        """Dry-run: the version the alias would go back to, changing nothing."""
        aws = aws_session(ctx)
        what = f"alias {params.alias} of function {params.name}"
        aws.check_region(params.region, what)
        async with aws.client("lambda") as api:
            return _result(params, await _plan(api, params, what))


async def _plan(api: Any, params: RollbackParams, what: str) -> _Plan:
    """The alias as it is, and the version it goes back to."""
    with translated(what):
        alias = await api.get_alias(FunctionName=params.function, Name=params.alias)
    current = str(alias["FunctionVersion"])
    weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    function_arn = str(alias.get("AliasArn") or "").rpartition(":")[0]
    if params.to_version:
        target = params.to_version
    elif weights:
        target = current  # a canary: its own version is the good one, the weights go
    else:
        target = await _previous(api, params, function_arn, current, what)
    return _Plan(current, target, alias.get("RevisionId"), weights)


async def _previous(
    api: Any, params: RollbackParams, function_arn: str, current: str, what: str
) -> str:
    """The highest published version lower than ``current``.

    Listed by the function's name (some endpoints, moto's among them, list
    nothing for an ARN) and kept only where a version's ARN is the alias'
    function's: a namesake in another account is never read as its history.
    """
    if not _VERSION.fullmatch(current):
        raise PermanentError(
            f"{what} points to {current}, which has no version before it: give to_version"
        )
    published: list[int] = []
    marker: str | None = None
    while True:
        page: dict[str, Any] = {"FunctionName": params.name}
        if marker:
            page["Marker"] = marker
        with translated(what):
            answer = await api.list_versions_by_function(**page)
        for version in answer.get("Versions", []):
            number = str(version.get("Version"))
            arn = str(version.get("FunctionArn") or "")
            if _VERSION.fullmatch(number) and arn == f"{function_arn}:{number}":
                published.append(int(number))
        marker = answer.get("NextMarker")
        if not marker:
            break
    earlier = [v for v in published if v < int(current)]
    if not earlier:
        raise PermanentError(
            f"{what} points to version {current}: no published version of it is older"
            " (give to_version)"
        )
    return str(max(earlier))


def _result(params: RollbackParams, plan: _Plan) -> dict[str, Any]:
    result: dict[str, Any] = {
        "function": params.name,
        "alias": params.alias,
        "version": {"before": plan.before, "after": plan.after},
    }
    if plan.weights:
        result["routing_before"] = dict(plan.weights)
    return result
