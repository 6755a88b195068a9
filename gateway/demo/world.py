"""The demo's small London: three boroughs, their councils, GP practices and
care homes, one hospital trust, the ambulance service and the privacy
office. Every organisation, code, postcode and telephone number is invented:
ODS-shaped codes no real organisation holds (a ``9`` where real ones have a
letter or a low digit), postcode areas that do not exist (``QC``, ``QI``,
``QH``) and the numbers Ofcom keeps for drama (020 7946 0xxx, 07700 900xxx)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Organisation:
    ods: str
    name: str
    kind: str  # the gateway's organisation kinds (gateway.auth.clients.OrgKind)
    borough: str = ""

    @property
    def client_id(self) -> str:
        """The demo client registered for it."""
        return f"demo-{self.kind}-{self.ods.lower()}"


@dataclass(frozen=True)
class Borough:
    name: str
    postcode_area: str
    council: Organisation
    practices: tuple[Organisation, ...]
    homes: tuple[Organisation, ...]
    streets: tuple[str, ...]


def _borough(
    name: str,
    area: str,
    gss: str,
    practices: tuple[tuple[str, str], ...],
    homes: tuple[tuple[str, str], ...],
    streets: tuple[str, ...],
) -> Borough:
    # A council is known by its GSS code, which is also the LA code its CLD
    # returns carry.
    return Borough(
        name=name,
        postcode_area=area,
        council=Organisation(gss, f"{name} Council adult social care (demo)", "council", name),
        practices=tuple(
            Organisation(ods, f"{n} (demo)", "gp-practice", name) for ods, n in practices
        ),
        homes=tuple(Organisation(ods, f"{n} (demo)", "care-home", name) for ods, n in homes),
        streets=streets,
    )


BOROUGHS: tuple[Borough, ...] = (
    _borough(
        "Camden",
        "QC",
        "E09000007",
        (("F99C01", "Fleet Valley Medical Centre"), ("F99C02", "Primrose Row Surgery")),
        (("V9C01", "Heath View Care Home"), ("V9C02", "Canal Side Nursing Home")),
        ("Agar Walk", "Ferdinand Row", "Kentish Mews", "Pratt Lane", "Lismore Close", "Oval Yard"),
    ),
    _borough(
        "Islington",
        "QI",
        "E09000019",
        (("F99I01", "Angel Fields Health Centre"), ("F99I02", "New River Practice")),
        (("V9I01", "Barnsbury Lodge"), ("V9I02", "Highbury Grove Nursing Home")),
        ("Cloudesley Walk", "Thornhill Row", "Canonbury Yard", "Liverpool Mews", "Offord Lane"),
    ),
    _borough(
        "Haringey",
        "QH",
        "E09000014",
        (("F99H01", "Lordship Lane Surgery"), ("F99H02", "Tottenham Hale Medical Practice")),
        (("V9H01", "Bruce Castle House"), ("V9H02", "Alexandra Park Care Centre")),
        ("Philip Walk", "Downhills Row", "Westbury Close", "Lawrence Yard", "Clyde Mews"),
    ),
)

HOSPITAL = Organisation("R9D", "North Thames Hospitals NHS Trust (demo)", "hospital")
AMBULANCE = Organisation("R9A", "Capital Ambulance Service NHS Trust (demo)", "ambulance")
AUDITOR = Organisation("X9P01", "Care record privacy office (demo)", "auditor")
# An ICB's population health team: bulk export, pseudonymised, and nothing else.
POPULATION_HEALTH = Organisation(
    "X9H01", "North Central London population health team (demo)", "analytics"
)


def organisations() -> list[Organisation]:
    """Every organisation of the demo, each of which gets a client."""
    found: list[Organisation] = []
    for borough in BOROUGHS:
        found += [*borough.practices, borough.council, *borough.homes]
    return [*found, HOSPITAL, AMBULANCE, AUDITOR, POPULATION_HEALTH]


def drama_landline(n: int) -> str:
    return f"020 7946 0{n % 1000:03d}"


def drama_mobile(n: int) -> str:
    return f"07700 900{n % 1000:03d}"


POSTCODE_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # the letters a postcode's unit may use


def borough_of(organisation: Organisation) -> Borough:
    return next((b for b in BOROUGHS if b.name == organisation.borough), BOROUGHS[0])


def home_address(home: Organisation) -> tuple[str, ...]:
    """A care home's address, invented from its borough: its name and a
    number on one of the borough's streets, the town, then a postcode in the
    borough's (invented) area; the home's residents live there."""
    borough = borough_of(home)
    crc = zlib.crc32(home.ods.encode())
    position = borough.homes.index(home) if home in borough.homes else crc
    street = borough.streets[position % len(borough.streets)]
    unit = POSTCODE_LETTERS[crc % 20] + POSTCODE_LETTERS[(crc // 20) % 20]
    return (
        home.name.removesuffix(" (demo)"),
        f"{1 + crc % 60} {street}",
        "London",
        f"{borough.postcode_area}{1 + (crc // 400) % 9} {1 + (crc // 3600) % 9}{unit}",
    )
