"""Real engines for the tests: install what is missing, or say what to install.

With ``REMEDY_REQUIRE_ENGINES=1`` (CI) a missing engine fails the test with
what to install; otherwise the test is skipped. Nothing here fakes an engine.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

REQUIRE = os.environ.get("REMEDY_REQUIRE_ENGINES") == "1"


def missing(reason: str) -> None:
    """Fail (engines required) or skip with ``reason``, which names what to install."""
    if REQUIRE:
        pytest.fail(reason)
    pytest.skip(reason)  # only without REMEDY_REQUIRE_ENGINES=1 (CI fails instead)


def ensure_debian_packages(commands: dict[str, str]) -> None:
    """Install the Debian packages whose commands are missing (as root), or give up clearly.

    ``commands`` maps a command to look for to the package that provides it.
    """
    absent = sorted({pkg for cmd, pkg in commands.items() if not _present(cmd)})
    if not absent:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        missing(f"install the Debian packages {' '.join(absent)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *absent]):
        result = subprocess.run(
            argv, capture_output=True, text=True, env=env, check=False, timeout=900
        )
        if result.returncode != 0:
            tail = result.stderr.strip().splitlines()[-1:] or ["no output"]
            missing(f"could not install {' '.join(absent)}: {tail[0]}")
    still = sorted({pkg for cmd, pkg in commands.items() if not _present(cmd)})
    if still:
        missing(f"installed, but still missing: {' '.join(still)}")


def _present(command: str) -> bool:
    return os.path.exists(command) if command.startswith("/") else shutil.which(command) is not None
