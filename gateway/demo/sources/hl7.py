"""The hospital's ADT feed: HL7 v2.4 messages as its patient administration
system sends them (HL7 UK, as ITK specifies), one file for the demo.

Each hospital stay is an A01 (admit) and, once the person has gone home, an
A03 (discharge). Segments end with a carriage return and each message with a
newline; the text is ISO 8859-1, as MSH-18 says. Messages are written a
person at a time, in the order people come, so the file streams.

Planted defects: ``HL7_BAD_NHS_NUMBER`` makes the first message of the
person's first stay carry an NHS number that fails Modulus 11, and
``HL7_BROKEN`` adds one message that cannot be read (its MSH cut short) or
names nobody (a PID without identifiers). Both are refused as records of
their own. A discharge whose admission was refused still loads: it states
the visit whole, and the mapping does not need the admission first.
"""

from __future__ import annotations

import random
import re
from datetime import date, datetime, timedelta
from pathlib import Path

from gateway.demo.people import (
    HL7_BAD_NHS_NUMBER,
    HL7_BROKEN,
    Contact,
    HospitalStay,
    Person,
)
from gateway.demo.sources import SourceFile, wrong_check_digit
from gateway.demo.world import Organisation

FORMAT = "hl7v2"
# HL7 escapes for text that carries the separators (O'Brien does not).
_ESCAPES = str.maketrans(
    {
        "\\": "\\E\\",
        "|": "\\F\\",
        "^": "\\S\\",
        "&": "\\T\\",
        "~": "\\R\\",
        "\r": "\\X0D\\",
        "\n": "\\.br\\",
    }
)
_SPECIAL = frozenset("\\|^&~\r\n")
# "Hemiarthroplasty of hip (OPCS-4 W46.1)": the words and the OPCS-4 code.
_OPCS = re.compile(r"(?P<words>.*?)\s*\(OPCS-4 (?P<code>[A-Z]\d{2}(?:\.\d)?)\)\s*")
# HL7 table 0063 (relationship) for the demo's contact words.
_RELATIONSHIPS = {
    "daughter": "CHD",
    "son": "CHD",
    "wife": "SPO",
    "husband": "SPO",
    "niece": "EXF",
    "nephew": "EXF",
    "friend": "FND",
    "parent": "PAR",
    "mother": "MTH",
    "father": "FTH",
    "sister": "SIS",
    "brother": "BRO",
}
# Source of admission and discharge destination (NHS Data Dictionary): a
# private dwelling, or a care home not run by the NHS or a council.
_HOME, _CARE_HOME = "19", "85"
# MSH-9.3, the message structure of each event (HL7 v2.4).
_STRUCTURES = {"A01": "ADT_A01", "A03": "ADT_A03", "A08": "ADT_A01"}
# HL7 table 0128 (allergy severity).
_SEVERITIES = {"severe": "SV", "moderate": "MO", "mild": "MI"}
# An NHS number no check digit makes valid (its Modulus 11 remainder is 10),
# for a person sent with a bad number who has none.
_NEVER_VALID = "1234567890"


def _text(value: str) -> str:
    """``value`` with HL7's separators escaped."""
    return value.translate(_ESCAPES) if _SPECIAL.intersection(value) else value


def apart(hospital: Organisation) -> tuple[Path, Path]:
    """Where ``AdtWriter.write_apart`` puts an admission and a discharge
    (relative to the demo's directory)."""
    return (
        Path("hospital") / f"{hospital.ods}-adt-admission.hl7",
        Path("hospital") / f"{hospital.ods}-adt-discharge.hl7",
    )


def _ts(moment: datetime) -> str:
    return f"{moment:%Y%m%d%H%M}"


def _bad_nhs_number(number: str | None) -> str:
    """``number`` with its check digit changed, or one no check digit makes valid."""
    return _NEVER_VALID if number is None else wrong_check_digit(number)


