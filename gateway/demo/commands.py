"""``gateway demo`` (make the synthetic London, print a command per user
story, serve) and ``gateway demo generate`` (only write its source files)."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from gateway.config import DEFAULT_DATABASE_URL, Settings
from gateway.demo import generate, launch, notify
from gateway.demo.receiver import Receiver
from gateway.store import Store

DEFAULT_PEOPLE = 1_000
DEFAULT_SEED = 2026
DEFAULT_DIRECTORY = Path("var/demo")
RECEIVED = "notifications.log"  # in the demo's directory: what its receiver was sent


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _people(text: str) -> int:
    count = int(text.replace(",", "").replace("_", ""))
    if count < 1:
        raise argparse.ArgumentTypeError("at least one person")
    return count


def add_commands(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="a synthetic London: generate, load, register clients, print a command per "
        "user story, serve",
    )
    demo.add_argument("--database-url", help="overrides GATEWAY_DATABASE_URL")
    demo.add_argument("--people", type=_people, default=DEFAULT_PEOPLE)
    demo.add_argument("--seed", type=int, default=DEFAULT_SEED)
    demo.add_argument(
        "--dir", type=Path, default=DEFAULT_DIRECTORY, help="source files, keys (default var/demo)"
    )
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument("--workers", type=int, default=1)
    demo.add_argument(
        "--no-serve", action="store_true", help="prepare everything and print the stories only"
    )
    actions = demo.add_subparsers(dest="action")
    writer = actions.add_parser("generate", help="only write the source files (no database)")
    writer.add_argument("--people", type=_people, default=DEFAULT_PEOPLE)
    writer.add_argument("--seed", type=int, default=DEFAULT_SEED)
    writer.add_argument("--out", type=Path, default=DEFAULT_DIRECTORY)
    writer.add_argument(
        "--today", type=_day, default=None, help="the day dates count back from (default today)"
    )


def run(
    args: argparse.Namespace,
    settings: Settings,
    open_store: Callable[[Settings], Store],
    serve: Callable[[], int],
) -> int:
    if args.action == "generate":
        return generate.main(args.out, args.people, args.seed, args.today or date.today())
    started = time.monotonic()
    store = open_store(settings)
    try:
        prepared = launch.prepare(
            store, settings.database_url, args.dir, args.people, args.seed, date.today()
        )
    finally:
        store.close()
    took = time.monotonic() - started
    counts = prepared.manifest.counts
    print(
        f"\nA synthetic London of {counts.get('people', 0):,} people is ready "
        f"({took:,.1f} s; source files and client keys in {args.dir}/)."
    )
    rejected = sum(len(r.rejections) for r in prepared.reports.values())
    if prepared.reports:
        print(
            f"{rejected} source records were rejected, as planted ({args.dir}/manifest.json "
            "lists the defects; `gateway load --rejections FILE` writes them as CSV)."
        )
    base = f"http://{args.host}:{args.port}"
    database = None if settings.database_url == DEFAULT_DATABASE_URL else settings.database_url
    received = args.dir / RECEIVED if notify.ready(args.dir, prepared.manifest) else None
    print(f"\nThe gateway serves {base}/fhir. Try, in another terminal, from this directory:\n")
    for story in launch.stories(prepared, base, database, received):
        print(f"# {story.title}\n# ({story.about})\n    {story.command}\n")
    if received is None:
        print(
            f"(The files in {args.dir}/ were generated before the demo had notifications: "
            "`make clean` and run it again to see them.)\n"
        )
    if args.no_serve:
        return 0
    print("Ctrl-C stops the gateway.", flush=True)
    if received is None:
        return serve()
    return _serve_with_subscribers(args, settings, open_store, serve, prepared, received)


def _serve_with_subscribers(
    args: argparse.Namespace,
    settings: Settings,
    open_store: Callable[[Settings], Store],
    serve: Callable[[], int],
    prepared: launch.Prepared,
    received: Path,
) -> int:
    """Serve, with the demo's receiver listening on loopback and, once the
    gateway is up, a care home and a council subscribed to it and an
    admission and discharge loaded (``notify``); both stop with the demo."""
    listening = f"http://{_loopback(args.host)}:{args.port}"
    receiver = Receiver(received, f"{listening}/documents/jwks.json", say=_say)
    receiver.start()
    # The receiver is on this host, which the gateway calls only when told
    # to: this process's server only, never a deployment's.
    os.environ["GATEWAY_NOTIFY_ALLOW_LOOPBACK"] = "1"
    notify.start(
        args.dir, prepared.manifest, listening, receiver, lambda: open_store(settings), _say
    )
    try:
        return serve()
    finally:
        receiver.stop()


def _loopback(host: str) -> str:
    """Where this host reaches a server bound to ``host``."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _say(line: str) -> None:
    print(line, flush=True)
