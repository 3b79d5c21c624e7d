"""The deploy files: real promtool and amtool on the Prometheus and Alertmanager
samples, remedy's own ``check`` on the configs it ships, and the Kubernetes
manifests read against what the code needs (RBAC from the actions' docstrings).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from receiver.config import is_postgresql
from receiver.configfile import load_config
from receiver.ingest.cloudwatch import parse_alarm
from remediations import builtin_registry
from rules import DEFAULT_RULES_DIR, load_rules, render_params
from rules.alert import Alert, fingerprint_of
from tests.support.cloudwatch import metric_alarm
from tests.support.engines import ensure_debian_packages

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBE = DEPLOY / "kubernetes"
COMPOSE_YML = DEPLOY / "docker-compose.yml"
PROMETHEUS = DEPLOY / "prometheus"
ALERTMANAGER_YML = DEPLOY / "alertmanager" / "alertmanager.yml"

# (API group, resource, verb) the shipped Kubernetes actions need: nothing more.
EXPECTED_RBAC = {
    ("apps", "deployments", "get"),
    ("apps", "deployments", "patch"),
    ("apps", "statefulsets", "get"),
    ("apps", "statefulsets", "patch"),
    ("apps", "daemonsets", "get"),
    ("apps", "daemonsets", "patch"),
    ("apps", "deployments/scale", "get"),
    ("apps", "deployments/scale", "patch"),
    ("apps", "statefulsets/scale", "get"),
    ("apps", "statefulsets/scale", "patch"),
    ("apps", "replicasets", "list"),
    ("autoscaling", "horizontalpodautoscalers", "list"),
    ("autoscaling", "horizontalpodautoscalers", "patch"),
    ("", "pods", "list"),
    ("", "pods/eviction", "create"),
}
"""What the Kubernetes actions of the shipped rules need, and all the shipped Role grants."""

Triple = tuple[str, str, str]


# -- helpers ------------------------------------------------------------------


def run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, check=False, timeout=120, env=env
    )


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_all(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def manifests() -> list[dict[str, Any]]:
    return [doc for path in sorted(KUBE.glob("*.yaml")) for doc in load_all(path)]


def only(kind: str) -> dict[str, Any]:
    found = [doc for doc in manifests() if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def remedy_container() -> dict[str, Any]:
    (container,) = only("Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(container)


def secret_env(container: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """The container's environment variables that come from a Secret: (secret, key)."""
    return {
        env["name"]: (ref["name"], ref["key"])
        for env in container.get("env", [])
        if (ref := env.get("valueFrom", {}).get("secretKeyRef"))
    }


class _CloudFormationLoader(yaml.SafeLoader):
    """A YAML loader that takes CloudFormation's short tags (!Ref, !GetAtt, !Sub...)."""


