"""The councils' Client Level Data returns: one CSV per council, a row per
event of each person it supports, then their unpaid carer's row.

Real returns drift, and these do as the mapping accepts (``mappings/cld``):
each council spells its header its own way (one canonically, one with
``Person ID``, ``NHS No``, ``DOB``, ``PSR``..., one with ``Sex``,
``Client_Postcode``, ``Start_Date``... in another column order); some
people's rows write dates as UK spreadsheets do (DD/MM/YYYY) and coded values
in capitals with hyphens for colons; NHS numbers come spaced on some rows
and plain on others.

Planted defect: ``CLD_UNKNOWN_VALUE`` gives one of the person's event rows a
value that is on no defined list (a misspelt support reason, say). Only
that row is refused: every other row of the person states them whole, so
their Patient and their carer's link still load.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import IO

from gateway.demo.people import CLD_UNKNOWN_VALUE, CareEvent, Carer, Person, SocialCare
from gateway.demo.sources import SourceFile
from gateway.demo.world import Organisation

FORMAT = "cld"
# How a person's rows write a date: ISO, or DD/MM/YYYY.
_Day = Callable[[date | None], str]

# The items a return carries, canonically spelt, in the canonical order.
COLUMNS = (
    "LA_Code",
    "LA_Person_Unique_Identifier",
    "NHS_Number",
    "First_Name",
    "Last_Name",
    "GP_Practice_Code",
    "Gender",
    "Ethnicity",
    "Date_of_Birth",
    "Postcode",
    "Client_Type",
    "Linked_Person_ID",
    "Primary_Support_Reason",
    "Accommodation_Status",
    "Has_Unpaid_Carer",
    "Event_Type",
    "Event_Reference",
    "Event_Description",
    "Event_Start_Date",
    "Event_End_Date",
    "Event_Outcome",
    "Request_Route_of_Access",
    "Assessment_Type",
    "Method_of_Assessment",
    "Method_of_Review",
    "Service_Type",
    "Service_Component",
    "Delivery_Mechanism",
    "Provider_CQC_Location_ID",
    "Provider_CQC_Location_Name",
    "Unit_Cost",
    "Cost_Frequency_(Unit_Type)",
    "Planned_Units_Per_Week",
)


class _Style:
    """How one council's case management system exports its return: the
    header's spellings and order, and how much its values drift."""

    def __init__(
        self,
        spellings: dict[str, str],
        order: Sequence[str] = COLUMNS,
        *,
        uk_dates: float,
        capitals: float,
        gender: dict[str, str],
        bom: bool = False,
    ) -> None:
        assert sorted(order) == sorted(COLUMNS)
        self.header = [spellings.get(item, item) for item in order]
        self.order = tuple(order)
        self.uk_dates = uk_dates  # the share of people whose dates are DD/MM/YYYY
        self.capitals = capitals  # the share of people whose coded values are shouted
        self.gender = gender
        self.bom = bom


