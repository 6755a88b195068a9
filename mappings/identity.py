"""Who a source record is about, and the ids mapped resources get.

NHS numbers are normalised (spaces and dashes dropped) and checked with the
Modulus 11 algorithm (NHS Data Dictionary); numbers of one repeated digit
pass the arithmetic but are never issued, so they are refused too. Ids are
derived from the source organisation, the kind of record and its key in the
source, so loading the same record again writes to the same resource.
"""

from __future__ import annotations

import re
import uuid

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
_NAMESPACE = uuid.UUID("6f1c4a52-6d0b-4c55-9b53-2f1e3a9d8c10")  # the gateway's mappings
_SEPARATORS = re.compile(r"[\s-]")


class InvalidNhsNumber(ValueError):
    """Not a valid NHS number; the message says why."""


def nhs_number(raw: str) -> str:
    """The ten digits of a valid NHS number, or ``InvalidNhsNumber``."""
    digits = _SEPARATORS.sub("", raw)
    if not re.fullmatch(r"\d{10}", digits):
        raise InvalidNhsNumber(f"{raw!r} is not ten digits")
    if len(set(digits)) == 1:
        raise InvalidNhsNumber(f"{raw!r} is one digit repeated, which is never issued")
    total = sum(
        int(digit) * weight for digit, weight in zip(digits[:9], range(10, 1, -1), strict=True)
    )
    check = 11 - total % 11
    if check == 11:
        check = 0
    if check == 10 or check != int(digits[9]):
        raise InvalidNhsNumber(f"{raw!r} fails the Modulus 11 check")
    return digits


def mapped_id(source_org: str, kind: str, key: str) -> str:
    """The id of the resource that ``kind`` record ``key`` of ``source_org``
    maps to: the same on every load."""
    return str(uuid.uuid5(_NAMESPACE, f"{source_org.upper()}|{kind}|{key}"))
