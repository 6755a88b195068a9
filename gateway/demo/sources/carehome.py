"""The care homes' exports: one NDJSON file per home, each line one
resident's whole record in the care-home record format
(``mappings/carehome/schema.json``, format version 1), as a home's digital
social care record system exports it for the gateway.

A record says who the resident is (the home's address as theirs), their stay,
About Me, what worries staff now, their baseline observations, the MAR
chart, allergies, a DNACPR decision, alerts (falls), contacts, a care plan
summary and their belongings. Each home's address is invented from its
borough (a number on one of the borough's streets, a postcode in its area).

Every record is exported on the demo's day at 06:30, London time; the last
dose of each regular medicine was given the day before. Planted defect
``CARE_HOME_INVALID``: one error a real export might carry (a MAR route
written "by mouth", or a misspelt property when there is no medicine), so
the record is refused with the JSON path of the error.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import IO, Any

import orjson

from gateway.demo import world
from gateway.demo.people import (
    CARE_HOME_INVALID,
    COPD,
    DEMENTIA,
    VASCULAR_DEMENTIA,
    Person,
    Residence,
    Vitals,
)
from gateway.demo.sources import SourceFile, london_at, london_moment
from gateway.demo.world import Organisation, borough_of

Json = dict[str, Any]

FORMAT = "care-home"
# The contact words of the person model that are not the format's.
_RELATIONSHIPS = {
    "parent": "other-relative",
    "mother": "other-relative",
    "father": "other-relative",
}
_FORMAT_RELATIONSHIPS = frozenset(
    {
        "spouse",
        "husband",
        "wife",
        "partner",
        "son",
        "daughter",
        "son-in-law",
        "daughter-in-law",
        "brother",
        "sister",
        "grandchild",
        "niece",
        "nephew",
        "cousin",
        "other-relative",
        "friend",
        "neighbour",
        "advocate",
        "social-worker",
        "other",
    }
)
_KNOWN_AS = {
    "Margaret": "Peggy",
    "Patricia": "Pat",
    "Kathleen": "Kath",
    "Doreen": "Dot",
    "Sylvia": "Syl",
    "Elena": "Lena",
    "Michael": "Mick",
    "David": "Dave",
    "Ronald": "Ron",
    "Harold": "Harry",
    "Stanley": "Stan",
    "Samuel": "Sam",
    "Daniel": "Danny",
    "Patrick": "Paddy",
}
_CONTINENCE = (
    "Continent of bladder and bowel; needs prompting to use the toilet.",
    "Continent of bowel; wears pads at night for urinary incontinence.",
    "Doubly incontinent; pads day and night, changed every four hours and when wet.",
)
_DIETS: tuple[tuple[str, str | None, str | None], ...] = (
    ("Normal diet; likes small portions and a pudding.", None, None),
    ("Fortified diet, small portions; needs prompting to drink.", "7EC", "0"),
    ("Soft and bite-sized diet; mildly thick drinks after a swallowing assessment.", "6", "2"),
    ("Diabetic diet; no added sugar.", None, None),
)


def home_address(home: Organisation) -> Json:
    """The home's address, in the format's words (``world.home_address``)."""
    *lines, town, postcode = world.home_address(home)
    return {
        "lines": lines,
        "town": town,
        "district": f"London Borough of {borough_of(home).name}",
        "postcode": postcode,
    }


class _Home:
    def __init__(self, out: Path, home: Organisation) -> None:
        self.home = home
        self.path = Path("care-home") / f"{home.ods}-export.ndjson"
        self.stream: IO[bytes] = (out / self.path).open("wb")
        self.address = home_address(home)
        self.records = 0
        self.defective = 0


class CareHomeWriter:
    """``SourceWriter`` of the care homes' resident record exports."""

    def __init__(self, out: Path, homes: Sequence[Organisation], today: date) -> None:
        (out / "care-home").mkdir(parents=True, exist_ok=True)
        self.today = today
        self.exported = datetime.combine(today, time(6, 30))
        self.homes = {h.ods: _Home(out, h) for h in homes}

    def add(self, person: Person) -> None:
        stay = person.residence
        home = self.homes.get(stay.home.ods) if stay is not None else None
        if stay is None or home is None:
            return
        record = _Record(person, stay, home, self.exported).build()
        home.stream.write(orjson.dumps(record) + b"\n")
        home.records += 1
        home.defective += CARE_HOME_INVALID in person.defects

    def close(self) -> list[SourceFile]:
        files = []
        for home in self.homes.values():
            home.stream.close()
            files.append(SourceFile(home.path, FORMAT, home.home.ods, home.records, home.defective))
        return files


