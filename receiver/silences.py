"""A rule's ``silence:``: while remedy fixes an alert, people are not paged for it.

When the first step starts, an Alertmanager silence (API v2) matches the
alert's labels exactly, ``createdBy: remedy``, its comment naming the rule,
the remediation and its row on remedy's page. It is expired when the
remediation ends — verified or succeeded, and at once when it failed, timed
out or was ineffective, so that the failure pages people. None is left
behind: a reconciler expires every active remedy silence whose remediation
has ended (after a crash, or when another replica or a timer ended it).
A silence that cannot be made does not stop the remediation; both outcomes
are audited (``succeeded``/``failed`` with action ``alertmanager.silence``
or ``alertmanager.expire_silence`` and reason ``silence``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from datetime import timedelta
from typing import Any

import aiohttp
import structlog

from receiver.audit import AuditRecord
from receiver.clock import Clock, timestamp
from receiver.config import ApiServer
from receiver.store.base import OPEN_STATES, NotFound, Remediation, Store, StoreUnavailable
from receiver.transition import about

log = structlog.get_logger("remedy.silences")

CREATED_BY = "remedy"
RECONCILE_SECONDS = 5.0
CREATE = "alertmanager.silence"
EXPIRE = "alertmanager.expire_silence"
_MARK = re.compile(r"\[remedy remediation (\d+) of (\S+)\]")


class AlertmanagerError(Exception):
    """Alertmanager refused or could not be reached; the message is safe to show."""


class Alertmanager:
    """The silences API of ``backends.alertmanager`` on the service's shared session."""

    def __init__(self, session: aiohttp.ClientSession, config: ApiServer) -> None:
        self.session = session
        self.config = config

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            async with self.session.request(
                method,
                f"{self.config.url}/api/v2{path}",
                json=body,
                headers=dict(self.config.headers),
                timeout=aiohttp.ClientTimeout(total=self.config.timeout),
            ) as response:
                text = await response.text()
                if response.status >= 300:
                    raise AlertmanagerError(f"answered {response.status}: {text.strip()[:200]}")
                return await response.json(content_type=None) if text.strip() else None
        except TimeoutError:
            raise AlertmanagerError(f"no answer within {self.config.timeout:g}s") from None
        except aiohttp.ClientError as exc:
            raise AlertmanagerError(f"cannot reach Alertmanager: {type(exc).__name__}") from None
        except ValueError:
            raise AlertmanagerError("answered without JSON") from None

    async def create(self, silence: dict[str, Any]) -> str:
        """Post a silence; its id."""
        answer = await self._call("POST", "/silences", silence)
        if not isinstance(answer, dict) or not isinstance(answer.get("silenceID"), str):
            raise AlertmanagerError("answered without a silenceID")
        return str(answer["silenceID"])

    async def expire(self, silence_id: str) -> bool:
        """Expire a silence; ``False`` when it had already ended (nothing to do)."""
        try:
            await self._call("DELETE", f"/silence/{silence_id}")
        except AlertmanagerError:
            found = await self._call("GET", f"/silence/{silence_id}")
            if isinstance(found, dict) and _state(found) == "expired":
                return False
            raise
        return True

    async def active_of_remedy(self) -> list[dict[str, Any]]:
        """The active silences remedy made."""
        found = await self._call("GET", "/silences")
        return [
            s
            for s in found or []
            if isinstance(s, dict)
            and s.get("createdBy") == CREATED_BY
            and _state(s) in ("active", "pending")
        ]


