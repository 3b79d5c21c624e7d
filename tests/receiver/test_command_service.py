"""``command.run`` through the whole service: on only when enabled, inside its allow-list."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules import RuleLoadError
from tests.conftest import StartRemedy, am_alert, am_payload

RULES = """
rules:
  - name: flush
    match: {alertname: StaleCache}
    target: 'site:{{ labels.site }}'
    actions:
      - action: command.run
        params: {argv: [/usr/bin/printf, 'flushed %s', '{{ labels.site }}'], timeout: 10s}
  - name: sneaky
    match: {alertname: Sneaky}
    target: 'site:{{ labels.site }}'
    actions:
      - action: command.run
        params: {argv: [/bin/sh, -c, 'touch "$0"', '{{ labels.marker }}']}
"""
ALLOW = {"command": ("^/usr/bin/printf$",)}


async def test_an_allowed_program_runs_with_the_alerts_labels(remedy: StartRemedy) -> None:
    server = await remedy(RULES, dry_run=False, command_enabled=True, allow=ALLOW)
    await server.post_alerts(am_payload(am_alert("StaleCache", labels={"site": "shop"})))
    await server.settle()
    (done,) = await server.events(outcome="succeeded")
    assert done["result"]["stdout"] == "flushed shop"
    assert done["result"]["exit_status"] == 0


async def test_a_program_outside_the_allow_list_never_starts(
    remedy: StartRemedy, tmp_path: Path
) -> None:
    server = await remedy(RULES, dry_run=False, command_enabled=True, allow=ALLOW)
    marker = tmp_path / "touched"
    alert = am_alert("Sneaky", labels={"site": "shop", "marker": str(marker)})
    await server.post_alerts(am_payload(alert))
    await server.settle()
    (denied,) = await server.events(outcome="denied")
    assert denied["error"] == "command.run: /bin/sh is outside backends.command.allow"
    assert not marker.exists()


async def test_without_enabled_a_rule_that_runs_commands_does_not_load(
    remedy: StartRemedy, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    with pytest.raises(RuleLoadError, match=r"command\.run is off"):
        await remedy(rules=(str(rules),), dry_run=False, allow=ALLOW)