_STYLES = (
    _Style({}, uk_dates=0.15, capitals=0.05, gender={"female": "Female", "male": "Male"}),
    _Style(
        {
            "LA_Code": "LA Code",
            "LA_Person_Unique_Identifier": "Person ID",
            "NHS_Number": "NHS No",
            "First_Name": "Forename",
            "Last_Name": "Surname",
            "GP_Practice_Code": "GP Practice",
            "Ethnicity": "Ethnic Category",
            "Date_of_Birth": "DOB",
            "Postcode": "Post Code",
            "Client_Type": "Client Type",
            "Linked_Person_ID": "Linked Person ID",
            "Primary_Support_Reason": "PSR",
            "Accommodation_Status": "Accommodation",
            "Has_Unpaid_Carer": "Unpaid Carer",
            "Event_Type": "Event Type",
            "Event_Reference": "Event Ref",
            "Event_Description": "Event Description",
            "Event_Start_Date": "Event Start Date",
            "Event_End_Date": "Event End Date",
            "Event_Outcome": "Event Outcome",
            "Request_Route_of_Access": "Route of Access",
            "Assessment_Type": "Assessment Type",
            "Method_of_Assessment": "Assessment Method",
            "Method_of_Review": "Review Method",
            "Service_Type": "Service Type",
            "Service_Component": "Service Component",
            "Delivery_Mechanism": "Delivery Mechanism",
            "Provider_CQC_Location_ID": "CQC Location ID",
            "Provider_CQC_Location_Name": "CQC Location Name",
            "Unit_Cost": "Unit Cost",
            "Cost_Frequency_(Unit_Type)": "Cost Frequency",
            "Planned_Units_Per_Week": "Planned Units Per Week",
        },
        uk_dates=0.6,
        capitals=0.3,
        gender={"female": "F", "male": "M"},
        bom=True,  # saved from a spreadsheet
    ),
    _Style(
        {
            "LA_Code": "CASSR_CODE",
            "LA_Person_Unique_Identifier": "CLIENT_ID",
            "NHS_Number": "NHSNumber",
            "First_Name": "Given_Name",
            "Last_Name": "Family_Name",
            "GP_Practice_Code": "Registered_GP_Practice_Code",
            "Gender": "Sex",
            "Ethnicity": "Ethnic_Group",
            "Date_of_Birth": "Birth_Date",
            "Postcode": "Client_Postcode",
            "Client_Type": "Client_Category",
            "Linked_Person_ID": "Adult_1_Linked_Person_ID",
            "Primary_Support_Reason": "PRIMARY SUPPORT REASON",
            "Accommodation_Status": "ACCOMMODATION_STATUS",
            "Has_Unpaid_Carer": "Has_Informal_Carer",
            "Event_Type": "EVENT_TYPE",
            "Event_Reference": "Event_ID",
            "Event_Description": "EVENT_DESCRIPTION",
            "Event_Start_Date": "Start_Date",
            "Event_End_Date": "End_Date",
            "Event_Outcome": "Outcome",
            "Request_Route_of_Access": "Request Route of Access",
            "Method_of_Assessment": "Assessment_Method",
            "Method_of_Review": "Review_Method",
            "Provider_CQC_Location_ID": "Provider_CQC_ID",
            "Provider_CQC_Location_Name": "Provider_Name",
            "Cost_Frequency_(Unit_Type)": "Unit_Type",
        },
        # The event first, then who it is about: another system's export.
        (
            "LA_Code",
            "Event_Reference",
            "Event_Type",
            "Event_Start_Date",
            "Event_End_Date",
            "Event_Description",
            "Event_Outcome",
            *(c for c in COLUMNS if not c.startswith("Event_") and c != "LA_Code"),
        ),
        uk_dates=0.8,
        capitals=0.5,
        gender={"female": "female", "male": "male"},
    ),
)

# The CLD ethnicity values for the NHS ethnic category codes.
ETHNICITIES = {
    "A": "White: English / Welsh / Scottish / Northern Irish / British",
    "B": "White: Irish",
    "C": "White: Any other White background",
    "D": "Mixed / Multiple ethnic groups: White and Black Caribbean",
    "E": "Mixed / Multiple ethnic groups: White and Black African",
    "F": "Mixed / Multiple ethnic groups: White and Asian",
    "G": "Mixed / Multiple ethnic groups: Any other Mixed / Multiple ethnic background",
    "H": "Asian / Asian British: Indian",
    "J": "Asian / Asian British: Pakistani",
    "K": "Asian / Asian British: Bangladeshi",
    "L": "Asian / Asian British: Any other Asian background",
    "R": "Asian / Asian British: Chinese",
    "M": "Black / African / Caribbean / Black British: Caribbean",
    "N": "Black / African / Caribbean / Black British: African",
    "P": "Black / African / Caribbean / Black British: Any other Black / African / "
    "Caribbean background",
    "S": "Other ethnic group: Any other ethnic group",
    "Z": "Not stated",
    "99": "Not known",
}
# The items whose values come from a defined list, and so may be shouted.
_CODED = (
    "Gender",
    "Ethnicity",
    "Client_Type",
    "Primary_Support_Reason",
    "Accommodation_Status",
    "Has_Unpaid_Carer",
    "Event_Type",
    "Request_Route_of_Access",
    "Service_Type",
)
# Values on no defined list, by the item they are put in (the planted defect).
_UNKNOWN_VALUES: dict[str, tuple[tuple[str, str], ...]] = {
    "": (
        ("Primary_Support_Reason", "Physcial Suport: Personal care"),
        ("Accommodation_Status", "Lives with daughter"),
        ("Ethnicity", "White Other"),
    ),
    "Request": (("Request_Route_of_Access", "Walk-in at the town hall"),),
    "Service": (("Service_Type", "Long Term Support: Home Care"),),
}
_DELIVERY = (
    "CASSR Managed Personal Budget",
    "CASSR Managed Personal Budget",
    "Direct Payment only",
    "CASSR Commissioned support only",
)


