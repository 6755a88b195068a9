"""The Client Level Data items a council's return may carry, the spellings
their headers arrive in, and the defined lists their values come from.

Real returns drift: ``NHS Number``, ``nhs_number`` and ``NHS-NUMBER`` are
one column, and ``Physical Support: Access & mobility only`` arrives as
``PHYSICAL SUPPORT - ACCESS AND MOBILITY ONLY``. Headers and coded values
are compared on a folded form (lower case, ``&`` read as ``and``, anything
but letters and digits dropped), so drift in case and punctuation is
absorbed. What does not fold onto a known item or value is refused, never
guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_NOT_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")


def fold(text: str) -> str:
    """``text`` with case and punctuation drift taken out."""
    return _NOT_ALPHANUMERIC.sub("", text.lower().replace("&", "and"))


# Each item: its canonical name, then the other spellings seen for it.
ITEMS: dict[str, tuple[str, ...]] = {
    "LA_Code": ("Council_Code", "CASSR_Code", "Local_Authority_Code"),
    "LA_Person_Unique_Identifier": (
        "LA_Person_ID",
        "Person_Unique_Identifier",
        "Person_ID",
        "Client_ID",
        "LA_Client_ID",
    ),
    "NHS_Number": ("NHS_No", "NHSNumber"),
    "First_Name": ("Forename", "Given_Name"),
    "Last_Name": ("Surname", "Family_Name"),
    "GP_Practice_Code": ("GP_Code", "Registered_GP_Practice_Code", "GP_Practice"),
    "Gender": ("Sex", "Gender_Code"),
    "Ethnicity": ("Ethnic_Category", "Ethnic_Group"),
    "Date_of_Birth": ("DOB", "Birth_Date"),
    "Date_of_Death": ("DOD", "Death_Date"),
    "Postcode": ("Client_Postcode", "Post_Code", "Postcode_of_Residence"),
    "Client_Type": ("Client_Category",),
    "Linked_Person_ID": ("Adult_1_Linked_Person_ID", "Linked_Person_ID_1"),
    "Linked_Person_ID_2": ("Adult_2_Linked_Person_ID",),
    "Linked_Person_ID_3": ("Adult_3_Linked_Person_ID",),
    "Primary_Support_Reason": ("PSR",),
    "Accommodation_Status": ("Accommodation",),
    "Has_Unpaid_Carer": ("Unpaid_Carer", "Has_Informal_Carer"),
    "Event_Type": (),
    "Event_Reference": ("Event_ID", "Event_Ref"),
    "Event_Description": (),
    "Event_Start_Date": ("Start_Date",),
    "Event_End_Date": ("End_Date",),
    "Event_Outcome": ("Outcome",),
    "Request_Route_of_Access": ("Route_of_Access",),
    "Assessment_Type": (),
    "Eligible_Needs_Identified": (),
    "Method_of_Assessment": ("Assessment_Method",),
    "Review_Reason": (),
    "Review_Outcomes_Achieved": (),
    "Method_of_Review": ("Review_Method",),
    "Service_Type": (),
    "Service_Component": (),
    "Delivery_Mechanism": (),
    "Provider_CQC_Location_ID": ("CQC_Location_ID", "Provider_CQC_ID"),
    "Provider_CQC_Location_Name": ("CQC_Location_Name", "Provider_Name"),
    "Unit_Cost": (),
    "Cost_Frequency_(Unit_Type)": ("Cost_Frequency", "Unit_Type"),
    "Planned_Units_Per_Week": (),
    "Client_Funding_Status": (),
    "Reporting_Period_Start_Date": (),
    "Reporting_Period_End_Date": (),
}

# Held by the return but not shared beyond the council: read, never mapped.
COUNCIL_ONLY = frozenset(
    {
        "Delivery_Mechanism",
        "Unit_Cost",
        "Cost_Frequency_(Unit_Type)",
        "Planned_Units_Per_Week",
        "Client_Funding_Status",
    }
)

REQUIRED = ("Event_Type", "Event_Start_Date")

_BY_FOLDED: dict[str, str] = {
    fold(spelling): canonical
    for canonical, others in ITEMS.items()
    for spelling in (canonical, *others)
}


def canonical_item(header: str) -> str | None:
    """The item a header names, or ``None`` when it names none."""
    return _BY_FOLDED.get(fold(header))


class DefinedList:
    """A CLD defined list: the value each accepted spelling stands for."""

    def __init__(self, name: str, values: dict[str, Iterable[str]]) -> None:
        self.name = name
        self._by_folded = {
            fold(spelling): value
            for value, spellings in values.items()
            for spelling in (value, *spellings)
        }

    def value(self, raw: str) -> str | None:
        """The canonical value ``raw`` spells, or ``None``."""
        return self._by_folded.get(fold(raw))

    @property
    def canonical(self) -> frozenset[str]:
        """Every value of the list, as the mapping names it."""
        return frozenset(self._by_folded.values())


EVENT_TYPES = DefinedList(
    "Event_Type",
    {"Request": (), "Assessment": (), "Review": (), "Service": ()},
)

CLIENT_TYPES = DefinedList(
    "Client_Type",
    {
        "Service User": ("Service_User", "Client"),
        "Carer": (),
        "Carer known by association": ("Carer by association",),
    },
)

# FHIR administrative gender for each CLD (and NHS Data Dictionary) spelling.
GENDERS = DefinedList(
    "Gender",
    {
        "male": ("Male", "M", "1"),
        "female": ("Female", "F", "2"),
        "other": ("Other", "Neither", "Indeterminate", "O"),
        "unknown": ("Unknown", "Not known", "Not stated", "Not recorded", "X", "9", "0", "U"),
    },
)

HAS_UNPAID_CARER = DefinedList(
    "Has_Unpaid_Carer",
    {"Yes": ("Y", "True"), "No": ("N", "False"), "Unknown": ("Not known", "U")},
)

# Primary support reasons, as the Interweave social care code system codes them.
SUPPORT_REASON_SYSTEM = (
    "https://fhir.interweavedigital.nhs.uk/CodeSystem/Interweave-SocialCareSupportReason"
)
SUPPORT_REASONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "PS-AMO": ("Physical Support: Access & mobility only", ()),
    "PS-PCS": ("Physical Support: Personal care support", ()),
    "SS-SVI": ("Sensory Support: Support for visual impairment", ()),
    "SS-SHI": ("Sensory Support: Support for hearing impairment", ()),
    "SS-SDI": ("Sensory Support: Support for dual impairment", ()),
    "SMC": ("Support with Memory and Cognition", ("Support with Memory & Cognition",)),
    "LDS": ("Learning Disability Support", ()),
    "MHS": ("Mental Health Support", ()),
    "SOS-SMS": ("Social Support: Substance misuse support", ()),
    "SOS-ASS": ("Social Support: Asylum seeker support", ()),
    "SOS-IO": (
        "Social Support: Support for Social Isolation/Other",
        ("Social Support: Support for Social Isolation or Other",),
    ),
    "UNK": ("PSR Not Known", ("Not known", "Unknown")),
}
PRIMARY_SUPPORT_REASONS = DefinedList(
    "Primary_Support_Reason",
    {code: (display, *others) for code, (display, others) in SUPPORT_REASONS.items()},
)

# Service types, as the Interweave social care service category codes them.
SERVICE_TYPE_SYSTEM = (
    "https://fhir.interweavedigital.nhs.uk/CodeSystem/Interweave-SocialCareServiceCategory"
)
SERVICE_TYPE_NAMES: dict[str, str] = {
    "STS-STMAX": "Short Term Support: ST-Max",
    "STS-OLL": "Short Term Support: Ongoing Low Level",
    "STS-OST": "Short Term Support: Other Short Term",
    "LTS-NC": "Long Term Support: Nursing Care",
    "LTS-RS": "Long Term Support: Residential Care",
    "LTS-C": "Long Term Support: Community",
    "LTS-P": "Long Term Support: Prison",
    "CS-DC": "Carer Support: Direct to Carer",
    "CS-SIPC": "Carer Support: Support involving the person cared-for",
    "OTH": "Other",
}
SERVICE_TYPES = DefinedList(
    "Service_Type",
    {
        **{code: (name,) for code, name in SERVICE_TYPE_NAMES.items()},
        "STS-STMAX": (SERVICE_TYPE_NAMES["STS-STMAX"], "Short Term Support: Reablement"),
        "CS-SIPC": (
            SERVICE_TYPE_NAMES["CS-SIPC"],
            "Carer Support: Support involving the person cared for",
        ),
    },
)

ROUTES_OF_ACCESS = DefinedList(
    "Request_Route_of_Access",
    {
        "Planned Entry (Transition)": ("Planned Entry", "Transition"),
        "Discharge from Hospital": ("Hospital Discharge",),
        "Diversion from Hospital Services": (),
        "Community / Other route": ("Community", "Other route", "Community or Other route"),
        "Prison": (),
        "Self-Funder": ("Self Funder",),
        "Discharge from Reablement": (),
        "Transfer from Other LA": ("Transfer from Other Local Authority",),
    },
)

ACCOMMODATION_STATUSES = DefinedList(
    "Accommodation_Status",
    {
        "Owner occupier or shared ownership scheme": ("Owner occupier",),
        "Tenant": (
            "Tenant (including local authority, arm's length management organisations, "
            "registered social landlord, housing association)",
        ),
        "Tenant - private landlord": ("Tenant private landlord",),
        "Settled mainstream housing with family / friends": (
            "Settled mainstream housing with family / friends (including flat-sharing)",
        ),
        "Supported accommodation / supported lodgings / supported group home": (
            "Supported accommodation",
        ),
        "Shared Lives scheme": ("Shared Lives",),
        "Approved premises for offenders released from prison or under probation supervision": (
            "Approved premises",
        ),
        "Sheltered housing / extra care housing / other sheltered housing": (
            "Sheltered housing",
            "Extra care housing",
        ),
        "Mobile accommodation for Gypsy / Roma and Traveller communities": (
            "Mobile accommodation",
        ),
        "Rough sleeper / squatting": ("Rough sleeper",),
        "Night shelter / emergency hostel / direct access hostel": ("Night shelter",),
        "Refuge": (),
        "Placed in temporary accommodation by the council (including homelessness resettlement)": (
            "Placed in temporary accommodation by the council",
            "Temporary accommodation placed by council",
        ),
        "Staying with family / friends as a short-term guest": ("Staying with family / friends",),
        "Acute / long-term healthcare residential facility or hospital": (
            "Healthcare residential facility or hospital",
        ),
        "Registered care home": ("Care home",),
        "Registered nursing home": ("Nursing home",),
        "Prison / Young offenders institution / detention centre": ("Prison",),
        "Other temporary accommodation": (),
        "Unknown": ("Not known",),
    },
)

# NHS ethnic category codes (the UK Core ethnic category system) for the
# CLD ethnicity values; the codes themselves are accepted too.
ETHNICITIES = DefinedList(
    "Ethnicity",
    {
        "A": (
            "White: English / Welsh / Scottish / Northern Irish / British",
            "White British",
            "White: British",
        ),
        "B": ("White: Irish", "White Irish"),
        "C": (
            "White: Any other White background",
            "White: Gypsy or Irish Traveller",
            "White: Roma",
            "Any other White background",
        ),
        "D": ("Mixed / Multiple ethnic groups: White and Black Caribbean",),
        "E": ("Mixed / Multiple ethnic groups: White and Black African",),
        "F": ("Mixed / Multiple ethnic groups: White and Asian",),
        "G": ("Mixed / Multiple ethnic groups: Any other Mixed / Multiple ethnic background",),
        "H": ("Asian / Asian British: Indian",),
        "J": ("Asian / Asian British: Pakistani",),
        "K": ("Asian / Asian British: Bangladeshi",),
        "R": ("Asian / Asian British: Chinese",),
        "L": ("Asian / Asian British: Any other Asian background",),
        "N": ("Black / African / Caribbean / Black British: African",),
        "M": ("Black / African / Caribbean / Black British: Caribbean",),
        "P": (
            "Black / African / Caribbean / Black British: Any other Black / African / "
            "Caribbean background",
        ),
        "S": ("Other ethnic group: Arab", "Other ethnic group: Any other ethnic group"),
        "Z": ("Refused", "Not stated", "Declined"),
        "99": ("Undeclared / Not known", "Not known", "Unknown"),
    },
)
