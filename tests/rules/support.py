"""Test helpers for the rule language: alerts and a small action catalog."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime

from rules import Alert, fingerprint_of, parse_duration
from rules.alert import Source, Status

HTTP_PARAMS = ("method", "url", "headers", "json", "expect_status", "timeout")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")


def make_alert(
    name: str = "ServiceDown",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    source: Source = "alertmanager",
    status: Status = "firing",
) -> Alert:
    """An alert whose ``alertname`` label is its name unless ``labels`` says otherwise."""
    all_labels = {"alertname": name, **(labels or {})}
    return Alert(
        source=source,
        name=name,
        status=status,
        labels=all_labels,
        annotations=dict(annotations or {}),
        starts_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        ends_at=None,
        fingerprint=fingerprint_of(all_labels),
    )


class HttpCatalog:
    """Knows ``http.request`` and checks its params' shape, like the real action does.

    ``require_http_url`` also rejects a url that does not start with http,
    which a wholly templated url (rendered as ``placeholder``) fails.
    """

    def __init__(self, require_http_url: bool = True) -> None:
        self.require_http_url = require_http_url
        self.checked: list[tuple[str, object]] = []

    def action_names(self) -> Collection[str]:
        return ["http.request", "docker.restart", "noop"]

    def check_params(self, action: str, params: object) -> list[tuple[str, str]]:
        self.checked.append((action, params))
        if action != "http.request":
            return []
        assert isinstance(params, Mapping)
        problems: list[tuple[str, str]] = [
            (str(key), "unknown parameter") for key in params if key not in HTTP_PARAMS
        ]
        if params.get("method", "POST") not in METHODS:
            problems.append(("method", f"expected one of {', '.join(METHODS)}"))
        url = params.get("url")
        if not isinstance(url, str):
            problems.append(("url", "is required"))
        elif self.require_http_url and not url.startswith("http"):
            problems.append(("url", f"expected an http:// or https:// URL, got {url!r}"))
        headers = params.get("headers", {})
        if not isinstance(headers, Mapping):
            problems.append(("headers", "expected a mapping"))
        else:
            problems.extend(
                (f"headers.{key}", "expected a string")
                for key, value in headers.items()
                if not isinstance(value, str)
            )
        status = params.get("expect_status", 200)
        codes = status if isinstance(status, list) else [status]
        for i, code in enumerate(codes):
            if isinstance(code, bool) or not isinstance(code, int):
                where = f"expect_status[{i}]" if isinstance(status, list) else "expect_status"
                problems.append((where, f"expected a status code, got {code!r}"))
        if "timeout" in params:
            try:
                parse_duration(params["timeout"])
            except ValueError as exc:
                problems.append(("timeout", str(exc)))
        return problems
