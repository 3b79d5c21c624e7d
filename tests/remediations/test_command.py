"""``command.run`` runs real programs: no shell, a clean environment, a deadline."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from remediations import ActionContext, ActionTimeout, ParamError, PermanentError, TemporaryError
from remediations.command import CommandRun

SH = "/bin/sh"


@pytest.fixture
async def ctx() -> AsyncIterator[ActionContext]:
    async with aiohttp.ClientSession() as session:
        yield ActionContext(http=session)


async def run(ctx: ActionContext, *argv: str, deadline: str = "10s") -> dict[str, object]:
    """Run ``argv`` with ``command.run``'s ``timeout`` param set to ``deadline``."""
    action = CommandRun()
    return dict(await action.run(action.parse({"argv": list(argv), "timeout": deadline}), ctx))


async def test_the_program_gets_its_arguments_as_given(ctx: ActionContext) -> None:
    # No shell ever parses them: no splitting, no variables, no globs, no second command.
    result = await run(ctx, "/usr/bin/printf", "%s|", "a b", "$HOME", "*", "web; rm -rf /")
    assert result["exit_status"] == 0
    assert result["stdout"] == "a b|$HOME|*|web; rm -rf /|"
    assert result["argv"] == ["/usr/bin/printf", "%s|", "a b", "$HOME", "*", "web; rm -rf /"]


async def test_the_environment_is_minimal_and_remedys_secrets_stay_out(
    ctx: ActionContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMEDY_WEBHOOK_TOKEN", "s3cret")
    result = await run(ctx, "/usr/bin/env")
    lines = str(result["stdout"]).splitlines()
    assert sorted(line.split("=", 1)[0] for line in lines) == ["HOME", "LANG", "PATH"]
    assert "s3cret" not in str(result)


async def test_a_failing_program_fails_with_its_status_and_last_words(ctx: ActionContext) -> None:
    with pytest.raises(PermanentError, match=r"/bin/sh exited with status 3: cannot reach cdn"):
        await run(ctx, SH, "-c", "echo working; echo 'cannot reach cdn' >&2; exit 3")
    with pytest.raises(TemporaryError, match="status 75"):  # EX_TEMPFAIL: retries may retry
        await run(ctx, SH, "-c", "exit 75")
    with pytest.raises(PermanentError, match="cannot start it"):
        await run(ctx, "/nonexistent/flush-cdn")


async def test_past_the_deadline_the_whole_process_group_is_killed(
    ctx: ActionContext, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    script = f"sleep 30 & echo $! > {pids}; wait"
    with pytest.raises(ActionTimeout, match=r"still running after 0\.5s"):
        await run(ctx, SH, "-c", script, deadline="500ms")
    child = int(pids.read_text())
    with pytest.raises(ProcessLookupError):  # the grandchild died with its group
        for _ in range(250):  # a hang guard while the kernel reaps it
            os.kill(child, 0)
            await asyncio.sleep(0.02)


async def test_a_program_is_done_when_it_exits_whatever_it_left_running(
    ctx: ActionContext,
) -> None:
    # The background sleep keeps stdout open for 3s more; the program itself is done.
    result = await run(ctx, SH, "-c", "sleep 3 & echo started", deadline="2s")
    assert (result["exit_status"], result["stdout"]) == (0, "started\n")


async def test_only_the_tail_of_a_long_output_is_kept(ctx: ActionContext) -> None:
    result = await run(ctx, sys.executable, "-c", "print('x' * 100_000, end='END')")
    assert len(str(result["stdout"])) == 4096
    assert str(result["stdout"]).endswith("END")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"argv": "/bin/sh -c 'reboot'"}, "argv"),  # a string would need a shell
        ({"argv": []}, "argv"),
        ({"argv": ["flush-cdn"]}, "argv[0]"),  # PATH must not decide what runs
        ({"argv": ["/usr/local/bin/../../bin/sh"]}, "argv[0]"),  # what an allow-list sees runs
        ({"argv": ["/bin/echo", 3]}, "argv[1]"),
        ({"argv": ["/bin/echo"], "shell": True}, "shell"),
        ({"argv": ["/bin/echo"], "timeout": "soon"}, "timeout"),
    ],
)
def test_bad_params_name_the_field(params: dict[str, object], field: str) -> None:
    with pytest.raises(ParamError) as caught:
        CommandRun().parse(params)
    assert caught.value.field == field


def test_the_allow_list_sees_the_program() -> None:
    action = CommandRun()
    assert action.subject(action.parse({"argv": ["/usr/local/bin/flush-cdn", "web"]})) == (
        "/usr/local/bin/flush-cdn"
    )
