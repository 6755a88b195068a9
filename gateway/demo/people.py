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
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Any, TypeVar

from gateway.demo.world import (
    BOROUGHS,
    Borough,
    Organisation,
    drama_landline,
    drama_mobile,
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
class Residence:
    home: Organisation
    resident_id: str
    start: date
    room: str
    care_type: str  # residential, nursing, respite
    dnacpr: date | None
    falls: tuple[date, ...]
    belongings: tuple[Belonging, ...]
    about_me: str
    concern: str = ""  # what staff are worried about now, if anything


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
    address: tuple[str, ...]  # lines, then the postcode last
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
    STROKE: (Medicine("Atorvastatin 20mg tablets", "One tablet at night", "oral", "320000009"),),
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

# Reasons people are admitted (ICD-10 as PAS systems code them), by age.
_ADMISSIONS: tuple[tuple[Code, int, str], ...] = (
    (Code("", "Pneumonia, unspecified", "J18.9"), 60, ""),
    (Code("", "Fracture of neck of femur", "S72.0"), 75, "Hemiarthroplasty of hip (OPCS-4 W46.1)"),
    (Code("", "Urinary tract infection, site not specified", "N39.0"), 65, ""),
    (
        Code("", "Acute myocardial infarction, unspecified", "I21.9"),
        50,
        "Percutaneous coronary intervention (OPCS-4 K75.1)",
    ),
    (Code("", "Chronic obstructive pulmonary disease with acute exacerbation", "J44.1"), 55, ""),
    (Code("", "Syncope and collapse", "R55"), 18, ""),
    (Code("", "Cerebral infarction, unspecified", "I63.9"), 60, ""),
    (Code("", "Acute appendicitis, unspecified", "K35.8"), 5, "Appendicectomy (OPCS-4 H01.9)"),
    (Code("", "Moderate depressive episode", "F32.1", "PSY"), 18, ""),
)
# Under five, none of the above: what young children are most often admitted with.
_CHILDHOOD_ADMISSION = (Code("", "Acute bronchiolitis, unspecified", "J21.9"), 0, "")
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
_RELATIONSHIPS = ("daughter", "son", "wife", "husband", "niece", "nephew", "friend")
_POSTCODE_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # the letters a postcode's unit may use
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


class _Maker:
    def __init__(self, index: int, seed: int, today: date) -> None:
        self.index = index
        self.rng = random.Random(f"london-demo:{seed}:{index}")
        self.today = today

    def days_ago(self, most: int, least: int = 0) -> date:
        return self.today - timedelta(days=self.rng.randint(least, max(least, most)))

    def make(self) -> Person:
        rng = self.rng
        borough = BOROUGHS[self.index % len(BOROUGHS)]
        # Care homes need old people: one in twelve is 80 or over, as in a
        # borough with several homes; the rest span every age.
        elderly = rng.random() < 0.16
        age = rng.randint(78, 101) if elderly else min(int(rng.triangular(0, 95, 35)), 95)
        birth = self.today - timedelta(days=age * 365 + rng.randint(0, 364))
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
        unit = "".join(rng.choices(_POSTCODE_LETTERS, k=2))
        postcode = f"{borough.postcode_area}{rng.randint(1, 9)} {rng.randint(1, 9)}{unit}"
        address = (f"{house} {rng.choice(borough.streets)}", "London", postcode)
        phone = drama_mobile(self.index) if rng.random() < 0.7 else drama_landline(self.index)
        practice = rng.choice(borough.practices)
        nhs = nhs_number_of(self.index)

        problems = self.problems(age, birth)
        residence = self.residence(age, borough, problems, elderly) if elderly else None
        demented = any(p.code in (DEMENTIA, VASCULAR_DEMENTIA) for p in problems)
        if residence is not None and not demented and rng.random() < 0.7:
            problems.append(
                Problem(rng.choice((DEMENTIA, VASCULAR_DEMENTIA)), self.days_ago(2_500, 400))
            )
        if rng.random() < 0.01 and age >= 18:
            problems.append(Problem(VULNERABLE_ADULT, self.days_ago(900, 30)))
        medicines = tuple(
            Medicine(
                m.name, m.dose, m.route, m.dmd, m.as_required, max(p.onset, self.days_ago(3_000))
            )
            for p in problems
            if p.active
            for m in _TREATMENTS.get(p.code, ())
        )
        allergies = tuple(
            Allergy(
                a.substance, a.snomed, a.category, a.reaction, a.severity, self.days_ago(7_000, 30)
            )
            for a, share in _ALLERGIES
            if rng.random() < share
        )
        contacts = self.contacts(age, family)
        social_care = self.social_care(age, borough, problems, residence)
        dissented = self.days_ago(2_000, 10) if rng.random() < 0.03 else None
        defects = frozenset(d for d in DEFECTS if rng.random() < 0.004)
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
            stays=self.stays(age, residence),
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

    def residence(
        self, age: int, borough: Borough, problems: list[Problem], elderly: bool
    ) -> Residence | None:
        rng = self.rng
        if not elderly or rng.random() > 0.5:
            return None
        home = rng.choice(borough.homes)
        start = self.days_ago(2_200, 20)
        falls = tuple(sorted(self.days_ago(300, 1) for _ in range(rng.choice((0, 0, 1, 2, 3)))))
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
        about = rng.choice(
            (
                "Her family and the garden; tea with milk and one sugar.",
                "His allotment, the cricket on the radio and his grandchildren's visits.",
                "Music from the 1960s, a quiet room and being called by their first name.",
                "Church on Sundays, phone calls with family abroad and a warm drink at night.",
            )
        )
        concern = (
            rng.choice(
                (
                    "More confused than usual since yesterday, new cough.",
                    "Found on the floor this morning, complaining of hip pain.",
                    "Not eating or drinking well for two days.",
                )
            )
            if rng.random() < 0.15
            else ""
        )
        return Residence(
            home=home,
            resident_id=f"RES-{self.index:07d}",
            start=start,
            room=f"Room {rng.randint(1, 40)}",
            care_type=rng.choice(("residential", "nursing", "nursing", "respite")),
            dnacpr=self.days_ago(700, 5) if rng.random() < 0.55 else None,
            falls=falls,
            belongings=tuple(belongings),
            about_me=about,
            concern=concern,
        )

    def contacts(self, age: int, family: str) -> tuple[Contact, ...]:
        rng = self.rng
        if age < 18:
            parent = rng.choice(_GIVEN_FEMALE + _GIVEN_MALE)
            return (Contact(parent, family, "parent", drama_mobile(self.index + 500), True),)
        chosen: list[Contact] = []
        for n in range(rng.choice((0, 1, 1, 2))):
            relationship = rng.choice(_RELATIONSHIPS)
            given = rng.choice(
                _GIVEN_MALE if relationship in ("son", "husband", "nephew") else _GIVEN_FEMALE
            )
            surname = family if relationship != "friend" else rng.choice(_FAMILY)
            chosen.append(
                Contact(given, surname, relationship, drama_mobile(self.index * 3 + n), n == 0)
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

    def stays(self, age: int, residence: Residence | None) -> tuple[HospitalStay, ...]:
        rng = self.rng
        share = (
            0.12 + (0.25 if age >= 75 else 0.0) + (0.1 if residence and residence.falls else 0.0)
        )
        if rng.random() > share:
            return ()
        found: list[HospitalStay] = []
        for n in range(rng.choice((1, 1, 1, 2))):
            reasons = [r for r in _ADMISSIONS if age >= r[1]] or [_CHILDHOOD_ADMISSION]
            code, _, procedure = rng.choice(reasons)
            # One stay in six is still going on; the rest ended within the year.
            current = n == 0 and rng.random() < 0.17
            admitted_on = self.days_ago(6, 0) if current else self.days_ago(360, 8)
            admitted = datetime.combine(
                admitted_on, time(rng.randint(0, 23), rng.choice((5, 20, 35, 50)))
            )
            discharged = (
                None
                if current
                else admitted + timedelta(days=rng.randint(1, 12), hours=rng.randint(1, 9))
            )
            if discharged is not None and discharged.date() >= self.today:
                discharged = None
            found.append(
                HospitalStay(
                    visit=f"V{self.index:07d}{n}",
                    admitted=admitted,
                    discharged=discharged,
                    ward=rng.choice(_WARDS),
                    diagnoses=(code,),
                    procedure=procedure,
                    protected=rng.random() < 0.02,
                )
            )
        return tuple(sorted(found, key=lambda s: s.admitted))

    def social_care(
        self, age: int, borough: Borough, problems: list[Problem], residence: Residence | None
    ) -> SocialCare | None:
        rng = self.rng
        if age < 18:
            return None
        codes = {p.code for p in problems}
        share = 0.04 + (0.2 if age >= 75 else 0.0) + (0.6 if residence else 0.0)
        if codes & {SCHIZOPHRENIA, OPIOIDS, ALCOHOL}:
            share += 0.3
        if rng.random() > share:
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
        requested = (
            self.days_ago(1_500, 40)
            if residence is None
            else residence.start - timedelta(days=rng.randint(20, 60))
        )
        assessed = requested + timedelta(days=rng.randint(3, 14))
        service_start = assessed + timedelta(days=rng.randint(1, 14))
        events = [
            CareEvent(
                "Request",
                f"REQ-{ref}",
                rng.choice(
                    ("Hospital contact", "Referral from GP", "Family contacted the council")
                ),
                requested,
                requested + timedelta(days=2),
                outcome="Progress to Assessment",
                route_of_access=rng.choice(("Discharge from Hospital", "Community / Other route")),
            ),
            CareEvent(
                "Assessment",
                f"ASM-{ref}",
                "Care Act eligibility assessment",
                assessed,
                service_start - timedelta(days=1),
                outcome="Long Term Support",
                assessment_type="Long Term Support Assessment",
                method=rng.choice(("Face to face", "Telephone")),
            ),
        ]
        # The case stays open while a service runs: most do; some have ended.
        ended = rng.random() < 0.2 and residence is None
        end = (
            min(
                service_start + timedelta(days=rng.randint(60, 400)), self.today - timedelta(days=1)
            )
            if ended
            else None
        )
        if residence is not None:
            service_type = (
                "Long Term Support: Nursing Care"
                if residence.care_type == "nursing"
                else "Long Term Support: Residential Care"
            )
            cqc_id = f"1-9{sum(map(ord, residence.home.ods)):08d}"
            component, provider = "Residential Care", f"{cqc_id}|{residence.home.name}"
        else:
            service_type, component, provider = (
                "Long Term Support: Community",
                "Home Support",
                rng.choice(_PROVIDERS),
            )
        events.append(
            CareEvent(
                "Service",
                f"SVC-{ref}",
                "Care home placement" if residence else "Home support: personal care",
                max(service_start, residence.start) if residence else service_start,
                end,
                service_type=service_type,
                service_component=component,
                provider=provider,
            )
        )
        review = service_start + timedelta(days=42)
        if review < self.today and end is None:
            events.append(
                CareEvent(
                    "Review",
                    f"REV-{ref}",
                    "6-week review",
                    review,
                    review,
                    outcome="No change in package",
                    method="Face to face",
                )
            )
        carer = None
        if rng.random() < 0.25:
            carer_gender = rng.choice(("female", "male"))
            carer = Carer(
                person_id=f"LAC{ref}",
                given=rng.choice(_GIVEN_FEMALE if carer_gender == "female" else _GIVEN_MALE),
                family=rng.choice(_FAMILY),
                gender=carer_gender,
                birth_date=self.today - timedelta(days=rng.randint(30, 75) * 365),
                assessed=assessed + timedelta(days=rng.randint(1, 20)),
            )
        return SocialCare(
            council=borough.council,
            person_id=f"LA{ref}",
            support_reason=reason,
            accommodation="Registered nursing home"
            if residence and residence.care_type == "nursing"
            else ("Registered care home" if residence else rng.choice(_ACCOMMODATION)),
            has_unpaid_carer="Yes" if carer else rng.choice(("No", "Unknown")),
            events=tuple(events),
            carer=carer,
        )


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)
