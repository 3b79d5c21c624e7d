"""Benchmark: ``remedy audit verify`` over a large audit log (SPEC §10: 1,000,000 events < 10 s).

Writes the log through the store's own write path (chained, redacted, as
``remedy serve`` writes it: received, matched, started and succeeded events
in turn), then times the CLI's verify as an operator runs it, from process
start to its answer. Prints figures, never asserts.
Usage: ``.venv/bin/python bench/verify.py [--events 1000000] [--postgres URL]``
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from receiver.audit import AuditRecord  # noqa: E402
from receiver.config import Config  # noqa: E402
from receiver.store.url import store_for  # noqa: E402

CHUNK = 5000  # events per write transaction


def records(start: int, count: int) -> list[AuditRecord]:
    """``count`` events as one alert after another goes through a remediation."""
    out = []
    for n in range(start, start + count):
        alert = {
            "source": "alertmanager",
            "name": "ServiceDown",
            "fingerprint": f"{n // 4:016x}",
            "status": "firing",
            "labels": {"alertname": "ServiceDown", "instance": f"web-{n // 4}:8080", "job": "web"},
        }
        kind = ("received", "matched", "started", "succeeded")[n % 4]
        rule = None if kind == "received" else "restart-web"
        out.append(
            AuditRecord(
                kind,
                alert,
                rule=rule,
                action="docker.restart" if kind in ("started", "succeeded") else None,
                target=None if rule is None else f"container:web-{n // 4}",
                params={"container": f"web-{n // 4}"} if kind == "started" else None,
                remediation=None if rule is None else n // 4,
                duration_ms=812 if kind == "succeeded" else None,
            )
        )
    return out


async def fill(storage: str, events: int) -> float:
    """Write ``events`` audit events to ``storage``; the seconds it took."""
    store = store_for(Config(storage=storage))
    await store.open()
    begin = time.perf_counter()
    try:
        for start in range(0, events, CHUNK):
            await store.record(records(start, min(CHUNK, events - start)))
    finally:
        await store.close()
    return time.perf_counter() - begin


def verify(storage: str, work: Path) -> tuple[float, str]:
    """Seconds for ``remedy audit verify`` on ``storage``, and its first line of output."""
    config = work / "verify.yaml"
    config.write_text(f"storage: '{storage}'\n")
    begin = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "receiver", "audit", "verify", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        cwd=work,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    took = time.perf_counter() - begin
    lines = (result.stdout or result.stderr).splitlines()
    return took, lines[0] if lines else ""


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--postgres", default="", help="also on this PostgreSQL server (a fresh schema)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        stores = [("SQLite", f"sqlite:///{work / 'audit.db'}")]
        schema = "remedy_bench_verify"
        if args.postgres:
            admin = await asyncpg.connect(args.postgres, timeout=5)
            await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
            joiner = "&" if "?" in args.postgres else "?"
            stores.append(("PostgreSQL", f"{args.postgres}{joiner}search_path={schema}"))
        try:
            for name, storage in stores:
                written = await fill(storage, args.events)
                took, answer = verify(storage, work)
                print(f"{name}: wrote {args.events:,} events in {written:.1f} s")
                print(f"{name}: remedy audit verify {took:8.2f} s   (target < 10 s)  {answer}")
        finally:
            if args.postgres:
                await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
                await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
