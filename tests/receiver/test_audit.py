"""The audit log over HTTP: filters, pagination, NDJSON, and a chain that catches tampering."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from pathlib import Path

from receiver.audit import REDACTED, AuditRecord, VerifyResult, chain_hash
from receiver.config import Config
from receiver.store.base import AuditQuery, NotFound
from receiver.store.sqlite import SQLiteStore
from receiver.store.url import store_for
from tests.conftest import ALL_BACKENDS, RemedyClient, StartRemedy, am_alert, am_payload
from tests.support.database import Database

BACKENDS = ALL_BACKENDS

RULE = """
rules:
  - name: page
    match: {alertname: ServiceDown}
    target: 'service:{{ labels.job }}'
    actions:
      - action: http.request
        params:
          url: 'http://127.0.0.1:1/page'
          headers: {Authorization: 'Bearer hunter2-secret', X-Team: sre}
"""


async def _fill(remedy: StartRemedy, count: int = 30) -> RemedyClient:
    server = await remedy(RULE)
    for i in range(count):
        status, _ = await server.post_alerts(am_payload(am_alert(labels={"job": f"svc-{i}"})))
        assert status == 200
    await server.settle()
    return server


async def test_pages_walk_every_event_once_newest_first(remedy: StartRemedy) -> None:
    server = await _fill(remedy, 10)
    seen: list[int] = []
    params = {"limit": "7"}
    while True:
        status, body = await server.get_json("/api/v1/audit", params=params)
        assert status == 200
        seen += [e["id"] for e in body["events"]]
        if body["next_cursor"] is None:
            break
        params = {"limit": "7", "cursor": body["next_cursor"]}
    assert seen == sorted(seen, reverse=True)
    assert sorted(seen) == list(range(1, 31))  # received, matched, dry_run per alert


async def test_filters_by_target_rule_outcome_and_alert(remedy: StartRemedy) -> None:
    server = await _fill(remedy, 3)
    by_target = await server.events(target="service:svc-1")
    assert [e["event"] for e in by_target] == ["matched", "dry_run"]
    fingerprint = by_target[0]["alert"]["fingerprint"]
    by_alert = await server.events(alert=fingerprint)
    assert [e["event"] for e in by_alert] == ["received", "matched", "dry_run"]
    assert len(await server.events(outcome="dry_run", rule="page")) == 3
    assert await server.events(since="2000-01-01T00:00:00Z", until="2000-01-02T00:00:00Z") == []
    assert len(await server.events(since="1h")) == 9


async def test_bad_query_parameters_are_400s(remedy: StartRemedy) -> None:
    server = await remedy()
    for params in (
        {"limit": "0"},
        {"limit": "5000"},
        {"cursor": "nonsense!"},
        {"since": "soon"},
        {"colour": "red"},
    ):
        status, body = await server.get_json("/api/v1/audit", params=params)
        assert status == 400, params
        assert body["field"] == next(iter(params))


async def test_ndjson_streams_every_matching_event(remedy: StartRemedy) -> None:
    server = await _fill(remedy, 5)
    response = await server.client.get(
        "/api/v1/audit", params={"limit": "1"}, headers={"Accept": "application/x-ndjson"}
    )
    assert response.headers["Content-Type"].startswith("application/x-ndjson")
    lines = (await response.text()).splitlines()
    assert [json.loads(line)["id"] for line in lines] == list(range(15, 0, -1))


async def test_secrets_never_reach_the_audit_log(remedy: StartRemedy, database: Database) -> None:
    server = await _fill(remedy, 1)
    matched = (await server.events(outcome="matched"))[0]
    headers = matched["params"][0]["params"]["headers"]
    assert headers == {"Authorization": REDACTED, "X-Team": "sre"}
    audit_rows = await database.fetch("SELECT data FROM audit")
    assert audit_rows
    assert not any("hunter2" in row[0] for row in audit_rows)


async def test_verify_passes_then_names_the_edited_event(
    remedy: StartRemedy, database: Database
) -> None:
    server = await _fill(remedy, 3)
    status, body = await server.get_json("/api/v1/audit/verify")
    assert (status, body) == (200, {"ok": True, "events": 9})
    data = (await database.fetch("SELECT data FROM audit WHERE id = 5"))[0][0]
    forged = data.replace('"actor":"system"', '"actor":"mallory"')
    assert forged != data
    await database.execute("UPDATE audit SET data = ? WHERE id = 5", forged)
    _, body = await server.get_json("/api/v1/audit/verify")
    assert body["ok"] is False
    assert body["first_bad_id"] == 5


async def verify(storage: str) -> VerifyResult:
    """What a freshly opened store says of its chain."""
    check = store_for(Config(storage=storage))
    await check.open()
    try:
        return await check.verify()
    finally:
        await check.close()


async def test_verify_catches_an_edited_column_a_deleted_row_and_a_cut_tail(
    storage: str, database: Database
) -> None:
    store = store_for(Config(storage=storage))
    await store.open()
    for i in range(6):
        await store.record([AuditRecord("paused", reason=f"r{i}")])
    await store.close()

    assert (await verify(storage)).ok is True
    await database.execute("UPDATE audit SET reason = 'other' WHERE id = 2")
    assert (await verify(storage)).first_bad_id == 2
    await database.execute("UPDATE audit SET reason = 'r1' WHERE id = 2")
    await database.execute("DELETE FROM audit WHERE id = 4")
    result = await verify(storage)
    assert (result.ok, result.first_bad_id) == (False, 4)
    await database.execute("DELETE FROM audit WHERE id >= 4")  # the tail is cut: the head remembers
    result = await verify(storage)
    assert (result.ok, result.first_bad_id) == (False, 4)


async def test_verify_catches_a_rehashed_tail_and_a_deleted_head(
    storage: str, database: Database
) -> None:
    store = store_for(Config(storage=storage))
    await store.open()
    for i in range(4):
        await store.record([AuditRecord("paused", reason=f"r{i}")])
    await store.close()
    data, prev = (await database.fetch("SELECT data, prev_hash FROM audit WHERE id = 4"))[0]
    forged = data.replace("r3", "r9")
    await database.execute(
        "UPDATE audit SET data = ?, reason = 'r9', hash = ? WHERE id = 4",
        forged,
        chain_hash(prev, forged),
    )
    result = await verify(storage)
    assert (result.ok, result.first_bad_id) == (False, 4)
    await database.execute("DELETE FROM audit WHERE id >= 3")
    await database.execute("DELETE FROM audit_head")
    result = await verify(storage)
    assert not result.ok
    assert result.reason == "the recorded head of the log is missing"


async def test_verify_names_a_rehashed_event_whatever_shape_its_content_has(
    storage: str, database: Database
) -> None:
    """Someone who can write the store rehashes an event into odd JSON: named, never a crash."""
    store = store_for(Config(storage=storage))
    await store.open()
    await store.record([AuditRecord("received", {"fingerprint": "f1"}), AuditRecord("paused")])
    await store.close()
    data, prev = (await database.fetch("SELECT data, prev_hash FROM audit WHERE id = 2"))[0]
    reasons = []
    for forged in (
        data.replace('"alert":null', '"alert":"f1"'),  # an alert that is no object
        data.replace('"reason":null', '"reason":NaN'),  # JSON that Python's decoder takes
        f"[{data}]",  # not an object at all
        data[:-1],  # cut short
    ):
        assert forged != data
        await database.execute(
            "UPDATE audit SET data = ?, hash = ? WHERE id = 2", forged, chain_hash(prev, forged)
        )
        result = await verify(storage)
        assert (result.ok, result.first_bad_id) == (False, 2)
        reasons.append(result.reason)
    assert reasons[1:] == [
        "indexed columns differ from the event",
        "indexed columns differ from the event",
        "event content is not JSON",
    ]  # and the first, whose columns still agree, differs from the recorded head


async def test_a_write_that_fails_fails_alone_in_its_group_commit(storage: str) -> None:
    """Writes waiting together commit together; one refused among them loses none of the rest."""
    batches: list[int] = []
    store = store_for(Config(storage=storage), on_commit=lambda _s, jobs: batches.append(jobs))
    await store.open()
    try:
        for _ in range(20):  # until one batch holds the refusal and its neighbours
            batches.clear()
            before = len(await store.audit(AuditQuery(limit=1000)))
            writes = [store.record([AuditRecord("paused", reason=f"w{i}")]) for i in range(6)]
            refused = store.set_paused(False, "oncall", breaker="nonesuch", pause_hold=60)
            outcomes = await asyncio.gather(
                *writes[:3], refused, *writes[3:], return_exceptions=True
            )
            assert isinstance(outcomes[3], NotFound)
            assert not any(isinstance(o, BaseException) for o in outcomes[:3] + outcomes[4:])
            events = await store.audit(AuditQuery(limit=1000))
            assert len(events) == before + 6
            if max(batches) > 1:
                break
        assert max(batches) > 1
        assert sorted(e.id for e in events) == list(range(1, len(events) + 1))
        assert (await store.verify()).ok
    finally:
        await store.close()


async def test_bad_queries_are_400s_never_500s(remedy: StartRemedy) -> None:
    server = await remedy()
    for params in (
        {"limit": "\u00b2"},
        {"cursor": "YmVmb3JlOjk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk"},
        {"since": "99999999999d"},
        {"until": "0001-01-01T00:00:00+05:00"},
    ):
        status, body = await server.get_json("/api/v1/audit", params=params)
        assert status == 400, (params, body)


async def test_the_remediations_api_redacts_secrets(remedy: StartRemedy) -> None:
    server = await _fill(remedy, 1)
    _, body = await server.get_json("/api/v1/remediations")
    text = json.dumps(body)
    assert "hunter2" not in text
    assert body["remediations"][0]["steps"][0]["params"]["headers"]["Authorization"] == REDACTED


async def test_a_password_holding_a_url_delimiter_never_reaches_the_audit_log(
    remedy: StartRemedy,
) -> None:
    server = await remedy(RULE)
    labels = {"job": "svc", "dsn": "postgresql://app:pa/ss?w#rd@db:5432/orders"}
    annotations = {"runbook": "https://wiki.example/run?token=t0ps3cret", "url": "https://a@b"}
    alert = am_alert(labels=labels)
    alert["annotations"] = annotations
    status, _ = await server.post_alerts(am_payload(alert))
    assert status == 200
    await server.settle()
    _, body = await server.get_json("/api/v1/audit")
    text = json.dumps(body)
    assert body["events"]
    for secret in ("pa/ss", "w#rd", "t0ps3cret"):
        assert secret not in text
    assert f"postgresql://{REDACTED}@db:5432/orders" in text  # the server is still named


async def test_a_store_from_before_the_partial_indexes_keeps_its_events_and_filters(
    tmp_path: Path,
) -> None:
    """An older store's audit indexes covered every event; reopened, they cover only the
    events that name a rule or a target, and the filters still find what they did."""
    path = tmp_path / "old.db"
    store = SQLiteStore(path)
    await store.open()
    await store.record([AuditRecord("paused", reason="drill")])
    await store.record([AuditRecord("dry_run", rule="page", target="service:a")])
    await store.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:  # as an older remedy left it
        conn.execute("DROP INDEX audit_rule_set")
        conn.execute("DROP INDEX audit_target_set")
        conn.execute("CREATE INDEX audit_rule ON audit (rule, id)")
        conn.execute("CREATE INDEX audit_target ON audit (target, id)")
        conn.commit()
    store = SQLiteStore(path)
    await store.open()
    try:
        assert [e.record.rule for e in await store.audit(AuditQuery(rule="page"))] == ["page"]
        found = await store.audit(AuditQuery(target="service:a"))
        assert [e.record.event for e in found] == ["dry_run"]
        assert (await store.verify()).ok
    finally:
        await store.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        indexes = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE tbl_name = 'audit'"))
        plans = {
            column: str(
                conn.execute(
                    f"EXPLAIN QUERY PLAN SELECT data FROM audit WHERE {column} = ?"
                    " ORDER BY id DESC",
                    ("x",),
                ).fetchall()
            )
            for column in ("rule", "target")
        }
    assert "audit_rule" not in indexes and "audit_target" not in indexes
    for column in ("rule", "target"):
        assert f"WHERE {column} IS NOT NULL" in indexes[f"audit_{column}_set"]
        assert f"USING INDEX audit_{column}_set" in plans[column]
