"""Benchmark: remedy's webhook ingest against a bare aiohttp handler, in one run.

Prints ratios (SPEC §10), never asserts: speed is measured, not tested.

* ingest throughput: remedy (durable SQLite, rules, audit) / a bare aiohttp
  handler that parses the same JSON and answers 200; and on PostgreSQL
  (``--postgres URL``, a fresh schema; ``--postgres ''`` skips it);
* the durable floor (``bench/floor.py``) in the same rounds: about the least
  an ingest does that stores and audits each alert before its 200, with no
  rule matching, with every alert matching, and on PostgreSQL; and each remedy
  run as a share of its floor;
* repeats: every request an alert the server stored already, as each
  Alertmanager HA peer sends every replica (a dry-run rule matches them);
* finished work: remediations that reached their outcome (a dry run decided)
  within a second of the load ending, per second of load, as a ratio too;
* the same with a live ``http.request`` rule aimed at a local recorder (its
  actions run), and at half the rate those actions finish at: alert received
  -> action started, and the webhook's answer, p50/p99;
* each server's CPU per answered request (its event loop and its other threads),
  how busy the load generator was, and the bare handler's answer latency at the
  latency run's rate (what the client and loopback cost);
* 1,000 rules x 1,000-alert batch matched (rules indexed by alertname).

Everything talks to 127.0.0.1 only, and every loop is bounded in count and time.
The servers run on CPU 1 and the load generator, raw HTTP/1.1 on asyncio, on CPU 0
(on a machine with two or more).
Usage: ``.venv/bin/python bench/ingest.py [--seconds 5] [--concurrency 32]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import os
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from http import HTTPStatus
from pathlib import Path
from typing import NamedTuple

import aiohttp
import asyncpg
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from receiver.store.base import FINAL_STATES  # noqa: E402

BARE_SERVER = """
import json, sys
from aiohttp import web
async def handle(request):
    json.loads(await request.read())
    return web.json_response({"status": "ok"})
