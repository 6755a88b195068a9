"""The ``gateway`` command: serve the API and look after its database.

Each subcommand is a small function over ``Settings``; later capabilities
(clients, tokens, audit, loading source records) add subcommands here.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from consent.labels import BadCodeLists, load_code_lists, use_code_lists
from gateway import __version__
from gateway.access import optouts as commands_optouts
from gateway.access.index import ensure_current, reindex
from gateway.analytics import commands as commands_analytics
from gateway.audit import commands as commands_audit
from gateway.audit.checkpoint import NotTheLogsKey, signer_of_log
from gateway.audit.log import latest_checkpoint
from gateway.auth import commands as commands_auth
from gateway.auth.clients import OrgKind
from gateway.auth.tokens import Purpose
from gateway.config import Settings
from gateway.console import sessions as console_sessions
from gateway.delivery import commands as commands_subscriptions
from gateway.delivery import process as delivery_process
from gateway.demo import commands as commands_demo
from gateway.documents import commands as commands_documents
from gateway.errors import StoreUnavailable
from gateway.export.fetch import ExportClientError, fetch_export
from gateway.interactions.relabel import ensure_labelled, relabel
from gateway.loading import commands as commands_loading
from gateway.loading.ids import ensure_keyed_ids
from gateway.store import Store, open_store


def _settings(args: argparse.Namespace) -> Settings:
    if getattr(args, "database_url", None):
        os.environ["GATEWAY_DATABASE_URL"] = args.database_url
    settings = Settings.from_env()
    # Every writer labels alike: a load, an MLLP feed or a relabel run by a
    # command uses the code lists the server does.
    try:
        use_code_lists(
            load_code_lists(settings.restricted_codes) if settings.restricted_codes else None
        )
    except BadCodeLists as exc:
        raise commands_auth.CommandError(str(exc)) from None
    return settings


def _migrate(settings: Settings) -> list[int]:
    if settings.database_url.startswith("sqlite:///"):
        directory = os.path.dirname(settings.database_url.removeprefix("sqlite:///"))
        if directory:
            os.makedirs(directory, exist_ok=True)
    # bulk: a migration may rebuild the whole search index
    store = open_store(settings.database_url, pool_size=1, bulk=True)
    try:
        applied = store.migrate()
        moved = ensure_keyed_ids(store)
        if moved:
            print(f"mapped ids keyed: {moved} resources", file=sys.stderr)
        reindexed = ensure_current(store)
        if reindexed is not None:
            print(f"search index rebuilt: {reindexed} resources", file=sys.stderr)
        relabelled = ensure_labelled(store)
        if relabelled is not None:
            print(f"records relabelled: {relabelled}", file=sys.stderr)
        return applied
    finally:
        store.close()


# Pauses (seconds) between tries of ``serve``'s migration while the database
# cannot be used; the last repeats.
_SERVE_BACKOFF_S = (0.5, 1.0, 2.0, 4.0)


# glibc's malloc gives threads that allocate at once arenas of their own, up
# to eight per core, and memory freed in one arena is not reused by another.
# In a 10-minute soak (bench/soak.py, issue 30) one worker's arenas grew from
# 88 to 141 MiB while the rest of its memory stayed flat; with two arenas the
# larger worker ended at 216 MiB, not 274. A deployment can set its own.
_MALLOC_ARENA_MAX = "2"
_M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)


def _fewer_malloc_arenas() -> None:
    """At most ``_MALLOC_ARENA_MAX`` malloc arenas in this process (through
    glibc's ``mallopt``, where there is one) and in every process it starts
    (their environment), unless ``MALLOC_ARENA_MAX`` is set already."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    os.environ["MALLOC_ARENA_MAX"] = _MALLOC_ARENA_MAX
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, int(_MALLOC_ARENA_MAX))
    except (OSError, AttributeError):  # not glibc: its own allocator, its own rules
        pass


