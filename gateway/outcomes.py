"""The one place where error kinds become HTTP statuses and OperationOutcomes.

https://hl7.org/fhir/R4/operationoutcome.html. Used by the HTTP layer for
responses and by batch processing for per-entry outcomes.
"""

from __future__ import annotations

from typing import Any

from gateway import errors

STATUS: dict[type[errors.GatewayError], int] = {
    errors.InvalidRequest: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.MethodNotAllowed: 405,
    errors.NotAcceptable: 406,
    errors.Conflict: 409,
    errors.Gone: 410,
    errors.PreconditionFailed: 412,
    errors.PayloadTooLarge: 413,
    errors.UriTooLong: 414,
    errors.UnsupportedMediaType: 415,
    errors.HeadersTooLarge: 431,
    errors.Unprocessable: 422,
    errors.TooManyRequests: 429,
    errors.StoreUnavailable: 503,
    errors.AuditFailure: 500,
    errors.ExportFailed: 500,
}

REASON = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    410: "Gone",
    412: "Precondition Failed",
    413: "Payload Too Large",
    414: "URI Too Long",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def status_of(error: errors.GatewayError) -> int:
    for kind in type(error).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 500


def status_line(status: int) -> str:
    """``"404 Not Found"``, as Bundle.entry.response.status wants it."""
    return f"{status} {REASON.get(status, '')}".rstrip()


def operation_outcome(error: errors.GatewayError) -> dict[str, Any]:
    issues = []
    for issue in error.issues:
        entry: dict[str, Any] = {
            "severity": issue.severity,
            "code": issue.code,
            # details says what went wrong as a whole (with the entry, for a
            # Bundle); diagnostics says what is wrong at this issue's element.
            "details": {"text": f"{error.code}: {error.message}"},
            "diagnostics": f"{error.code}: {issue.diagnostics}",
        }
        if issue.expression:
            entry["expression"] = list(issue.expression)
        issues.append(entry)
    return {"resourceType": "OperationOutcome", "issue": issues}


def unexpected() -> dict[str, Any]:
    """The OperationOutcome for a failure of the gateway's own (a bug), sent
    with 500. It says nothing of the failure: its details go to the log,
    tied to the response by the request id."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "fatal",
                "code": "exception",
                "diagnostics": "GW-0500: internal error; quote the X-Request-Id "
                "header to the gateway's operators",
            }
        ],
    }


def information(message: str, code: str = "informational") -> dict[str, Any]:
    """An OperationOutcome that reports success (``Prefer: return=OperationOutcome``)."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "information", "code": code, "diagnostics": message}],
    }
