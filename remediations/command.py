"""``command.run``: run a local program, no shell, with a deadline.

For the runbook step no other action covers: a site's own script
(``/usr/local/bin/flush-cdn web``). It is off unless
``backends.command.enabled: true``, and then runs only the executables
``backends.command.allow`` admits.

The program gets no shell (``argv`` is executed as it is: no globbing, no
pipes, no ``$VARS``), no stdin, a minimal environment (``PATH``, ``LANG``,
``HOME``) instead of remedy's own (which may hold tokens), and its own
process group, which is killed whole at the deadline (a program that
daemonizes out of it escapes that). Exit status 0 is success; 75
(``EX_TEMPFAIL``) is a temporary failure the step's ``retries`` may retry;
anything else fails. The audit result keeps the exit status and the last
4 KiB of stdout and stderr each: a program must not print secrets. Put
``--`` before templated arguments, so a label cannot become an option.

Params:
    argv: the program and its arguments, a list of strings; the program by absolute path
    timeout: how long it may run before its process group is killed (default 30s)

Permissions: a local process as remedy's own user; ``backends.command.allow``
names the executables it may run.

Example::

    - action: command.run
      params: {argv: [/usr/local/bin/flush-cdn, '{{ labels.site }}'], timeout: 2m}
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import tempfile
import time
from collections.abc import Mapping
from typing import IO, Any, ClassVar

from remediations.base import (
    ActionContext,
    ActionTimeout,
    ParamError,
    PermanentError,
    TemporaryError,
)
from remediations.params import Fields

EX_TEMPFAIL = 75
OUTPUT_CAP = 4096  # bytes of stdout and of stderr kept for the audit log
ENVIRONMENT = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/"}


@dataclasses.dataclass(frozen=True, slots=True)
class CommandParams:
    """A validated ``command.run``."""

    argv: tuple[str, ...]
    timeout: float


class CommandRun:
    """Run ``argv`` as a child process; its exit status decides the outcome."""

    name: ClassVar[str] = "command.run"

    def parse(self, params: Mapping[str, Any]) -> CommandParams:
        """See the module docstring."""
        fields = Fields(params, ("argv", "timeout"))
        argv = fields.raw("argv")
        if not isinstance(argv, list | tuple) or not argv:
            raise ParamError("argv", f"expected a non-empty list of strings, got {argv!r}")
        for index, arg in enumerate(argv):
            if not isinstance(arg, str) or "\0" in arg:
                raise ParamError(f"argv[{index}]", f"expected a string, got {arg!r}")
        if not argv[0].startswith("/") or argv[0] != os.path.normpath(argv[0]):
            # normalized, so that the allow-list sees the program that runs:
            # /usr/local/bin/../../bin/sh would pass '^/usr/local/bin/'
            raise ParamError(
                "argv[0]", f"expected the program by a plain absolute path, got {argv[0]!r}"
            )
        return CommandParams(tuple(argv), fields.duration("timeout", "30s"))

    def subject(self, params: CommandParams) -> str:
        """The program, what ``backends.command.allow`` must admit."""
        return params.argv[0]

    async def run(self, params: CommandParams, ctx: ActionContext) -> Mapping[str, Any]:
        """Start the program, wait for it within the deadline, report how it ended.

        Its output goes to unlinked temporary files, not pipes: waiting ends
        when the program exits, even if something it started keeps the
        output open, and only the tails are ever read into memory.
        """
        program = params.argv[0]
        started = time.monotonic()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                process = await asyncio.create_subprocess_exec(
                    *params.argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    env=ENVIRONMENT,
                    cwd="/",
                    start_new_session=True,  # its own process group, killed whole at the deadline
                )
            except OSError as exc:
                raise PermanentError(f"{program}: cannot start it: {exc.strerror}") from None
            try:
                async with asyncio.timeout(params.timeout):
                    status = await process.wait()
            except TimeoutError:
                _kill_group(process.pid)
                await process.wait()
                raise ActionTimeout(
                    f"{program}: still running after {params.timeout:g}s;"
                    " its process group was killed"
                ) from None
            except asyncio.CancelledError:
                _kill_group(process.pid)
                raise
            stdout, stderr = _tail(out), _tail(err)
        result = {
            "argv": list(params.argv),
            "exit_status": status,
            "stdout": stdout,
            "stderr": stderr,
            "duration_ms": round((time.monotonic() - started) * 1000),
        }
        if status == 0:
            return result
        why = stderr.strip().splitlines()[-1:] or ["no output on stderr"]
        message = f"{program} exited with status {status}: {why[0]}"
        if status == EX_TEMPFAIL:
            raise TemporaryError(message)
        raise PermanentError(message)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _tail(output: IO[bytes]) -> str:
    """The last :data:`OUTPUT_CAP` bytes written to ``output``."""
    size = output.seek(0, os.SEEK_END)
    output.seek(max(0, size - OUTPUT_CAP))
    return output.read(OUTPUT_CAP).decode("utf-8", errors="replace")
