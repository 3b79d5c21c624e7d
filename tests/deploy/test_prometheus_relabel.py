"""The scrape relabeling deploy/prometheus ships, applied by a real Prometheus.

remedy's shipped rules act on labels that only relabeling can give a target
(``deployment`` from a pod's ReplicaSet, ``container`` from a Docker
container's name). Debian's Prometheus has no Kubernetes discovery, so the
discovered metadata comes from a file (``file_sd_configs``) holding exactly
the ``__meta_*`` labels the real discovery sets; Prometheus then relabels
the targets as it would in a cluster, and its API shows the result.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support.prometheus import Monitoring

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def with_file_discovery(job: dict[str, Any], targets_file: Path) -> dict[str, Any]:
    """``job`` discovering its targets from ``targets_file`` instead of a cluster or engine."""
    job = {k: v for k, v in job.items() if not k.endswith("_sd_configs")}
    return {**job, "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "1s"}]}


async def relabeled(
    monitoring: Monitoring, tmp_path: Path, job: dict[str, Any], discovered: list[dict[str, str]]
) -> dict[str, dict[str, str] | None]:
    """Each discovered target's labels after ``job``'s relabeling (``None``: dropped)."""
    targets_file = tmp_path / "targets.json"
    targets_file.write_text(
        json.dumps([{"targets": [t["__address__"]], "labels": t} for t in discovered])
    )
    prometheus = await monitoring.prometheus(
        {"scrape_configs": [with_file_discovery(job, targets_file)]}
    )
    found: dict[str, dict[str, str] | None] = {}
    async with asyncio.timeout(30):  # a hang guard: file discovery reads at start
        while len(found) < len(discovered):
            body = (await prometheus.get_json("/api/v1/targets", state="any"))["data"]
            found = {
                t["discoveredLabels"]["__address__"]: t["labels"] for t in body["activeTargets"]
            }
            found.update(
                {t["discoveredLabels"]["__address__"]: None for t in body["droppedTargets"]}
            )
            await asyncio.sleep(0.1)
    return found


def job_named(config: dict[str, Any], name: str) -> dict[str, Any]:
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == name]
    return dict(job)


def test_the_kubernetes_config_passes_promtool_but_for_its_discovery(tmp_path: Path) -> None:
    config = yaml.safe_load((PROMETHEUS / "kubernetes.yml").read_text())
    config["scrape_configs"] = [
        with_file_discovery(job, tmp_path / "targets.json") for job in config["scrape_configs"]
    ]
    config["rule_files"] = [str(PROMETHEUS / "rules.yml")]
    # The service account's files exist only in a pod: promtool insists on them.
    account = "/var/run/secrets/kubernetes.io/serviceaccount/"
    text = yaml.safe_dump(config).replace(account, f"{tmp_path}/")
    for name in ("token", "ca.crt"):
        (tmp_path / name).write_text("")
    checked = tmp_path / "kubernetes.yml"
    checked.write_text(text)
    result = subprocess.run(
        ["promtool", "check", "config", str(checked)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def pod(address: str, port: str, kind: str, controller: str, name: str) -> dict[str, str]:
    """What Prometheus's Kubernetes pod discovery says about one container port."""
    return {
        "__address__": address,
        "__meta_kubernetes_namespace": "shop",
        "__meta_kubernetes_pod_name": name,
        "__meta_kubernetes_pod_container_port_name": port,
        "__meta_kubernetes_pod_controller_kind": kind,
        "__meta_kubernetes_pod_controller_name": controller,
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": controller.split("-", maxsplit=1)[0],
    }


async def test_pods_get_the_namespace_pod_and_deployment_the_rules_act_on(
    monitoring: Monitoring, tmp_path: Path
) -> None:
    job = job_named(yaml.safe_load((PROMETHEUS / "kubernetes.yml").read_text()), "pods")
    found = await relabeled(
        monitoring,
        tmp_path,
        job,
        [
            pod("10.1.0.7:9100", "metrics", "ReplicaSet", "web-7d9c6b5f4", "web-7d9c6b5f4-x2x1z"),
            pod("10.1.0.8:9100", "metrics", "StatefulSet", "db", "db-0"),
            pod("10.1.0.7:8080", "http", "ReplicaSet", "web-7d9c6b5f4", "web-7d9c6b5f4-x2x1z"),
        ],
    )
    web = found["10.1.0.7:9100"]
    assert web is not None
    assert (web["namespace"], web["pod"], web["deployment"], web["job"]) == (
        "shop",
        "web-7d9c6b5f4-x2x1z",
        "web",
        "web",
    )
    database = found["10.1.0.8:9100"]
    assert database is not None and "deployment" not in database  # no Deployment: not remedy's
    assert found["10.1.0.7:8080"] is None  # not a metrics port


def commented_compose_job() -> dict[str, Any]:
    """The docker_sd example prometheus.yml carries as comments, as YAML."""
    lines = (PROMETHEUS / "prometheus.yml").read_text().splitlines()
    start = lines.index("  # - job_name: compose")
    block = []
    for line in lines[start:]:
        if not line.startswith("  # "):
            break
        block.append(line.removeprefix("  # "))
    (job,) = yaml.safe_load("\n".join(block))
    return dict(job)


async def test_compose_containers_get_the_labels_the_rules_act_on(
    monitoring: Monitoring, tmp_path: Path
) -> None:
    def container(address: str, name: str, oneoff: str) -> dict[str, str]:
        return {
            "__address__": address,
            "__meta_docker_container_name": f"/{name}",
            "__meta_docker_container_label_com_docker_compose_project": "shop",
            "__meta_docker_container_label_com_docker_compose_service": "web",
            "__meta_docker_container_label_com_docker_compose_oneoff": oneoff,
        }

    found = await relabeled(
        monitoring,
        tmp_path,
        commented_compose_job(),
        [
            container("172.18.0.5:8080", "shop-web-1", "False"),
            container("172.18.0.9:8080", "shop-web-run-3f2a", "True"),
        ],
    )
    web = found["172.18.0.5:8080"]
    assert web is not None
    assert (web["container"], web["compose_project"], web["compose_service"], web["job"]) == (
        "shop-web-1",
        "shop",
        "web",
        "web",
    )
    assert found["172.18.0.9:8080"] is None  # `docker compose run`: not a service to watch
