"""The gateway's errors: a few explicit kinds, mapped to HTTP in one place.

Every failure the domain can report is one of the classes below. Each carries a
stable message code (``GW-xxxx``) so that logs and clients can match on codes,
not prose, and optional FHIRPath-ish element paths for validation issues. The
HTTP layer (``gateway.http.outcomes``) is the only place that turns them into
status codes and OperationOutcome resources.

    GatewayError
    ├── InvalidRequest          400  the request is malformed or the resource invalid
    ├── Unauthorized            401  no usable credentials
    ├── Forbidden               403  credentials fine, the interaction is not allowed
    ├── NotFound                404  no such resource (or one the requester may not see)
    ├── MethodNotAllowed        405  the interaction is not supported for this type
    ├── NotAcceptable           406  the client asked for a format we do not produce
    ├── Conflict                409  a concurrent write or a duplicate
    ├── Gone                    410  the resource was deleted
    ├── PreconditionFailed      412  If-Match did not match, or a conditional matched many
    ├── PayloadTooLarge         413  the body is over the configured limit
    ├── UriTooLong              414  the URL is over the configured limit
    ├── UnsupportedMediaType    415  the body is not FHIR JSON
    ├── HeadersTooLarge         431  the request's headers are over the configured limit
    ├── Unprocessable           422  valid FHIR that breaks a business rule
    │   └── TooCostly           422  a well-formed request whose work ran past its budget
    ├── TooManyRequests         429  the client is over one of its limits (Retry-After)
    └── StoreUnavailable        503  the database cannot be reached
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Issue:
    """One problem to report: an OperationOutcome.issue in domain terms."""

    code: str  # FHIR IssueType code: invalid, structure, required, value, not-found, ...
    diagnostics: str
    expression: tuple[str, ...] = ()
    severity: str = "error"


@dataclass
class GatewayError(Exception):
    """Base class: a message code, a human message and the issues behind it."""

    message: str
    code: str = "GW-0000"
    issues: list[Issue] = field(default_factory=list)
    issue_type: str = "processing"

    def __post_init__(self) -> None:
        super().__init__(self.message)
        if not self.issues:
            self.issues = [Issue(code=self.issue_type, diagnostics=self.message)]

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass
class InvalidRequest(GatewayError):
    issue_type: str = "invalid"


@dataclass
class Unauthorized(GatewayError):
    issue_type: str = "login"
    # RFC 6750 section 3.1: "invalid_token" when a token was sent and refused.
    bearer_error: str | None = None


@dataclass
class Forbidden(GatewayError):
    issue_type: str = "forbidden"


@dataclass
class NotFound(GatewayError):
    issue_type: str = "not-found"


@dataclass
class MethodNotAllowed(GatewayError):
    issue_type: str = "not-supported"


@dataclass
class NotAcceptable(GatewayError):
    issue_type: str = "not-supported"


@dataclass
class Conflict(GatewayError):
    issue_type: str = "conflict"


@dataclass
class Gone(GatewayError):
    issue_type: str = "deleted"


@dataclass
class PreconditionFailed(GatewayError):
    issue_type: str = "conflict"


@dataclass
class PayloadTooLarge(GatewayError):
    issue_type: str = "too-long"


@dataclass
class UriTooLong(GatewayError):
    issue_type: str = "too-long"


@dataclass
class HeadersTooLarge(GatewayError):
    issue_type: str = "too-long"


@dataclass
class UnsupportedMediaType(GatewayError):
    issue_type: str = "not-supported"


@dataclass
class Unprocessable(GatewayError):
    issue_type: str = "business-rule"


@dataclass
class TooCostly(Unprocessable):
    """The request's work ran past its budget (rows read, time:
    ``gateway.store.budget``) and was ended, nothing of it written. 422, not
    400: the request is well-formed, it is the work it asks for that is
    refused. Not 503 or 429 either: sent again unchanged it would cost as
    much again, so the client must narrow it; and a 5xx would count a
    client's costly question against the node (load balancers' outlier
    detection, the operators' error alerts)."""

    issue_type: str = "too-costly"


@dataclass
class TooManyRequests(GatewayError):
    """The client is over one of its limits (requests in flight, requests
    a second: ``gateway.http.limits``); ``retry_after`` is the whole seconds
    to wait, sent as ``Retry-After``."""

    issue_type: str = "throttled"
    retry_after: int = 1


@dataclass
class StoreUnavailable(GatewayError):
    issue_type: str = "transient"


@dataclass
class ExportFailed(GatewayError):
    """A bulk export ended in error: its status request says so (the Bulk
    Data specification answers a failed export with a 5xx and an outcome)."""

    code: str = "GW-0721"
    issue_type: str = "exception"


@dataclass
class AuditFailure(GatewayError):
    """The request's audit entry could not be written (fail closed)."""

    code: str = "GW-0900"
    issue_type: str = "exception"