def _shout(value: str) -> str:
    """A defined-list value as some systems export it:
    ``PHYSICAL SUPPORT - ACCESS AND MOBILITY ONLY``."""
    return value.upper().replace(": ", " - ").replace("&", "AND")


def _spaced(number: str) -> str:
    return f"{number[:3]} {number[3:6]} {number[6:]}"


class _Return:
    """One council's return being written."""

    def __init__(self, out: Path, council: Organisation, style: _Style) -> None:
        self.council = council
        self.style = style
        self.path = Path("council") / f"{council.ods}-cld.csv"
        target = out / self.path
        target.parent.mkdir(parents=True, exist_ok=True)
        self.file: IO[str] = target.open(
            "w", encoding="utf-8-sig" if style.bom else "utf-8", newline=""
        )
        self.csv = csv.writer(self.file, lineterminator="\r\n")
        self.csv.writerow(style.header)
        self.records = 0
        self.defective = 0

    def row(self, values: dict[str, str], *, defective: bool = False) -> None:
        self.csv.writerow([values.get(item, "") for item in self.style.order])
        self.records += 1
        self.defective += defective

    def close(self) -> SourceFile:
        self.file.close()
        return SourceFile(self.path, FORMAT, self.council.ods, self.records, self.defective)


class CldWriter:
    """``SourceWriter`` of the councils' CLD returns: ``council/<GSS>-cld.csv``
    for each council, its header spelt in one of three ways."""

    def __init__(self, out: Path, councils: Sequence[Organisation], today: date) -> None:
        self.today = today
        self._returns = {
            council.ods: _Return(out, council, _STYLES[n % len(_STYLES)])
            for n, council in enumerate(councils)
        }

    # --- SourceWriter -----------------------------------------------------

    def add(self, person: Person) -> None:
        care = person.social_care
        if care is None or (found := self._returns.get(care.council.ods)) is None:
            return
        rng = random.Random(f"cld:{person.index}")
        style = found.style
        uk_dates = rng.random() < style.uk_dates
        capitals = rng.random() < style.capitals
        spoilt = rng.randrange(len(care.events)) if CLD_UNKNOWN_VALUE in person.defects else -1

        def day(value: date | None) -> str:
            if value is None:
                return ""
            return f"{value:%d/%m/%Y}" if uk_dates else value.isoformat()

        person_values = {
            "LA_Code": care.council.ods,
            "LA_Person_Unique_Identifier": care.person_id,
            "First_Name": person.given[0],
            "Last_Name": person.family,
            "GP_Practice_Code": person.practice.ods,
            "Gender": style.gender[person.gender],
            "Ethnicity": ETHNICITIES.get(person.ethnicity, "Not known"),
            "Date_of_Birth": day(person.birth_date),
            "Postcode": person.postcode,
            "Client_Type": "Service User",
            "Primary_Support_Reason": care.support_reason,
            "Accommodation_Status": care.accommodation,
            "Has_Unpaid_Carer": care.has_unpaid_carer,
        }
        for n, event in enumerate(care.events):
            values = {**person_values, **_event_values(event, rng, day)}
            if person.nhs_number is not None:
                spaced = rng.random() < 0.35
                values["NHS_Number"] = _spaced(person.nhs_number) if spaced else person.nhs_number
            if capitals:
                values.update({item: _shout(values[item]) for item in _CODED if item in values})
            if n == spoilt:
                kinds = _UNKNOWN_VALUES[""] + _UNKNOWN_VALUES.get(event.kind, ())
                item, value = rng.choice(kinds)
                values[item] = value
            found.row(values, defective=n == spoilt)
        if care.carer is not None:
            found.row(self._carer_values(care, care.carer, rng, day))

    def close(self) -> list[SourceFile]:
        return [found.close() for found in self._returns.values()]

    # --- Rows -------------------------------------------------------------

    def _carer_values(
        self, care: SocialCare, carer: Carer, rng: random.Random, day: _Day
    ) -> dict[str, str]:
        """The carer's own row: a person on the council's books without an
        NHS number, linked to the person they care for by the council's id."""
        ended = min(carer.assessed + timedelta(days=rng.randint(0, 6)), self.today)
        return {
            "LA_Code": care.council.ods,
            "LA_Person_Unique_Identifier": carer.person_id,
            "First_Name": carer.given,
            "Last_Name": carer.family,
            "Gender": {"female": "Female", "male": "Male"}.get(carer.gender, "Not known"),
            "Date_of_Birth": day(carer.birth_date),
            "Client_Type": "Carer",
            "Linked_Person_ID": care.person_id,
            "Event_Type": "Assessment",
            "Event_Reference": f"CASM-{carer.person_id.removeprefix('LAC')}",
            "Event_Description": "Carer's assessment",
            "Event_Start_Date": day(carer.assessed),
            "Event_End_Date": day(ended),
            "Event_Outcome": "Support provided to carer",
            "Assessment_Type": "Carer Assessment",
            "Method_of_Assessment": rng.choice(("Face to face", "Telephone")),
        }