app = web.Application(client_max_size=16 * 1024 * 1024)
app.router.add_post("/webhook/alertmanager", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

RULES = """
rules:
  - name: bench-hook
    match: {{alertname: BenchAlert}}
    target: 'bench:{{{{ labels.instance }}}}'
    actions:
      - action: http.request
        params: {{url: '{url}', json: {{sent: '{{{{ annotations.sent }}}}'}}}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def payload(n: int, sent: float = 0.0) -> bytes:
    alert = {
        "status": "firing",
        "labels": {"alertname": "BenchAlert", "instance": f"host-{n}:9100", "job": "node"},
        "annotations": {"summary": "benchmark alert", "sent": repr(sent)},
        "startsAt": "2026-11-24T05:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": f"{n:016x}",
    }
    body = {
        "version": "4",
        "groupKey": "{}:{}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "remedy",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager",
        "alerts": [alert],
    }
    return json.dumps(body).encode()


async def wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(url + "/readyz") as response:
                    if response.status in (200, 404):
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise SystemExit(f"server at {url} did not start")


class _Http(asyncio.Protocol):
    """A keep-alive HTTP/1.1 connection in raw asyncio that hands each answer's status on.

    An aiohttp client needs more CPU per request than the bare aiohttp server,
    so on one core it, not the server, would set the baseline's rate; and its
    overhead would count in every latency measured.
    """

    def __init__(self) -> None:
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def answered(self, status: int) -> None:
        """One whole answer came in."""
        raise NotImplementedError

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\r\n\r\n")) >= 0:
            head = self._buffer[:end]
            length = _CONTENT_LENGTH.search(head)
            if length is None:  # no length (chunked): not an answer this client reads
                assert self.transport is not None
                self.transport.close()
                return
            size = end + 4 + int(length.group(1))
            if len(self._buffer) < size:
                return
            self._buffer = self._buffer[size:]
            self.answered(int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class _Exchange(_Http):
    """A connection that sends the next alert as soon as an answer is in, until ``deadline``."""

    def __init__(self, request: Callable[[], bytes], deadline: float) -> None:
        super().__init__()
        self.request = request
        self.deadline = deadline
        self.ok = 0  # answers that were 200

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._send()

    def answered(self, status: int) -> None:
        self.ok += status == HTTPStatus.OK
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        if time.monotonic() >= self.deadline:
            self.transport.close()
        else:
            self.transport.write(self.request())


class _Caller(_Http):
    """A connection that carries one request at a time: :meth:`call` awaits its status."""

    def __init__(self) -> None:
        super().__init__()
        self._answer: asyncio.Future[int] | None = None

    async def call(self, request: bytes) -> int:
        assert self.transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self._answer

    def answered(self, status: int) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(ConnectionError("the server closed the connection"))


def webhook_request(host: str, body: bytes) -> bytes:
    """The bytes of one webhook POST carrying ``body``."""
    return (
        f"POST /webhook/alertmanager HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


_CONTENT_LENGTH = re.compile(rb"(?im)^content-length:\s*(\d+)")


async def hammer(
    url: str, seconds: float, concurrency: int, counter: Iterator[int]
) -> tuple[int, float]:
    """Answers that were 200, and the seconds they took, from ``concurrency`` closed-loop
    connections.

    Each sends the alert numbered by the next of ``counter`` (a new fingerprint for
    each new number) as soon as its last answer is in; a connection the server
    closes is opened again while time remains. A
    server that stops answering fails the run after ``ANSWER_GRACE`` more seconds.
    """
    address = url.removeprefix("http://")
    host, port = address.split(":")

    def request() -> bytes:
        return webhook_request(address, payload(next(counter)))

    loop = asyncio.get_running_loop()
    started = time.monotonic()
    deadline = started + seconds
    open_now: set[_Exchange] = set()

    async def connection() -> int:
        answered = 0
        while time.monotonic() < deadline:
            _, exchange = await loop.create_connection(
                lambda: _Exchange(request, deadline), host, int(port)
            )
            open_now.add(exchange)
            await exchange.closed
            open_now.discard(exchange)
            answered += exchange.ok
        return answered

    try:
        async with asyncio.timeout(seconds + ANSWER_GRACE):
            done = sum(await asyncio.gather(*(connection() for _ in range(concurrency))))
    except TimeoutError:
        for exchange in open_now:
            assert exchange.transport is not None
            exchange.transport.close()
        raise SystemExit(f"{url} stopped answering") from None
    return done, time.monotonic() - started


async def seed(url: str, numbers: range, concurrency: int) -> None:
    """Send each alert of ``numbers`` once, every answer a 200 (or the run fails)."""
    queue = iter(numbers)
    limit = aiohttp.ClientTimeout(total=ANSWER_GRACE)
    async with aiohttp.ClientSession(timeout=limit) as session:

        async def sender() -> None:
            for n in queue:
                async with session.post(f"{url}/webhook/alertmanager", data=payload(n)) as answer:
                    if answer.status != HTTPStatus.OK:
                        raise SystemExit(f"{url} answered {answer.status} to a seed alert")

        await asyncio.gather(*(sender() for _ in range(concurrency)))


ANSWER_GRACE = 30.0
"""Seconds a server may take past a run's end to answer what it was sent."""


class Served(NamedTuple):
    """A server the benchmark started: where it answers, and its process."""

    url: str
    pid: int


class Cpu(NamedTuple):
    """CPU seconds a process has used: its main thread (the event loop) and all its threads."""

    loop: float
    total: float


def cpu_of(pid: int) -> Cpu:
    """``pid``'s CPU time so far, user and system, from ``/proc`` (Linux)."""

    def seconds(stat: str) -> float:
        fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    return Cpu(seconds(f"/proc/{pid}/task/{pid}/stat"), seconds(f"/proc/{pid}/stat"))


TICKS = os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def serving(python: str, work: Path, config: str, db: str) -> AsyncIterator[Served]:
    """A ``remedy serve`` subprocess on its own store (a SQLite file or a URL)."""
    storage = db if "://" in db else f"sqlite:///{db}"
    port = free_port()
    served = work / f"served-{port}.yaml"
    served.write_text((work / config).read_text() + f"storage: '{storage}'\n")
    argv = [python, "-m", "receiver", "serve", "--config", served.name]
    proc = start([*argv, "--listen", f"127.0.0.1:{port}"], work)
    try:
        await wait_up(f"http://127.0.0.1:{port}")
        yield Served(f"http://127.0.0.1:{port}", proc.pid)
    finally:
        stop(proc)


@contextlib.asynccontextmanager
async def postgres_schema(server: str, name: str = "remedy") -> AsyncIterator[str]:
    """A storage URL on a fresh schema of ``server``, dropped afterwards."""
    schema = f"{name}_bench_{os.getpid()}"
    admin = await asyncpg.connect(server, timeout=5)
    try:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
        yield f"{server}{'&' if '?' in server else '?'}search_path={schema}"
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


async def hook_server(
    handler: Callable[[web.Request], Awaitable[web.Response]],
) -> tuple[web.AppRunner, str]:
    """A local HTTP endpoint the benchmark's rules call; its runner and its URL."""
    app = web.Application()
    app.router.add_post("/hook", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/hook"


REPEATED = 1000
"""Alerts the repeat run sends over and over (each a duplicate after its first time)..."""
REPEATED_FROM = 10**12  # ...numbered apart from every other run's new alerts

SERVER_CPUS = {1}  # the servers (bare and remedy alike) on one core...
CLIENT_CPUS = {0}  # ...and the load generator on another, so neither starves the other


def start(argv: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=None,
        preexec_fn=lambda: pin(SERVER_CPUS),  # noqa: PLW1509 - no threads exist yet here
    )


def pin(cpus: set[int]) -> None:
    """Run on ``cpus`` where the machine has them (a one-core machine shares its core).

    Against the CPUs this process was given at start, not its mask now: the
    benchmark pins itself to the client's core first, and a server started
    after that inherits the client's mask.
    """
    if cpus <= MACHINE_CPUS and len(MACHINE_CPUS) > 1:
        os.sched_setaffinity(0, cpus)


MACHINE_CPUS = frozenset(os.sched_getaffinity(0))


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


async def latency(
    url: str,
    rate: float,
    seconds: float,
    counter: itertools.count[int],
    arrivals: dict[str, float],
    *,
    idle: list[_Caller],
) -> tuple[list[float], list[float], int]:
    """Send at a fixed ``rate``: the times from send to the action reaching the recorder
    (none for the bare handler) and from send to a 200, each sorted, and how many answers
    were not 200. ``idle`` keeps the keep-alive connections from one call to the next."""
    address = url.removeprefix("http://")
    host, port = address.split(":")
    loop = asyncio.get_running_loop()
    sent: dict[str, float] = {}
    answers: list[float] = []
    failed = 0

    async def send(n: int, now: float) -> None:
        nonlocal failed
        caller = None
        while idle and caller is None:
            kept = idle.pop()
            caller = None if kept.closed.done() else kept  # the server may have closed it
        if caller is None:
            _, caller = await loop.create_connection(_Caller, host, int(port))
        try:
            status = await caller.call(webhook_request(address, payload(n, now)))
        except ConnectionError:
            failed += 1
            return
        if status == HTTPStatus.OK:
            answers.append(time.time() - now)
        else:
            failed += 1
        if not caller.closed.done():
            idle.append(caller)

    tasks = []
    interval = 1.0 / rate
    begin = time.monotonic()
    async with asyncio.timeout(seconds + ANSWER_GRACE):
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, begin + i * interval - time.monotonic()))
            now = time.time()
            sent[repr(now)] = now
            tasks.append(asyncio.create_task(send(next(counter), now)))
        await asyncio.gather(*tasks)
    if arrivals:
        await asyncio.sleep(2)  # the last actions' arrivals
    delays = sorted(arrivals[k] - sent[k] for k in sent if k in arrivals)
    return delays, sorted(answers), failed


