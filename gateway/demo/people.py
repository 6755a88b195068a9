"""The demo's people: a seeded, deterministic stream of Londoners and what
each source knows of them, in the sources' own terms (SNOMED CT and ICD-10
codes, CLD values), not FHIR.

Person ``i`` of seed ``s`` depends on ``s`` and ``i`` alone (and the day the
demo is made, which its dates are counted back from), so a million people
stream in constant memory and any one of them can be made again on its own.
"""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Any, TypeVar

from gateway.demo.world import (
    BOROUGHS,
    POSTCODE_LETTERS,
    Borough,
    Organisation,
    drama_landline,
    drama_mobile,
    home_address,
)


@dataclass(frozen=True)
class Code:
    """A clinical term as GP and hospital systems hold it."""

    snomed: str
    display: str
    icd10: str = ""  # with its dot: F32.1
    label: str = ""  # the restricted-data label consent gives it, for the demo's own bookkeeping


@dataclass(frozen=True)
class Problem:
    code: Code
    onset: date
    active: bool = True


@dataclass(frozen=True)
class Medicine:
    name: str
    dose: str
    route: str  # the care-home format's routes: oral, inhaled, transdermal...
    dmd: str | None = None
    as_required: bool = False
    started: date | None = None
    # The day a hospital stopped it (the stay's discharge), and why in words.
    stopped: date | None = None
    why_stopped: str = ""


@dataclass(frozen=True)
class Allergy:
    substance: str
    snomed: str  # the allergy finding ("Allergy to penicillin")
    category: str  # medication, food, environment
    reaction: str
    severity: str  # mild, moderate, severe
    recorded: date | None = None


@dataclass(frozen=True)
class Contact:
    given: str
    family: str
    relationship: str  # the care-home format's words: daughter, son, wife, friend...
    phone: str
    next_of_kin: bool = False


@dataclass(frozen=True)
class Vitals:
    taken: datetime
    systolic: int
    diastolic: int
    pulse: int
    respiratory_rate: int
    temperature: float
    oxygen_saturation: int
    weight_kg: float
    height_cm: int

    @property
    def bmi(self) -> float:
        """Body mass index as a GP system works it out from the weight and
        height it holds, to one decimal place."""
        return round(self.weight_kg / (self.height_cm / 100) ** 2, 1)


@dataclass(frozen=True)
class HospitalStay:
    visit: str  # PV1-19
    admitted: datetime
    discharged: datetime | None  # None: still in hospital
    ward: str
    diagnoses: tuple[Code, ...]
    procedure: str = ""  # words, as the PAS holds an OPCS-4 procedure
    protected: bool = False  # PV2-22: a visit only the hospital may see


@dataclass(frozen=True)
class CareEvent:
    """One CLD row's event."""

    kind: str  # Request, Assessment, Review, Service
    reference: str
    description: str
    start: date
    end: date | None
    outcome: str = ""
    route_of_access: str = ""
    assessment_type: str = ""
    method: str = ""
    service_type: str = ""
    service_component: str = ""
    provider: str = ""  # a CQC location id and name, "1-000000001|Name"


@dataclass(frozen=True)
class SocialCare:
    """A person the council supports: its id for them and the events of the
    case. The case is open while a Service has no end."""

    council: Organisation
    person_id: str
    support_reason: str  # CLD Primary_Support_Reason
    accommodation: str  # CLD Accommodation_Status
    has_unpaid_carer: str  # Yes, No, Unknown
    events: tuple[CareEvent, ...]
    carer: Carer | None = None

    @property
    def open(self) -> bool:
        return any(e.kind == "Service" and e.end is None for e in self.events)


@dataclass(frozen=True)
class Carer:
    """An unpaid carer the council assessed: a person without an NHS number
    on the council's books, known by its own id."""

    person_id: str
    given: str
    family: str
    gender: str
    birth_date: date
    assessed: date


@dataclass(frozen=True)
class Belonging:
    item: str  # the care-home format's items: hearing-aid, glasses, dentures...
    description: str
    sent_with_resident: bool = True


@dataclass(frozen=True)
class Placement:
    """What a stay in a care home is, as each source says it: the home's
    record (its ``careType``) and the council's service for it (CLD
    ``Service_Type`` and ``Service_Component``), with the
    ``Accommodation_Status`` the council gives the person while there
    (``None``: a short stay leaves the person's own home theirs)."""

    care_type: str
    service_type: str
    service_component: str
    accommodation: str | None


# One decision per resident, which every source follows. A permanent place is
# long-term support in a care home or a nursing home; respite is a short
# stay, of days or weeks, that gives the person's unpaid carer a break, so the
# council records it as support to the carer that involves the person
# cared for (the CLD service component "Carer Respite").
PLACEMENTS: dict[str, Placement] = {
    "residential": Placement(
        "residential",
        "Long Term Support: Residential Care",
        "Residential Care",
        "Registered care home",
    ),
    "nursing": Placement(
        "nursing", "Long Term Support: Nursing Care", "Nursing Care", "Registered nursing home"
    ),
    "respite": Placement(
        "respite", "Carer Support: Support involving the person cared-for", "Carer Respite", None
    ),
}
RESPITE_LONGEST_DAYS = 28  # a respite stay in the demo is planned for up to four weeks


@dataclass(frozen=True)
class Residence:
    home: Organisation
    resident_id: str
    start: date
    room: str
    care_type: str  # a key of PLACEMENTS: residential, nursing, respite
    dnacpr: date | None
    falls: tuple[date, ...]
    belongings: tuple[Belonging, ...]
    about_me: str
    concern: str = ""  # what staff are worried about now, if anything

    @property
    def placement(self) -> Placement:
        return PLACEMENTS[self.care_type]

    @property
    def permanent(self) -> bool:
        """A place to live, not a short stay: the home is the person's address."""
        return self.care_type != "respite"


@dataclass(frozen=True)
class Person:
    index: int
    nhs_number: str | None
    title: str
    given: tuple[str, ...]
    family: str
    gender: str  # male, female
    birth_date: date
    borough: Borough
    address: tuple[str, ...]  # lines (a care home: its name first), the town, the postcode
    phone: str
    ethnicity: str  # NHS ethnic category code: A, B, ... Z
    practice: Organisation
    problems: tuple[Problem, ...] = ()
    medicines: tuple[Medicine, ...] = ()
    allergies: tuple[Allergy, ...] = ()
    contacts: tuple[Contact, ...] = ()
    vitals: Vitals | None = None
    stays: tuple[HospitalStay, ...] = ()
    social_care: SocialCare | None = None
    residence: Residence | None = None
    dissented: date | None = None  # refused the local shared record at the GP on this day
    defects: frozenset[str] = field(default_factory=frozenset)

    @property
    def postcode(self) -> str:
        return self.address[-1]

    def age(self, on: date) -> int:
        years = on.year - self.birth_date.year
        return years - ((on.month, on.day) < (self.birth_date.month, self.birth_date.day))

    @property
    def restricted_labels(self) -> frozenset[str]:
        codes = [p.code for p in self.problems] + [d for s in self.stays for d in s.diagnoses]
        return frozenset(code.label for code in codes if code.label)


