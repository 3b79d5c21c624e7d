"""The Kubernetes actions check their params at rule load, naming the field."""

from __future__ import annotations

import pytest

from remediations import ParamError
from remediations.kubernetes.delete_pod import DeletePod
from remediations.kubernetes.rollout_restart import RolloutRestart
from remediations.kubernetes.rollout_undo import RolloutUndo
from remediations.kubernetes.scale import Scale


@pytest.mark.parametrize(
    ("action", "params", "field"),
    [
        (RolloutRestart(), {"name": "web"}, "namespace"),
        (RolloutRestart(), {"namespace": "shop", "name": "web", "kind": "Job"}, "kind"),
        (Scale(), {"namespace": "shop", "name": "web", "delta": 1}, "max"),
        (Scale(), {"namespace": "shop", "name": "web", "max": 5}, "replicas"),
        (Scale(), {"namespace": "shop", "name": "web", "delta": 0, "max": 5}, "delta"),
        (Scale(), {"namespace": "shop", "name": "web", "replicas": 9, "max": 5}, "replicas"),
        (Scale(), {"namespace": "shop", "name": "web", "delta": 1, "min": 6, "max": 5}, "min"),
        (
            Scale(),
            {"namespace": "s", "name": "d", "kind": "DaemonSet", "delta": 1, "max": 2},
            "kind",
        ),
        (RolloutUndo(), {"namespace": "shop", "name": "web", "to_revision": 0}, "to_revision"),
        (RolloutUndo(), {"namespace": "s", "name": "w", "kind": "StatefulSet"}, "kind"),
        (DeletePod(), {"namespace": "shop"}, "name"),
        (DeletePod(), {"namespace": "shop", "selector": "app=web", "max": 0}, "max"),
    ],
)
def test_bad_params_name_the_field(action: object, params: dict[str, object], field: str) -> None:
    with pytest.raises(ParamError) as caught:
        action.parse(params)  # type: ignore[attr-defined]  # each is an Action
    assert caught.value.field == field


def test_scale_clamps_to_its_bounds() -> None:
    up = Scale().parse({"namespace": "s", "name": "w", "delta": 3, "min": 2, "max": 5})
    # ...and never moves against its delta: above max, "up" leaves it where it is
    assert [up.target(n) for n in (0, 1, 2, 4, 9)] == [3, 4, 5, 5, 9]
    down = Scale().parse({"namespace": "s", "name": "w", "delta": -2, "min": 2, "max": 5})
    assert [down.target(n) for n in (5, 3, 1)] == [3, 2, 1]


def test_the_subject_is_the_namespace() -> None:
    action = RolloutRestart()
    assert action.subject(action.parse({"namespace": "shop", "name": "web"})) == "shop"