def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    return {f"!{suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _any_tag)


def rbac_from_docstrings() -> dict[str, set[Triple]]:
    """Each Kubernetes action module's ``Permissions (RBAC):`` line, as triples.

    The line reads like ``apps ``deployments``/``statefulsets``: get, patch;
    core ``pods``: get, list, delete.`` — clauses split by ``;``, each a group
    (``core`` is the empty group), the resources in double backquotes, and
    the verbs after the last colon.
    """
    found: dict[str, set[Triple]] = {}
    for path in sorted((ROOT / "remediations" / "kubernetes").glob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        match = re.search(r"^Permissions \(RBAC\):(.*?)(?:\n\s*\n|\Z)", doc, re.M | re.S)
        if match is None:
            continue
        triples: set[Triple] = set()
        for clause in " ".join(match.group(1).split()).rstrip(".").split(";"):
            head, _, verbs = clause.rpartition(":")
            group = head.split()[0]
            resources = re.findall(r"``([a-z/]+)``", head)
            assert resources, f"{path.name}: no resources in {clause!r}"
            for resource in resources:
                for verb in verbs.split(","):
                    triples.add(("" if group == "core" else group, resource, verb.strip()))
        found[path.stem] = triples
    return found


def role_triples(role: dict[str, Any]) -> set[Triple]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


# -- Prometheus and Alertmanager, with the real tools -------------------------


@pytest.fixture(scope="module")
def tools() -> None:
    """promtool and amtool from Debian (installed once per machine when missing)."""
    ensure_debian_packages({"promtool": "prometheus", "amtool": "prometheus-alertmanager"})


@pytest.mark.usefixtures("tools")
@pytest.mark.parametrize(
    "argv",
    [
        ["promtool", "check", "rules", "deploy/prometheus/rules.yml"],
        ["promtool", "test", "rules", "deploy/prometheus/rules_test.yml"],
        # rule_files in prometheus.yml are relative to it: promtool resolves them so.
        ["promtool", "check", "config", "deploy/prometheus/prometheus.yml"],
        ["amtool", "check-config", "deploy/alertmanager/alertmanager.yml"],
    ],
    ids=["check-rules", "test-rules", "check-config", "amtool-check-config"],
)
def test_tool_accepts(argv: list[str]) -> None:
    result = run(argv)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.usefixtures("tools")
@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["alertname=ServiceDown", "job=web"], "remedy,default"),
        (["alertname=HighErrorRate", "job=web"], "remedy,default"),
        (["alertname=HighErrorRateAfterRollout", "deployment=web"], "remedy,default"),
        (["alertname=SlowResponseTime", "job=web"], "remedy,default"),
        (["alertname=LowCacheHitRate", "instance=web-1:8080"], "remedy,default"),
        (["alertname=CacheStale", "cache=fares"], "remedy,default"),
        (["alertname=PostgresConnectionsExhausted", "datname=orders"], "remedy,default"),
        (["alertname=HighMemoryUsage", "container=shop-web-1"], "remedy,default"),
        (["alertname=DiskFull"], "default"),
        # a page remedy raises goes to people only, even under a name remedy handles
        (["alertname=ServiceDown", "paged_by=remedy"], "default"),
    ],
)
def test_alertmanager_routes(labels: list[str], receivers: str) -> None:
    result = run(
        ["amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER_YML}", *labels]
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == receivers


def shipped_count() -> int:
    """How many rules the shipped set has."""
    return len(load_rules([DEFAULT_RULES_DIR], builtin_registry()))


def prometheus_alerts() -> list[dict[str, Any]]:
    """The alerting rules of deploy/prometheus/rules.yml (not the recording rules)."""
    groups = load(PROMETHEUS / "rules.yml")["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def fired_in_unit_tests() -> tuple[list[Alert], set[str]]:
    """The alerts rules_test.yml expects to fire, and the names it expects silent somewhere."""
    fired: list[Alert] = []
    silent: set[str] = set()
    for test in load(PROMETHEUS / "rules_test.yml")["tests"]:
        for case in test["alert_rule_test"]:
            name = case["alertname"]
            if not case["exp_alerts"]:
                silent.add(name)
            for exp in case["exp_alerts"]:
                labels = {"alertname": name, **exp["exp_labels"]}
                fired.append(
                    Alert(
                        source="alertmanager",
                        name=name,
                        status="firing",
                        labels=labels,
                        annotations=exp.get("exp_annotations", {}),
                        starts_at=datetime(2026, 11, 24, tzinfo=UTC),
                        ends_at=None,
                        fingerprint=fingerprint_of(labels),
                    )
                )
    return fired, silent


def test_every_prometheus_alert_is_unit_tested() -> None:
    alerts = prometheus_alerts()
    names = {alert["alert"] for alert in alerts}
    assert names == {
        "ServiceDown",
        "HighErrorRate",
        "HighErrorRateAfterRollout",
        "SlowResponseTime",
        "LowCacheHitRate",
        "CacheStale",
        "PostgresConnectionsExhausted",
        "HighMemoryUsage",
    }
    for alert in alerts:
        assert alert["labels"]["severity"] in {"critical", "warning"}
        assert {"summary", "description"} <= set(alert["annotations"])
    fired, silent = fired_in_unit_tests()
    assert {alert.name for alert in fired} == names, "every alert has a firing test"
    assert silent == names, "every alert has a not-firing test"


def test_every_shipped_alertmanager_rule_is_fired_by_a_prometheus_alert() -> None:
    """Each shipped rule for Alertmanager alerts matches an alert that rules.yml fires in
    its unit tests, and finds there every label and annotation it templates."""
    fired, _ = fired_in_unit_tests()
    shipped = load_rules([DEFAULT_RULES_DIR], builtin_registry())
    for rule in shipped:
        if rule.source == "cloudwatch":
            continue
        matching = [alert for alert in fired if rule in shipped.match(alert)]
        assert matching, f"rule {rule.name}: no alert in rules_test.yml fires it"
        for alert in matching:
            rule.target.render(alert)  # raises TemplateError naming a missing label
            for step in (*rule.actions, *rule.on_failure):
                render_params(step.params, alert)


def test_alertmanager_sends_every_alert_to_remedy() -> None:
    config = load(ALERTMANAGER_YML)
    alerts = {alert["alert"] for alert in prometheus_alerts()}
    (route,) = [r for r in config["route"]["routes"] if r["receiver"] == "remedy"]
    (matcher,) = route["matchers"]
    assert re.fullmatch(r'alertname=~"[A-Za-z|]+"', matcher)
    assert set(matcher.split('"')[1].split("|")) == alerts
    (receiver,) = [r for r in config["receivers"] if r["name"] == "remedy"]
    (hook,) = receiver["webhook_configs"]
    assert hook["url"] == "http://remedy:9095/webhook/alertmanager"
    assert hook["send_resolved"] is True
    assert hook["max_alerts"] == 0
    assert hook["http_config"]["authorization"]["credentials_file"]


# -- Kubernetes ---------------------------------------------------------------


def test_every_manifest_parses() -> None:
    docs = manifests()
    assert {d["kind"] for d in docs} >= {
        "Deployment",
        "Service",
        "ConfigMap",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "PodDisruptionBudget",
    }
    # The store is PostgreSQL, provided by the platform: nothing to keep in the cluster here.
    assert "PersistentVolumeClaim" not in {d["kind"] for d in docs}
    for doc in docs:
        assert doc["apiVersion"] and doc["metadata"]["name"] and doc["metadata"]["namespace"]


def shipped_kubernetes_actions() -> set[str]:
    """The modules of the Kubernetes actions the shipped rules use (``evict_pod``...)."""
    shipped = load_rules([DEFAULT_RULES_DIR], builtin_registry())
    steps = [step for rule in shipped for step in (*rule.actions, *rule.on_failure)]
    prefix = "kubernetes."
    return {step.action[len(prefix) :] for step in steps if step.action.startswith(prefix)}


def test_docstrings_name_the_rbac_we_expect() -> None:
    per_action = rbac_from_docstrings()
    assert set(per_action) == {
        "rollout_restart",
        "scale",
        "rollout_undo",
        "delete_pod",
        "evict_pod",
    }
    assert per_action["delete_pod"] == {("", "pods", v) for v in ("get", "list", "delete")}
    assert set().union(*(per_action[a] for a in shipped_kubernetes_actions())) == EXPECTED_RBAC


def test_role_grants_exactly_what_the_actions_need() -> None:
    kinds = {doc["kind"] for doc in manifests()}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
    role = only("Role")
    assert role_triples(role) == EXPECTED_RBAC
    per_action = rbac_from_docstrings()
    assert role_triples(role) == set().union(*(per_action[a] for a in shipped_kubernetes_actions()))
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}  # no resourceNames, no URLs


def test_rbac_binds_the_pods_service_account_in_the_allowed_namespaces() -> None:
    account, role, binding = only("ServiceAccount"), only("Role"), only("RoleBinding")
    deployment = only("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": account["metadata"]["name"],
            "namespace": account["metadata"]["namespace"],
        }
    ]
    assert binding["metadata"]["namespace"] == role["metadata"]["namespace"]
    remedy_yaml = yaml.safe_load(only("ConfigMap")["data"]["remedy.yaml"])
    assert remedy_yaml["backends"]["kubernetes"]["namespaces"] == [role["metadata"]["namespace"]]