# --- The defects the demo's sources carry, so the rejection report shows
# something. Each is one source record the mapping must refuse.
HL7_BAD_NHS_NUMBER = "hl7-bad-nhs-number"
HL7_BROKEN = "hl7-broken"
GP_BAD_NHS_NUMBER = "gp-bad-nhs-number"
CLD_UNKNOWN_VALUE = "cld-unknown-value"
CARE_HOME_INVALID = "care-home-invalid"
DEFECTS = (HL7_BAD_NHS_NUMBER, HL7_BROKEN, GP_BAD_NHS_NUMBER, CLD_UNKNOWN_VALUE, CARE_HOME_INVALID)


# --- Terms -----------------------------------------------------------------

HYPERTENSION = Code("38341003", "Hypertensive disorder", "I10")
DIABETES = Code("44054006", "Type 2 diabetes mellitus", "E11.9")
ASTHMA = Code("195967001", "Asthma", "J45.9")
COPD = Code("13645005", "Chronic obstructive lung disease", "J44.9")
ATRIAL_FIBRILLATION = Code("49436004", "Atrial fibrillation", "I48.9")
HEART_FAILURE = Code("84114007", "Heart failure", "I50.9")
OSTEOARTHRITIS = Code("396275006", "Osteoarthritis", "M19.9")
CKD = Code("709044004", "Chronic kidney disease", "N18.9")
HYPOTHYROIDISM = Code("40930008", "Hypothyroidism", "E03.9")
STROKE = Code("230690007", "Cerebrovascular accident", "I64")
MYOCARDIAL_INFARCTION = Code("22298006", "Myocardial infarction", "I21.9")
DEMENTIA = Code("26929004", "Alzheimer's disease", "G30.9")
VASCULAR_DEMENTIA = Code("429998004", "Vascular dementia", "F01.9")
PARKINSONS = Code("49049000", "Parkinson's disease", "G20")
DEPRESSION = Code("35489007", "Depressive disorder", "F32.9", "PSY")
ANXIETY = Code("197480006", "Anxiety disorder", "F41.9", "PSY")
SCHIZOPHRENIA = Code("58214004", "Schizophrenia", "F20.9", "PSY")
HIV = Code("86406008", "Human immunodeficiency virus infection", "B24", "SEX")
CHLAMYDIA = Code("105629000", "Chlamydial infection", "A56.0", "SEX")
ALCOHOL = Code("66590003", "Alcohol dependence", "F10.2", "ETH")
OPIOIDS = Code("75544000", "Opioid dependence", "F11.2", "ETH")
VULNERABLE_ADULT = Code("417430008", "Vulnerable adult", "", "SDV")

# (term, youngest age, share of people that age who have it)
_LONG_TERM: tuple[tuple[Code, int, float], ...] = (
    (HYPERTENSION, 40, 0.28),
    (DIABETES, 35, 0.09),
    (ASTHMA, 5, 0.08),
    (COPD, 50, 0.05),
    (ATRIAL_FIBRILLATION, 65, 0.09),
    (HEART_FAILURE, 70, 0.06),
    (OSTEOARTHRITIS, 55, 0.15),
    (CKD, 65, 0.08),
    (HYPOTHYROIDISM, 30, 0.03),
    (STROKE, 65, 0.04),
    (PARKINSONS, 65, 0.01),
    (DEPRESSION, 16, 0.07),
    (ANXIETY, 16, 0.05),
    (SCHIZOPHRENIA, 18, 0.005),
    (HIV, 18, 0.005),
    (CHLAMYDIA, 16, 0.01),
    (ALCOHOL, 18, 0.01),
    (OPIOIDS, 18, 0.003),
)

# What each problem is treated with (dm+d codes only where the VMP is certain).
_TREATMENTS: dict[Code, tuple[Medicine, ...]] = {
    HYPERTENSION: (
        Medicine("Amlodipine 5mg tablets", "One tablet once a day", "oral", "319283006"),
    ),
    DIABETES: (
        Medicine(
            "Metformin 500mg tablets", "One tablet twice a day with meals", "oral", "325278007"
        ),
    ),
    ASTHMA: (
        Medicine(
            "Salbutamol 100micrograms/dose inhaler",
            "Two puffs when needed for breathlessness",
            "inhaled",
            as_required=True,
        ),
    ),
    COPD: (
        Medicine(
            "Tiotropium 18microgram inhalation powder capsules",
            "Inhale one capsule once a day",
            "inhaled",
        ),
    ),
    ATRIAL_FIBRILLATION: (Medicine("Apixaban 5mg tablets", "One tablet twice a day", "oral"),),
    HEART_FAILURE: (Medicine("Furosemide 40mg tablets", "One tablet in the morning", "oral"),),
    OSTEOARTHRITIS: (
        Medicine(
            "Paracetamol 500mg tablets",
            "Two tablets up to four times a day when needed for pain",
            "oral",
            "322236009",
            as_required=True,
        ),
    ),
    HYPOTHYROIDISM: (
        Medicine("Levothyroxine sodium 50microgram tablets", "One tablet in the morning", "oral"),
    ),
    STROKE: (
        Medicine("Clopidogrel 75mg tablets", "One tablet once a day", "oral"),
        Medicine("Atorvastatin 20mg tablets", "One tablet at night", "oral", "320000009"),
    ),
    MYOCARDIAL_INFARCTION: (
        Medicine("Aspirin 75mg dispersible tablets", "One tablet once a day", "oral"),
        Medicine("Atorvastatin 80mg tablets", "One tablet at night", "oral"),
        Medicine("Bisoprolol 2.5mg tablets", "One tablet in the morning", "oral"),
    ),
    DEMENTIA: (Medicine("Donepezil 10mg tablets", "One tablet at night", "oral"),),
    PARKINSONS: (
        Medicine("Co-careldopa 25mg/100mg tablets", "One tablet three times a day", "oral"),
    ),
    DEPRESSION: (Medicine("Sertraline 50mg tablets", "One tablet once a day", "oral"),),
    SCHIZOPHRENIA: (Medicine("Olanzapine 10mg tablets", "One tablet at night", "oral"),),
    HIV: (Medicine("Biktarvy tablets", "One tablet once a day", "oral"),),
    OPIOIDS: (
        Medicine(
            "Methadone 1mg/ml oral solution", "As dispensed by the pharmacy, supervised", "oral"
        ),
    ),
}

