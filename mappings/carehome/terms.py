"""The care-home record's coded fields and the codes they map to, as data.

Each table is keyed by the value the schema allows (``schema.json`` lists
the same values as enums), so a value without a row cannot pass validation.
A row without a code is deliberate: the words are kept and no code is
claimed where no suitable one was found. SNOMED CT codes are from the UK
edition; LOINC codes and UCUM units for vital signs are the ones the FHIR R4
vital signs profile requires (https://hl7.org/fhir/R4/observation-vitalsigns.html).
"""

from __future__ import annotations

from dataclasses import dataclass

UCUM = "http://unitsofmeasure.org"
FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
CONSENT_CATEGORY = "http://terminology.hl7.org/CodeSystem/consentcategorycodes"
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
CONTACT_ROLE = "http://terminology.hl7.org/CodeSystem/v2-0131"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
STATEMENT_CATEGORY = "http://terminology.hl7.org/CodeSystem/medication-statement-category"
REFERENCE_RANGE_MEANING = "http://terminology.hl7.org/CodeSystem/referencerange-meaning"
# EpisodeOfCare has no element for where in the home the person lives; the
# room is kept in the gateway's own extension rather than dropped.
ROOM_EXTENSION = "urn:london-care-gateway:care-home-room"
# What kind of episode a stay is, so that readers (the Red Bag, say) can tell
# a care-home residence from a council's social care episode without knowing
# which organisation is which: no national code for "resident of a care
# home" as an EpisodeOfCare type was found, so the gateway names its own.
EPISODE_TYPE = "urn:london-care-gateway:episode-type"
RESIDENCE = ("care-home-residence", "Care home residence")

Code = tuple[str, str]  # (code, display)


@dataclass(frozen=True)
class Vital:
    """A vital sign: the LOINC code the vital signs profile requires, the
    SNOMED CT equivalent UK Core asks for beside it, and its UCUM unit."""

    text: str
    loinc: Code
    snomed: Code
    unit: str  # as people write it
    ucum: str
    also_loinc: Code | None = None


