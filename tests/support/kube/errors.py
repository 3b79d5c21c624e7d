"""``Status`` errors shaped as the real API server shapes them (NotFound, Conflict, Invalid...)."""

from __future__ import annotations

from collections.abc import Iterable

from tests.support.kube.resources import Obj, Resource


class ApiError(Exception):
    """A failure a real API server reports as a ``Status`` body with an HTTP code."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> Obj:
        """The ``Status`` object the server answers with."""
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if not self.reason:
            del body["reason"]  # omitempty
        if self.details is not None:
            body["details"] = self.details
        return body


def status_details(group: str, kind: str, name: str | None) -> Obj:
    details: Obj = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = kind
    return details


def not_found(res: Resource, name: str) -> ApiError:
    """``deployments.apps "web" not found``."""
    return ApiError(
        404,
        "NotFound",
        f'{res.qualified} "{name}" not found',
        status_details(res.group, res.plural, name),
    )


def conflict(res: Resource, name: str, why: str | None = None) -> ApiError:
    """``Operation cannot be fulfilled on deployments.apps "web": the object has been ...``."""
    why = why or (
        "the object has been modified; please apply your changes to the latest version "
        "and try again"
    )
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {res.qualified} "{name}": {why}',
        status_details(res.group, res.plural, name),
    )


def already_exists(res: Resource, name: str) -> ApiError:
    """``deployments.apps "web" already exists``."""
    return ApiError(
        409,
        "AlreadyExists",
        f'{res.qualified} "{name}" already exists',
        status_details(res.group, res.plural, name),
    )


def forbidden(
    res: Resource,
    name: str | None,
    *,
    user: str,
    verb: str,
    namespace: str | None,
    subresource: str | None = None,
) -> ApiError:
    """The RBAC denial, worded as the API server's authorization filter words it."""
    resource = f"{res.plural}/{subresource}" if subresource else res.plural
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    reason = f'User "{user}" cannot {verb} resource "{resource}" in API group "{res.group}" {scope}'
    subject = f'{res.qualified} "{name}"' if name else res.qualified
    return ApiError(
        403,
        "Forbidden",
        f"{subject} is forbidden: {reason}",
        status_details(res.group, res.plural, name),
    )


def invalid(res: Resource, name: str, errors: list[tuple[str, str]]) -> ApiError:
    """422 Invalid naming each field error, as ``field.ErrorList`` prints them."""
    printed = [f"{path}: {detail}" for path, detail in errors]
    joined = printed[0] if len(printed) == 1 else "[" + ", ".join(printed) + "]"
    causes = [
        {"reason": _cause_reason(detail), "message": detail, "field": path}
        for path, detail in errors
    ]
    details = status_details(res.group, res.kind, name)
    details["causes"] = causes
    return ApiError(422, "Invalid", f'{res.qualified_kind} "{name}" is invalid: {joined}', details)


def _cause_reason(detail: str) -> str:
    for prefix, reason in (
        ("Required value", "FieldValueRequired"),
        ("Forbidden", "FieldValueForbidden"),
        ("Duplicate value", "FieldValueDuplicate"),
    ):
        if detail.startswith(prefix):
            return reason
    return "FieldValueInvalid"


def bad_request(message: str) -> ApiError:
    """400 BadRequest: a request the server could not read."""
    return ApiError(400, "BadRequest", message)


def unprocessable(message: str) -> ApiError:
    """422 for a patch that decodes but does not apply (a failed JSON-patch ``test``)."""
    return ApiError(422, "Invalid", message)


def unsupported_media_type(accepted: Iterable[str]) -> ApiError:
    """415 for a body in a media type the endpoint does not take."""
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted),
    )


def path_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def method_not_allowed() -> ApiError:
    return ApiError(
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
    )
