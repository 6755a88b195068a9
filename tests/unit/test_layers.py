"""The layers of docs/architecture.md, enforced: every import in the four
packages runs down the layers, never up.

A small walk over each module's syntax tree (imports inside functions and
under ``TYPE_CHECKING`` count too) rather than a new dependency. The layers
are listed top to bottom; a module may import from its own group and from any
group in a lower layer. Groups that share a layer are written as
import-linter writes them: ``a | b`` are independent (neither imports the
other), ``a : b`` may import each other.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gateway", "consent", "mappings", "conformance")

LAYERS = (
    # The edges: only these know about HTTP, HTML, argv or sockets.
    "gateway.__main__ : gateway.cli : gateway.http : gateway.console : gateway.mllp",
    # The request's repository: the one way a request reaches what is below.
    "gateway.repository",
    # FHIR operations that need loading, documents or the client registry,
    # which interactions may not import; the synthetic London.
    "gateway.operations | gateway.demo",
    # Telling subscribers of care-pathway events, as consent decides for
    # each (their clients, the documents' signing key).
    "gateway.delivery",
    # Who is asking (above search: scopes narrow a parsed search); source
    # files and pushes; $summary and $red-bag; bulk export for secondary use.
    "gateway.auth | gateway.loading | gateway.documents | gateway.export",
    # Plain functions over a store: read, write, history, bundle, search,
    # told what the requester may do and see.
    "gateway.interactions",
    # The care-pathway events a write is, and the outbox they are kept in.
    "gateway.notifications",
    # One requester's decisions; the tamper-evident log.
    "gateway.access | gateway.audit | gateway.analytics",
    # ODS code to organisation name, kind and address, from what is on file.
    "gateway.directory",
    "gateway.search",
    "gateway.store",
    # Each subsystem's DDL, beside the code that queries its tables: the
    # migrations the store runs (gateway/store/_schema.py gathers them).
    # Data only, importing nothing but the renderer below, so the store can
    # import them without importing up its layers.
    "gateway.store.schema | gateway.auth.schema | gateway.loading.schema"
    " | gateway.notifications.schema | gateway.access.schema | gateway.audit.schema"
    " | gateway.export.schema | gateway.console.schema | gateway.documents.schema",
    # DDL written once for both databases, rendered for each.
    "gateway.store.ddl",
    # The kernel: error kinds and their outcomes, JSON, settings, logging,
    # key files, identifier systems, request integers, metrics; and the package
    # itself (its version).
    "gateway.errors : gateway.outcomes : gateway.fhirjson : gateway.config : gateway.logs"
    " : gateway.keyfiles : gateway.identifiers : gateway.integers : gateway.metrics"
    " : gateway.__init__",
    # Independent of the gateway and of each other.
    "consent | mappings",
    "conformance",
)

# Imports running up a layer that are known and being removed: each is
# (importing module, imported group). An entry that no longer matches an
# import fails test_known_exceptions_are_still_needed, so the list only
# shrinks. Empty: the last (ingest, documents and access_check importing
# loading, documents and auth from gateway/interactions) went with their move
# to gateway/operations.
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()

# Third-party packages only some modules may import (module or group prefixes).
CONFINED = {
    "starlette": ("gateway.http", "gateway.console"),
    "sqlite3": ("gateway.store.sqlite",),
    "psycopg": ("gateway.store.postgres", "gateway.store.listening"),
    "psycopg_pool": ("gateway.store.postgres",),
    "duckdb": ("gateway.analytics",),
    "prometheus_client": ("gateway.metrics",),
}


def _groups() -> dict[str, tuple[int, bool]]:
    """Each group's layer (0 at the top), and whether its layer's groups
    are independent."""
    found: dict[str, tuple[int, bool]] = {}
    for index, layer in enumerate(LAYERS):
        independent = "|" in layer
        assert not (independent and ":" in layer), layer
        for name in layer.replace("|", ":").split(":"):
            found[name.strip()] = (index, independent)
    return found


GROUPS = _groups()


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def group_of(module: str) -> str | None:
    """The group a module belongs to: the longest group naming it or a
    package above it."""
    matching = [group for group in GROUPS if _within(module, group)]
    return max(matching, key=len) if matching else None


@cache
def modules() -> dict[str, Path]:
    """Every module in the packages, a package by its ``__init__``:
    ``gateway.store.__init__``."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts)] = path
    return found