_ALLERGIES: tuple[tuple[Allergy, float], ...] = (
    (Allergy("Penicillin", "91936005", "medication", "Widespread rash", "moderate"), 0.07),
    (Allergy("Peanut", "91935009", "food", "Swelling of the lips and throat", "severe"), 0.02),
    (Allergy("Latex", "300916003", "environment", "Itchy rash where it touched", "mild"), 0.01),
    (Allergy("Aspirin", "293586001", "medication", "Wheeze", "moderate"), 0.01),
)

# Medicines that thin the blood another way: not given beside an
# anticoagulant, which does that job (apixaban for atrial fibrillation).
_ANTIPLATELETS = frozenset({"Clopidogrel 75mg tablets", "Aspirin 75mg dispersible tablets"})
_ANTICOAGULANTS = frozenset({"Apixaban 5mg tablets"})


@dataclass(frozen=True)
class _Admission:
    """A reason people are admitted, as a PAS codes it (ICD-10), and whom
    to: from ``youngest`` to ``oldest``, only people with the long-term
    problem it is a flare of (``needs``); one it ``leaves`` goes on the GP's
    problem list from that day."""

    code: Code
    youngest: int
    procedure: str = ""  # words, with the OPCS-4 code in brackets
    oldest: int = 150
    needs: Code | None = None
    leaves: Code | None = None


_ADMISSIONS: tuple[_Admission, ...] = (
    _Admission(Code("", "Pneumonia, unspecified", "J18.9"), 60),
    _Admission(
        Code("", "Fracture of neck of femur", "S72.0"),
        75,
        "Hemiarthroplasty of hip (OPCS-4 W46.1)",
    ),
    _Admission(Code("", "Urinary tract infection, site not specified", "N39.0"), 65),
    _Admission(
        Code("", "Acute myocardial infarction, unspecified", "I21.9"),
        50,
        "Percutaneous coronary intervention (OPCS-4 K75.1)",
        leaves=MYOCARDIAL_INFARCTION,
    ),
    _Admission(
        Code("", "Chronic obstructive pulmonary disease with acute exacerbation", "J44.1"),
        55,
        needs=COPD,
    ),
    _Admission(Code("", "Heart failure, unspecified", "I50.9"), 70, needs=HEART_FAILURE),
    _Admission(Code("", "Syncope and collapse", "R55"), 18),
    _Admission(Code("", "Cerebral infarction, unspecified", "I63.9"), 60, leaves=STROKE),
    _Admission(
        Code("", "Acute appendicitis, unspecified", "K35.8"), 5, "Appendicectomy (OPCS-4 H01.9)"
    ),
    _Admission(Code("", "Moderate depressive episode", "F32.1", "PSY"), 18, needs=DEPRESSION),
    _Admission(Code("", "Acute severe asthma", "J46"), 2, needs=ASTHMA),
    # What young children are most often admitted with.
    _Admission(Code("", "Acute bronchiolitis, unspecified", "J21.9"), 0, oldest=1),
    _Admission(Code("", "Gastroenteritis and colitis of unspecified origin", "A09.9"), 0, oldest=4),
)
_HIP_FRACTURE = _ADMISSIONS[1].code
_LEAVES = {a.code: a.leaves for a in _ADMISSIONS if a.leaves is not None}
# A fall, a collapse or an infection that left the blood pressure low: in
# someone of 75 or over, the hospital stops the amlodipine at discharge
# rather than risk the next fall (ICD-10: hip fracture, syncope, pneumonia,
# urinary infection). What the GP records once the discharge summary comes.
_STOPS_BLOOD_PRESSURE_TABLETS = frozenset({"S72.0", "R55", "J18.9", "N39.0"})
_AMLODIPINE = "Amlodipine 5mg tablets"
_WHY_STOPPED = "Stopped in hospital: blood pressure low on standing"
_WARDS = (
    "Acute Medical Unit",
    "Bevan Ward",
    "Coleridge Ward",
    "Elderly Care Ward 7",
    "Surgical Ward 4",
    "Cardiology Ward",
)

