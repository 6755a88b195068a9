"""Released migrations are never edited (gateway/store/_schema.py says so;
this holds it): each one's version, name and statements for both databases
are pinned by a digest. A database migrated by a release has recorded the
version as done and will never run it again, so an edit would leave it with
a schema no fresh database has. A change is a new migration: pin it here
when it is released."""

from __future__ import annotations

import hashlib
import json

from gateway.store._schema import MIGRATIONS, Migration

RELEASED = {
    1: "822a5b75534a022b",
    2: "cb3e9d6db59d22e5",
    3: "dd3d4654916a0d80",
    4: "65f8416577e203fc",
    5: "9e0ddfd443f69e73",
    6: "af5e748593bd2f2d",
    7: "6ede2faebb9cab28",
    8: "cc1f61dfb5027f40",
    9: "69e65395de617dcf",
    10: "d888786333089819",
    11: "8879bb594848b1f5",
    12: "11e96626f08e157a",
    13: "f03c95849b5c0ecd",
    14: "0d5b1b6b3407824c",
    15: "d23733c353a49f6a",
    16: "a210c77016d718fd",
    17: "f2317526348ea022",
    18: "d0e9f797a3b22243",
    19: "2df094a3b3003a25",
    20: "c7918187b489de2e",
    21: "c0096b8cdb91b22e",
    22: "d09772206b77aac0",
    23: "e4b12ae4a5fb09ee",
    24: "184392bb0592366d",
    25: "ac24db38e33ab8a4",
}


def _digest(migration: Migration) -> str:
    text = json.dumps(
        [migration.version, migration.name, list(migration.sqlite), list(migration.postgres)]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_no_released_migration_was_edited() -> None:
    edited = [
        m.version for m in MIGRATIONS if m.version in RELEASED and _digest(m) != RELEASED[m.version]
    ]
    assert not edited, f"released migrations edited: {edited}; add a new migration instead"


def test_every_migration_is_pinned_and_numbered_in_order() -> None:
    versions = [m.version for m in MIGRATIONS]
    assert versions == list(range(1, len(versions) + 1))
    unpinned = [m.version for m in MIGRATIONS if m.version not in RELEASED]
    assert not unpinned, (
        f"pin migrations {unpinned} ({[_digest(m) for m in MIGRATIONS if m.version in unpinned]})"
    )
    assert set(RELEASED) <= set(versions), "a pinned migration was removed"