def _resolve(name: str) -> str:
    """An imported name as the module that supplies it: a module, or a
    package's ``__init__``; a name from outside the packages as it is."""
    known = modules()
    if name in known:
        return name
    if f"{name}.__init__" in known:
        return f"{name}.__init__"
    return name


def imports(module: str) -> Iterator[tuple[str, int]]:
    """What ``module`` imports, each as a module (or a package's
    ``__init__``) with the line it is imported on."""
    path = modules()[module]
    package = module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield _resolve(alias.name), node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                # ``from gateway import fhirjson`` imports a module;
                # ``from gateway.store import Store``, a name from a package.
                submodule = f"{source}.{alias.name}"
                if submodule in modules() or f"{submodule}.__init__" in modules():
                    yield _resolve(submodule), node.lineno
                else:
                    yield _resolve(source), node.lineno


def _relative(module: str) -> str:
    return str(modules()[module].relative_to(ROOT))


def upward_imports() -> list[tuple[str, str, str, int]]:
    """Every import that runs up a layer or across independent groups:
    (module, its group, the group it imports, line)."""
    found = []
    for module in modules():
        mine = group_of(module)
        assert mine is not None, module
        for target, line in sorted(set(imports(module)), key=lambda each: each[1]):
            theirs = group_of(target)
            if theirs is None or theirs == mine:
                continue
            (my_layer, independent), (their_layer, _) = GROUPS[mine], GROUPS[theirs]
            if their_layer > my_layer or (their_layer == my_layer and not independent):
                continue
            found.append((module, mine, theirs, line))
    return found


def test_every_module_has_a_layer() -> None:
    """A new package is placed in a layer before it is used."""
    unplaced = [_relative(module) for module in modules() if group_of(module) is None]
    assert unplaced == [], f"add these to LAYERS (and to docs/architecture.md): {unplaced}"


def test_imports_run_down_the_layers() -> None:
    """A module imports only from its own group and the layers below; the
    independent groups of a layer import nothing from each other."""
    wrong = [
        f"{_relative(module)}:{line} ({mine}) imports {theirs}"
        for module, mine, theirs, line in upward_imports()
        if (module, theirs) not in KNOWN_EXCEPTIONS
    ]
    assert wrong == [], "imports against the layers:\n" + "\n".join(wrong)


def test_confined_packages_are_imported_only_where_they_belong() -> None:
    """Only the HTTP and console packages know Starlette; only each store's
    own module knows its database driver."""
    wrong = []
    for module in modules():
        for target, line in imports(module):
            allowed = CONFINED.get(target.split(".")[0])
            if allowed is not None and not any(_within(module, where) for where in allowed):
                wrong.append(f"{_relative(module)}:{line} imports {target}")
    assert wrong == [], "\n".join(wrong)


def test_known_exceptions_are_still_needed() -> None:
    """An exception whose import has gone is taken off the list."""
    happening = {(module, theirs) for module, _, theirs, _ in upward_imports()}
    assert KNOWN_EXCEPTIONS - happening == set(), "remove these from KNOWN_EXCEPTIONS"


def test_the_contract_itself_sees_imports() -> None:
    """The walk finds what the layers forbid: a guard against a contract
    that passes because it reads nothing."""
    assert "sqlite3" in {target for target, _ in imports("gateway.store.sqlite")}
    targets = {target for target, _ in imports("gateway.http.app")}
    assert {"gateway.errors", "gateway.store.__init__", "starlette.applications"} <= targets
    assert group_of("gateway.store.base") == "gateway.store"
    assert group_of("gateway.__init__") == "gateway.__init__"
    assert group_of("gateway.nothing_here") is None
