"""Tokens: webhook senders and operators, 401 without, 403 with too weak a role."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from receiver.auth import Token
from receiver.config import AuthConfig
from tests.conftest import StartRemedy, am_alert, am_payload

AUTH = AuthConfig(
    webhook_tokens=(Token("alertmanager", "wh-secret"), Token("am-basic", "pw", username="am")),
    api_tokens=(
        Token("dashboard", "view-secret", "viewer"),
        Token("oncall", "op-secret", "operator"),
    ),
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        (bearer("nope"), 401),
        (bearer("view-secret"), 401),  # an API token is not a webhook token
        (basic("am", "wrong"), 401),
        (basic("other", "pw"), 401),
        ({"Authorization": "Basic !!!"}, 401),
        (bearer("pw"), 401),  # a token with a username takes only basic auth
        (bearer("wh-secret"), 200),
        (basic("am", "pw"), 200),
    ],
)
async def test_webhook_credentials(
    remedy: StartRemedy, headers: dict[str, str], status: int
) -> None:
    server = await remedy(auth=AUTH)
    got, body = await server.post_alerts(am_payload(am_alert()), headers=headers)
    assert got == status, body
    if status == 401:
        assert "error" in body
        assert "secret" not in body["error"]


async def test_api_roles(remedy: StartRemedy, tmp_path: Path) -> None:
    server = await remedy(auth=AUTH)
    assert (await server.get_json("/api/v1/audit"))[0] == 401
    assert (await server.get_json("/api/v1/audit", headers=bearer("wh-secret")))[0] == 401
    assert (await server.get_json("/api/v1/audit", headers=bearer("view-secret")))[0] == 200
    response = await server.client.post("/-/reload", headers=bearer("view-secret"))
    assert response.status == 403
    assert "operator" in (await response.json())["error"]
    response = await server.client.post("/-/reload", headers=bearer("op-secret"))
    assert response.status == 200
    status, body = await server.get_json(
        "/api/v1/audit", params={"outcome": "rules_reloaded"}, headers=bearer("op-secret")
    )
    assert status == 200
    assert body["events"][0]["actor"] == "oncall"


async def test_health_and_metrics_stay_open(remedy: StartRemedy) -> None:
    server = await remedy(auth=AUTH)
    for path in ("/healthz", "/readyz", "/metrics"):
        response = await server.client.get(path)
        assert response.status == 200, path


async def test_operator_controls_need_the_operator_role(remedy: StartRemedy) -> None:
    server = await remedy(auth=AUTH)
    for path in (
        "/api/v1/pause",
        "/api/v1/resume",
        "/api/v1/remediations/1/approve",
        "/api/v1/remediations/1/reject",
    ):
        assert (await server.client.post(path)).status == 401, path
        viewer = await server.client.post(path, headers=bearer("view-secret"))
        assert viewer.status == 403, path
    operator = await server.client.post(
        "/api/v1/remediations/1/approve", headers=bearer("op-secret")
    )
    assert operator.status == 404  # allowed in, and there is no remediation 1
    status, body = await server.get_json("/api/v1/status", headers=bearer("view-secret"))
    assert (status, body["paused"]) == (200, False)


async def test_a_token_with_a_username_takes_only_basic_auth_with_that_username(
    remedy: StartRemedy,
) -> None:
    server = await remedy(auth=AUTH)
    payload = am_payload(am_alert())
    status, body = await server.post_alerts(payload, headers=bearer("pw"))
    assert (status, body["error"]) == (401, "invalid webhook credentials")
    assert (await server.post_alerts(payload, headers=basic("other", "pw")))[0] == 401
    assert (await server.post_alerts(payload, headers=basic("am", "pw")))[0] == 200
    # a token without a username takes either, with any user name
    assert (await server.post_alerts(payload, headers=basic("anyone", "wh-secret")))[0] == 200
    assert await server.rejections() == {("alertmanager", "unauthorized"): 2}


PROTECTED = [
    ("POST", "/webhook/alertmanager"),
    ("POST", "/webhook/sns"),
    ("GET", "/api/v1/audit"),
    ("GET", "/api/v1/audit/verify"),
    ("GET", "/api/v1/remediations"),
    ("GET", "/api/v1/status"),
    ("GET", "/api/v1/rules"),
    ("POST", "/-/reload"),
    ("POST", "/api/v1/pause"),
    ("POST", "/api/v1/remediations/1/approve"),
    ("GET", "/"),
    ("POST", "/ui/pause"),
    ("POST", "/ui/remediations/1/reject"),
]


async def test_credentials_that_are_not_text_are_a_401_on_every_protected_route(
    remedy: StartRemedy,
) -> None:
    """Header bytes that are not UTF-8 reach remedy as surrogates: wrong credentials, not a 500."""
    server = await remedy(auth=AUTH)
    before = await server.stored(bearer("op-secret"))
    for method, path in PROTECTED:
        for credentials in (b"Bearer \xff", b"Bearer op-secret\xff", b"Basic \xff", b"\xff"):
            answer = await server.raw(method, path, [(b"Authorization", credentials)])
            assert answer.status == 401, (path, credentials, answer)
            assert answer.json()["error"]
            assert "www-authenticate" in answer.headers
    assert await server.stored(bearer("op-secret")) == before
    assert await server.rejections() == {
        ("alertmanager", "unauthorized"): 4,
        ("sns", "unauthorized"): 4,
    }
    _, status = await server.get_json("/api/v1/status", headers=bearer("op-secret"))
    assert status["paused"] is False
