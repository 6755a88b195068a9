"""Who a source record is about, and the ids mapped resources get.

NHS numbers are normalised (spaces and dashes dropped) and checked with the
Modulus 11 algorithm (NHS Data Dictionary); numbers of one repeated digit
pass the arithmetic but are never issued, so they are refused too.

Ids are derived from the source organisation, the kind of record and its key
in the source, so loading the same record again writes to the same resource;
and they are keyed with a secret of the deployment, so that nobody outside
can compute one (a Patient's id from an NHS number, say, to probe whether
the person is on file). In two steps:

- the *basis* of an id is a UUID version 5 of ``SOURCE|kind|key`` in the
  gateway's namespace: anyone can compute it (it is what the ids were before
  they were keyed). It is never stored or shown; it is what the key of a
  record derived from another embeds (an Observation per person and item
  embeds the person's basis), so that every id stays a function of its own
  basis alone;
- the *id* is the basis keyed: the first 16 bytes of HMAC-SHA256(secret, the
  basis's 16 bytes), as a UUID of version 8 ("custom", RFC 9562) and the
  RFC 4122 variant.

The secret is the deployment's (the gateway keeps it in its database and
puts it in force with ``use_id_key`` before anything is mapped); without one,
``mapped_id`` refuses rather than make ids anyone could compute.
"""

from __future__ import annotations

import hashlib
import hmac
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
    # ASCII digits: Python's \d also takes other scripts' digits (fullwidth
    # ones, say), which int() reads but no system that receives the number
    # would, and which UK Core's NHS number check refuses.
    if not re.fullmatch(r"[0-9]{10}", digits):
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


class NoIdKey(RuntimeError):
    """A mapped id was asked for before the deployment's key was put in force."""


ID_KEY_BYTES = 32
_key: bytes | None = None


def use_id_key(key: bytes | None) -> None:
    """Key every mapped id this process makes with ``key`` (the deployment's
    secret, ``ID_KEY_BYTES`` random bytes); ``None``: none, and ``mapped_id``
    refuses. Process-wide on purpose, like the restricted code lists: every
    mapping of one deployment must give one record one id."""
    global _key
    if key is not None and len(key) < ID_KEY_BYTES:
        raise ValueError(f"an id key is {ID_KEY_BYTES} random bytes, not {len(key)}")
    _key = key


def id_basis(source_org: str, kind: str, key: str) -> str:
    """The basis of the id of ``kind`` record ``key`` of ``source_org``: what
    anyone can compute, never an id itself (see the module's docstring).
    A key that names another mapped record names it by its basis."""
    return str(uuid.uuid5(_NAMESPACE, f"{source_org.upper()}|{kind}|{key}"))


def keyed_id(basis: str) -> str:
    """The id of ``basis``, keyed with the deployment's secret. A store
    written before ids were keyed moves each such id ``basis`` to this."""
    if _key is None:
        raise NoIdKey(
            "mapped ids are keyed with the deployment's secret and none is in force: "
            "call mappings.identity.use_id_key first (the gateway does, from its store)"
        )
    digest = bytearray(hmac.digest(_key, uuid.UUID(basis).bytes, hashlib.sha256)[:16])
    digest[6] = (digest[6] & 0x0F) | 0x80  # version 8: custom
    digest[8] = (digest[8] & 0x3F) | 0x80  # variant 10: RFC 4122 / 9562
    return str(uuid.UUID(bytes=bytes(digest)))


def mapped_id(source_org: str, kind: str, key: str) -> str:
    """The id of the resource that ``kind`` record ``key`` of ``source_org``
    maps to: the same on every load of one deployment, and not computable
    without its key."""
    return keyed_id(id_basis(source_org, kind, key))
