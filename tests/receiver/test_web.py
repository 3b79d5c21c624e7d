"""The operator web page: what an operator sees on ``GET /`` and what its buttons do."""

from __future__ import annotations

import base64
from typing import Any

from receiver.auth import Token
from receiver.config import AuthConfig
from tests.conftest import RemedyClient, StartRemedy, am_alert, am_payload
from tests.support.html import Form, Page
from tests.support.recorder import Recorder

AUTH = AuthConfig(
    api_tokens=(
        Token("oncall", "op-secret", "operator"),
        Token("dashboard", "view-secret", "viewer"),
    )
)


def rules(url: str) -> str:
    """A rule that waits for approval before it calls ``url``, and one that runs at once."""
    return f"""
rules:
  - name: rollback
    match: {{alertname: HighErrorRate}}
    target: 'deployment:{{{{ labels.deployment }}}}'
    guards: {{require_approval: true}}
    actions:
      - action: http.request
        params: {{url: '{url}', json: {{deployment: '{{{{ labels.deployment }}}}'}}}}
  - name: warm
    match: {{alertname: LowCacheHitRate}}
    target: 'cache:{{{{ labels.instance }}}}'
    actions:
      - action: http.request
        params: {{url: '{url}'}}
"""


def basic(token: str, user: str = "me") -> dict[str, str]:
    """What a browser sends once its user typed a name and a token into the login prompt."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


async def open_page(server: RemedyClient, path: str = "/", **kwargs: Any) -> Page:
    response = await server.client.get(path, **kwargs)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/html"
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script" not in csp  # no script may run at all
    return Page(await response.text())


async def submit(server: RemedyClient, form: Form, **kwargs: Any) -> tuple[int, str]:
    """Press the form's button, as a browser would (same origin); status and Location."""
    response = await server.client.post(
        form.action, data=form.fields, allow_redirects=False, **kwargs
    )
    return response.status, response.headers.get("Location", await response.text())


async def pending_rollback(server: RemedyClient, **labels: str) -> None:
    alert = am_alert("HighErrorRate", labels={"deployment": "web", **labels})
    status, _ = await server.post_alerts(am_payload(alert))
    assert status == 200
    await server.settle()


