"""The shipped default rules are package data, and ``rules`` stands on its own.

What the rules do, with the real actions, is tested in
tests/receiver/test_shipped_rules.py (``rules`` may not import the actions).
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from rules import DEFAULT_RULES_DIR

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_package_data() -> None:
    files = sorted(p.name for p in DEFAULT_RULES_DIR.glob("*.yaml"))
    assert files == ["aws.yaml", "cache.yaml", "compose.yaml", "kubernetes.yaml", "postgresql.yaml"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["rules"]
    assert all(any(Path("defaults", f).match(g) for g in globs) for f in files)


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
