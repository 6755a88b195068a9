"""``gateway clients ...`` and ``gateway token``: the registry and tokens
from the command line (PRODUCT.md section 6; the words are a contract that
operators' runbooks depend on)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import jwt

from gateway import keyfiles
from gateway.auth import keys
from gateway.auth.clients import (
    ClientLimits,
    ClientRegistration,
    ClientRegistry,
    RegistryError,
    new_registration,
)
from gateway.auth.exchange import ASSERTION_TYPE, OAuthError, exchange, record_first_use
from gateway.auth.tokens import TokenService, signing_key
from gateway.config import Settings
from gateway.store import Store

DEFAULT_URL = "http://127.0.0.1:8080"


class CommandError(Exception):
    """A clear message for the operator; the command exits non-zero."""


def _read_keys(path: str) -> list[dict[str, Any]]:
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return keys.read_public_keys(text)
    except keys.KeyProblem as exc:
        raise CommandError(f"{path}: {exc}") from None


class _NewKeys:
    """The public keys a command registers, and a private key to write once
    everything else has been checked (never overwriting a file)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.private_out: str | None = args.generate_key
        self._private: keys.PrivateKey | None = None
        if args.public_key:
            self.public = _read_keys(args.public_key)
            return
        if os.path.exists(args.generate_key):
            raise CommandError(
                f"{args.generate_key} exists; choose another file for the new private key"
            )
        self._private = keys.generate_private_key()
        self.public = [keys.to_jwk(self._private.public_key())]

    def write_private_key(self) -> None:
        if self._private is None or self.private_out is None:
            return
        try:
            descriptor = os.open(
                self.private_out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, keyfiles.SECRET_FILE_MODE
            )
        except FileExistsError:
            raise CommandError(f"{self.private_out} exists; nothing was registered") from None
        except OSError as exc:
            raise CommandError(f"cannot write {self.private_out}: {exc.strerror}") from None
        with os.fdopen(descriptor, "wb") as out:
            out.write(keys.private_pem(self._private))
        print(f"private key written to {self.private_out} (keep it secret)")


def _summary(client: ClientRegistration) -> str:
    status = "disabled" if client.disabled else "enabled"
    kids = ", ".join(f"{k['kid']} ({k['alg']})" for k in client.keys)
    return (
        f"{client.client_id}: {client.name}; {client.org_name} ({client.org_ods}, "
        f"{client.kind}); scopes {client.scopes}; keys {kids}; {status}"
    )


def clients(args: argparse.Namespace, store: Store) -> int:
    registry = ClientRegistry(store)
    try:
        if args.action == "add":
            if registry.get(args.client_id) is not None:
                raise CommandError(f"client {args.client_id!r} is already registered")
            fresh = _NewKeys(args)
            registration = new_registration(
                args.client_id,
                org_ods=args.org,
                org_name=args.org_name,
                kind=args.kind,
                scopes=args.scope,
                keys=fresh.public,
                name=args.name,
            )
            fresh.write_private_key()
            registry.add(registration)
            print(f"registered {_summary(registration)}")
        elif args.action == "list":
            for client in registry.all():
                print(_summary(client))
        elif args.action == "show":
            found = registry.get(args.client_id)
            if found is None:
                raise CommandError(f"no client {args.client_id!r} is registered")
            print(json.dumps(json.loads(found.to_json()), indent=2))
        elif args.action == "disable":
            print(f"disabled {_summary(registry.disable(args.client_id))}")
        elif args.action == "enable":
            print(f"enabled {_summary(registry.enable(args.client_id))}")
        elif args.action == "limits":
            print(_limits(registry, args))
        elif args.action == "rotate-key":
            if registry.get(args.client_id) is None:
                raise CommandError(f"no client {args.client_id!r} is registered")
            fresh = _NewKeys(args)
            fresh.write_private_key()
            changed = registry.rotate_key(args.client_id, fresh.public, tuple(args.retire))
            print(f"keys now {_summary(changed)}")
    except RegistryError as exc:
        raise CommandError(str(exc)) from None
    return 0


def _limits(registry: ClientRegistry, args: argparse.Namespace) -> str:
    """Set the client's own limits where options name them (``--reset``
    first drops them all), and say what applies now: its own, else the
    deployment's defaults (this environment's ``GATEWAY_CLIENT_*``)."""
    found = registry.get(args.client_id)
    if found is None:
        raise CommandError(f"no client {args.client_id!r} is registered")
    own = ClientLimits() if args.reset else found.limits
    changes = {
        name: value
        for name in ("concurrency", "rate", "burst")
        if (value := getattr(args, name)) is not None
    }
    if changes or args.reset:
        found = registry.set_limits(args.client_id, replace(own, **changes))
    defaults = Settings.from_env()
    fallback = {
        "concurrency": defaults.client_concurrency,
        "rate": defaults.client_rate,
        "burst": defaults.client_burst,
    }
    parts = []
    for name in ("concurrency", "rate", "burst"):
        value = getattr(found.limits, name)
        shown = fallback[name] if value is None else value
        text = "no limit" if shown == 0 else f"{shown:g}"
        parts.append(f"{name} {text} ({'default' if value is None else 'its own'})")
    return f"{found.client_id}: {'; '.join(parts)}; per worker process"


