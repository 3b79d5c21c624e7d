"""The shipped default rules load cleanly and render sensible requests."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rules import DEFAULT_RULES_DIR, TemplateError, load_rules, render_params
from tests.rules.support import HttpCatalog, make_alert


def test_defaults_are_package_data() -> None:
    assert [p.name for p in DEFAULT_RULES_DIR.glob("*.yaml")] == ["web.yaml"]


def test_defaults_load_with_http_request_only() -> None:
    catalog = HttpCatalog()
    ruleset = load_rules([DEFAULT_RULES_DIR], catalog)
    assert [rule.alertname for rule in ruleset] == [
        "ServiceDown",
        "HighErrorRate",
        "SlowResponseTime",
        "LowCacheHitRate",
    ]
    for rule in ruleset:
        assert rule.alertname is not None
        assert rule.alertname in rule.description
        assert rule.source == "alertmanager"
        assert rule.guards.rate_limit is not None
        assert rule.guards.cooldown is not None
        assert rule.for_ is not None
        assert rule.verify is not None
        assert {step.action for step in (*rule.actions, *rule.on_failure)} == {"http.request"}
    assert len(catalog.checked) == 4


@pytest.mark.parametrize(
    ("alertname", "target", "url"),
    [
        ("ServiceDown", "service:api", "http://ops:8080/v1/restart"),
        ("HighErrorRate", "service:api", "http://ops:8080/v1/scale-out"),
        ("SlowResponseTime", "service:api", "http://ops:8080/v1/scale-out"),
    ],
)
def test_hook_rules_post_to_the_alerts_own_hook(alertname: str, target: str, url: str) -> None:
    annotation = "remediation_hook"
    ruleset = load_rules([DEFAULT_RULES_DIR], HttpCatalog())
    alert = make_alert(
        alertname,
        labels={"job": "api", "instance": "api-1:8080"},
        annotations={annotation: "ops:8080"},
    )
    (rule,) = ruleset.match(alert)
    assert rule.target.render(alert) == target
    params = render_params(rule.actions[0].params, alert)
    assert isinstance(params, dict)
    assert (params["method"], params["url"]) == ("POST", url)
    assert params["json"]["service"] == "api"
    assert params["json"]["fingerprint"] == alert.fingerprint
    # Without the annotation nothing is sent anywhere.
    bare = make_alert(alertname, labels={"job": "api", "instance": "api-1:8080"})
    with pytest.raises(TemplateError, match=f"annotation '{annotation}' is missing"):
        render_params(rule.actions[0].params, bare)


def test_cache_rule_warms_the_instance() -> None:
    ruleset = load_rules([DEFAULT_RULES_DIR], HttpCatalog())
    alert = make_alert("LowCacheHitRate", labels={"job": "web", "instance": "web-2:9000"})
    (rule,) = ruleset.match(alert)
    assert rule.target.render(alert) == "instance:web-2:9000"
    params = render_params(rule.actions[0].params, alert)
    assert isinstance(params, dict)
    assert params["url"] == "http://web-2:9000/cache/warm"


def test_defaults_do_not_match_resolved_or_other_alerts() -> None:
    ruleset = load_rules([DEFAULT_RULES_DIR], HttpCatalog())
    assert ruleset.match(make_alert("ServiceDown", status="resolved")) == []
    assert ruleset.match(make_alert("DiskFull")) == []
    assert ruleset.match(make_alert("ServiceDown", source="cloudwatch")) == []


def test_rules_imports_neither_remediations_nor_receiver() -> None:
    code = (
        "import sys, rules\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('remediations', 'receiver'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