VITALS: dict[str, Vital] = {
    "respiratoryRate": Vital(
        "Respiratory rate",
        ("9279-1", "Respiratory rate"),
        ("86290005", "Respiratory rate"),
        "breaths/minute",
        "/min",
    ),
    "oxygenSaturation": Vital(
        "Oxygen saturation",
        ("2708-6", "Oxygen saturation in Arterial blood"),
        ("103228002", "Hemoglobin saturation with oxygen"),
        "%",
        "%",
        # Care homes measure it with a pulse oximeter.
        also_loinc=("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
    ),
    "pulse": Vital(
        "Heart rate", ("8867-4", "Heart rate"), ("364075005", "Heart rate"), "beats/minute", "/min"
    ),
    "temperature": Vital(
        "Body temperature",
        ("8310-5", "Body temperature"),
        ("276885007", "Core body temperature"),
        "C",
        "Cel",
    ),
    "weight": Vital(
        "Body weight", ("29463-7", "Body weight"), ("27113001", "Body weight"), "kg", "kg"
    ),
    "height": Vital(
        "Body height", ("8302-2", "Body height"), ("50373000", "Body height"), "cm", "cm"
    ),
}
BLOOD_PRESSURE = Vital(
    "Blood pressure",
    ("85354-9", "Blood pressure panel with all children optional"),
    ("75367002", "Blood pressure"),
    "mmHg",
    "mm[Hg]",
)
SYSTOLIC = Vital(
    "Systolic blood pressure",
    ("8480-6", "Systolic blood pressure"),
    ("271649006", "Systolic blood pressure"),
    "mmHg",
    "mm[Hg]",
)
DIASTOLIC = Vital(
    "Diastolic blood pressure",
    ("8462-4", "Diastolic blood pressure"),
    ("271650006", "Diastolic blood pressure"),
    "mmHg",
    "mm[Hg]",
)

# NEWS2 SpO2 scales (Royal College of Physicians, 2017): scale 2 is for
# hypercapnic respiratory failure, with its own target range.
SPO2_SCALES: dict[int, tuple[str, tuple[int, int] | None]] = {
    1: ("NEWS2 SpO2 scale 1", None),
    2: ("NEWS2 SpO2 scale 2 (hypercapnic respiratory failure): target 88-92%", (88, 92)),
}

# ACVPU as NEWS2 records it: the observable and the five findings.
ACVPU_CODE: Code = (
    "1104441000000107",
    "ACVPU (Alert Confusion Voice Pain Unresponsive) scale score",
)
ACVPU: dict[str, Code] = {
    "A": ("248234008", "Mentally alert"),
    "C": ("130987000", "Acute confusion"),
    "V": ("300202002", "Responds to voice"),
    "P": ("450847001", "Responds to pain"),
    "U": ("422768004", "Unresponsive"),
}
# NEWS2 "air or oxygen?": the two findings NEWS2 records use.
AIR: Code = ("722742002", "Breathing room air")
ON_OXYGEN: Code = ("371825009", "Patient on oxygen")

# Usual function: free text in the source, so the code names the question
# and the answer stays words. Only mobility has an observable we are sure of.
FUNCTION: dict[str, tuple[str, Code | None]] = {
    "mobility": ("Usual mobility", ("301438001", "Ability to mobilize")),
    "cognition": ("Usual cognition", None),
    "continence": ("Continence", None),
}

# IDDSI framework levels (International Dysphagia Diet Standardisation Initiative).
IDDSI_FOOD: dict[str, str] = {
    "3": "IDDSI level 3: liquidised",
    "4": "IDDSI level 4: pureed",
    "5": "IDDSI level 5: minced and moist",
    "6": "IDDSI level 6: soft and bite-sized",
    "7EC": "IDDSI level 7: easy to chew",
    "7": "IDDSI level 7: regular",
}
IDDSI_DRINK: dict[str, str] = {
    "0": "IDDSI level 0: thin",
    "1": "IDDSI level 1: slightly thick",
    "2": "IDDSI level 2: mildly thick",
    "3": "IDDSI level 3: moderately thick",
    "4": "IDDSI level 4: extremely thick",
}

ABOUT_ME: dict[str, str] = {
    "whatMattersToMe": "What matters to me",
    "communication": "How I communicate and how to communicate with me",
    "likes": "Things I like",
    "dislikes": "Things I do not like",
}

# Routes of administration (SNOMED CT qualifier values, as dm+d uses them).
ROUTES: dict[str, Code] = {
    "oral": ("26643006", "Oral route"),
    "sublingual": ("37839007", "Sublingual route"),
    "buccal": ("54471007", "Buccal route"),
    "topical": ("6064005", "Topical route"),
    "transdermal": ("45890007", "Transdermal route"),
    "inhaled": ("447694001", "Respiratory tract route"),
    "subcutaneous": ("34206005", "Subcutaneous route"),
    "intramuscular": ("78421000", "Intramuscular route"),
    "rectal": ("37161004", "Rectal route"),
    "vaginal": ("16857009", "Vaginal route"),
    "eye": ("54485002", "Ophthalmic route"),
    "ear": ("10547007", "Otic route"),
    "nasal": ("46713006", "Nasal route"),
    "gastrostomy": ("127490009", "Gastrostomy route"),
}

NO_KNOWN_ALLERGY: Code = ("716186003", "No known allergy")


@dataclass(frozen=True)
class Decision:
    """How one kind of advance decision is written as a Consent (scope
    ``adr``): its category, the rule it is made under, and whether the
    person themself made it (so is its performer)."""

    text: str
    category: Code
    rule: str
    by_the_person: bool


DECISIONS: dict[str, Decision] = {
    "DNACPR": Decision(
        "Do not attempt cardiopulmonary resuscitation (DNACPR) decision",
        ("dnr", "Do Not Resuscitate"),
        "Decisions relating to cardiopulmonary resuscitation (BMA, Resuscitation Council UK "
        "and RCN joint guidance)",
        by_the_person=False,
    ),
    "ReSPECT": Decision(
        "ReSPECT: Recommended Summary Plan for Emergency Care and Treatment",
        # POLST is the nearest kind: clinicians' recommendations for
        # emergency treatment, agreed with the person.
        ("polst", "POLST"),
        "ReSPECT process (Resuscitation Council UK)",
        by_the_person=False,
    ),
    "ADRT": Decision(
        "Advance decision to refuse treatment",
        ("acd", "Advance Directive"),
        "Mental Capacity Act 2005, sections 24 to 26",
        by_the_person=True,
    ),
    "LPA-health": Decision(
        "Lasting power of attorney for health and welfare",
        ("acd", "Advance Directive"),
        "Mental Capacity Act 2005, sections 9 to 14",
        by_the_person=True,
    ),
}
DECISION_STATUS: dict[str, str] = {
    "active": "active",
    "under-review": "proposed",
    "withdrawn": "inactive",
    "superseded": "inactive",
}
# What CPR "does not attempt" is about, for the provision of a DNACPR.
CPR: Code = ("89666000", "Cardiopulmonary resuscitation")
NOT_FOR_CPR: Code = ("304253006", "Not for attempted cardiopulmonary resuscitation")
ATTORNEY_ROLE: Code = ("HPOWATT", "healthcare power of attorney")


@dataclass(frozen=True)
class Alert:
    """An alert or risk as a Flag: the flag category and the finding, where
    a category or code fits."""

    text: str
    category: Code | None
    snomed: Code | None = None


ALERTS: dict[str, Alert] = {
    "falls": Alert("Risk of falls", ("safety", "Safety"), ("129839007", "At risk for falls")),
    "pressure-ulcer": Alert("Pressure ulcer (risk or care)", ("clinical", "Clinical")),
    "choking": Alert("Risk of choking", ("safety", "Safety")),
    "wandering": Alert(
        "Walks with purpose / may leave unaccompanied", ("behavioral", "Behavioral")
    ),
    "dols": Alert("Deprivation of Liberty Safeguards authorisation", ("admin", "Administrative")),
    "infection": Alert("Infection control precautions", ("contact", "Subject Contact")),
    "safeguarding": Alert("Safeguarding concern", ("safety", "Safety")),
    "distressed-behaviour": Alert("Distressed behaviour", ("behavioral", "Behavioral")),
    "other": Alert("Alert", None),
}

# Contacts: the relationship from v3 RoleCode, as RelatedPerson expects.
RELATIONSHIPS: dict[str, Code | None] = {
    "spouse": ("SPS", "spouse"),
    "husband": ("HUSB", "husband"),
    "wife": ("WIFE", "wife"),
    "partner": ("DOMPART", "domestic partner"),
    "son": ("SONC", "son"),
    "daughter": ("DAUC", "daughter"),
    "son-in-law": ("SONINLAW", "son in-law"),
    "daughter-in-law": ("DAUINLAW", "daughter in-law"),
    "brother": ("BRO", "brother"),
    "sister": ("SIS", "sister"),
    "grandchild": ("GRNDCHILD", "grandchild"),
    "niece": ("NIECE", "niece"),
    "nephew": ("NEPHEW", "nephew"),
    "cousin": ("COUSN", "cousin"),
    "other-relative": ("FAMMEMB", "family member"),
    "friend": ("FRND", "unrelated friend"),
    "neighbour": ("NBOR", "neighbor"),
    # Professionals and paid carers have no personal relationship code.
    "advocate": None,
    "social-worker": None,
    "other": None,
}
NEXT_OF_KIN: Code = ("N", "Next-of-Kin")
EMERGENCY_CONTACT: Code = ("C", "Emergency Contact")
LPA_HEALTH = "Lasting power of attorney for health and welfare"
LPA_PROPERTY = "Lasting power of attorney for property and financial affairs"
POWER_OF_ATTORNEY: Code = ("POWATT", "power of attorney")

# Belongings: aids are Devices (what hospital staff must not lose); the rest
# are listed by name only.
AIDS: dict[str, tuple[str, Code | None]] = {
    "hearing-aid": ("Hearing aid", ("6012004", "Hearing aid")),
    "glasses": ("Glasses", ("50121007", "Eye glasses")),
    "dentures": ("Dentures", ("8060009", "Denture")),
    "walking-frame": ("Walking frame", None),
    "walking-stick": ("Walking stick", ("87405001", "Cane")),
    "wheelchair": ("Wheelchair", ("58938008", "Wheelchair")),
    "other-aid": ("Aid", None),
}
BELONGINGS: dict[str, str] = {
    "clothing": "Clothing",
    "jewellery": "Jewellery",
    "money": "Money",
    "phone": "Phone",
    "keys": "Keys",
    "paperwork": "Paperwork",
    "other": "Belonging",
}

CARE_TYPES: dict[str, str] = {
    "residential": "Residential care",
    "nursing": "Nursing care",
    "respite": "Respite care",
}