async def decided(storage: str) -> int:
    """How many remediations in ``storage`` have reached their outcome."""
    states = ", ".join(f"'{state}'" for state in FINAL_STATES)
    sql = f"SELECT COUNT(*) FROM remediations WHERE state IN ({states})"
    if "://" in storage:
        conn = await asyncpg.connect(storage, timeout=5)
        try:
            return int(await conn.fetchval(sql))
        finally:
            await conn.close()
    with contextlib.closing(sqlite3.connect(f"file:{storage}?mode=ro", uri=True)) as conn:
        return int(conn.execute(sql).fetchone()[0])


class Measured(NamedTuple):
    """One throughput run of one server."""

    answered: float  # answered 200 per second
    decided: float  # remediations decided by a second after the load, per second of load
    cpu: Cpu  # the server's CPU seconds per answered request
    client: float  # the share of its core the load generator used


async def throughput(
    server: Served, storage: str, seconds: float, concurrency: int, counter: Iterator[int]
) -> Measured:
    """Load ``server`` for ``seconds`` (``storage`` empty: the bare handler, which decides
    nothing)."""
    await hammer(server.url, 1, concurrency, counter)  # warm-up
    await asyncio.sleep(1)
    before = await decided(storage) if storage else 0
    cpu, client = cpu_of(server.pid), time.process_time()
    answered, elapsed = await hammer(server.url, seconds, concurrency, counter)
    used, client = cpu_of(server.pid), time.process_time() - client
    await asyncio.sleep(1)
    after = await decided(storage) if storage else 0
    count = answered or 1
    per_request = Cpu((used.loop - cpu.loop) / count, (used.total - cpu.total) / count)
    return Measured(answered / elapsed, (after - before) / seconds, per_request, client / elapsed)