class Silences:
    """Makes, ends and reconciles the silences of remediations; what to audit about them."""

    def __init__(
        self, alertmanager: Alertmanager | None, store: Store, clock: Clock, page_url: str
    ) -> None:
        self.alertmanager = alertmanager
        self.store = store
        self.clock = clock
        self.page_url = page_url
        self._made: dict[int, str] = {}  # remediation -> its silence, made by this process
        self._task: asyncio.Task[None] | None = None

    async def open(self, rem: Remediation) -> AuditRecord | None:
        """Silence the remediation's alert as its first step starts; the audit record."""
        if rem.silence is None:
            return None
        if self.alertmanager is None:
            error = "backends.alertmanager is not configured: no silence"
            return about("failed", rem, action=CREATE, reason="silence", error=error)
        now = self.clock.now()
        labels = (rem.alert or {}).get("labels") or {}
        comment = str(rem.silence.get("comment") or "remedy is remediating this alert")
        body = {
            "matchers": [
                {"name": k, "value": str(v), "isRegex": False, "isEqual": True}
                for k, v in sorted(labels.items())
            ],
            "startsAt": timestamp(now),
            "endsAt": timestamp(now + timedelta(seconds=float(rem.silence["duration"]))),
            "createdBy": CREATED_BY,
            "comment": f"{comment} — rule {rem.rule}, {self.page_url}#rem-{rem.id}"
            f" [remedy remediation {rem.id} of {self.page_url}]",
        }
        try:
            silence_id = await self.alertmanager.create(body)
        except AlertmanagerError as exc:
            log.warning("silence.not_created", remediation=rem.id, error=str(exc))
            return about("failed", rem, action=CREATE, reason="silence", error=str(exc))
        self._made[rem.id] = silence_id
        return about(
            "succeeded", rem, action=CREATE, reason="silence", result={"silence_id": silence_id}
        )

    async def close(self, rem: Remediation, state: str) -> AuditRecord | None:
        """Expire the remediation's silence once it is no longer open.

        Its id is known when this process made it; else (a timer, another
        replica, a restart) it is looked up in Alertmanager.
        """
        if rem.silence is None or state in OPEN_STATES or self.alertmanager is None:
            return None
        silence_id = self._made.pop(rem.id, None)
        if silence_id is None:
            silence_id = await self._find(rem)
        if silence_id is None:
            return None
        return await self._expire(rem, silence_id, state)

    async def _find(self, rem: Remediation) -> str | None:
        assert self.alertmanager is not None
        try:
            silences = await self.alertmanager.active_of_remedy()
        except AlertmanagerError as exc:
            log.warning("silence.not_found", remediation=rem.id, error=str(exc))
            return None
        for silence in silences:
            found = _MARK.search(str(silence.get("comment", "")))
            if found is not None and found.groups() == (str(rem.id), self.page_url):
                return str(silence.get("id"))
        return None

    def start(self, every: float = RECONCILE_SECONDS) -> None:
        """Reconcile now (a restart ends what a crash left) and every ``every`` seconds."""
        if self.alertmanager is not None:
            self._task = asyncio.create_task(self._run(every), name="remedy-silences")

    async def stop(self) -> None:
        """Stop reconciling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, every: float) -> None:
        while True:
            try:
                if records := await self.reconcile():
                    await self.store.record(records)
            except (AlertmanagerError, StoreUnavailable) as exc:
                log.warning("silence.reconcile_failed", error=str(exc))
            except Exception as exc:  # a bug must not end reconciling for good
                log.error("silence.reconcile_crashed", error_type=type(exc).__name__)
            await asyncio.sleep(every)

    async def reconcile(self) -> list[AuditRecord]:
        """Expire every active remedy silence whose remediation has ended (or is gone)."""
        if self.alertmanager is None:
            return []
        records = []
        for silence in await self.alertmanager.active_of_remedy():
            found = _MARK.search(str(silence.get("comment", "")))
            if found is None or found.group(2) != self.page_url:
                continue  # another remedy's (another external_url): not ours to end
            try:
                rem = await self.store.remediation(int(found.group(1)))
            except NotFound:
                continue
            if rem.state in OPEN_STATES or not _silences_alert(silence, rem):
                continue
            self._made.pop(rem.id, None)
            if (record := await self._expire(rem, str(silence.get("id")), rem.state)) is not None:
                records.append(record)
        return records

    async def _expire(self, rem: Remediation, silence_id: str, state: str) -> AuditRecord | None:
        assert self.alertmanager is not None
        try:
            if not await self.alertmanager.expire(silence_id):
                return None  # already over: nothing was done
        except AlertmanagerError as exc:
            log.warning("silence.not_expired", remediation=rem.id, error=str(exc))
            return about(
                "failed",
                rem,
                action=EXPIRE,
                reason="silence",
                error=f"silence {silence_id}: {exc}",
            )
        return about(
            "succeeded",
            rem,
            action=EXPIRE,
            reason="silence",
            result={"silence_id": silence_id, "remediation_state": state},
        )


def _state(silence: dict[str, Any]) -> object:
    status = silence.get("status")
    return status.get("state") if isinstance(status, dict) else None


def _silences_alert(silence: dict[str, Any], rem: Remediation) -> bool:
    """Whether the silence's matchers are exactly the remediation's alert labels."""
    labels = (rem.alert or {}).get("labels") or {}
    matchers = silence.get("matchers")
    if not isinstance(matchers, list):
        return False
    given = {
        (m.get("name"), m.get("value"))
        for m in matchers
        if isinstance(m, dict) and not m.get("isRegex") and m.get("isEqual", True)
    }
    return given == {(k, str(v)) for k, v in labels.items()} and len(given) == len(matchers)