_GIVEN_FEMALE = (
    "Olivia",
    "Amelia",
    "Fatima",
    "Aisha",
    "Grace",
    "Chloe",
    "Sofia",
    "Zainab",
    "Mary",
    "Margaret",
    "Joan",
    "Patricia",
    "Priya",
    "Ayesha",
    "Maryam",
    "Ruth",
    "Elena",
    "Chiamaka",
    "Niamh",
    "Mei",
    "Hannah",
    "Precious",
    "Kathleen",
    "Doreen",
    "Irene",
    "Sylvia",
    "Yetunde",
    "Agnieszka",
    "Rosa",
    "Leah",
)
_GIVEN_MALE = (
    "Oliver",
    "Muhammad",
    "George",
    "Noah",
    "Arthur",
    "Leo",
    "Kwame",
    "Ibrahim",
    "John",
    "David",
    "Michael",
    "Patrick",
    "Rajesh",
    "Tariq",
    "Samuel",
    "Tomasz",
    "Luca",
    "Chidi",
    "Declan",
    "Wei",
    "Kofi",
    "Stanley",
    "Harold",
    "Dennis",
    "Ronald",
    "Yusuf",
    "Marcus",
    "Hassan",
    "Daniel",
    "Ahmed",
)
_FAMILY = (
    "Smith",
    "Jones",
    "Williams",
    "Brown",
    "Taylor",
    "Khan",
    "Ahmed",
    "Begum",
    "Patel",
    "Ali",
    "Okafor",
    "Mensah",
    "Adeyemi",
    "Murphy",
    "O'Brien",
    "Kowalski",
    "Nowak",
    "Rossi",
    "Chen",
    "Wong",
    "Hussain",
    "Rahman",
    "Clarke",
    "Walker",
    "Evans",
    "Thompson",
    "Campbell",
    "Osei",
    "Nguyen",
    "Shah",
    "Green",
    "Hall",
    "Wright",
    "Lewis",
    "Robinson",
    "Mahmood",
    "Silva",
    "Costa",
    "Yilmaz",
    "Demir",
)
_ETHNICITIES = (
    "A",
    "A",
    "A",
    "A",
    "B",
    "C",
    "C",
    "D",
    "E",
    "F",
    "H",
    "J",
    "K",
    "L",
    "N",
    "N",
    "M",
    "R",
    "S",
    "Z",
    "99",
)
_ACCOMMODATION = (
    "Owner occupier or shared ownership scheme",
    "Tenant",
    "Tenant - private landlord",
    "Settled mainstream housing with family / friends",
    "Sheltered housing / extra care housing / other sheltered housing",
)
# Whom an adult names as a contact, by their age: parents and siblings when
# young, a partner, then grown-up children; nieces and nephews when old.
_RELATIONSHIPS_BY_AGE: tuple[tuple[int, tuple[str, ...]], ...] = (
    (18, ("mother", "father", "sister", "brother", "friend")),
    (25, ("partner", "partner", "mother", "father", "sister", "brother", "friend")),
    (45, ("partner", "partner", "daughter", "son", "sister", "brother", "friend")),
    (75, ("partner", "daughter", "daughter", "son", "son", "niece", "nephew", "friend")),
)
_MEN = frozenset({"husband", "son", "nephew", "brother", "father"})
# How much older (+) or younger (-) than the person a contact of each kind
# is, in years: where an unpaid carer's birth date comes from.
_AGE_GAP: dict[str, tuple[int, int]] = {
    "wife": (-6, 4),
    "husband": (-4, 6),
    "daughter": (-40, -22),
    "son": (-40, -22),
    "niece": (-45, -20),
    "nephew": (-45, -20),
    "sister": (-10, 10),
    "brother": (-10, 10),
    "mother": (20, 38),
    "father": (22, 42),
    "friend": (-15, 15),
}
# What matters to a resident (About Me), by their sex where the words need it.
_ABOUT_ME: dict[str, tuple[str, ...]] = {
    "female": ("Her family and the garden; tea with milk and one sugar.",),
    "male": ("His allotment, the cricket on the radio and his grandchildren's visits.",),
    "": (
        "Music from the 1960s, a quiet room and being called by their first name.",
        "Church on Sundays, phone calls with family abroad and a warm drink at night.",
    ),
}
_FOUND_ON_THE_FLOOR = "Found on the floor last night, complaining of hip pain."
_CONCERNS = (
    "More confused than usual since yesterday, new cough.",
    _FOUND_ON_THE_FLOOR,
    "Not eating or drinking well for two days.",
)
_PROVIDERS = (
    "1-100000001|Northern Heights Home Care (demo)",
    "1-100000002|Riverside Support Services (demo)",
    "1-100000003|Kind Hands Domiciliary Care (demo)",
)


# --- Body size and vital signs -----------------------------------------------
# Height, weight and BMI follow the Health Survey for England (NHS Digital,
# HSE 2019, adults 16 and over): mean height 175.5 cm (sd 7.2) for men and
# 161.9 cm (sd 6.6) for women, a few centimetres less over 75; mean BMI about
# 27 to 28 (sd about 5), lower in the young, lower and narrower in the very
# old and in care homes (where weight loss is common). Weight comes from
# height and BMI, so the three agree.
_HEIGHT_CM = {"male": (175.5, 7.2), "female": (161.9, 6.6)}
_SHORTER_OVER_75_CM = {"male": 4.0, "female": 3.5}
# (youngest age, mean BMI, sd)
_BMI_BY_AGE: tuple[tuple[int, float, float], ...] = (
    (16, 24.0, 4.5),
    (25, 26.4, 5.0),
    (35, 27.5, 5.2),
    (45, 28.2, 5.2),
    (55, 28.6, 5.0),
    (65, 28.5, 4.8),
    (75, 27.4, 4.5),
    (85, 25.6, 4.2),
)
_BMI_IN_CARE_HOME = (24.8, 4.3)
_BMI_RANGE = (15.5, 50.0)  # what is drawn beyond these is set to them
# Blood pressure by age and sex, near the same survey's means:
# (youngest age, systolic men, systolic women, diastolic men, diastolic women)
_BLOOD_PRESSURE: tuple[tuple[int, int, int, int, int], ...] = (
    (16, 124, 113, 68, 68),
    (25, 125, 114, 73, 71),
    (35, 126, 117, 78, 74),
    (45, 130, 123, 80, 76),
    (55, 134, 130, 78, 75),
    (65, 137, 135, 75, 73),
    (75, 138, 139, 70, 70),
)


_Row = TypeVar("_Row", bound=tuple[Any, ...])


def _by_age(table: tuple[_Row, ...], age: int) -> _Row:
    """The row of ``table`` (ordered by youngest age) that ``age`` falls in."""
    return [row for row in table if age >= row[0]][-1]


# --- NHS numbers ----------------------------------------------------------


