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


async def test_stored_work_does_not_run_once_the_config_turns_commands_off(
    remedy: StartRemedy, tmp_path: Path
) -> None:
    """An approval decided after a restart with ``enabled: false`` runs nothing."""
    marker = tmp_path / "touched"
    held = RULES.replace(
        "  - name: sneaky", "  - name: sneaky\n    guards: {require_approval: true}"
    )
    allow_sh = {"command": ("^/bin/sh$",)}
    first = await remedy(held, dry_run=False, command_enabled=True, allow=allow_sh)
    alert = am_alert("Sneaky", labels={"site": "shop", "marker": str(marker)})
    await first.post_alerts(am_payload(alert))
    await first.settle()
    await first.client.close()  # restart: the same store, commands now off

    second = await remedy(rules=(), dry_run=False, allow=allow_sh)
    response = await second.client.post("/api/v1/remediations/1/approve")
    assert response.status == 200
    await second.settle()
    (denied,) = await second.events(outcome="denied")
    assert denied["error"].startswith("command.run is off")
    assert not marker.exists()
