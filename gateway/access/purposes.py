"""What each purpose of use opens (PRODUCT.md section 4): the rules about a
requester's purpose that decide whether an operation may run at all, before
any resource is decided. The consent engine (``consent.engine``) decides
each resource; these decide the operations that are not a resource's."""

from __future__ import annotations

from collections.abc import Set

from consent.model import Requester
from gateway.errors import Forbidden

COMPLIANCE = "HCOMPL"
DIRECT_CARE = "TREAT"


def require_compliance(requester: Requester, what: str) -> None:
    """``what`` (the audit log, ``$access-check``) is for compliance and
    audit: a token asked for with purpose HCOMPL."""
    if requester.purpose != COMPLIANCE:
        raise Forbidden(
            f"{what} is for compliance and audit: it needs a token asked for with purpose HCOMPL",
            code="GW-0612",
        )


def require_access_report(requester: Requester, registered_practices: Set[str]) -> None:
    """A person's access report is for auditors (HCOMPL) and for the GP
    practice the person is registered with, for their direct care (TREAT)."""
    if requester.purpose == COMPLIANCE:
        return
    if requester.purpose != DIRECT_CARE or requester.org_ods not in registered_practices:
        raise Forbidden(
            "a person's access report is for auditors (HCOMPL) and their registered GP practice",
            code="GW-0613",
        )
