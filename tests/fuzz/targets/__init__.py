"""The atheris fuzz targets: one module per parser, each with the modules it
instruments (``INSTRUMENT``), the contract it checks on one input
(``check``) and its seeds from the fixtures and the demo's source files
(``seeds``). ``tests/fuzz/run.py`` runs one under atheris;
``tests/fuzz/test_parsers.py`` runs each for a bounded time.
"""

from __future__ import annotations

# Each target and the packages atheris instruments for it (all of a
# top-level package: atheris instruments by package).
INSTRUMENT = {
    "hl7v2": ("mappings",),
    "cld": ("mappings",),
    "gpconnect": ("mappings",),
    "carehome": ("mappings",),
    "search": ("gateway",),
}
TARGETS = tuple(INSTRUMENT)
