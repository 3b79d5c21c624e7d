"""The built-in actions, registered into a fresh registry on request (no import side effects)."""

from __future__ import annotations

from remediations.aws.ecs_redeploy import EcsRedeploy
from remediations.aws.lambda_concurrency import LambdaConcurrency
from remediations.aws.lambda_rollback import LambdaRollback
from remediations.aws.sqs_redrive import SqsRedrive
from remediations.command import CommandRun
from remediations.docker.restart import DockerRestart
from remediations.docker.start import DockerStart
from remediations.docker.stop import DockerStop
from remediations.http import HttpRequest
from remediations.kubernetes.delete_pod import DeletePod
from remediations.kubernetes.evict_pod import EvictPod
from remediations.kubernetes.rollout_restart import RolloutRestart
from remediations.kubernetes.rollout_undo import RolloutUndo
from remediations.kubernetes.scale import Scale
from remediations.postgresql.terminate_backends import TerminateBackends
from remediations.redis.delete_keys import DeleteKeys
from remediations.redis.flushdb import FlushDb
from remediations.registry import Registry


def builtin_registry() -> Registry:
    """A new registry holding every built-in action."""
    return Registry().add(
        HttpRequest,
        DockerRestart,
        DockerStart,
        DockerStop,
        RolloutRestart,
        Scale,
        RolloutUndo,
        DeletePod,
        EvictPod,
        SqsRedrive,
        LambdaConcurrency,
        LambdaRollback,
        EcsRedeploy,
        DeleteKeys,
        FlushDb,
        TerminateBackends,
        CommandRun,
    )