def _event_values(event: CareEvent, rng: random.Random, day: _Day) -> dict[str, str]:
    values = {
        "Event_Type": event.kind,
        "Event_Reference": event.reference,
        "Event_Description": event.description,
        "Event_Start_Date": day(event.start),
        "Event_End_Date": day(event.end),
        "Event_Outcome": event.outcome,
    }
    if event.kind == "Request":
        values["Request_Route_of_Access"] = event.route_of_access
    elif event.kind == "Assessment":
        values["Assessment_Type"] = event.assessment_type
        values["Method_of_Assessment"] = event.method
    elif event.kind == "Review":
        values["Method_of_Review"] = event.method
    elif event.kind == "Service":
        values["Service_Type"] = event.service_type
        values["Service_Component"] = event.service_component
        location, _, name = event.provider.partition("|")
        values["Provider_CQC_Location_ID"] = location
        values["Provider_CQC_Location_Name"] = name
        values.update(_costs(event, rng))
    return values


# What a week in a care home costs the council, by the service component.
_WEEKLY_COSTS = {
    "Residential Care": (950, 1_350),
    "Nursing Care": (1_150, 1_650),
    "Carer Respite": (950, 1_400),
}


def _costs(event: CareEvent, rng: random.Random) -> dict[str, str]:
    """What the council pays: read by the mapping, never shared."""
    if (weekly_range := _WEEKLY_COSTS.get(event.service_component)) is not None:
        weekly = rng.randint(*weekly_range)
        return {
            "Delivery_Mechanism": "CASSR Commissioned support only",
            "Unit_Cost": f"{weekly}.00",
            "Cost_Frequency_(Unit_Type)": "Weekly",
            "Planned_Units_Per_Week": "1",
        }
    return {
        "Delivery_Mechanism": rng.choice(_DELIVERY),
        "Unit_Cost": f"{rng.randint(2_150, 2_640) / 100:.2f}",
        "Cost_Frequency_(Unit_Type)": "Hourly",
        "Planned_Units_Per_Week": rng.choice(("7", "10.5", "14", "17.5", "21", "28")),
    }
