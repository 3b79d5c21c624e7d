"""``aws.ecs_redeploy``: start a fresh deployment of an ECS service, same task definition.

What ``aws ecs update-service --force-new-deployment`` does: new tasks
replace the old ones (pulling the image tag again), following the
service's deployment configuration. Nothing else of the service changes.

Params:
    cluster: the cluster's name or ARN
    service: the service's name or ARN

Result: ``cluster``, ``service``, ``deployments`` ``{before, after}`` (each
deployment's id, status, rollout state, task definition and task counts) and
``primary`` ``{before, after}``, the PRIMARY deployment's id.

Permissions (IAM): ``ecs:DescribeServices``, ``ecs:UpdateService`` on the service.

Example::

    - action: aws.ecs_redeploy
      params: {cluster: prod, service: '{{ labels.ServiceName }}'}
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from remediations.aws.errors import translated
from remediations.aws.session import aws_session
from remediations.base import ActionContext, ParamError, PermanentError
from remediations.params import Fields

_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")
_DEPLOYMENT_FIELDS = (
    "id",
    "status",
    "rolloutState",
    "taskDefinition",
    "desiredCount",
    "runningCount",
    "pendingCount",
)


@dataclasses.dataclass(frozen=True, slots=True)
class RedeployParams:
    """A validated ``aws.ecs_redeploy``: names or ARNs as given, and their names."""

    cluster: str
    service: str

    @property
    def service_name(self) -> str:
        """The service's name (the last part of an ARN)."""
        return _last_part(self.service)

    @property
    def cluster_name(self) -> str:
        """The cluster's name (the last part of an ARN)."""
        return _last_part(self.cluster)


def _last_part(value: str) -> str:
    return value.rsplit("/", 1)[-1] if value.startswith("arn:") else value


def _check(field: str, value: str, kind: str) -> None:
    if value.startswith("arn:"):
        if ":ecs:" not in value or f":{kind}/" not in value:
            raise ParamError(field, f"expected an ECS {kind} ARN, got {value!r}")
        value = _last_part(value)
    if not _NAME.fullmatch(value):
        raise ParamError(field, f"expected a {kind} name or ARN, got {value!r}")


def _deployments(service: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The service's deployments, reduced to what the audit log needs."""
    return [
        {key: deployment[key] for key in _DEPLOYMENT_FIELDS if key in deployment}
        for deployment in service.get("deployments", [])
    ]


def _primary(deployments: list[dict[str, Any]]) -> str | None:
    return next((d.get("id") for d in deployments if d.get("status") == "PRIMARY"), None)


class EcsRedeploy:
    """Force a new deployment of an ECS service."""

    name: ClassVar[str] = "aws.ecs_redeploy"

    def parse(self, params: Mapping[str, Any]) -> RedeployParams:
        """See the module docstring."""
        fields = Fields(params, ("cluster", "service"))
        cluster = fields.string("cluster")
        _check("cluster", cluster, "cluster")
        service = fields.string("service")
        _check("service", service, "service")
        return RedeployParams(cluster, service)

    def subject(self, params: RedeployParams) -> str:
        """The service's name, what ``backends.aws.allow_services`` must admit."""
        return params.service_name

    async def run(self, params: RedeployParams, ctx: ActionContext) -> Mapping[str, Any]:
        """Describe the service, update it with forceNewDeployment; report deployments."""
        aws = aws_session(ctx)
        what = f"service {params.service_name} in cluster {params.cluster_name}"
        async with aws.client("ecs") as ecs:
            with translated(what):
                described = await ecs.describe_services(
                    cluster=params.cluster, services=[params.service]
                )
            for failure in described.get("failures", []):
                # DescribeServices answers 200 and lists what it did not find
                raise PermanentError(f"{what}: {failure.get('reason', 'not found')}")
            services = described.get("services") or [{"status": "MISSING"}]
            service = services[0]
            if service.get("status") != "ACTIVE":
                raise PermanentError(f"{what}: the service is {service.get('status')}")
            before = _deployments(service)
            with translated(what):
                updated = await ecs.update_service(
                    cluster=params.cluster, service=params.service, forceNewDeployment=True
                )
        after = _deployments(updated["service"])
        return {
            "cluster": params.cluster_name,
            "service": params.service_name,
            "deployments": {"before": before, "after": after},
            "primary": {"before": _primary(before), "after": _primary(after)},
        }
