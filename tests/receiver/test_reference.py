"""The README's rule reference is generated from the code and matches it."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest

from receiver.reference import README, generated, main
from remediations import ParamError, builtin_registry
from remediations.docs import DocError, accepted_params, describe
from rules import DEFAULT_RULES_DIR, load_rules


def test_the_readme_reference_is_up_to_date() -> None:
    registry = builtin_registry()
    readme = README.read_text(encoding="utf-8")
    fresh = generated(readme, registry, load_rules([DEFAULT_RULES_DIR], registry))
    assert fresh == readme, "README.md is stale: run python -m receiver.reference"


@pytest.mark.parametrize("name", builtin_registry().action_names())
def test_every_action_documents_exactly_the_params_it_accepts(name: str) -> None:
    registry = builtin_registry()
    doc = describe(registry.get(name))
    assert doc.permissions and doc.example.startswith(f"- action: {name}")
    params = doc.params if doc.params_as is None else describe(registry.get(doc.params_as)).params
    documented = sorted(n for param in params for n in param.names)
    assert documented == sorted(accepted_params(registry.get(name)))


def test_check_says_when_the_readme_is_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = tmp_path / "README.md"
    stale = README.read_text(encoding="utf-8").replace("#### `docker.stop`", "#### `docker.halt`")
    readme.write_text(stale, encoding="utf-8")
    assert main(["--check", "--readme", str(readme)]) == 1
    assert "stale" in capsys.readouterr().out
    assert main(["--readme", str(readme)]) == 0
    assert readme.read_text(encoding="utf-8") == README.read_text(encoding="utf-8")
    assert main(["--check", "--readme", str(readme)]) == 0


class _Probe:
    """An action defined in a module of the test's making."""

    name: ClassVar[str] = "probe.run"

    def parse(self, params: dict[str, Any]) -> object:
        raise ParamError(next(iter(params)), "unknown parameter (allowed: a, b)")


@pytest.mark.parametrize(
    ("docstring", "message"),
    [
        ("``probe.run``: runs.\n\nPermissions: none.\n", "no Params section"),
        ("``probe.go``: goes.\n\nParams:\n    a: x\n", "must start with ``probe.run``"),
        ("``probe.run``: runs.\n\nParams:\n    a: x\n\nExample::\n\n    x\n", "no Permissions"),
        ("``probe.run``: runs.\n\nParams:\n    A thing\n", "cannot read the Params line"),
    ],
)
def test_a_docstring_out_of_layout_is_named(
    monkeypatch: pytest.MonkeyPatch, docstring: str, message: str
) -> None:
    module = types.ModuleType("remedy_probe_action", docstring)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    probe = type("Probe", (_Probe,), {"__module__": module.__name__})()
    with pytest.raises(DocError, match=message):
        describe(probe)
    assert accepted_params(probe) == ("a", "b")


def test_a_readme_without_the_generated_blocks_is_one_line_of_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# remedy\n", encoding="utf-8")
    assert main(["--readme", str(readme)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "python -m receiver.reference: README.md: no generated block for actions, shipped-rules"
    ]
    assert main(["--readme", str(tmp_path / "missing.md")]) == 1
    assert "missing.md" in capsys.readouterr().err
    assert readme.read_text(encoding="utf-8") == "# remedy\n"  # untouched