def percentile(values: list[float], fraction: float) -> float:
    """The value at ``fraction`` of sorted ``values`` (nearest rank)."""
    return values[max(int(len(values) * fraction + 0.5) - 1, 0)]


def matching() -> float:
    """Seconds to match a 1,000-alert batch against 1,000 rules."""
    from datetime import UTC, datetime  # noqa: PLC0415

    from rules import Alert, fingerprint_of  # noqa: PLC0415
    from rules.index import RuleSet  # noqa: PLC0415
    from rules.loader import load_rules_text  # noqa: PLC0415

    class Catalog:
        def action_names(self) -> list[str]:
            return ["noop"]

        def check_params(self, action: str, params: object) -> list[tuple[str, str]]:
            return []

    text = "rules:\n" + "".join(
        f"  - name: r{i}\n    match: {{alertname: Alert{i}, matchers: ['job=~\"web|api\"']}}\n"
        f"    target: 't{i}'\n    actions: [{{action: noop}}]\n"
        for i in range(1000)
    )
    ruleset: RuleSet = load_rules_text(text, "bench.yaml", Catalog())
    alerts = []
    for i in range(1000):
        labels = {"alertname": f"Alert{i % 1200}", "job": "web", "instance": f"h{i}"}
        alerts.append(
            Alert(
                "alertmanager",
                labels["alertname"],
                "firing",
                labels,
                {},
                datetime.now(UTC),
                None,
                fingerprint_of(labels),
            )
        )
    best = float("inf")
    for _ in range(5):
        begin = time.perf_counter()
        for alert in alerts:
            ruleset.match(alert)
        best = min(best, time.perf_counter() - begin)
    return best


@contextlib.asynccontextmanager
async def bare_server(python: str, work: Path) -> AsyncIterator[Served]:
    """The bare aiohttp handler, pinned like remedy."""
    async with plain_server([python, "-c", BARE_SERVER], work) as served:
        yield served


@contextlib.asynccontextmanager
async def floor_server(python: str, work: Path, storage: str, *mode: str) -> AsyncIterator[Served]:
    """The durable floor (``bench/floor.py``) on ``storage``, pinned like remedy."""
    argv = [python, str(ROOT / "bench" / "floor.py")]
    async with plain_server(argv, work, storage, *mode) as served:
        yield served


@contextlib.asynccontextmanager
async def plain_server(argv: list[str], work: Path, *args: str) -> AsyncIterator[Served]:
    """``argv PORT *args``: a server that takes its port first and answers the webhook."""
    port = free_port()
    proc = start([*argv, str(port), *args], work)
    try:
        await wait_up(f"http://127.0.0.1:{port}")
        yield Served(f"http://127.0.0.1:{port}", proc.pid)
    finally:
        stop(proc)