class AdtWriter:
    """``SourceWriter`` of the hospital's ADT messages: one file,
    ``hospital/<ODS>-adt.hl7``."""

    def __init__(self, out: Path, hospital: Organisation, today: date) -> None:
        self.hospital = hospital
        self.today = today
        self.path = Path("hospital") / f"{hospital.ods}-adt.hl7"
        target = out / self.path
        target.parent.mkdir(parents=True, exist_ok=True)
        self._file = target.open("w", encoding="latin-1", errors="replace", newline="")
        self._records = 0
        self._defective = 0

    # --- SourceWriter -----------------------------------------------------

    def add(self, person: Person) -> None:
        if not person.stays:
            return
        rng = random.Random(f"adt:{person.index}")
        bad = HL7_BAD_NHS_NUMBER in person.defects
        for n, stay in enumerate(person.stays):
            wrong = _bad_nhs_number(person.nhs_number) if bad and n == 0 else None
            self._write(self._admit(person, n, stay, wrong), defective=wrong is not None)
            if stay.discharged is not None:
                self._write(self._discharge(person, n, stay), defective=False)
        if HL7_BROKEN in person.defects:
            self._write(self._broken(person, rng), defective=True)

    def close(self) -> list[SourceFile]:
        self._file.close()
        return [SourceFile(self.path, FORMAT, self.hospital.ods, self._records, self._defective)]

    # --- Apart from the feed ----------------------------------------------

    def write_apart(self, out: Path, person: Person, stay: HospitalStay) -> None:
        """The admission (A01) and discharge (A03) of ``person``'s next
        ``stay``, each in a file of its own beside the feed and not in it
        (``apart``): the demo loads them once the gateway serves, so that
        its subscribers are told of both as they happen."""
        n = len(person.stays)
        messages = (self._admit(person, n, stay, None), self._discharge(person, n, stay))
        for path, segments in zip(apart(self.hospital), messages, strict=True):
            with (out / path).open("w", encoding="latin-1", errors="replace", newline="") as file:
                file.write("\r".join(segments) + "\r\n")

    # --- Messages ---------------------------------------------------------

    def _write(self, segments: list[str], *, defective: bool) -> None:
        self._file.write("\r".join(segments) + "\r\n")
        self._records += 1
        self._defective += defective

    def _msh(self, when: datetime, event: str, control: str) -> str:
        return (
            f"MSH|^~\\&|PAS|{self.hospital.ods}|GATEWAY|LONDON|{_ts(when)}||"
            f"ADT^{event}^{_STRUCTURES[event]}|{control}|P|2.4|||AL|NE|GBR|8859/1"
        )

    def _control(self, person: Person, n: int, event: str) -> str:
        """MSH-10: unique in the file and the same every time it is made."""
        return f"{self.hospital.ods}-{person.index:07d}-{n}-{event}"

    def _pid(self, person: Person, nhs_number: str | None) -> str:
        ods = self.hospital.ods
        ids = [f"H{person.index:07d}^^^{ods}^MR"]
        if nhs_number is not None:
            ids.insert(0, f"{nhs_number}^^^NHS^NH")
        given = "^".join(_text(g) for g in (*person.given, "")[:2])
        *lines, city, postcode = person.address
        fields = [""] * 33
        fields[0], fields[1] = "PID", "1"
        fields[3] = "~".join(ids)
        fields[5] = f"{_text(person.family)}^{given}^^{_text(person.title)}"
        fields[7] = f"{person.birth_date:%Y%m%d}"
        fields[8] = "F" if person.gender == "female" else "M"
        street, other = (*lines, "")[:2]  # XAD-1 and XAD-2: a care home's name, then the street
        fields[11] = f"{_text(street)}^{_text(other)}^{_text(city)}^^{postcode}^GBR^H"
        kind = "CP" if person.phone.startswith("07") else "PH"
        fields[13] = f"{person.phone}^PRN^{kind}"
        fields[22] = person.ethnicity
        fields[32] = "NSTS01" if nhs_number == person.nhs_number and nhs_number else ""
        return "|".join(fields).rstrip("|")

    def _pd1(self, person: Person) -> str:
        return f"PD1|||{_text(person.practice.name)}^^{person.practice.ods}"

    def _pv1(self, person: Person, stay: HospitalStay, discharged: bool) -> str:
        fields = [""] * 46
        fields[0], fields[1], fields[2] = "PV1", "1", "I"
        fields[3] = f"{_text(stay.ward)}^^^{self.hospital.ods}"
        fields[4] = "21"  # admission method: emergency, via A&E
        fields[14] = _where(person, stay.admitted)  # source of admission
        fields[19] = stay.visit
        fields[44] = _ts(stay.admitted)
        if discharged and stay.discharged is not None:
            fields[36] = _where(person, stay.discharged)  # discharge destination
            fields[45] = _ts(stay.discharged)
        return "|".join(fields).rstrip("|")

    def _pv2(self, stay: HospitalStay) -> str:
        fields = [""] * 23
        fields[0] = "PV2"
        fields[22] = "Y" if stay.protected else "N"
        return "|".join(fields)

    def _dg1(self, stay: HospitalStay, kind: str) -> list[str]:
        found = []
        for number, code in enumerate(stay.diagnoses, start=1):
            coded = (
                f"{code.icd10}^{_text(code.display)}^I10"
                if code.icd10
                else f"{code.snomed}^{_text(code.display)}^SCT"
            )
            found.append(f"DG1|{number}||{coded}||{_ts(stay.admitted)}|{kind}")
        return found

    def _admit(
        self, person: Person, n: int, stay: HospitalStay, wrong_number: str | None
    ) -> list[str]:
        segments = [
            self._msh(stay.admitted, "A01", self._control(person, n, "A01")),
            f"EVN|A01|{_ts(stay.admitted)}",
            self._pid(person, wrong_number or person.nhs_number),
            self._pd1(person),
        ]
        if person.contacts:
            segments.append(_nk1(person.contacts[0]))
        segments += [self._pv1(person, stay, False), self._pv2(stay)]
        segments += self._dg1(stay, "A")
        medication = [a for a in person.allergies if a.category == "medication"]
        for number, allergy in enumerate(medication, start=1):
            code = allergy.substance[:3].upper()
            severity = _SEVERITIES.get(allergy.severity, "U")
            segments.append(
                f"AL1|{number}|DA|{code}^{_text(allergy.substance)}|{severity}|"
                f"{_text(allergy.reaction)}"
            )
        return segments

    def _discharge(self, person: Person, n: int, stay: HospitalStay) -> list[str]:
        assert stay.discharged is not None
        segments = [
            self._msh(stay.discharged, "A03", self._control(person, n, "A03")),
            f"EVN|A03|{_ts(stay.discharged)}",
            self._pid(person, person.nhs_number),
            self._pd1(person),
            self._pv1(person, stay, True),
            self._pv2(stay),
            *self._dg1(stay, "F"),
        ]
        if stay.procedure:
            segments.append(_pr1(stay))
        return segments

    def _broken(self, person: Person, rng: random.Random) -> list[str]:
        """A message that is refused on its own: an MSH cut short before its
        control id (unreadable), or a PID that names nobody."""
        stay = person.stays[-1]
        when = (stay.discharged or stay.admitted) + timedelta(minutes=rng.randint(5, 90))
        if rng.random() < 0.5:
            head = f"MSH|^~\\&|PAS|{self.hospital.ods}|GATEWAY|LONDON|{_ts(when)}||ADT^A08"
        else:
            head = self._msh(when, "A08", self._control(person, len(person.stays), "A08"))
        given = _text(person.given[0])
        return [
            head,
            f"EVN|A08|{_ts(when)}",
            f"PID|1||||{_text(person.family)}^{given}||{person.birth_date:%Y%m%d}",
            self._pv1(person, stay, stay.discharged is not None),
        ]