def test_deployment_is_three_non_root_read_only_replicas() -> None:
    deployment = only("Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    # Nothing is kept in the pod, so replicas are replaced one at a time.
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1},
    }
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["args"] == ["serve", "--config", "/etc/remedy/remedy.yaml"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert ports.get(get["port"], get["port"]) == 9095
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(mounts) == {"/etc/remedy", "/tmp"}
    assert "projected" in volumes[mounts["/etc/remedy"]["name"]]
    assert mounts["/etc/remedy"]["readOnly"] is True
    # remedy writes nothing locally: the only writable volume is scratch space.
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert not any("persistentVolumeClaim" in v for v in volumes.values())
    assert secret_env(container) == {
        "REMEDY_WEBHOOK_TOKEN": ("remedy-tokens", "webhook-token"),
        "REMEDY_DB_PASSWORD": ("remedy-postgresql", "password"),
    }

    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    # Spread over nodes where the cluster can, never left unscheduled for it.
    spread = {c["topologyKey"]: c for c in pod["topologySpreadConstraints"]}
    by_host = spread["kubernetes.io/hostname"]
    assert by_host["whenUnsatisfiable"] == "ScheduleAnyway"
    assert by_host["maxSkew"] == 1
    assert by_host["labelSelector"]["matchLabels"].items() <= labels.items()
    service = only("Service")
    assert service["spec"]["selector"].items() <= labels.items()
    assert [(p["port"], ports.get(p["targetPort"])) for p in service["spec"]["ports"]] == [
        (9095, 9095)
    ]


def test_disruption_budget_keeps_all_but_one_replica() -> None:
    """Drains take one replica at a time; the other two keep taking alerts."""
    spec = only("Deployment")["spec"]
    pdb = only("PodDisruptionBudget")["spec"]
    assert pdb["minAvailable"] == spec["replicas"] - 1 == 2
    assert "maxUnavailable" not in pdb
    assert pdb["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert pdb["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """/etc/remedy as deployment.yaml projects it (ConfigMap keys and Secret items), and
    the environment it sets from Secrets; a Secret's value is ``test-`` and its key."""
    data = only("ConfigMap")["data"]
    deployment = only("Deployment")
    (config,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if "projected" in v]
    for source in config["projected"]["sources"]:
        for kind, ref in source.items():
            for item in ref["items"]:
                target = tmp_path / item["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                content = data[item["key"]] if kind == "configMap" else "test-" + item["key"]
                target.write_text(content, encoding="utf-8")
    for name, (_, key) in secret_env(remedy_container()).items():
        monkeypatch.setenv(name, "test-" + key)
    yield tmp_path


def test_configmap_passes_remedy_check(config_dir: Path) -> None:
    """``remedy check`` on the projected config: its rules, params and token sources.

    ``backends.kubernetes.in_cluster: true`` stays in: ``check`` validates the
    config and never opens the cluster client, so it passes outside a cluster.
    Nor does it connect to the database, whose host does not resolve here.
    """
    result = run(
        [sys.executable, "-m", "receiver", "check", "--config", str(config_dir / "remedy.yaml")],
        env=dict(os.environ),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"OK: {shipped_count()} rules")

    config = load_config(config_dir / "remedy.yaml")
    assert is_postgresql(config.storage)
    url = urlsplit(config.storage)
    assert (url.username, url.password, url.port, url.path) == ("remedy", None, 5432, "/remedy")
    assert "sslmode=" in url.query
    # The password: the Secret deployment.yaml puts in the environment storage_password names.
    raw = yaml.safe_load((config_dir / "remedy.yaml").read_text(encoding="utf-8"))
    assert raw["storage_password"] == {"env": "REMEDY_DB_PASSWORD"}
    assert secret_env(remedy_container())["REMEDY_DB_PASSWORD"] == ("remedy-postgresql", "password")
    assert config.storage_password == "test-password"
    assert raw["storage_lease"] == "15s"
    assert config.storage_lease == 15.0
    # SIGTERM: running actions get shutdown_grace before the kubelet kills the pod.
    grace = only("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > config.shutdown_grace
    assert (config.host, config.port) == ("0.0.0.0", 9095)  # noqa: S104 - in a pod, all
    assert config.kubernetes is not None and config.kubernetes.in_cluster
    assert config.allow["kubernetes"] == ("^shop\\-prod$",)
    assert config.auth is not None
    assert [t.secret for t in config.auth.webhook_tokens] == ["test-webhook-token"]
    assert [(t.role, t.secret) for t in config.auth.api_tokens] == [("operator", "test-ops-token")]
    assert config.rules == (str(DEFAULT_RULES_DIR),)  # the shipped set


def test_the_shipped_rules_evict_pods_rather_than_delete_them() -> None:
    assert shipped_kubernetes_actions() == set(rbac_from_docstrings()) - {"delete_pod"}


# -- Docker, compose, AWS -----------------------------------------------------


def test_dockerfile() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    assert "pip install ." in text
    assert "PYTHONDONTWRITEBYTECODE=1" in text
    (user,) = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert user.split(":")[0] not in {"0", "root"}
    assert user.split(":")[0].isdigit(), "numeric, so runAsNonRoot can verify it"
    assert re.search(r"^EXPOSE 9095$", text, re.MULTILINE)
    assert re.search(r'^VOLUME \["/var/lib/remedy"\]$', text, re.MULTILINE)
    # an init reaps orphaned grandchildren of command.run; remedy is not PID 1
    assert re.search(r'^ENTRYPOINT \["/usr/bin/tini", "--", "remedy"\]$', text, re.MULTILINE)
    assert "apt-get install -y --no-install-recommends tini" in text
    assert re.search(
        r'^CMD \["serve", "--config", "/etc/remedy/remedy.yaml"\]$', text, re.MULTILINE
    )
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.MULTILINE):
        for name in source.split():
            assert (ROOT / name).exists(), f"COPY {name}: not in the build context"


def test_compose_stack() -> None:
    compose = load(COMPOSE_YML)
    services = compose["services"]
    assert set(services) == {"prometheus", "alertmanager", "remedy", "postgresql"}
    build = services["remedy"]["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert context == ROOT
    assert (context / build["dockerfile"]) == DEPLOY / "Dockerfile"
    assert services["remedy"]["read_only"] is True
    named = set(compose["volumes"])
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).is_file(), f"{name}: {source} does not exist"
            else:
                assert source in named, f"{name}: volume {source} is not declared"
            if name == "remedy":  # its store is PostgreSQL: nothing of its own to keep
                assert source.startswith("."), f"remedy: volume {source}"
                assert volume.endswith(":ro")
    assert services["remedy"]["tmpfs"] == ["/tmp"]
    assert set(compose["volumes"]) == {"prometheus-data", "alertmanager-data", "postgresql-data"}
    # Alertmanager's token file is the compose secret it mounts.
    (secret,) = services["alertmanager"]["secrets"]
    assert secret in compose["secrets"]
    hook = next(r for r in load(ALERTMANAGER_YML)["receivers"] if r["name"] == "remedy")
    credentials = hook["webhook_configs"][0]["http_config"]["authorization"]["credentials_file"]
    assert credentials == f"/run/secrets/{secret}"
    assert compose["secrets"][secret]["environment"] == "REMEDY_WEBHOOK_TOKEN"


def test_compose_postgresql_is_remedys_store() -> None:
    compose = load(COMPOSE_YML)
    services = compose["services"]
    database, remedy = services["postgresql"], services["remedy"]
    assert database["image"] == "postgres:16"
    # remedy starts once the database answers; Alertmanager, after remedy.
    assert remedy["depends_on"] == {"postgresql": {"condition": "service_healthy"}}
    assert services["alertmanager"]["depends_on"] == ["remedy"]
    check = database["healthcheck"]["test"]
    assert check[:2] == ["CMD", "pg_isready"]
    assert "--host=127.0.0.1" in check  # not the init server, which listens on the socket only
    (data,) = database["volumes"]
    assert data == "postgresql-data:/var/lib/postgresql/data"

    # One password, from REMEDY_DB_PASSWORD: a secret file for PostgreSQL, the
    # environment storage_password names for remedy.
    environment = database["environment"]
    assert (environment["POSTGRES_USER"], environment["POSTGRES_DB"]) == ("remedy", "remedy")
    assert "POSTGRES_PASSWORD" not in environment
    (secret,) = database["secrets"]
    assert environment["POSTGRES_PASSWORD_FILE"] == f"/run/secrets/{secret}"
    assert compose["secrets"][secret] == {"environment": "REMEDY_DB_PASSWORD"}
    assert remedy["environment"]["REMEDY_DB_PASSWORD"].startswith("${REMEDY_DB_PASSWORD:?")

    config = load(DEPLOY / "compose" / "remedy.yaml")
    assert config["storage_password"] == {"env": "REMEDY_DB_PASSWORD"}
    url = urlsplit(config["storage"])
    assert url.scheme == "postgresql"
    assert (url.hostname, url.port, url.password) == ("postgresql", 5432, None)
    assert (url.username, url.path) == (environment["POSTGRES_USER"], "/remedy")


def test_compose_header_exports_every_variable_the_stack_needs() -> None:
    text = COMPOSE_YML.read_text(encoding="utf-8")
    needed = set(re.findall(r"\$\{([A-Z_]+):\?", text))
    needed |= {s["environment"] for s in load(COMPOSE_YML)["secrets"].values()}
    assert needed == {"REMEDY_WEBHOOK_TOKEN", "REMEDY_OPS_TOKEN", "REMEDY_DB_PASSWORD"}
    header = text.split("docker compose", 1)[0]
    assert "export " in header
    assert set(re.findall(r"\b([A-Z_]+)=\$\(openssl rand", header)) == needed


def test_compose_remedy_config_passes_check() -> None:
    """``remedy check`` validates; it does not connect to the stack's PostgreSQL."""
    env = {
        **os.environ,
        "REMEDY_WEBHOOK_TOKEN": "t1",
        "REMEDY_OPS_TOKEN": "t2",
        "REMEDY_DB_PASSWORD": "t3",
    }
    result = run(
        [sys.executable, "-m", "receiver", "check", "--config", "deploy/compose/remedy.yaml"],
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"OK: {shipped_count()} rules")


def test_cloudformation_template() -> None:
    text = (DEPLOY / "aws" / "sns-subscription.yaml").read_text(encoding="utf-8")
    template = yaml.load(text, Loader=_CloudFormationLoader)  # noqa: S506 - SafeLoader subclass
    resources = template["Resources"]
    by_type: dict[str, list[str]] = {}
    for name, resource in resources.items():
        by_type.setdefault(resource["Type"], []).append(name)
    (topic,) = by_type["AWS::SNS::Topic"]
    (subscription,) = by_type["AWS::SNS::Subscription"]
    (alarm,) = by_type["AWS::CloudWatch::Alarm"]
    assert len(by_type["AWS::SQS::Queue"]) == 2

    sub = resources[subscription]["Properties"]
    assert sub["Protocol"] == "https"
    assert sub["TopicArn"] == {"!Ref": topic}
    (param,) = [p for p in template["Parameters"] if sub["Endpoint"] == {"!Ref": p}]
    assert "/webhook/sns" in template["Parameters"][param]["AllowedPattern"]

    queues = [resources[q]["Properties"] for q in by_type["AWS::SQS::Queue"]]
    (work,) = [q for q in queues if "RedrivePolicy" in q]
    dlq_name = work["RedrivePolicy"]["deadLetterTargetArn"]["!GetAtt"].split(".")[0]
    assert dlq_name in by_type["AWS::SQS::Queue"]

    props = resources[alarm]["Properties"]
    assert (props["Namespace"], props["MetricName"]) == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
    )
    assert props["ComparisonOperator"] == "GreaterThanThreshold"
    assert props["Threshold"] == 1
    assert props["Dimensions"] == [
        {"Name": "QueueName", "Value": {"!GetAtt": f"{dlq_name}.QueueName"}}
    ]
    assert props["AlarmActions"] == props["OKActions"] == [{"!Ref": topic}]


def test_the_sample_dlq_alarm_reaches_the_shipped_redrive_rule() -> None:
    text = (DEPLOY / "aws" / "sns-subscription.yaml").read_text(encoding="utf-8")
    template = yaml.load(text, Loader=_CloudFormationLoader)  # noqa: S506 - SafeLoader subclass
    work_queue = template["Parameters"]["QueueName"]["Default"]
    dlq = template["Resources"]["DeadLetterQueue"]["Properties"]["QueueName"]["!Sub"]
    props = template["Resources"]["DeadLetterQueueAlarm"]["Properties"]
    message = metric_alarm(
        "orders-dlq-not-empty",
        props["Namespace"],
        props["MetricName"],
        {"QueueName": dlq.replace("${QueueName}", work_queue)},
    )
    alert = parse_alarm(message)
    assert alert is not None
    shipped = load_rules([DEFAULT_RULES_DIR], builtin_registry())
    assert [rule.name for rule in shipped.match(alert)] == ["dlq-depth-redrive"]