def _migrate_when_possible(settings: Settings) -> None:
    """``_migrate``, tried again with backoff for as long as the database
    cannot be used (unreachable, read-only, full), saying so each time:
    a server started during its database's outage waits for it rather
    than exiting. Ctrl-C ends the wait."""
    import time

    attempt = 0
    while True:
        try:
            _migrate(settings)
            if attempt:
                print("gateway serve: the database is usable; starting", file=sys.stderr)
            return
        except (StoreUnavailable, OSError) as exc:
            pause = _SERVE_BACKOFF_S[min(attempt, len(_SERVE_BACKOFF_S) - 1)]
            attempt += 1
            print(
                f"gateway serve: the database cannot be used yet (attempt {attempt}): {exc}; "
                f"trying again in {pause:g} s",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(pause)


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    applied = _migrate(settings)
    print(f"schema migrations applied: {applied or 'none (up to date)'}")
    return 0


def _bring_up_to_date(rebuild: Callable[[Store], int], told: str) -> Callable[..., int]:
    """A command that runs ``rebuild`` over the whole (migrated) store, on
    demand rather than on the next start, and says how many it did."""

    def command(args: argparse.Namespace) -> int:
        settings = _settings(args)
        store = open_store(settings.database_url, pool_size=1, bulk=True)
        try:
            store.migrate()
            print(told.format(rebuild(store)))
        finally:
            store.close()
        return 0

    return command


cmd_reindex = _bring_up_to_date(reindex, "search index rebuilt: {} resources")
cmd_relabel = _bring_up_to_date(relabel, "records relabelled: {}")


def _audit_key_refused(settings: Settings) -> str | None:
    """Why this node's audit key cannot sign on the store's log, if it
    cannot (``signer_of_log``): said once, before any worker starts."""
    try:
        store = open_store(settings.database_url, pool_size=1)
    except StoreUnavailable:
        return None  # the workers wait for the database, and check then
    try:
        signer_of_log(Path(settings.audit_key_path()), latest_checkpoint(store))
    except NotTheLogsKey as exc:
        return str(exc)
    except StoreUnavailable:
        return None
    finally:
        store.close()
    return None


def cmd_serve(args: argparse.Namespace) -> int:
    import faulthandler
    import shutil
    import tempfile

    import uvicorn

    from gateway.http.protocols import FhirHttpToolsProtocol

    faulthandler.enable()  # a fatal signal leaves its traceback in the log
    _fewer_malloc_arenas()  # before any thread or worker process starts
    settings = _settings(args)
    # Migrate once here, not in each worker, so workers never race on schema.
    _migrate_when_possible(settings)
    refused = _audit_key_refused(settings)
    if refused is not None:
        print(f"gateway serve: not started: {refused}", file=sys.stderr)
        return 2
    # Workers count into memory-mapped files of this run's own folder, which
    # /metrics adds up (gateway.metrics); one worker keeps its own registry.
    metrics_dir = None
    if args.workers > 1:
        metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    # Notifications are delivered, and bulk exports run, by a process of
    # their own (one per node).
    notifier = delivery_process.Supervised(settings)
    try:
        uvicorn.run(
            "gateway.http.app:app_from_environment",
            factory=True,
            # uvicorn's own, answering what it cannot parse as FHIR does.
            http=FhirHttpToolsProtocol,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_config=None,
            access_log=False,
            server_header=False,
        )
    finally:
        notifier.terminate()
        notifier.join(timeout=15)
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
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
    serve.set_defaults(func=cmd_serve)

    migrate = commands.add_parser("migrate", help="apply pending schema migrations")
    migrate.add_argument("--database-url", help="overrides GATEWAY_DATABASE_URL")
    migrate.set_defaults(func=cmd_migrate)

    rebuild = commands.add_parser("reindex", help="rebuild the search index of every live resource")
    rebuild.add_argument("--database-url", help="overrides GATEWAY_DATABASE_URL")
    rebuild.set_defaults(func=cmd_reindex)
    relabelling = commands.add_parser(
        "relabel",
        help="add the labels the restricted code lists in force call for to every live record",
    )
    relabelling.add_argument("--database-url", help="overrides GATEWAY_DATABASE_URL")
    relabelling.set_defaults(func=cmd_relabel)

    _add_client_commands(commands)
    commands_audit.add_commands(commands)
    commands_documents.add_commands(commands)
    commands_loading.add_commands(commands)
    commands_demo.add_commands(commands)
    commands.choices["demo"].set_defaults(func=cmd_demo)
    commands.choices["load"].set_defaults(func=on_store(commands_loading.run_load, bulk=True))
    commands.choices["matches"].set_defaults(func=on_store(commands_loading.run_matches))
    commands.choices["archived"].set_defaults(func=on_store(commands_loading.run_archived))
    commands_subscriptions.add_commands(commands)
    commands_optouts.add_commands(commands)
    commands.choices["opt-outs"].set_defaults(func=on_store(commands_optouts.run))
    commands.choices["subscriptions"].set_defaults(func=on_store(commands_subscriptions.run))
    mllp = commands.add_parser("mllp", help="receive a hospital's HL7 v2 ADT feed over MLLP")
    mllp.add_argument("--database-url", help="overrides GATEWAY_DATABASE_URL")
    mllp.add_argument("--source-org", required=True, help="the sending hospital's ODS code")
    mllp.add_argument("--host", default="127.0.0.1")
    mllp.add_argument("--port", type=int, default=2575)
    mllp.set_defaults(func=cmd_mllp)
    console = commands.add_parser("console", help="the auditors' web console")
    console.add_argument("--database-url", help="overrides GATEWAY_DATABASE_URL")
    console_actions = console.add_subparsers(dest="action", required=True)
    link = console_actions.add_parser(
        "login-link", help="print a one-time login link (10 minutes) for an auditor client"
    )
    link.add_argument("--client", required=True, help="the auditor's registered client id")
    link.add_argument(
        "--url", help="the gateway's address (default: GATEWAY_BASE_URL, else 127.0.0.1:8080)"
    )
    console.set_defaults(func=cmd_console)
    commands.choices["audit"].set_defaults(func=cmd_audit)
    # Analysis-ready views over a population health bulk export: needs no
    # database, so its commands run as they are (gateway/analytics/commands.py).
    analytics = commands_analytics.add_commands(commands)
    _add_analytics_export(analytics)
    return parser


def _add_analytics_export(analytics: Any) -> None:
    export = analytics.add_parser(
        "export",
        help="run a bulk export against a gateway as an analytics client and download it "
        "into a folder (the files and manifest.json) for `views` and `cohort`",
    )
    export.add_argument("--client", required=True, metavar="CLIENT_ID")
    export.add_argument("--key", required=True, metavar="PRIVATE_KEY_FILE")
    export.add_argument(
        "--url", required=True, metavar="URL", help="the gateway (its address, or its FHIR base)"
    )
    export.add_argument("--out", required=True, type=Path, help="the folder to write into")
    export.add_argument("--purpose", default="POPHLTH", choices=["POPHLTH", "HOPERAT", "HRESCH"])
    export.add_argument("--scope", default="system/*.rs", help='default: "system/*.rs"')
    export.add_argument("--type", help="_type: the types to export, comma-separated")
    export.add_argument("--since", help="_since: only what changed after this instant")
    export.add_argument("--project", help="the export project whose pseudonyms to use")
    level = export.add_mutually_exclusive_group()
    level.add_argument("--patients", action="store_true", help="Patient/$export")
    level.add_argument("--group", metavar="GROUP_ID", help="Group/[id]/$export")
    export.set_defaults(func=cmd_analytics_export)


def cmd_analytics_export(args: argparse.Namespace) -> int:
    """``gateway analytics export``: the client side of a bulk export."""
    params = [
        (name, value)
        for name, value in (("_type", args.type), ("_since", args.since), ("project", args.project))
        if value
    ]
    level = f"Group/{args.group}/" if args.group else "Patient/" if args.patients else ""
    try:
        token = commands_auth.token_from(args.url, args.client, args.key, args.scope, args.purpose)
        fhir_base = args.url.rstrip("/").removesuffix("/fhir") + "/fhir"
        manifest = fetch_export(fhir_base, token, args.out, params, level=level)
    except (commands_auth.CommandError, ExportClientError, httpx.HTTPError) as exc:
        print(f"gateway analytics export: {exc}", file=sys.stderr)
        return 1
    written = sum(int(output["count"]) for output in manifest["output"])
    print(f"{written:,} resources in {len(manifest['output'])} files under {args.out}")
    return 0


def _at_least_zero(kind: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type: a number of ``kind``, 0 or more."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"{text} is below 0 (0 is no limit)")
        return value

    return parse


def _add_client_commands(commands: Any) -> None:
    clients = commands.add_parser("clients", help="the registry of backend clients")
    clients.add_argument("--database-url", help="overrides GATEWAY_DATABASE_URL")
    actions = clients.add_subparsers(dest="action", required=True)

    add = actions.add_parser("add", help="register a backend client")
    add.add_argument("client_id", metavar="CLIENT_ID")
    add.add_argument("--org", required=True, metavar="ODS_CODE", help="its organisation's ODS code")
    add.add_argument("--org-name", required=True, metavar="NAME")
    add.add_argument("--kind", required=True, choices=[k.value for k in OrgKind])
    add.add_argument(
        "--scope",
        required=True,
        metavar="SCOPES",
        help='the most it may be granted, e.g. "system/*.rs"',
    )
    add.add_argument("--name", help="the client system's display name (default: its id)")
    _add_key_options(add)

    actions.add_parser("list", help="every registered client")
    for action, text in (
        ("show", "one client's registration"),
        ("disable", "refuse the client's assertions and tokens from now on"),
        ("enable", "accept a disabled client again"),
    ):
        one = actions.add_parser(action, help=text)
        one.add_argument("client_id", metavar="CLIENT_ID")

    limits = actions.add_parser(
        "limits",
        help="show or set the client's limits per worker process (docs/limits.md)",
        description="Without options, show the limits that apply to the client: its own, "
        "else the deployment's defaults (GATEWAY_CLIENT_*). 0 is no limit.",
    )
    limits.add_argument("client_id", metavar="CLIENT_ID")
    limits.add_argument(
        "--concurrency", type=_at_least_zero(int), metavar="N", help="requests in flight at once"
    )
    limits.add_argument(
        "--rate", type=_at_least_zero(float), metavar="R", help="requests a second, sustained"
    )
    limits.add_argument(
        "--burst", type=_at_least_zero(int), metavar="B", help="requests at once above the rate"
    )
    limits.add_argument(
        "--reset", action="store_true", help="drop its own limits first (back to the defaults)"
    )

    rotate = actions.add_parser("rotate-key", help="add a key, and retire old ones")
    rotate.add_argument("client_id", metavar="CLIENT_ID")
    _add_key_options(rotate)
    rotate.add_argument(
        "--retire", action="append", default=[], metavar="KID", help="drop this key (repeatable)"
    )
    clients.set_defaults(func=on_store(commands_auth.clients))

    token = commands.add_parser("token", help="print an access token for a registered client")
    token.add_argument("--client", required=True, metavar="CLIENT_ID")
    token.add_argument("--key", required=True, metavar="PRIVATE_KEY_FILE")
    token.add_argument("--scope", help="default: everything the client may be granted")
    token.add_argument("--purpose", choices=[p.value for p in Purpose])
    token.add_argument("--reason", help="the break-glass reason (with --purpose ETREAT)")
    token.add_argument(
        "--url",
        metavar="BASE_URL",
        help="ask this running gateway (default: the database directly)",
    )
    token.add_argument("--database-url", help="overrides GATEWAY_DATABASE_URL")
    token.set_defaults(func=cmd_token)


def _add_key_options(parser: argparse.ArgumentParser) -> None:
    key = parser.add_mutually_exclusive_group(required=True)
    key.add_argument(
        "--public-key", metavar="PEM_OR_JWKS_FILE", help="its public key: PEM, JWK or JWKS"
    )
    key.add_argument(
        "--generate-key",
        metavar="PRIVATE_KEY_OUT",
        help="make an ES384 key pair and write the private key to this new file",
    )


_ANY_RESOURCE = "SELECT 1 FROM resource_current LIMIT 1"


def _open_migrated(settings: Settings, *, bulk: bool = False) -> Store:
    """The store a command works on, migrated, with its key for mapped ids
    in force (and a store written before ids were keyed moved to them)
    before anything maps: a load, the demo, an MLLP feed. A new database is
    indexed by today's rules from its first write: that is recorded now, or
    the first ``serve`` after a ``load`` would rebuild everything the load
    had just indexed (and read it all for labels). ``bulk``: for a command
    that writes much (``open_store``)."""
    store = open_store(settings.database_url, pool_size=1, bulk=bulk)
    store.migrate()
    ensure_keyed_ids(store)
    if store.index_version() is None and not store.select(_ANY_RESOURCE, []):
        ensure_current(store)
        ensure_labelled(store)
    return store


def on_store(
    run: Callable[[argparse.Namespace, Store], int], *, bulk: bool = False
) -> Callable[[argparse.Namespace], int]:
    """A command that ``run``s on the store, opened (and migrated) for it
    and closed after; ``bulk`` for one that writes much (``open_store``)."""

    def command(args: argparse.Namespace) -> int:
        store = _open_migrated(_settings(args), bulk=bulk)
        try:
            return run(args, store)
        finally:
            store.close()

    return command


def cmd_demo(args: argparse.Namespace) -> int:
    return commands_demo.run(args, _settings(args), _open_migrated, lambda: cmd_serve(args))


def cmd_token(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        store: Store | None = _open_migrated(settings)
    except StoreUnavailable:
        if not args.url:
            raise
        store = None
    try:
        return commands_auth.token(args, store, settings)
    finally:
        if store is not None:
            store.close()


def cmd_mllp(args: argparse.Namespace) -> int:
    import asyncio

    from gateway import mllp

    settings = _settings(args)
    store = _open_migrated(settings)
    print(f"listening for {args.source_org.upper()} on {args.host}:{args.port}", flush=True)
    try:
        asyncio.run(mllp.serve(store, args.source_org, args.host, args.port))
    except KeyboardInterrupt:
        pass
    finally:
        store.close()
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = _open_migrated(settings)
    try:
        secret = console_sessions.mint_login_link(store, args.client)
    except console_sessions.NotAllowed as exc:
        raise commands_auth.CommandError(str(exc)) from None
    finally:
        store.close()
    base = args.url or (settings.base_url or "http://127.0.0.1:8080").removesuffix("/fhir")
    print(f"{base.rstrip('/')}/console/login?token={secret}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = _open_migrated(settings)
    try:
        return commands_audit.run(args, store, settings)
    finally:
        store.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except commands_auth.CommandError as exc:
        print(f"gateway {args.command}: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        print(f"gateway {args.command}: {exc.message}", file=sys.stderr)
        return 1
    return result