FLOORS = {
    "floor": "durable floor, no match",
    "floor_dry": "durable floor, every alert matches",
    "floor_pg": "durable floor, PostgreSQL, all match",
}
"""bench/floor.py's runs: about the least a durable, audited ingest does in each case."""
FLOOR_OF = {"nomatch": "floor", "dry": "floor_dry", "pg": "floor_pg"}
"""The floor each remedy run is also compared with."""
LABELS = {
    "nomatch": "no rule matches",
    "dry": "every alert matches",
    "repeat": "repeats, a rule matches",
    "pg": "PostgreSQL, all match",
    "live": "live http.request",
}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of every throughput run, bare handler first in each (medians reported)",
    )
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="PostgreSQL server for the PostgreSQL run (a fresh schema); '' skips that run",
    )
    parser.add_argument(
        "--latency-rate",
        type=float,
        default=None,
        help="req/s for the latency run (default: half the rate a live rule's actions finish at)",
    )
    args = parser.parse_args()
    pin(CLIENT_CPUS)
    counter = itertools.count()
    python = sys.executable
    arrivals: dict[str, float] = {}

    async def record(request: web.Request) -> web.Response:
        body = await request.json()
        arrivals[body["sent"]] = time.time()
        return web.json_response({})

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        runner, hook = await hook_server(record)
        (work / "rules.yaml").write_text(RULES.format(url=hook))
        (work / "live.yaml").write_text(
            "dry_run: false\nrules: [rules.yaml]\nlog_level: warning\n"
            "guards: {max_concurrent: 32}\n"
        )
        (work / "dry.yaml").write_text("dry_run: true\nrules: [rules.yaml]\nlog_level: warning\n")
        (work / "nomatch.yaml").write_text("dry_run: true\nlog_level: warning\n")
        (work / "pg.yaml").write_text((work / "dry.yaml").read_text())
        (work / "repeat.yaml").write_text((work / "dry.yaml").read_text())
        # Every server runs through all rounds (idle while another is measured): the
        # machine's speed drifts over seconds, so each round's ratios share one baseline.
        answered: dict[str, list[float]] = {name: [] for name in ["bare", *FLOORS, *LABELS]}
        decided: dict[str, list[float]] = {name: [] for name in LABELS}
        cpu: dict[str, list[Cpu]] = {name: [] for name in ["bare", *FLOORS, *LABELS]}
        client = 0.0  # the busiest the load generator's core was
        try:
            async with contextlib.AsyncExitStack() as servers:
                running = {"bare": await servers.enter_async_context(bare_server(python, work))}
                floors: dict[str, tuple[str, ...]] = {"floor": (str(work / "floor.db"),)}
                floors["floor_dry"] = (str(work / "floor_dry.db"), "match")
                if args.postgres:
                    schema = postgres_schema(args.postgres, "floor")
                    floors["floor_pg"] = (await servers.enter_async_context(schema), "match")
                for name, floor_args in floors.items():
                    running[name] = await servers.enter_async_context(
                        floor_server(python, work, *floor_args)
                    )
                stores = {
                    name: str(work / f"{name}.db") for name in ("nomatch", "dry", "repeat", "live")
                }
                if args.postgres:
                    stores["pg"] = await servers.enter_async_context(postgres_schema(args.postgres))
                for name, storage in stores.items():
                    running[name] = await servers.enter_async_context(
                        serving(python, work, f"{name}.yaml", storage)
                    )
                # What an Alertmanager HA peer sends every replica: the same alerts again.
                # Each is stored first (a dry-run rule decides it once); the runs only
                # repeat them.
                numbers = range(REPEATED_FROM, REPEATED_FROM + REPEATED)
                await seed(running["repeat"].url, numbers, args.concurrency)
                repeats = itertools.cycle(numbers)
                for _ in range(args.rounds):
                    for name, server in running.items():
                        run = await throughput(
                            server,
                            stores.get(name, ""),
                            args.seconds,
                            args.concurrency,
                            repeats if name == "repeat" else counter,
                        )
                        answered[name].append(run.answered)
                        cpu[name].append(run.cpu)
                        if name == "bare":  # whether the baseline is the client's
                            client = max(client, run.client)
                        if name in LABELS:
                            decided[name].append(run.decided)
            # The rounds left this process a large heap: its own collections would delay
            # the sends and the recorder's clock, and count against remedy.
            arrivals.clear()
            gc.collect()
            gc.freeze()
            rate = args.latency_rate or statistics.median(decided["live"]) / 2
            # What the client and loopback cost: a server that does nothing but answer.
            async with bare_server(python, work) as served:
                pool: list[_Caller] = []
                await latency(served.url, rate, 1, counter, {}, idle=pool)  # warm-up: connections
                _, bare_answers, _ = await latency(
                    served.url, rate, args.seconds, counter, {}, idle=pool
                )
            async with serving(python, work, "live.yaml", str(work / "latency.db")) as served:
                pool = []
                await latency(served.url, rate, 1, counter, arrivals, idle=pool)
                delays, answers, failed = await latency(
                    served.url, rate, args.seconds, counter, arrivals, idle=pool
                )
        finally:
            await runner.cleanup()

    match_seconds = matching()
    bare = answered["bare"]
    rounds = f"({args.rounds} rounds: medians, and the range of the ratios)"
    print(f"{'bare aiohttp handler':<40} {statistics.median(bare):6.0f}/s   {rounds}")
    for name, label in [*FLOORS.items(), *LABELS.items()]:
        if not answered[name]:
            continue
        for what, rates in (("", answered[name]), ("  ...decided within 1 s", decided.get(name))):
            if rates is None or (what and name in ("nomatch", "repeat")):  # nothing to decide
                continue
            ratios = sorted(r / b for r, b in zip(rates, bare, strict=True))
            spread = f"{ratios[0]:.2f}-{ratios[-1]:.2f}"
            title = what or (label if name in FLOORS else f"remedy ingest, {label}")
            # Each round's remedy against the same round's floor, as with the bare handler
            # (the floor decides in its ingest's commit: its answered rate is its decided rate).
            floor_rates = answered.get(FLOOR_OF.get(name, ""))
            of_floor = ""
            if floor_rates:
                shares = (r / f for r, f in zip(rates, floor_rates, strict=True))
                of_floor = f"   {statistics.median(shares):.2f} of the floor"
            print(
                f"{title:<40} {statistics.median(rates):6.0f}/s"
                f"   ratio {statistics.median(ratios):.2f} ({spread}){of_floor}"
            )
    print(
        "  (targets: >= 0.7 no match, >= 0.5 every alert matches, >= 0.4 on PostgreSQL;"
        " none for repeats;\n   the durable floor: about the least an ingest does that stores"
        " and audits each alert before its 200)"
    )
    print("server CPU per answered request (medians): event loop + other threads = all")
    for name, label in [("bare", "bare aiohttp handler"), *FLOORS.items(), *LABELS.items()]:
        if cpu[name]:
            loop = statistics.median(c.loop for c in cpu[name]) * 1e6
            total = statistics.median(c.total for c in cpu[name]) * 1e6
            print(f"  {label:<38} {loop:6.0f} + {total - loop:4.0f} = {total:5.0f} us")
    print(f"load generator against the bare handler: at most {client:.0%} of its core", end="")
    print("  (SATURATED: the baseline is the client's)" if client > 0.9 else "")
    for what, values, target in (
        ("received -> action", delays, 20),
        ("webhook answer", answers, 10),
    ):
        if values:
            p50, p99 = percentile(values, 0.5) * 1000, percentile(values, 0.99) * 1000
            print(f"{what + ' p50':<25} {p50:8.1f} ms at {rate:.0f} req/s, live rule")
            print(f"{what + ' p99':<25} {p99:8.1f} ms   (target <= {target} ms)")
    p50, p99 = percentile(bare_answers, 0.5) * 1000, percentile(bare_answers, 0.99) * 1000
    print(f"bare handler answer p50/p99 {p50:.1f} / {p99:.1f} ms at that rate (client, loopback)")
    print(f"answers not 200           {failed:8d}")
    print(f"actions seen              {len(delays):8d} of {int(rate * args.seconds)}")
    print(f"1000 rules x 1000 alerts  {match_seconds * 1000:10.1f} ms   (target < 50 ms)")


if __name__ == "__main__":
    asyncio.run(main())