def client_assertion(
    client_id: str, private_key: keys.PrivateKey, audience: str, kid: str, now: int
) -> str:
    """A SMART Backend Services client assertion, valid for five minutes."""
    return jwt.encode(
        {
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "exp": now + 300,
            "iat": now,
            "jti": str(uuid.uuid4()),
        },
        private_key,
        algorithm=keys.algorithm_for(private_key),
        headers={"kid": kid, "typ": "JWT"},
    )


def _kid_for(client: ClientRegistration | None, private_key: keys.PrivateKey) -> str:
    """The kid the registration gives this key (a JWKS may name its own),
    else the key's thumbprint."""
    mine = keys.to_jwk(private_key.public_key())
    members = ("n", "e") if mine["kty"] == "RSA" else ("crv", "x", "y")
    for registered in client.keys if client is not None else ():
        if all(registered.get(m) == mine[m] for m in members):
            return str(registered["kid"])
    return str(mine["kid"])


def _post_form(url: str, form: dict[str, str]) -> dict[str, Any]:
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return dict(json.loads(answer.read()))
    except urllib.error.HTTPError as exc:
        try:
            problem = json.loads(exc.read())
            detail = f"{problem.get('error')}: {problem.get('error_description')}"
        except ValueError:
            detail = f"HTTP {exc.code}"
        raise CommandError(f"the token endpoint refused: {detail}") from None
    except urllib.error.URLError as exc:
        raise CommandError(f"cannot reach {url}: {exc.reason}") from None


def token(args: argparse.Namespace, store: Store | None, settings: Settings) -> int:
    try:
        keyfiles.warn_if_exposed(Path(args.key))
        private_key = keys.load_private_key(Path(args.key).read_bytes())
    except OSError as exc:
        raise CommandError(f"cannot read {args.key}: {exc.strerror}") from None
    except keys.KeyProblem as exc:
        raise CommandError(f"{args.key}: {exc}") from None
    client = ClientRegistry(store).get(args.client) if store is not None else None
    scope = args.scope or (str(client.scopes) if client is not None else None)
    if not scope:
        raise CommandError("give --scope (the client's registration could not be read)")
    now = int(time.time())
    kid = _kid_for(client, private_key)
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "scope": scope,
    }
    if args.purpose:
        form["purpose_of_use"] = args.purpose
    if args.reason:
        form["break_glass_reason"] = args.reason
    if args.url:
        token_url = args.url.rstrip("/").removesuffix("/fhir") + "/auth/token"
        form["client_assertion"] = client_assertion(args.client, private_key, token_url, kid, now)
        answer = _post_form(token_url, form)
    else:
        # The same exchange the server runs, against the same database and key.
        if store is None:
            raise CommandError("no database to issue a token from; give --url")
        base = (settings.base_url or DEFAULT_URL).removesuffix("/fhir")
        token_url = base + "/auth/token"
        form["client_assertion"] = client_assertion(args.client, private_key, token_url, kid, now)
        service = TokenService(signing_key(store), settings.token_lifetime_s)
        try:
            answer = exchange(
                {name: [value] for name, value in form.items()},
                token_urls=[token_url],
                client_for=ClientRegistry(store).get,
                first_use=lambda client_id, jti, exp: record_first_use(
                    store, client_id, jti, exp, now
                ),
                tokens=service,
                now=now,
            )
        except OAuthError as exc:
            raise CommandError(f"{exc.error}: {exc.description}") from None
    print(answer["access_token"])
    print(
        f"token for {args.client}: scope {answer.get('scope')}, purpose "
        f"{answer.get('purpose_of_use')}, expires in {answer.get('expires_in')} s",
        file=sys.stderr,
    )
    return 0


def token_from(
    url: str, client_id: str, key_path: str, scope: str, purpose: str | None
) -> Callable[[], str]:
    """A source of access tokens from the gateway at ``url`` for a client
    holding the key at ``key_path``: a token is asked for when the last is
    within a minute of expiring, so a long export's polling keeps working."""
    try:
        keyfiles.warn_if_exposed(Path(key_path))
        private_key = keys.load_private_key(Path(key_path).read_bytes())
    except OSError as exc:
        raise CommandError(f"cannot read {key_path}: {exc.strerror}") from None
    except keys.KeyProblem as exc:
        raise CommandError(f"{key_path}: {exc}") from None
    token_url = url.rstrip("/").removesuffix("/fhir") + "/auth/token"
    kid = _kid_for(None, private_key)
    held: dict[str, Any] = {"token": "", "until": 0.0}

    def current() -> str:
        now = time.time()
        if now < held["until"]:
            return str(held["token"])
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "scope": scope,
            "client_assertion": client_assertion(client_id, private_key, token_url, kid, int(now)),
        }
        if purpose:
            form["purpose_of_use"] = purpose
        answer = _post_form(token_url, form)
        held["token"] = answer["access_token"]
        held["until"] = now + float(answer.get("expires_in", 300)) - 60
        return str(held["token"])

    return current