def _where(person: Person, moment: datetime) -> str:
    """Where the person came from, or went to, at ``moment``: the care home
    once their stay there had begun, else their own home."""
    stay = person.residence
    return _CARE_HOME if stay is not None and moment.date() >= stay.start else _HOME


def _nk1(contact: Contact) -> str:
    code = _RELATIONSHIPS.get(contact.relationship, "OTH")
    role = "N^Next of kin" if contact.next_of_kin else "C^Emergency contact"
    return (
        f"NK1|1|{_text(contact.family)}^{_text(contact.given)}|"
        f"{code}^{_text(contact.relationship.capitalize())}||{contact.phone}||{role}"
    )


def _pr1(stay: HospitalStay) -> str:
    """The procedure as PR1-3 codes it: OPCS-4 when the words carry its
    code, else the words alone (PR1-4)."""
    assert stay.discharged is not None
    performed = stay.admitted + min(timedelta(hours=20), (stay.discharged - stay.admitted) / 3)
    performed -= timedelta(minutes=performed.minute % 5, seconds=performed.second)
    if found := _OPCS.fullmatch(stay.procedure):
        coded = f"{found['code']}^{_text(found['words'])}^OPCS4|"
    else:
        coded = f"|{_text(stay.procedure)}"
    return f"PR1|1||{coded}|{_ts(performed)}"
