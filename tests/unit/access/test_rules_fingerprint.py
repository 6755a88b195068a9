"""The fingerprint of the index's rules (``gateway.access.index.version``)
is pinned: a store built with other rules is reindexed before it serves, so
a change to any module it hashes rebuilds every deployment's whole index on
upgrade (hours at London's scale). Editing those modules must be a decision,
not a side effect of a refactor or a speed-up: put code that is not a rule
elsewhere (``gateway/access/provenance_rows.py`` is an example), and update
the pin only with a change of rules."""

from __future__ import annotations

from gateway.access.index import version

# The rules of 2026-12-07 (the search parameters, their extraction and the
# access facts as of then).
PINNED = "8d4857277564c189"


def test_the_rules_fingerprint_changes_only_with_the_rules() -> None:
    assert version() == PINNED, (
        "the index's rules changed (gateway/access/index.py, facts.py, claims.py, "
        "consent/parse.py, gateway/search/extract.py, index.py or the parameter "
        "definitions): every store will be reindexed on upgrade. If the rows do change, "
        f"pin {version()} here; if they do not, move the code out of those modules"
    )