class _Record:
    """One resident's record, built once and dropped."""

    def __init__(self, person: Person, stay: Residence, home: _Home, exported: datetime) -> None:
        self.person = person
        self.stay = stay
        self.home = home
        self.exported = exported
        self.yesterday = exported.date() - timedelta(days=1)
        self.rng = random.Random(f"care-home:{person.index}")
        # The last full day of the MAR chart: yesterday, or the day before
        # the resident went into hospital.
        admitted = [s.admitted.date() for s in person.stays if s.discharged is None]
        self.last_round = min([self.yesterday, *(day - timedelta(days=1) for day in admitted)])
        codes = {p.code for p in person.problems if p.active}
        self.dementia = next((c for c in (DEMENTIA, VASCULAR_DEMENTIA) if c in codes), None)
        self.copd = COPD in codes
        self.aids = {b.item for b in stay.belongings}

    def item_id(self, kind: str, n: int) -> str:
        return f"{kind}-{self.person.index}-{n}"

    def build(self) -> Json:
        person, stay, home = self.person, self.stay, self.home.home
        record: Json = {
            "formatVersion": "1",
            "recordId": f"{home.ods}-{stay.resident_id}",
            "exportedAt": london_moment(self.exported),
            "careHome": {"odsCode": home.ods, "name": home.name},
            "gpPractice": {"odsCode": person.practice.ods, "name": person.practice.name},
            "resident": self.resident(),
            "residence": {
                "startDate": stay.start.isoformat(),
                "room": stay.room,
                "careType": stay.care_type,
            },
            "aboutMe": self.about_me(),
        }
        if stay.concern:
            record["currentConcern"] = {
                "description": stay.concern,
                "onset": london_at(self.yesterday, self.rng.randint(14, 20)),
                "recordedAt": london_at(self.exported.date(), 5, 50),
            }
        if person.vitals is not None:
            record["baseline"] = self.baseline(person.vitals)
        medications = self.medications()
        if medications:
            record["medications"] = medications
        if person.allergies:
            record["allergies"] = [
                {
                    "id": self.item_id("ALG", n),
                    "substance": allergy.substance,
                    "snomedCode": allergy.snomed,
                    "category": allergy.category,
                    "reaction": allergy.reaction,
                    "severity": allergy.severity,
                    "status": "active",
                    **({"recordedOn": allergy.recorded.isoformat()} if allergy.recorded else {}),
                }
                for n, allergy in enumerate(person.allergies)
            ]
        else:
            record["noKnownAllergies"] = True
        if stay.dnacpr is not None:
            record["advanceDecisions"] = [self.dnacpr(stay.dnacpr)]
        if stay.falls:
            record["alerts"] = [self.falls()]
        contacts = self.contacts()
        if contacts:
            record["contacts"] = contacts
        record["carePlan"] = self.care_plan()
        if stay.belongings:
            record["belongings"] = [
                {
                    "id": self.item_id("BEL", n),
                    "item": belonging.item,
                    "description": belonging.description,
                    "sentWithResident": belonging.sent_with_resident,
                }
                for n, belonging in enumerate(stay.belongings)
            ]
        if CARE_HOME_INVALID in person.defects:
            self.plant_defect(record)
        return record

    def plant_defect(self, record: Json) -> None:
        """One schema error a real export might have: the MAR's own words
        for a route, else a misspelt property."""
        if record.get("medications"):
            record["medications"][0]["route"] = "by mouth"
        else:
            record["residence"]["roomNumber"] = record["residence"].pop("room")

    def resident(self) -> Json:
        person, rng = self.person, self.rng
        name: Json = {"given": list(person.given), "family": person.family}
        if person.title:
            name = {"title": person.title, **name}
        resident: Json = {}
        if person.nhs_number is not None:
            number = person.nhs_number
            if rng.random() < 0.5:  # as people write it
                number = f"{number[:3]} {number[3:6]} {number[6:]}"
            resident["nhsNumber"] = number
            resident["nhsNumberVerification"] = "01"
        resident["residentId"] = self.stay.resident_id
        resident["name"] = name
        known_as = _KNOWN_AS.get(person.given[0])
        if known_as and rng.random() < 0.6:
            resident["knownAs"] = known_as
        elif len(person.given) > 1 and rng.random() < 0.3:
            resident["knownAs"] = person.given[1]  # goes by their middle name
        resident["birthDate"] = person.birth_date.isoformat()
        resident["gender"] = person.gender
        resident["address"] = self.home.address if self.stay.permanent else self.own_address()
        return resident

    def own_address(self) -> Json:
        """Where a resident on a short stay lives, and goes back to."""
        *lines, town, postcode = self.person.address
        return {
            "lines": lines,
            "town": town,
            "district": f"London Borough of {self.person.borough.name}",
            "postcode": postcode,
        }

    def about_me(self) -> Json:
        ways = []
        if "hearing-aid" in self.aids:
            ways.append("Hard of hearing: face them, speak clearly, check the hearing aid is in.")
        if self.dementia is not None:
            ways.append(
                "Lives with dementia: short sentences, one question at a time; "
                "may not remember recent events."
            )
        if not ways:
            ways.append("Communicates well; likes to be asked before being helped.")
        recorded = min(self.stay.start + timedelta(days=14), self.yesterday)
        return {
            "whatMattersToMe": self.stay.about_me,
            "communication": " ".join(ways),
            "recordedOn": max(recorded, self.stay.start).isoformat(),
        }

    def baseline(self, vitals: Vitals) -> Json:
        rng = self.rng
        mobility = (
            "Walks short distances with a four-wheeled walker and one carer."
            if "walking-frame" in self.aids
            else "Walks independently indoors; a carer goes with them outside."
        )
        if self.stay.falls:
            mobility += " At risk of falls: see alerts."
        cognition = (
            f"{self.dementia.display}. Knows family; not always oriented to time or place; "
            "makes everyday choices with support."
            if self.dementia is not None
            else "No known memory problems; makes their own decisions."
        )
        words, food, drink = rng.choice(_DIETS)
        diet: Json = {"description": words}
        if food:
            diet["foodTexture"] = food
        if drink:
            diet["drinkTexture"] = drink
        # The home's own baseline, taken since the resident moved in.
        taken = vitals.taken
        if taken.date() <= self.stay.start:
            taken = datetime.combine(self.stay.start + timedelta(days=1), taken.time())
        return {
            "takenAt": london_moment(taken),
            "respiratoryRate": vitals.respiratory_rate,
            "oxygenSaturation": {
                "percent": vitals.oxygen_saturation,
                "scale": 2 if self.copd else 1,
            },
            "onOxygen": False,
            "bloodPressure": {"systolic": vitals.systolic, "diastolic": vitals.diastolic},
            "pulse": vitals.pulse,
            "temperature": vitals.temperature,
            "consciousness": "A",
            "weight": {"kg": vitals.weight_kg},
            "height": {"cm": vitals.height_cm},
            "mobility": mobility,
            "cognition": cognition,
            "continence": rng.choice(_CONTINENCE),
            "diet": diet,
        }

    def medications(self) -> list[Json]:
        """The MAR chart: the last dose of each regular medicine given the
        day before the export (or before the resident went into hospital),
        at the round its instructions name; an "as required" one given in
        the few days before, or not lately."""
        rng = self.rng
        lines = []
        for n, medicine in enumerate(self.person.medicines):
            if medicine.stopped is not None:
                continue  # off the chart since the resident came back from hospital
            line: Json = {"id": self.item_id("MAR", n), "name": medicine.name}
            if medicine.dmd:
                line["dmdCode"] = medicine.dmd
            line["dose"] = medicine.dose
            line["route"] = medicine.route
            line["asRequired"] = medicine.as_required
            dose = medicine.dose.lower()
            if medicine.as_required:
                if rng.random() < 0.5:
                    day = max(self.last_round - timedelta(days=rng.randint(0, 3)), self.stay.start)
                    line["lastGiven"] = london_at(
                        day, rng.randint(9, 20), rng.choice((0, 15, 30, 45))
                    )
            elif "night" in dose:
                line["lastGiven"] = london_at(self.last_round, 21)
            elif "twice" in dose or "three times" in dose:
                line["lastGiven"] = london_at(self.last_round, 18)
            else:
                line["lastGiven"] = london_at(self.last_round, 8)
            line["inBag"] = True
            lines.append(line)
        return lines

    def dnacpr(self, made: date) -> Json:
        decision: Json = {
            "id": self.item_id("ADV", 0),
            "kind": "DNACPR",
            "status": "active",
            "made": made.isoformat(),
        }
        review = made + timedelta(days=180)
        if review < self.exported.date():
            decision["reviewed"] = review.isoformat()
        decision.update(
            {
                "cprRecommendation": "do-not-attempt",
                "documentLocation": (
                    "Purple DNACPR form at the front of the care file; copy in the red bag"
                ),
                "decision": (
                    "Not for cardiopulmonary resuscitation. For all other appropriate "
                    "treatment, including admission to hospital."
                ),
            }
        )
        return decision

    def falls(self) -> Json:
        falls = self.stay.falls
        # Written as a carer writes a date, and as documents show dates.
        if len(falls) == 1:
            said = f"Fell on {_written(falls[0])}."
        else:
            count = {2: "Two", 3: "Three"}.get(len(falls), str(len(falls)))
            said = f"{count} falls since {_written(falls[0])}, the last on {_written(falls[-1])}."
        plan = (
            "Walks with a frame; sensor mat beside the bed at night."
            if "walking-frame" in self.aids
            else "Sensor mat beside the bed at night."
        )
        return {
            "id": self.item_id("ALR", 0),
            "kind": "falls",
            "description": f"{said} {plan}",
            "start": falls[0].isoformat(),
        }

    def contacts(self) -> list[Json]:
        found = []
        for n, contact in enumerate(self.person.contacts):
            relationship = _RELATIONSHIPS.get(contact.relationship, contact.relationship)
            if relationship not in _FORMAT_RELATIONSHIPS:
                relationship = "other"
            entry: Json = {
                "id": self.item_id("CON", n),
                "name": {"given": [contact.given], "family": contact.family},
                "relationship": relationship,
                "phone": contact.phone,
            }
            if contact.next_of_kin:
                entry["nextOfKin"] = True
                entry["emergencyContact"] = True
            found.append(entry)
        return found

    def care_plan(self) -> Json:
        stay = self.stay
        needs = [f"{stay.care_type.capitalize()} care."]
        if "walking-frame" in self.aids:
            needs.append("One carer and the walker for all transfers.")
        if stay.falls:
            needs.append("Falls plan: sensor mat at night, hourly checks.")
        if self.dementia is not None:
            needs.append("Reassurance and a calm, familiar routine; orientate to day and place.")
        if self.person.medicines:
            needs.append("Medicines given by staff from the MAR chart.")
        needs.append("Pressure area care and skin checks daily.")
        reviewed = max(self.yesterday - timedelta(days=self.rng.randint(5, 60)), stay.start)
        return {
            "summary": " ".join(needs),
            "lastReviewed": reviewed.isoformat(),
            "goals": ["To stay as independent as possible and keep in touch with family"],
        }


def _written(day: date) -> str:
    """``21 Oct 2026``: a date as a person writes it in a note."""
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
