"""``http.request`` against a real local server: what is sent, and how failures are classed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from remediations import ActionContext, ParamError, PermanentError, TemporaryError
from remediations.builtin import builtin_registry
from remediations.http import HttpRequest
from tests.support.recorder import Recorder


@pytest.fixture
async def ctx() -> AsyncIterator[ActionContext]:
    async with aiohttp.ClientSession() as session:
        yield ActionContext(http=session)


async def test_sends_method_headers_and_json(recorder: Recorder, ctx: ActionContext) -> None:
    action = HttpRequest()
    params = action.parse(
        {
            "method": "put",
            "url": recorder.url("/cache/warm?x=1"),
            "headers": {"X-Team": "sre"},
            "json": {"keys": ["a", "b"]},
        }
    )
    result = await action.run(params, ctx)
    assert result["status"] == 200
    (sent,) = recorder.received
    assert (sent.method, sent.path) == ("PUT", "/cache/warm?x=1")
    assert sent.headers["X-Team"] == "sre"
    assert sent.json() == {"keys": ["a", "b"]}


async def test_secret_headers_are_read_at_send_time(
    recorder: Recorder, ctx: ActionContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    monkeypatch.setenv("HOOK_TOKEN", "from-env")
    action = HttpRequest()
    params = action.parse(
        {
            "url": recorder.url(),
            "headers": {"Authorization": {"env": "HOOK_TOKEN"}, "X-Key": {"file": str(token_file)}},
        }
    )
    await action.run(params, ctx)
    assert recorder.received[0].headers["Authorization"] == "from-env"
    assert recorder.received[0].headers["X-Key"] == "from-file"
    monkeypatch.delenv("HOOK_TOKEN")
    with pytest.raises(PermanentError, match="HOOK_TOKEN is not set"):
        await action.run(params, ctx)


@pytest.mark.parametrize(
    ("status", "error"),
    [(404, PermanentError), (403, PermanentError), (503, TemporaryError), (429, TemporaryError)],
)
async def test_unexpected_status_is_classed(
    recorder: Recorder, ctx: ActionContext, status: int, error: type[Exception]
) -> None:
    recorder.status = status
    action = HttpRequest()
    with pytest.raises(error, match=f"answered {status}"):
        await action.run(action.parse({"url": recorder.url()}), ctx)


async def test_expect_status_overrides_2xx(recorder: Recorder, ctx: ActionContext) -> None:
    recorder.status = 200
    action = HttpRequest()
    with pytest.raises(PermanentError, match="answered 200"):
        await action.run(action.parse({"url": recorder.url(), "expect_status": 202}), ctx)
    recorder.status = 202
    assert (await action.run(action.parse({"url": recorder.url(), "expect_status": [202]}), ctx))[
        "status"
    ] == 202


async def test_refused_connection_is_temporary_and_hides_credentials(ctx: ActionContext) -> None:
    action = HttpRequest()
    params = action.parse({"url": "http://user:pw@127.0.0.1:1/hook?token=abc"})
    with pytest.raises(TemporaryError) as caught:
        await action.run(params, ctx)
    assert "pw" not in str(caught.value)
    assert "abc" not in str(caught.value)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "url"),
        ({"url": "ftp://x/y"}, "url"),
        ({"url": "http://x", "method": "BREW"}, "method"),
        ({"url": "http://x", "headers": {"A": 1}}, "headers.A"),
        ({"url": "http://x", "expect_status": "ok"}, "expect_status"),
        ({"url": "http://x", "timeout": "soon"}, "timeout"),
        ({"url": "http://x", "body": "x"}, "body"),
    ],
)
def test_bad_params_name_the_field(params: dict[str, object], field: str) -> None:
    with pytest.raises(ParamError) as caught:
        HttpRequest().parse(params)
    assert caught.value.field == field
    assert builtin_registry().check_params("http.request", params)[0][0] == field


def test_registry_is_fresh_and_rejects_twice_registered_names() -> None:
    registry = builtin_registry()
    assert "http.request" in registry.action_names()
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(HttpRequest)
    assert list(builtin_registry().action_names()) == list(registry.action_names())
