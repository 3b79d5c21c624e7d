"""The operator web page: what an operator sees on ``GET /`` and what its buttons do."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlencode, urljoin

from receiver.auth import Token
from receiver.config import AuthConfig
from tests.conftest import ALL_BACKENDS, RemedyClient, StartRemedy, am_alert, am_payload
from tests.support.html import Form, Page
from tests.support.recorder import Recorder

BACKENDS = ALL_BACKENDS
AUTH = AuthConfig(
    api_tokens=(
        Token("oncall", "op-secret", "operator"),
        Token("backup", "backup-secret", "operator"),
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
    assert "default-src 'none'" in csp and "script-src 'self';" in csp  # only its own file
    assert "unsafe" not in csp
    text = await response.text()
    assert "<script src='ui/page.js' defer></script>" in text
    assert text.count("<script") == 1  # nothing inline: a label cannot become a script
    return Page(text)


BROWSER = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}  # a same-origin form post


async def submit(
    server: RemedyClient, form: Form, headers: dict[str, str] | None = None, page: str = "/"
) -> tuple[int, str]:
    """Press the form's button as a browser does on ``page``: status, and where it leads.

    A browser with ``Referrer-Policy: same-origin`` sends ``Origin: null`` on a
    same-origin form post, and says where the request comes from.
    """
    action = urljoin(page, form.action)
    response = await server.client.post(
        action, data=form.fields, allow_redirects=False, headers={**BROWSER, **(headers or {})}
    )
    if response.status == 303:
        return 303, urljoin(action, response.headers["Location"])
    return response.status, await response.text()


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
    assert "running" in page.text and "LIVE" in page.text
    ((rem_id, rule, target, alert, would_run, _, buttons),) = page.rows("approvals")
    assert (rem_id, rule, target) == ("1", "rollback", "deployment:web")
    assert alert == "HighErrorRate deployment=web"
    assert would_run.startswith("http.request") and recorder.url() in would_run
    assert buttons == "Approve Reject"
    assert [f.button for f in page.forms if "ui/remediations/1/" in f.action] == [
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
    status, location = await submit(server, page.form("ui/remediations/1/approve"))
    assert (status, location) == (303, "/?notice=approved&id=1")
    await server.settle()
    assert [r.json() for r in recorder.received] == [{"deployment": "web"}]
    after = await open_page(server, location)
    assert "Approved remediation 1" in after.text
    assert after.rows("approvals") == []
    assert "Nothing." in after.text
    assert [row[2] for row in after.rows("timeline")][:3] == ["succeeded", "started", "approved"]

    # the same button again: it is no longer waiting
    status, location = await submit(server, page.form("ui/remediations/1/reject"))
    assert location == "/?notice=conflict&id=1"
    assert "no longer waiting" in (await open_page(server, location)).text


async def test_a_form_without_its_token_or_from_another_site_changes_nothing(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(rules(recorder.url()), dry_run=False)
    await pending_rollback(server)
    form = (await open_page(server)).form("ui/remediations/1/approve")
    forged = Form(form.action, "post", {})
    status, body = await submit(server, forged)
    assert status == 403 and "token" in body
    assert (await submit(server, form, headers={"Sec-Fetch-Site": "cross-site"}))[0] == 403
    # a browser too old for Sec-Fetch-Site still names the page's origin
    evil = {"Origin": "https://evil.example"}
    response = await server.client.post(
        "/ui/remediations/1/approve", data=form.fields, headers=evil, allow_redirects=False
    )
    assert response.status == 403
    # the JSON API too: a page elsewhere cannot pause a remedy that runs without auth
    response = await server.client.post("/api/v1/pause", headers=evil)
    assert response.status == 403
    assert (await response.json())["error"] == "cross-origin request refused"
    _, state = await server.get_json("/api/v1/status")
    assert state["paused"] is False
    _, body = await server.get_json("/api/v1/remediations")
    assert [r["state"] for r in body["remediations"]] == ["pending_approval"]
    assert recorder.received == []


async def test_a_form_token_that_is_not_ascii_is_a_403(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    auth = AuthConfig(webhook_tokens=(Token("am", "wh-secret"),), api_tokens=AUTH.api_tokens)
    server = await remedy(rules(recorder.url()), dry_run=False, auth=auth)
    alert = am_payload(am_alert("HighErrorRate", labels={"deployment": "web"}))
    status, _ = await server.post_alerts(alert, headers={"Authorization": "Bearer wh-secret"})
    assert status == 200
    await server.settle()
    headers = [
        (b"Content-Type", b"application/x-www-form-urlencoded"),
        (b"Sec-Fetch-Site", b"same-origin"),
        (b"Authorization", b"Basic " + base64.b64encode(b"me:op-secret")),
    ]
    # escaped and raw UTF-8, a byte that is no UTF-8 at all, a charset nobody knows
    bodies = [b"token=%C3%A9", b"token=\xc3\xa9", b"token=\xff", b"token=%FF%FE"]
    for body in bodies:
        for path in ("/ui/pause", "/ui/resume", "/ui/remediations/1/approve"):
            answer = await server.raw("POST", path, headers, body)
            assert answer.status == 403, (path, body, answer)
            assert "token" in answer.json()["error"]
    unknown = [*headers[1:], (b"Content-Type", b"application/x-www-form-urlencoded; charset=x")]
    assert (await server.raw("POST", "/ui/pause", unknown, b"token=a")).status == 403
    operator = {"Authorization": "Bearer op-secret"}
    status, state = await server.get_json("/api/v1/status", headers=operator)
    assert (status, state["paused"]) == (200, False)
    _, body = await server.get_json("/api/v1/remediations", headers=operator)
    assert [r["state"] for r in body["remediations"]] == ["pending_approval"]
    assert recorder.received == []


async def test_labels_are_shown_as_text_never_as_markup(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(rules(recorder.url()), dry_run=False)
    hostile = "<script>alert(1)</script>'><img src=x onerror=alert(2)>"
    await pending_rollback(server, team=hostile)
    page = await open_page(server)
    assert "img" not in page.tags  # and the one script is the page's own (open_page)
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

    operator = await open_page(server, headers=basic("op-secret"))
    viewer = await open_page(server, headers=basic("view-secret"))
    assert [f for f in viewer.forms if f.method == "post"] == []  # nothing to press
    assert "Sign in with an operator token" in viewer.text
    # an operator's form, sent with a viewer's credential: still only a viewer
    status, _ = await submit(server, operator.form("ui/pause"), headers=basic("view-secret"))
    assert status == 403

    pause = operator.form("ui/pause")
    pause.fields["reason"] = "incident 42"
    # the form is bound to the credential it was rendered for, not to any operator
    assert (await submit(server, pause, headers=basic("backup-secret")))[0] == 403
    status, location = await submit(server, pause, headers=basic("op-secret"))
    assert (status, location) == (303, "/?notice=paused")
    paused = await open_page(server, location, headers=basic("op-secret"))
    assert "PAUSED" in paused.text and "Paused: nothing starts" in paused.text
    (event,) = [row for row in paused.rows("timeline") if row[2] == "paused"]
    assert (event[7], event[8]) == ("incident 42", "oncall")  # reason, actor

    status, _ = await submit(server, paused.form("ui/resume"), headers=basic("op-secret"))
    assert status == 303
    _, state = await server.get_json(
        "/api/v1/status", headers={"Authorization": "Bearer op-secret"}
    )
    assert state["paused"] is False


async def test_without_auth_only_a_loopback_name_is_answered(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    """A page whose own name was rebound to 127.0.0.1 (DNS rebinding) reads and changes nothing."""
    server = await remedy(rules(recorder.url()), dry_run=False)
    await pending_rollback(server)
    form = (await open_page(server)).form("ui/remediations/1/approve")
    rebound = {"Host": "evil.example:9095"}
    assert (await server.client.get("/", headers=rebound)).status == 403
    response = await server.client.post(
        "/ui/remediations/1/approve", data=form.fields, headers={**BROWSER, **rebound}
    )
    assert response.status == 403
    assert (await server.client.post("/api/v1/pause", headers=rebound)).status == 403
    for host in ("localhost:9095", "127.0.0.1", "[::1]:9095"):
        assert (await server.client.get("/healthz", headers={"Host": host})).status == 200
    assert recorder.received == []


async def test_a_link_cannot_put_words_on_the_page(remedy: StartRemedy, recorder: Recorder) -> None:
    server = await remedy(rules(recorder.url()), dry_run=False)
    spoof = "/?notice=approved&id=4711 by the CISO, call +1-555-0100 to undo"
    assert "CISO" not in (await open_page(server, spoof)).text
    hostile = "x' autofocus onfocus='alert(1)"
    page = await open_page(server, "/?" + urlencode({"rule": hostile}))
    (filters,) = [f for f in page.forms if f.method == "get" and "since" in f.fields]
    assert filters.fields["rule"] == hostile  # the value came back whole, as a value
    assert "autofocus" not in page.tags


async def test_an_open_breaker_is_shown_with_why_and_closed_from_the_page(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(rules(recorder.url()), dry_run=False, max_actions=(1, 3600.0))
    for instance in ("web-1:8080", "web-2:8080"):
        warm = am_alert("LowCacheHitRate", labels={"instance": instance})
        await server.post_alerts(am_payload(warm))
        await server.settle()
    page = await open_page(server)
    (close,) = [f for f in page.forms if f.button == "Close"]
    assert f"breaker {close.fields['breaker']} open" in page.text
    status, location = await submit(server, close)
    assert (status, location) == (303, "/?notice=resumed")
    _, state = await server.get_json("/api/v1/status")
    assert state["breakers"] == {}
    assert (await server.client.head("/")).status == 200


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
    (timeline,) = [f for f in page.forms if f.method == "get" and "since" in f.fields]
    assert timeline.fields["rule"] == "warm"  # the form keeps what was asked

    response = await server.client.get("/?since=last-tuesday")
    assert response.status == 400
    assert "since: expected an RFC 3339 time or a duration" in Page(await response.text()).text


async def test_older_events_are_a_link_away_and_only_when_there_are_some(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(rules(recorder.url()), dry_run=False)
    for n in range(25):  # 4 events each: received, matched, started, succeeded = 100
        warm = am_alert("LowCacheHitRate", labels={"instance": f"web-{n}:8080"})
        await server.post_alerts(am_payload(warm))
        await server.settle()
    page = await open_page(server)
    assert len(page.rows("timeline")) == 100
    assert "older events" not in page.text  # exactly one page: no link to an empty one
    await server.post_alerts(am_payload(am_alert("LowCacheHitRate", labels={"instance": "x:1"})))
    await server.settle()
    everything = await open_page(server)
    first = [row[1] for row in everything.rows("timeline")]
    assert len(first) == 100 and "older events" in everything.text
    (link,) = [a for a in everything.links if "cursor=" in a]
    rest = [row[1] for row in (await open_page(server, "/" + link)).rows("timeline")]
    assert rest and not set(rest) & set(first)
    assert int(first[-1]) > int(rest[0])


async def test_one_row_per_remediation_with_its_result_and_the_rules_effectiveness(
    remedy: StartRemedy, recorder: Recorder
) -> None:
    server = await remedy(rules(recorder.url()), dry_run=False)
    for instance in ("web-1:8080", "web-2:8080"):
        warm = am_alert("LowCacheHitRate", labels={"instance": instance})
        await server.post_alerts(am_payload(warm))
        await server.settle()
    await pending_rollback(server)
    page = await open_page(server)
    assert "Did not work" not in page.text  # nothing failed
    listed = [f for f in page.forms if f.method == "get" and "window" in f.fields]
    assert listed, "the remediation filters"
    rows = [line.split(" ")[:3] for line in _summaries(await _html(server))]
    assert rows == [
        ["#3", "pending_approval", "rollback"],
        ["#2", "succeeded", "warm"],
        ["#1", "succeeded", "warm"],
    ]
    ((rule, _, executed, verified, succeeded, *_),) = [
        row for row in page.rows("effectiveness") if row[0] == "warm"
    ]
    assert (rule, executed, verified, succeeded) == ("warm", "2", "0", "2")
    only_warm = _summaries(await _html(server, "/?rule=warm&state=succeeded"))
    assert [line.split(" ")[0] for line in only_warm] == ["#2", "#1"]


async def _html(server: RemedyClient, path: str = "/") -> str:
    response = await server.client.get(path)
    assert response.status == 200
    return await response.text()


def _summaries(text: str) -> list[str]:
    """The text of each remediation row's summary, in page order."""
    found = []
    for chunk in text.split("<summary>")[1:]:
        inner = Page(chunk.split("</summary>")[0])
        found.append(inner.text)
    return found