async def test_the_page_shows_status_approvals_and_the_timeline(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(rules(recorder.url()), dry_run=False)
    await pending_rollback(server)
    page = await open_page(server)
    assert "script" not in page.tags
    assert "running" in page.text and "live" in page.text
    ((rem_id, rule, target, alert, would_run, _, buttons),) = page.rows("approvals")
    assert (rem_id, rule, target) == ("1", "rollback", "deployment:web")
    assert alert == "HighErrorRate deployment=web"
    assert would_run.startswith("http.request") and recorder.url() in would_run
    assert buttons == "Approve Reject"
    assert [f.button for f in page.forms if "/ui/remediations/1/" in f.action] == [
        "Approve",
        "Reject",
    ]
    events = [row[2] for row in page.rows("timeline")]
    assert events == ["pending_approval", "matched", "received"]  # newest first
    assert recorder.received == []
    style = await server.client.get("/ui/style.css")  # the one stylesheet the page links
    assert (style.status, style.content_type) == (200, "text/css")


async def test_approving_on_the_page_runs_the_remediation(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(rules(recorder.url()), dry_run=False)
    await pending_rollback(server)
    page = await open_page(server)
    status, location = await submit(server, page.form("/ui/remediations/1/approve"))
    assert (status, location) == (303, "/?notice=approved&id=1")
    await server.settle()
    assert [r.json() for r in recorder.received] == [{"deployment": "web"}]
    after = await open_page(server, location)
    assert "Approved remediation 1" in after.text
    assert after.rows("approvals") == []
    assert "Nothing." in after.text
    assert [row[2] for row in after.rows("timeline")][:3] == ["succeeded", "started", "approved"]

    # the same button again: it is no longer waiting
    status, location = await submit(server, page.form("/ui/remediations/1/reject"))
    assert location == "/?notice=conflict&id=1"
    assert "no longer waiting" in (await open_page(server, location)).text


async def test_a_form_without_its_token_or_from_another_site_changes_nothing(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(rules(recorder.url()), dry_run=False)
    await pending_rollback(server)
    form = (await open_page(server)).form("/ui/remediations/1/approve")
    forged = Form(form.action, "post", {})
    status, body = await submit(server, forged)
    assert status == 403 and "token" in body
    evil = {"Origin": "https://evil.example"}
    assert (await submit(server, form, headers=evil))[0] == 403
    assert (await submit(server, form, headers={"Sec-Fetch-Site": "cross-site"}))[0] == 403
    # the JSON API too: a page elsewhere cannot pause a remedy that runs without auth
    response = await server.client.post("/api/v1/pause", headers=evil)
    assert response.status == 403
    assert (await response.json())["error"] == "cross-origin request refused"
    _, state = await server.get_json("/api/v1/status")
    assert state["paused"] is False
    _, body = await server.get_json("/api/v1/remediations")
    assert [r["state"] for r in body["remediations"]] == ["pending_approval"]
    assert recorder.received == []


async def test_labels_are_shown_as_text_never_as_markup(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(rules(recorder.url()), dry_run=False)
    hostile = "<script>alert(1)</script>'><img src=x onerror=alert(2)>"
    await pending_rollback(server, team=hostile)
    page = await open_page(server)
    assert not {"script", "img"} & set(page.tags)
    ((_, _, _, alert, *_),) = page.rows("approvals")
    assert f"team={hostile}" in alert


async def test_a_browser_signs_in_with_a_token_and_only_an_operator_may_pause(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(rules(recorder.url()), dry_run=False, auth=AUTH)
    response = await server.client.get("/")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")  # the browser's prompt
    assert (await server.client.get("/", headers=basic("wrong"))).status == 401

    viewer = await open_page(server, headers=basic("view-secret"))
    status, _ = await submit(server, viewer.form("/ui/pause"), headers=basic("view-secret"))
    assert status == 403

    operator = await open_page(server, headers=basic("op-secret"))
    pause = operator.form("/ui/pause")
    pause.fields["reason"] = "incident 42"
    status, location = await submit(server, pause, headers=basic("op-secret"))
    assert (status, location) == (303, "/?notice=paused")
    paused = await open_page(server, location, headers=basic("op-secret"))
    assert "PAUSED" in paused.text and "Paused: nothing starts" in paused.text
    (event,) = [row for row in paused.rows("timeline") if row[2] == "paused"]
    assert (event[7], event[8]) == ("incident 42", "oncall")  # reason, actor

    # a viewer's form token is not an operator's
    forged = Form("/ui/resume", "post", dict(viewer.form("/ui/pause").fields))
    assert (await submit(server, forged, headers=basic("op-secret")))[0] == 403
    status, _ = await submit(server, paused.form("/ui/resume"), headers=basic("op-secret"))
    assert status == 303
    _, state = await server.get_json(
        "/api/v1/status", headers={"Authorization": "Bearer op-secret"}
    )
    assert state["paused"] is False


async def test_the_timeline_filters_and_says_what_is_wrong_with_a_filter(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(rules(recorder.url()), dry_run=False)
    await pending_rollback(server)
    warm = am_alert("LowCacheHitRate", labels={"instance": "web-1:8080"})
    await server.post_alerts(am_payload(warm))
    await server.settle()
    page = await open_page(server, "/?rule=warm")
    assert {row[4] for row in page.rows("timeline")} == {"warm"}
    assert [row[2] for row in page.rows("timeline")] == ["succeeded", "started", "matched"]
    filters = [f for f in page.forms if f.method == "get"]
    assert filters[0].fields["rule"] == "warm"  # the form keeps what was asked

    response = await server.client.get("/?since=last-tuesday")
    assert response.status == 400
    assert "since: expected an RFC 3339 time or a duration" in Page(await response.text()).text
