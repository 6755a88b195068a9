"""The ``gateway`` command: serve the API and look after its database.

Each subcommand is a small function over ``Settings``; later capabilities
(clients, tokens, audit, loading source records) add subcommands here.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
from collections.abc import Sequence

from gateway import __version__
from gateway.config import Settings
from gateway.search.index import ensure_current, reindex
from gateway.store import open_store


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(
                ipaddress.ip_address(info[4][0]).is_loopback
                for info in socket.getaddrinfo(host, None)
            )
        except OSError:
            return False


def _settings(args: argparse.Namespace) -> Settings:
    if getattr(args, "database_url", None):
        os.environ["GATEWAY_DATABASE_URL"] = args.database_url
    if getattr(args, "insecure_no_auth", False):
        os.environ["GATEWAY_INSECURE_NO_AUTH"] = "true"
    return Settings.from_env()


def _migrate(settings: Settings) -> list[int]:
    if settings.database_url.startswith("sqlite:///"):
        directory = os.path.dirname(settings.database_url.removeprefix("sqlite:///"))
        if directory:
            os.makedirs(directory, exist_ok=True)
    store = open_store(settings.database_url, pool_size=1)
    try:
        applied = store.migrate()
        reindexed = ensure_current(store)
        if reindexed is not None:
            print(f"search index rebuilt: {reindexed} resources", file=sys.stderr)
        return applied
    finally:
        store.close()


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    applied = _migrate(settings)
    print(f"schema migrations applied: {applied or 'none (up to date)'}")
    return 0


def cmd_reindex(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = open_store(settings.database_url, pool_size=1)
    try:
        store.migrate()
        print(f"search index rebuilt: {reindex(store)} resources")
    finally:
        store.close()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings(args)
    if settings.insecure_no_auth and not _is_loopback(args.host):
        print(
            f"refusing --insecure-no-auth on {args.host}: serving data without "
            "authentication is allowed on a loopback address only",
            file=sys.stderr,
        )
        return 2
    # Migrate once here, not in each worker, so workers never race on schema.
    _migrate(settings)
    if settings.insecure_no_auth:
        print(
            "WARNING: authentication is switched off (--insecure-no-auth); "
            "for local development only",
            file=sys.stderr,
        )
    uvicorn.run(
        "gateway.http.app:app_from_environment",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
        server_header=False,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway", description="FHIR R4 gateway for health and social care in London"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the FHIR API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("GATEWAY_WORKERS", "1")),
        help="worker processes (2 recommended on a 2-core machine)",
    )
    serve.add_argument("--database-url", help="overrides GATEWAY_DATABASE_URL")
    serve.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="DEVELOPMENT ONLY: serve data endpoints without authentication (loopback only)",
    )
    serve.set_defaults(func=cmd_serve)

    migrate = commands.add_parser("migrate", help="apply pending schema migrations")
    migrate.add_argument("--database-url", help="overrides GATEWAY_DATABASE_URL")
    migrate.set_defaults(func=cmd_migrate)

    rebuild = commands.add_parser("reindex", help="rebuild the search index of every live resource")
    rebuild.add_argument("--database-url", help="overrides GATEWAY_DATABASE_URL")
    rebuild.set_defaults(func=cmd_reindex)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result