@cache
def _nhs_pool() -> array[int]:
    """The nine-digit stems 999000000..999999999 that make a valid NHS number
    with their Modulus 11 check digit (about 909,000 of the million)."""

    def weighted(n: int, weights: tuple[int, int, int]) -> int:
        return (n // 100) * weights[0] + (n // 10 % 10) * weights[1] + (n % 10) * weights[2]

    # The digits 9, 9, 9 weigh 10, 9 and 8; the next three 7, 6, 5; the last 4, 3, 2.
    high = [243 + weighted(n, (7, 6, 5)) for n in range(1_000)]
    low = [weighted(n, (4, 3, 2)) for n in range(1_000)]
    # A total of 1 modulo 11 would need the check digit 10: no number has it.
    return array(
        "i",
        (
            999_000_000 + h * 1_000 + n
            for h, top in enumerate(high)
            for n, bottom in enumerate(low)
            if (top + bottom) % 11 != 1
        ),
    )


def _with_check_digit(stem: int) -> str:
    digits = str(stem)
    total = sum(int(d) * w for d, w in zip(digits, range(10, 1, -1), strict=True))
    check = 11 - total % 11
    return digits + str(0 if check == 11 else check)


def nhs_number_of(index: int) -> str | None:
    """Person ``index``'s NHS number from the test range (999...), spread over
    the range rather than counted up; none beyond the range's size."""
    pool = _nhs_pool()
    if index >= len(pool):
        return None
    # Multiplying by a number prime to the pool's size permutes it.
    step = 7_919
    while len(pool) % step == 0:
        step += 2
    return _with_check_digit(pool[(index * step + 12_345) % len(pool)])


# --- People ---------------------------------------------------------------


def people(count: int, seed: int, today: date) -> Iterator[Person]:
    """Persons 0 to ``count - 1`` of ``seed``, made one at a time."""
    for index in range(count):
        yield person(index, seed, today)


def person(index: int, seed: int, today: date) -> Person:
    return _Maker(index, seed, today).make()


@dataclass(frozen=True)
class _Request:
    """How the council first heard of a person: when, in the words of the
    case record, by which CLD route of access, and the first day a service
    could start (the day they left hospital, when a ward asked)."""

    day: date
    description: str
    route: str
    ready: date


class _Maker:
    def __init__(self, index: int, seed: int, today: date) -> None:
        self.index = index
        self.rng = random.Random(f"london-demo:{seed}:{index}")
        self.today = today

    def days_ago(self, most: int, least: int = 0) -> date:
        return self.today - timedelta(days=self.rng.randint(least, max(least, most)))

    def day_between(self, first: date, last: date) -> date:
        """A day from ``first`` to ``last``, both included; ``first`` when
        ``last`` comes before it."""
        return first + timedelta(days=self.rng.randint(0, max(0, (last - first).days)))

    @staticmethod
    def birthday(birth: date, years: int) -> date:
        """The day someone born on ``birth`` turns ``years`` (a 29 February
        birthday falls on 1 March)."""
        try:
            return birth.replace(year=birth.year + years)
        except ValueError:
            return date(birth.year + years, 3, 1)

    def make(self) -> Person:
        rng = self.rng
        today = self.today
        borough = BOROUGHS[self.index % len(BOROUGHS)]
        # Care homes need old people: one in twelve is 80 or over, as in a
        # borough with several homes; the rest span every age.
        elderly = rng.random() < 0.16
        age = rng.randint(78, 101) if elderly else min(int(rng.triangular(0, 95, 35)), 95)
        birth = today - timedelta(days=age * 365 + rng.randint(0, 364))
        gender = rng.choice(("female", "male"))
        given_names = _GIVEN_FEMALE if gender == "female" else _GIVEN_MALE
        given = (rng.choice(given_names),) + (
            (rng.choice(given_names),) if rng.random() < 0.4 else ()
        )
        family = rng.choice(_FAMILY)
        title = (
            "" if age < 18 else ("Mr" if gender == "male" else rng.choice(("Mrs", "Ms", "Miss")))
        )
        house = rng.randint(1, 180)
        unit = "".join(rng.choices(POSTCODE_LETTERS, k=2))
        postcode = f"{borough.postcode_area}{rng.randint(1, 9)} {rng.randint(1, 9)}{unit}"
        address: tuple[str, ...] = (f"{house} {rng.choice(borough.streets)}", "London", postcode)
        phone = drama_mobile(self.index) if rng.random() < 0.7 else drama_landline(self.index)
        practice = rng.choice(borough.practices)
        nhs = nhs_number_of(self.index)

        contacts = self.contacts(age, gender, family)
        problems = self.problems(age, birth)
        residence = self.residence(gender, borough, contacts) if elderly else None
        demented = any(p.code in (DEMENTIA, VASCULAR_DEMENTIA) for p in problems)
        if residence is not None and not demented and rng.random() < 0.7:
            problems.append(
                Problem(rng.choice((DEMENTIA, VASCULAR_DEMENTIA)), self.days_ago(2_500, 400))
            )
        if rng.random() < 0.01 and age >= 18:
            flagged = self.day_between(
                max(self.birthday(birth, 18), today - timedelta(days=900)),
                today - timedelta(days=30),
            )
            problems.append(Problem(VULNERABLE_ADULT, flagged))
        stays = self.stays(age, birth, residence, problems)
        # What a stay leaves on the GP's problem list (a heart attack, a
        # stroke), once the discharge summary has told the GP.
        known = {p.code for p in problems}
        for stay in stays:
            left = _LEAVES.get(stay.diagnoses[0])
            if left is not None and left not in known and stay.discharged is not None:
                problems.append(Problem(left, stay.admitted.date()))
                known.add(left)
        if residence is not None:
            residence = self.settled(residence, stays)
        # None for a baby under one, nor recorded before six months old.
        allergies = tuple(
            Allergy(
                a.substance,
                a.snomed,
                a.category,
                a.reaction,
                a.severity,
                self.day_between(
                    max(birth + timedelta(days=182), today - timedelta(days=7_000)),
                    today - timedelta(days=30),
                ),
            )
            for a, share in _ALLERGIES
            if rng.random() < share and age >= 1
        )
        medicines = self.stopped_in_hospital(self.medicines(problems, allergies), age, stays)
        social_care = self.social_care(age, birth, borough, problems, residence, stays, contacts)
        dissented = (
            self.day_between(max(birth, today - timedelta(days=2_000)), today - timedelta(days=10))
            if rng.random() < 0.03
            else None
        )
        defects = frozenset(d for d in DEFECTS if rng.random() < 0.004)
        if residence is not None and residence.permanent:
            # A permanent resident lives at the home: every source has its address.
            address = home_address(residence.home)
        return Person(
            index=self.index,
            nhs_number=nhs,
            title=title,
            given=given,
            family=family,
            gender=gender,
            birth_date=birth,
            borough=borough,
            address=address,
            phone=phone,
            ethnicity=rng.choice(_ETHNICITIES),
            practice=practice,
            problems=tuple(problems),
            medicines=medicines,
            allergies=allergies,
            contacts=contacts,
            vitals=self.vitals(age, gender, problems, residence) if age >= 16 else None,
            stays=stays,
            social_care=social_care,
            residence=residence,
            dissented=dissented,
            defects=defects,
        )

    def problems(self, age: int, birth: date) -> list[Problem]:
        found: list[Problem] = []
        for code, youngest, share in _LONG_TERM:
            if age >= youngest and self.rng.random() < share * (1.5 if age >= 70 else 1.0):
                earliest = birth + timedelta(days=youngest * 365)
                span = max((self.today - earliest).days, 30)
                onset = self.today - timedelta(days=self.rng.randint(30, span))
                found.append(Problem(code, onset, active=code is not CHLAMYDIA))
        return found

    def medicines(
        self, problems: list[Problem], allergies: tuple[Allergy, ...]
    ) -> tuple[Medicine, ...]:
        """What the active problems are treated with: each drug once (a
        stroke and a heart attack both want a statin), none the person is
        allergic to, and no antiplatelet beside an anticoagulant."""
        allergic = {a.substance.lower() for a in allergies}
        found: dict[str, Medicine] = {}
        for problem in problems:
            if not problem.active:
                continue
            for m in _TREATMENTS.get(problem.code, ()):
                drug = m.name.split()[0].lower()
                if drug in found or drug in allergic:
                    continue
                started = max(problem.onset, self.days_ago(3_000))
                found[drug] = Medicine(m.name, m.dose, m.route, m.dmd, m.as_required, started)
        if any(m.name in _ANTICOAGULANTS for m in found.values()):
            found = {k: m for k, m in found.items() if m.name not in _ANTIPLATELETS}
        return tuple(found.values())

    @staticmethod
    def stopped_in_hospital(
        medicines: tuple[Medicine, ...], age: int, stays: tuple[HospitalStay, ...]
    ) -> tuple[Medicine, ...]:
        """The amlodipine a hospital stopped (``_STOPS_BLOOD_PRESSURE_TABLETS``)
        at the end of the last stay that would, if the person was taking it
        by then. Draws nothing: everyone else's record is as it was."""
        ended = [
            stay
            for stay in stays
            if stay.discharged is not None
            and stay.diagnoses[0].icd10 in _STOPS_BLOOD_PRESSURE_TABLETS
        ]
        if age < 75 or not ended:
            return medicines
        stay = ended[-1]
        assert stay.discharged is not None
        return tuple(
            replace(medicine, stopped=stay.discharged.date(), why_stopped=_WHY_STOPPED)
            if medicine.name == _AMLODIPINE
            and medicine.started is not None
            and medicine.started <= stay.admitted.date()
            else medicine
            for medicine in medicines
        )

    def residence(
        self, gender: str, borough: Borough, contacts: tuple[Contact, ...]
    ) -> Residence | None:
        rng = self.rng
        today = self.today
        if rng.random() > 0.5:
            return None
        home = rng.choice(borough.homes)
        # The one decision about the stay that every source follows
        # (PLACEMENTS). Respite gives someone at home a break, so it needs
        # someone at home; it began days or weeks ago and has not yet ended.
        roll = rng.random()
        if roll < 0.12 and contacts:
            care_type = "respite"
            start = self.days_ago(RESPITE_LONGEST_DAYS - 1, 2)
            count = rng.choice((0, 0, 0, 1))
        else:
            care_type = "nursing" if roll < 0.56 else "residential"
            start = self.days_ago(2_200, 20)
            count = rng.choice((0, 0, 1, 2, 3))
        # Falls the home recorded: since the resident arrived.
        falls = {
            self.day_between(
                max(start + timedelta(days=1), today - timedelta(days=300)),
                today - timedelta(days=1),
            )
            for _ in range(count)
        }
        belongings = [
            Belonging(
                "glasses",
                rng.choice(("Reading glasses in a blue case", "Varifocals, black frames")),
            ),
        ]
        if rng.random() < 0.5:
            belongings.append(
                Belonging("hearing-aid", rng.choice(("Left ear, beige, named", "Both ears, named")))
            )
        if rng.random() < 0.5:
            belongings.append(Belonging("dentures", "Upper and lower full dentures, named"))
        if rng.random() < 0.6:
            belongings.append(
                Belonging("walking-frame", "Four-wheeled walker", sent_with_resident=False)
            )
        belongings.append(Belonging("clothing", "Two nightclothes, dressing gown and slippers"))
        about = rng.choice(_ABOUT_ME[gender] + _ABOUT_ME[""])
        concern = rng.choice(_CONCERNS) if rng.random() < 0.15 else ""
        if concern == _FOUND_ON_THE_FLOOR:
            falls.add(today - timedelta(days=1))
        return Residence(
            home=home,
            resident_id=f"RES-{self.index:07d}",
            start=start,
            room=f"Room {rng.randint(1, 40)}",
            care_type=care_type,
            dnacpr=self.days_ago(700, 5) if rng.random() < 0.55 else None,
            falls=tuple(sorted(falls)),
            belongings=tuple(belongings),
            about_me=about,
            concern=concern,
        )

    def settled(self, residence: Residence, stays: tuple[HospitalStay, ...]) -> Residence:
        """The stay as the hospital's record leaves it: a hip broken while
        living at the home was a fall there that day, and staff have no
        worry of today about a resident who is in hospital."""
        falls = set(residence.falls)
        for stay in stays:
            if stay.diagnoses[0] == _HIP_FRACTURE and stay.admitted.date() > residence.start:
                falls.add(stay.admitted.date())
        away = any(stay.discharged is None for stay in stays)
        return replace(
            residence, falls=tuple(sorted(falls)), concern="" if away else residence.concern
        )

    def contacts(self, age: int, gender: str, family: str) -> tuple[Contact, ...]:
        rng = self.rng
        if age < 18:
            parent = rng.choice(_GIVEN_FEMALE + _GIVEN_MALE)
            return (Contact(parent, family, "parent", drama_mobile(self.index + 500), True),)
        _, pool = _by_age(_RELATIONSHIPS_BY_AGE, age)
        # Most partners are of the other sex.
        other = rng.random() < 0.93
        partner = "husband" if (gender == "female") == other else "wife"
        kinds: list[str] = []
        for _ in range(rng.choice((0, 1, 1, 2))):
            kind = rng.choice(pool)
            kind = partner if kind == "partner" else kind
            if kind in kinds and kind in ("wife", "husband", "mother", "father"):
                continue  # one of each
            kinds.append(kind)
        # A partner is the next of kin, and named first.
        kinds.sort(key=lambda kind: kind not in ("wife", "husband"))
        chosen: list[Contact] = []
        for n, kind in enumerate(kinds):
            if kind == "friend":
                names = rng.choice((_GIVEN_FEMALE, _GIVEN_MALE))
            else:
                names = _GIVEN_MALE if kind in _MEN else _GIVEN_FEMALE
            taken = {c.given for c in chosen}
            contact_given = rng.choice([g for g in names if g not in taken])
            surname = family if kind != "friend" else rng.choice(_FAMILY)
            chosen.append(
                Contact(contact_given, surname, kind, drama_mobile(self.index * 3 + n), n == 0)
            )
        return tuple(chosen)

    def vitals(
        self, age: int, gender: str, problems: list[Problem], residence: Residence | None
    ) -> Vitals:
        """Measurements of the person's last check, plausible for their
        age, sex and problems (see the tables above)."""
        rng = self.rng
        codes = {p.code for p in problems}
        mean, sd = _HEIGHT_CM[gender]
        if age >= 75:
            mean -= _SHORTER_OVER_75_CM[gender]
        height = round(_clamp(rng.normalvariate(mean, sd), mean - 3 * sd, mean + 3 * sd))
        _, bmi_mean, bmi_sd = _by_age(_BMI_BY_AGE, age)
        if residence is not None:
            bmi_mean, bmi_sd = _BMI_IN_CARE_HOME
        # BMI leans to the right (more people well above the mean than well
        # below it): a log-normal of that mean and sd.
        sigma = math.sqrt(math.log(1 + (bmi_sd / bmi_mean) ** 2))
        bmi = _clamp(rng.lognormvariate(math.log(bmi_mean) - sigma**2 / 2, sigma), *_BMI_RANGE)
        weight = round(bmi * (height / 100) ** 2, 1)
        _, systolic_men, systolic_women, diastolic_men, diastolic_women = _by_age(
            _BLOOD_PRESSURE, age
        )
        male = gender == "male"
        treated = 6 if HYPERTENSION in codes else 0  # treated, and still a little higher
        systolic = round(
            _clamp(
                rng.normalvariate((systolic_men if male else systolic_women) + treated, 14), 95, 185
            )
        )
        diastolic = round(
            _clamp(
                rng.normalvariate((diastolic_men if male else diastolic_women) + treated / 2, 9),
                50,
                min(105, systolic - 25),
            )
        )
        if ATRIAL_FIBRILLATION in codes:
            pulse = round(_clamp(rng.normalvariate(84, 14), 55, 125))
        else:
            pulse = round(_clamp(rng.normalvariate(72, 10), 50, 105))
        breathless = bool(codes & {COPD, HEART_FAILURE})
        if COPD in codes:
            saturation = rng.randint(90, 95)
        else:
            saturation = rng.randint(94, 98) if age >= 70 else rng.randint(96, 99)
        return Vitals(
            taken=datetime.combine(
                self.days_ago(400, 1), time(rng.randint(8, 17), rng.choice((0, 15, 30, 45)))
            ),
            systolic=systolic,
            diastolic=diastolic,
            pulse=pulse,
            respiratory_rate=rng.randint(16, 22) if breathless else rng.randint(12, 18),
            temperature=round(
                _clamp(rng.normalvariate(36.5 if age >= 80 else 36.7, 0.25), 35.8, 37.4), 1
            ),
            oxygen_saturation=saturation,
            weight_kg=weight,
            height_cm=height,
        )

    def stays(
        self, age: int, birth: date, residence: Residence | None, problems: list[Problem]
    ) -> tuple[HospitalStay, ...]:
        rng = self.rng
        today = self.today
        share = (
            0.12 + (0.25 if age >= 75 else 0.0) + (0.1 if residence and residence.falls else 0.0)
        )
        if rng.random() > share:
            return ()
        codes = {p.code for p in problems}
        reasons = [
            a
            for a in _ADMISSIONS
            if a.youngest <= age <= a.oldest and (a.needs is None or a.needs in codes)
        ]
        # Each reason once: an appendix comes out only once.
        chosen = rng.sample(reasons, min(len(reasons), rng.choice((1, 1, 1, 2))))
        found: list[HospitalStay] = []
        for n, reason in enumerate(chosen):
            # One stay in six is still going on; the rest ended within the year.
            current = n == 0 and rng.random() < 0.17
            first = max(birth, today - timedelta(days=6 if current else 360))
            if current and residence is not None:
                first = max(first, residence.start + timedelta(days=1))
            # Admitted by yesterday: nothing the sources say happens later
            # than the early morning of the demo's day, when they answer.
            last = today - timedelta(days=1 if current else 8)
            admitted = datetime.combine(
                self.day_between(first, last),
                time(rng.randint(0, 23), rng.choice((5, 20, 35, 50))),
            )
            discharged = (
                None
                if current
                else admitted + timedelta(days=rng.randint(1, 12), hours=rng.randint(1, 9))
            )
            if discharged is not None and discharged.date() >= today:
                discharged = None
            if (
                residence is not None
                and admitted.date() < residence.start
                and (discharged is None or discharged.date() >= residence.start)
            ):
                # In hospital when the stay at the home began: a permanent
                # place may begin the day they leave hospital for it; a
                # respite stay would not have, so there was no such stay.
                if discharged is None or not residence.permanent:
                    continue
                discharged = datetime.combine(
                    residence.start, time(rng.randint(11, 16), rng.choice((0, 30)))
                )
            found.append(
                HospitalStay(
                    visit=f"V{self.index:07d}{n}",
                    admitted=admitted,
                    discharged=discharged,
                    ward=rng.choice(_WARDS),
                    diagnoses=(reason.code,),
                    procedure=reason.procedure,
                    protected=rng.random() < 0.02,
                )
            )
        return tuple(sorted(found, key=lambda s: s.admitted))

    def request(
        self, first: date, last: date, stays: tuple[HospitalStay, ...], ward_last: date
    ) -> _Request:
        """How the council first heard of the person, on a day from ``first``
        to ``last``: from a ward while they were in hospital (up to
        ``ward_last``), or from the community. The hospital's feed holds only
        the last year's stays, so a request older than that may have come
        from the hospital without a stay to show for it; a newer one only
        from a stay that is there."""
        rng = self.rng
        settled = self.today - timedelta(days=30)  # a service has had time to start since
        wards = [
            s
            for s in stays
            if s.discharged is not None
            and s.admitted.date() <= ward_last
            and first < s.discharged.date() <= settled
        ]
        if wards and rng.random() < 0.7:
            stay = rng.choice(wards)
            assert stay.discharged is not None
            left = stay.discharged.date()
            day = self.day_between(
                max(first, stay.admitted.date()), min(ward_last, left - timedelta(days=1))
            )
            return _Request(day, "Hospital contact", "Discharge from Hospital", left)
        day = self.day_between(first, last)
        if day < self.today - timedelta(days=400) and rng.random() < 0.35:
            if rng.random() < 0.7:
                return _Request(day, "Hospital contact", "Discharge from Hospital", day)
            return _Request(
                day,
                "Referral from the emergency department",
                "Diversion from Hospital Services",
                day,
            )
        description = rng.choice(
            ("Referral from GP", "Family contacted the council", "Self-referral")
        )
        return _Request(day, description, "Community / Other route", day)

    def social_care(
        self,
        age: int,
        birth: date,
        borough: Borough,
        problems: list[Problem],
        residence: Residence | None,
        stays: tuple[HospitalStay, ...],
        contacts: tuple[Contact, ...],
    ) -> SocialCare | None:
        rng = self.rng
        today = self.today
        if age < 18:
            return None
        codes = {p.code for p in problems}
        share = 0.04 + (0.2 if age >= 75 else 0.0) + (0.6 if residence else 0.0)
        if codes & {SCHIZOPHRENIA, OPIOIDS, ALCOHOL}:
            share += 0.3
        # A respite stay is the council's support to the carer: always on its books.
        respite = residence is not None and not residence.permanent
        if rng.random() > share and not respite:
            return None
        if codes & {DEMENTIA, VASCULAR_DEMENTIA}:
            reason = "Support with Memory and Cognition"
        elif codes & {SCHIZOPHRENIA, DEPRESSION}:
            reason = "Mental Health Support"
        elif codes & {ALCOHOL, OPIOIDS}:
            reason = "Social Support: Substance misuse support"
        else:
            reason = rng.choice(
                (
                    "Physical Support: Personal care support",
                    "Physical Support: Access & mobility only",
                    "Sensory Support: Support for visual impairment",
                    "Social Support: Support for Social Isolation/Other",
                )
            )
        ref = f"{self.index:07d}"
        adult = self.birthday(birth, 18)
        placed = residence if residence is not None and residence.permanent else None
        day = timedelta(days=1)
        # The first request: weeks before a permanent place began (a ward's
        # referral may come days before); for others, up to four years ago
        # (months before a respite stay: they were supported at home first).
        if placed is not None:
            first, last = placed.start - timedelta(days=60), placed.start - timedelta(days=20)
            ward_last = placed.start - 2 * day
        else:
            first = today - timedelta(days=1_500)
            last = today - timedelta(days=40)
            if residence is not None:
                last = residence.start - timedelta(days=120)
            ward_last = last
        if adult > last:
            return None  # not an adult long enough to have been helped yet
        asked = self.request(max(first, adult), last, stays, ward_last)
        from_ward = asked.route == "Discharge from Hospital" and asked.ready > asked.day
        assessed = asked.day + timedelta(
            days=rng.randint(1, 5) if from_ward else rng.randint(3, 14)
        )
        if placed is not None:
            service_start = placed.start
            assessed = min(assessed, service_start - day)
        else:
            service_start = max(assessed + timedelta(days=rng.randint(1, 14)), asked.ready)
        assessment_end = min(assessed + timedelta(days=rng.randint(1, 14)), service_start - day)
        events = [
            CareEvent(
                "Request",
                f"REQ-{ref}",
                asked.description,
                asked.day,
                min(asked.day + 2 * day, assessed),
                outcome="Progress to Assessment",
                route_of_access=asked.route,
            ),
            CareEvent(
                "Assessment",
                f"ASM-{ref}",
                "Care Act eligibility assessment",
                assessed,
                assessment_end,
                outcome="Long Term Support",
                assessment_type="Long Term Support Assessment",
                method=rng.choice(("Face to face", "Telephone")),
            ),
        ]
        # The case stays open while a service runs: most do; some have ended.
        ended = rng.random() < 0.2 and residence is None
        end = (
            min(service_start + timedelta(days=rng.randint(60, 400)), today - day)
            if ended
            else None
        )
        if placed is not None:
            placement = placed.placement
            events.append(
                CareEvent(
                    "Service",
                    f"SVC-{ref}",
                    "Nursing home placement"
                    if placed.care_type == "nursing"
                    else "Care home placement",
                    service_start,
                    None,
                    service_type=placement.service_type,
                    service_component=placement.service_component,
                    provider=_provider(placed.home),
                )
            )
        else:
            events.append(
                CareEvent(
                    "Service",
                    f"SVC-{ref}",
                    "Home support: personal care",
                    service_start,
                    end,
                    service_type="Long Term Support: Community",
                    service_component="Home Support",
                    provider=rng.choice(_PROVIDERS),
                )
            )
        events += self.reviews(ref, service_start, end)
        carer = None
        if contacts and (respite or rng.random() < 0.3):
            if respite and residence is not None:
                # The carer asked for the break a few weeks before it.
                carer_assessed = residence.start - timedelta(days=rng.randint(14, 45))
            else:
                carer_assessed = assessed + timedelta(days=rng.randint(1, 20))
            carer = self.carer(ref, birth, contacts[0], carer_assessed)
        if respite and residence is not None:
            placement = residence.placement
            events.append(
                CareEvent(
                    "Service",
                    f"SVC-{ref}-R",
                    "Respite stay in a care home",
                    residence.start,
                    None,
                    service_type=placement.service_type,
                    service_component=placement.service_component,
                    provider=_provider(residence.home),
                )
            )
        # Where the person lives: the home of a permanent place; their own
        # home otherwise, a respite stay included.
        if placed is not None and placed.placement.accommodation is not None:
            accommodation = placed.placement.accommodation
        else:
            accommodation = rng.choice(_ACCOMMODATION)
        return SocialCare(
            council=borough.council,
            person_id=f"LA{ref}",
            support_reason=reason,
            accommodation=accommodation,
            has_unpaid_carer="Yes" if carer else rng.choice(("No", "Unknown")),
            events=tuple(events),
            carer=carer,
        )

    def reviews(self, ref: str, start: date, end: date | None) -> list[CareEvent]:
        """The council's reviews of a service: six weeks in, then the latest
        yearly one, while the service ran."""
        until = end or self.today
        found = []
        six_weeks = start + timedelta(days=42)
        if six_weeks < until:
            found.append(
                CareEvent(
                    "Review",
                    f"REV-{ref}",
                    "6-week review",
                    six_weeks,
                    six_weeks,
                    outcome="No change in package",
                    method="Face to face",
                )
            )
        years = (until - start).days // 365
        if years >= 1:
            yearly = start + timedelta(days=365 * years - self.rng.randint(0, 20))
            found.append(
                CareEvent(
                    "Review",
                    f"REV-{ref}-{years}",
                    "Annual review",
                    yearly,
                    yearly,
                    outcome="No change in package",
                    method=self.rng.choice(("Face to face", "Telephone")),
                )
            )
        return found

    def carer(self, ref: str, birth: date, contact: Contact, assessed: date) -> Carer:
        """The person's unpaid carer as the council knows them: their first
        contact, of an age that fits how they are related, adult and alive."""
        rng = self.rng
        low, high = _AGE_GAP.get(contact.relationship, (-15, 15))
        born = birth - timedelta(days=round(rng.randint(low, high) * 365.25) + rng.randint(0, 364))
        born = _clamp_date(
            born, self.today - timedelta(days=92 * 365), self.birthday(self.today, -18)
        )
        if contact.relationship in _MEN:
            gender = "male"
        elif contact.relationship == "friend":
            gender = "male" if contact.given in _GIVEN_MALE else "female"
        else:
            gender = "female"
        return Carer(
            person_id=f"LAC{ref}",
            given=contact.given,
            family=contact.family,
            gender=gender,
            birth_date=born,
            assessed=assessed,
        )


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def _clamp_date(value: date, low: date, high: date) -> date:
    return min(max(value, low), high)


def _provider(home: Organisation) -> str:
    """A care home as a CLD provider: its CQC location id (invented from its
    ODS code) and name."""
    return f"1-9{sum(map(ord, home.ods)):08d}|{home.name}"
