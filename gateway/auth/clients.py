"""The client registry: every system that may call the gateway is a backend
client of one organisation, registered with its scopes and public keys.

Stored in the ``auth_client`` table as JSON, one row per client. Clients are
disabled, never deleted, so that the audit log's references to them stay
meaningful.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import lru_cache
from typing import Any

import orjson

from gateway import fhirjson
from gateway.auth import registrations
from gateway.auth.registrations import RegistrationCache
from gateway.auth.scopes import ScopeError, Scopes
from gateway.store import AsyncReader, Store

_CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# ODS codes: 3 to 10 letters and digits (A81001, RKE, 8HE12...).
_ODS_CODE = re.compile(r"[A-Z0-9]{3,10}")


class OrgKind(StrEnum):
    GP_PRACTICE = "gp-practice"
    COUNCIL = "council"
    CARE_HOME = "care-home"
    HOSPITAL = "hospital"
    AMBULANCE = "ambulance"
    AUDITOR = "auditor"
    # An ICB's population health team: secondary use only, never direct care.
    ANALYTICS = "analytics"


class RegistryError(ValueError):
    """A registration that cannot be made or changed, and why."""


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """A client's own limits (``gateway.http.limits``), per worker process:
    requests in flight at once, requests a second sustained and in a burst.
    ``None`` is the deployment's default (``GATEWAY_CLIENT_*``); 0 is no
    limit. Stored only when one is set, so a registration from before them
    reads as all defaults."""

    concurrency: int | None = None
    rate: float | None = None
    burst: int | None = None

    def __post_init__(self) -> None:
        for name in ("concurrency", "rate", "burst"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or value < 0):
                raise RegistryError(f"limit {name} must be a number, 0 or more (0: no limit)")
        if self.concurrency is not None and not isinstance(self.concurrency, int):
            raise RegistryError("limit concurrency must be a whole number")
        if self.burst is not None and not isinstance(self.burst, int):
            raise RegistryError("limit burst must be a whole number")

    def to_dict(self) -> dict[str, int | float]:
        return {
            name: value
            for name in ("concurrency", "rate", "burst")
            if (value := getattr(self, name)) is not None
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ClientLimits:
        if not data:
            return _NO_LIMITS
        rate = data.get("rate")
        return cls(
            concurrency=data.get("concurrency"),
            rate=float(rate) if rate is not None else None,
            burst=data.get("burst"),
        )


_NO_LIMITS = ClientLimits()


@dataclass(frozen=True)
class ClientRegistration:
    client_id: str
    name: str
    org_ods: str
    org_name: str
    kind: OrgKind
    scopes: Scopes  # the most any of its tokens may carry
    keys: tuple[dict[str, Any], ...]  # public JWKs, each with kid and alg
    disabled: bool = False
    registered_at: str = field(default_factory=fhirjson.instant)
    limits: ClientLimits = _NO_LIMITS  # its own, else the deployment's defaults

    def key(self, kid: str) -> dict[str, Any] | None:
        return next((k for k in self.keys if k.get("kid") == kid), None)

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "client_id": self.client_id,
            "name": self.name,
            "org_ods": self.org_ods,
            "org_name": self.org_name,
            "kind": self.kind.value,
            "scopes": str(self.scopes),
            "keys": list(self.keys),
            "disabled": self.disabled,
            "registered_at": self.registered_at,
        }
        limits = self.limits.to_dict()
        if limits:
            data["limits"] = limits
        return orjson.dumps(data).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> ClientRegistration:
        data = orjson.loads(text)
        return cls(
            client_id=data["client_id"],
            name=data["name"],
            org_ods=data["org_ods"],
            org_name=data["org_name"],
            kind=OrgKind(data["kind"]),
            scopes=Scopes.parse(data["scopes"]),
            keys=tuple(data["keys"]),
            disabled=bool(data["disabled"]),
            registered_at=data["registered_at"],
            limits=ClientLimits.from_dict(data.get("limits")),
        )


def new_registration(
    client_id: str,
    *,
    org_ods: str,
    org_name: str,
    kind: str,
    scopes: str,
    keys: list[dict[str, Any]],
    name: str | None = None,
    limits: ClientLimits | None = None,
) -> ClientRegistration:
    """A checked registration: ``RegistryError`` says what is wrong."""
    if not _CLIENT_ID.fullmatch(client_id):
        raise RegistryError(
            f"client id {client_id!r}: 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    ods = org_ods.strip().upper()
    if not _ODS_CODE.fullmatch(ods):
        raise RegistryError(f"ODS code {org_ods!r}: 3-10 letters and digits (A81001, RKE)")
    if not org_name.strip():
        raise RegistryError("the organisation needs a name")
    try:
        org_kind = OrgKind(kind)
    except ValueError:
        raise RegistryError(
            f"organisation kind {kind!r}: one of {', '.join(k.value for k in OrgKind)}"
        ) from None
    try:
        granted = Scopes.parse(scopes)
    except ScopeError as exc:
        raise RegistryError(str(exc)) from exc
    if not granted:
        raise RegistryError("a client needs at least one scope")
    if not keys:
        raise RegistryError("a client needs at least one public key")
    return ClientRegistration(
        client_id=client_id,
        name=(name or client_id).strip(),
        org_ods=ods,
        org_name=org_name.strip(),
        kind=org_kind,
        scopes=granted,
        keys=tuple(keys),
        limits=limits or _NO_LIMITS,
    )


_SELECT = "SELECT registration FROM auth_client WHERE client_id = ?"


class ClientRegistry:
    """Registrations in a store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, client_id: str) -> ClientRegistration | None:
        # What no client id can be is not looked for: an id read from an
        # unverified assertion may hold a NUL or a lone surrogate, which
        # neither database takes as a parameter.
        if not _CLIENT_ID.fullmatch(client_id):
            return None
        rows = self._store.select(_SELECT, [client_id])
        return ClientRegistration.from_json(str(rows[0][0])) if rows else None

    def current(self, client_id: str) -> ClientRegistration | None:
        """The registration as authentication sees it: from this process's
        cache (``gateway.auth.registrations``) while that can be trusted."""
        if not _CLIENT_ID.fullmatch(client_id):
            return None
        return registrations.cache_of(self._store).get(client_id, lambda: self.get(client_id))

    def many(self, client_ids: Iterable[str]) -> dict[str, ClientRegistration]:
        """The registrations of ``client_ids`` that exist, by id, read at once."""
        wanted = sorted({c for c in client_ids if _CLIENT_ID.fullmatch(c)})
        if not wanted:
            return {}
        rows = self._store.select(
            "SELECT registration FROM auth_client WHERE client_id IN "
            f"({', '.join('?' for _ in wanted)})",
            wanted,
        )
        found = [_parsed(str(row[0])) for row in rows]
        return {registration.client_id: registration for registration in found}

    def all(self) -> list[ClientRegistration]:
        rows = self._store.select("SELECT registration FROM auth_client ORDER BY client_id", [])
        return [ClientRegistration.from_json(str(row[0])) for row in rows]

    def add(self, registration: ClientRegistration) -> None:
        with self._store.unit_of_work() as uow:
            added = uow.execute(
                "INSERT INTO auth_client (client_id, registration) VALUES (?, ?) "
                "ON CONFLICT (client_id) DO NOTHING",
                [registration.client_id, registration.to_json()],
            )
        if not added:
            raise RegistryError(f"client {registration.client_id!r} is already registered")
        registrations.forget(self._store, registration.client_id)

    def save(self, registration: ClientRegistration) -> None:
        """Add or replace (test and demo set-up)."""
        with self._store.unit_of_work() as uow:
            uow.execute(
                "INSERT INTO auth_client (client_id, registration) VALUES (?, ?) "
                "ON CONFLICT (client_id) DO UPDATE SET registration = excluded.registration",
                [registration.client_id, registration.to_json()],
            )
        registrations.forget(self._store, registration.client_id)

    def _change(self, client_id: str, **changes: Any) -> ClientRegistration:
        with self._store.unit_of_work() as uow:
            rows = uow.select(_SELECT, [client_id])
            if not rows:
                raise RegistryError(f"no client {client_id!r} is registered")
            changed = replace(ClientRegistration.from_json(str(rows[0][0])), **changes)
            if not changed.keys:
                raise RegistryError(f"client {client_id!r} would be left with no key")
            uow.execute(
                "UPDATE auth_client SET registration = ? WHERE client_id = ?",
                [changed.to_json(), client_id],
            )
        registrations.forget(self._store, client_id)
        return changed

    def disable(self, client_id: str) -> ClientRegistration:
        """Refuse the client's assertions and every token it already holds."""
        return self._change(client_id, disabled=True)

    def enable(self, client_id: str) -> ClientRegistration:
        return self._change(client_id, disabled=False)

    def set_limits(self, client_id: str, limits: ClientLimits) -> ClientRegistration:
        """Set the client's own limits (each ``None`` field: the default)."""
        return self._change(client_id, limits=limits)

    def rotate_key(
        self, client_id: str, new_keys: list[dict[str, Any]], retire: tuple[str, ...] = ()
    ) -> ClientRegistration:
        """Add keys, and drop the ones named by ``retire`` (kids): a client
        signs with the new key while the old one still works, then retires it."""
        current = self.get(client_id)
        if current is None:
            raise RegistryError(f"no client {client_id!r} is registered")
        unknown = [kid for kid in retire if current.key(kid) is None]
        if unknown:
            raise RegistryError(f"client {client_id!r} has no key {', '.join(unknown)}")
        kept = [k for k in current.keys if k["kid"] not in retire]
        kids = {k["kid"] for k in kept}
        added = [k for k in new_keys if k["kid"] not in kids]
        return self._change(client_id, keys=tuple(kept + added))


@lru_cache(maxsize=1024)
def _parsed(text: str) -> ClientRegistration:
    """Registrations by their stored text: read on every request, parsed once."""
    return ClientRegistration.from_json(text)


async def registration_async(
    cache: RegistrationCache, reader: AsyncReader, client_id: str
) -> ClientRegistration | None:
    """The registration as authentication sees it, on the event loop: from
    ``cache`` while that can be trusted, else as stored now (every request
    checks it, so a change such as disabling applies within a second on
    every node: ``gateway.auth.registrations``)."""

    async def read() -> ClientRegistration | None:
        rows = await reader.select(_SELECT, [client_id])
        return _parsed(str(rows[0][0])) if rows else None

    return await cache.get_async(client_id, read)
