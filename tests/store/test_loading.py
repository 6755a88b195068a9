"""Loading source files through the write path, on both stores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from consent.model import Requester
from gateway import fhirjson
from gateway.access.control import AccessControl
from gateway.loading import load
from gateway.loading.ledger import archived
from gateway.loading.matches import decide, probable_matches
from gateway.loading.person import Source, element_sources
from gateway.store import Store
from mappings.identity import NHS_NUMBER_SYSTEM, id_basis, mapped_id
from mappings.ukcore import ETHNIC_URL, LOCAL_ID

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hl7v2"
FILES = [FIXTURES / "admit.hl7", FIXTURES / "discharge-and-errors.hl7"]


def test_hl7v2_files_load_once_with_rejections_reported(store: Store) -> None:
    report = load(store, "hl7v2", "rke", FILES)
    assert (report.records, report.loaded, report.unchanged) == (4, 2, 0)
    assert [(r.record, r.key) for r in report.rejections] == [
        ("message 2 (byte 303)", "MSG0003"),
        ("message 3 (byte 444)", ""),
    ]
    assert "Modulus 11" in report.rejections[0].reason
    # The discharge restates the person as admitted: their Patient is not written again.
    assert report.written["Patient"] == 1 and report.written["Encounter"] == 2

    encounters = store.select(
        "SELECT res_id FROM resource_current WHERE res_type = 'Encounter'", []
    )
    (encounter_id,) = [str(row[0]) for row in encounters]
    stored = store.read("Encounter", encounter_id)
    assert stored is not None and stored.version == 2
    encounter = fhirjson.loads(stored.content or b"")
    assert encounter["status"] == "finished" and encounter["meta"]["source"] == "urn:ods:RKE"
    provenance = store.select(
        "SELECT COUNT(*) FROM resource_current WHERE res_type = 'Provenance'", []
    )
    assert int(str(provenance[0][0])) >= 2

    again = load(store, "hl7v2", "RKE", FILES)
    assert (again.loaded, again.unchanged, len(again.rejections)) == (0, 2, 2)
    assert store.read("Encounter", encounter_id).version == 2  # type: ignore[union-attr]


def _message(event: str, control: str, *segments: str) -> str:
    head = f"MSH|^~\\&|PAS|RKE|GATEWAY|LONDON|20260401100000||ADT^{event}|{control}|P|2.4"
    return "\r".join([head, *segments]) + "\r"


def _pv1(visit: str) -> str:
    fields = ["PV1", "1", "I", "W1"] + [""] * 42
    fields[19] = visit
    fields[44] = "20260401100000"
    return "|".join(fields)


def test_a_merge_retires_one_record_into_the_other(store: Store, tmp_path: Path) -> None:
    local_only = "PID|1||H999^^^RKE^MR||Smith^Jo||19500101|1"
    feed = tmp_path / "feed.hl7"
    feed.write_text(
        "".join(
            [
                _message("A01", "M1", local_only, _pv1("V2")),
                _message(
                    "A40",
                    "M2",
                    "PID|1||9990000034^^^NHS^NH~H999^^^RKE^MR||Smith^Jo||19500101|1",
                    "MRG|H999^^^RKE^MR",
                ),
                _message("A40", "M3", "PID|1||9990000034^^^NHS^NH", "MRG|H000^^^RKE^MR"),
                _message("A11", "M4", local_only, _pv1("V-never")),
            ]
        ),
        encoding="latin-1",
    )
    report = load(store, "hl7v2", "RKE", [feed])
    assert report.loaded == 2
    assert [r.key for r in report.rejections] == ["M3", "M4"]
    assert "not known" in report.rejections[0].reason
    assert "never admitted" in report.rejections[1].reason
    patients = {
        str(row[0]): fhirjson.loads(store.read("Patient", str(row[0])).content or b"")  # type: ignore[union-attr]
        for row in store.select(
            "SELECT res_id FROM resource_current WHERE res_type = 'Patient'", []
        )
    }
    retired = next(p for p in patients.values() if p.get("active") is False)
    survivor = next(p for p in patients.values() if p is not retired)
    assert retired["link"] == [
        {"other": {"reference": f"Patient/{survivor['id']}"}, "type": "replaced-by"}
    ]
    assert survivor["link"][0]["type"] == "replaces"
    (encounter_id,) = [
        str(r[0])
        for r in store.select(
            "SELECT res_id FROM resource_current WHERE res_type = 'Encounter'", []
        )
    ]
    encounter = fhirjson.loads(store.read("Encounter", encounter_id).content or b"")  # type: ignore[union-attr]
    assert encounter["subject"]["reference"] == f"Patient/{survivor['id']}"


def test_a_visit_keeps_the_diagnoses_earlier_messages_gave_it(store: Store, tmp_path: Path) -> None:
    """Each DG1 is one of the visit's diagnoses (Encounter.diagnosis, its
    role from DG1-6 and rank from DG1-15); an update that sends another, or
    none, keeps those sent before, as their Conditions stay."""
    pid = "PID|1||9990000018^^^NHS^NH||Murphy^Aoife||19380412|2"
    dg1 = ["DG1", "1", "", "J18.9^Pneumonia^I10", "", "", "A"] + [""] * 8 + ["1"]
    feed = tmp_path / "adt.hl7"
    feed.write_text(
        _message("A01", "D1", pid, _pv1("V1"), "|".join(dg1))
        + "\n"
        + _message("A08", "D2", pid, _pv1("V1"), "DG1|2||I10^Hypertension^I10|||W")
        + "\n"
        + _message("A08", "D3", pid, _pv1("V1"))
    )
    report = load(store, "hl7v2", "RKE", [feed])
    assert (report.loaded, report.unchanged) == (2, 1)  # the last one changes nothing
    visit = _current(store, "Encounter", mapped_id("RKE", "Encounter", "V1"))
    diagnoses = visit["diagnosis"]
    assert len(diagnoses) == 2
    named = {d["condition"]["reference"].split("/")[1] for d in diagnoses}
    codes = {_current(store, "Condition", c)["code"]["coding"][0]["code"] for c in named}
    assert codes == {"J18.9", "I10"}
    pneumonia = next(d for d in diagnoses if "rank" in d)
    assert pneumonia["rank"] == 1 and pneumonia["use"]["coding"][0]["code"] == "AD"


def test_a_message_older_than_one_loaded_does_not_turn_the_person_back(
    store: Store, tmp_path: Path
) -> None:
    """A backlog replayed late: the person's details stand as the latest
    message (MSH-7) states them, while the older message's visit, which no
    later one spoke of, is still written."""

    def message(control: str, sent: str, street: str, visit: str) -> str:
        return "\r".join(
            [
                f"MSH|^~\\&|PAS|RKE|GATEWAY|LONDON|{sent}||ADT^A01|{control}|P|2.4",
                f"PID|1||9990000018^^^NHS^NH||Murphy^Aoife||19380412|2|||{street}^^London^^ZZ9 1AA",
                _pv1(visit),
            ]
        )

    feed = tmp_path / "adt.hl7"
    feed.write_text(
        message("N2", "20260402100000", "2 New Road", "V2")
        + "\n"
        + message("N1", "20260401100000", "1 Old Lane", "V1")
    )
    report = load(store, "hl7v2", "RKE", [feed])
    assert (report.loaded, report.rejections) == (2, [])
    person = _patient(store, mapped_id("NHS", "Patient", "9990000018"))
    assert person["address"][0]["line"] == ["2 New Road"]
    assert person["meta"]["versionId"] == "1"
    assert _current(store, "Encounter", mapped_id("RKE", "Encounter", "V1"))["status"]


def test_an_update_replayed_late_leaves_the_visit_as_a_later_discharge_left_it(
    store: Store, tmp_path: Path
) -> None:
    """An A08 sent before the discharge but loaded after it (a backlog) must
    not admit the person again nor move them back to a ward: the visit
    stands as the later message stated it. Only the diagnosis no later
    message carried is added, with its Condition."""
    pid = "PID|1||9990000018^^^NHS^NH||Murphy^Aoife||19380412|2"

    def message(event: str, control: str, sent: str, *segments: str) -> str:
        head = f"MSH|^~\\&|PAS|RKE|GATEWAY|LONDON|{sent}||ADT^{event}|{control}|P|2.4"
        return "\r".join([head, pid, *segments]) + "\r"

    def pv1(ward: str, discharged: str = "") -> str:
        fields = _pv1("V1").split("|")
        fields[3] = ward
        fields[45] = discharged  # PV1-45
        return "|".join(fields)

    feed = tmp_path / "adt.hl7"
    feed.write_text(
        message("A01", "L1", "20260401100000", pv1("W1"))
        + "\n"
        + message("A03", "L3", "20260403100000", pv1("W1", "20260403093000"))
        + "\n"
        + message("A08", "L2", "20260402100000", pv1("W2"), "DG1|1||I10^Hypertension^I10|||W")
    )
    report = load(store, "hl7v2", "RKE", [feed])
    assert (report.loaded, report.rejections) == (3, [])
    visit = _current(store, "Encounter", mapped_id("RKE", "Encounter", "V1"))
    assert visit["status"] == "finished"
    assert visit["period"]["end"].startswith("2026-04-03")
    assert "W2" not in json.dumps(visit["location"])
    (diagnosis,) = visit["diagnosis"]
    condition = _current(store, "Condition", diagnosis["condition"]["reference"].split("/")[1])
    assert condition["code"]["coding"][0]["code"] == "I10"
    assert report.written == {"Patient": 1, "Encounter": 3, "Condition": 1}


def test_a_visit_protected_later_is_labelled_though_nothing_else_changed(
    store: Store, tmp_path: Path
) -> None:
    """An A08 that only adds PV2-22 Y to a visit already loaded must label
    it: comparing content alone would find nothing new and leave the visit
    visible to everyone the hospital shares with."""
    person = "PID|1||9990000034^^^NHS^NH||Smith^Jo||19500101|1"
    protect = "|".join(["PV2"] + [""] * 21 + ["Y"])
    feed = tmp_path / "feed.hl7"
    feed.write_text(
        _message("A01", "P1", person, _pv1("V5"))
        + _message("A08", "P2", person, _pv1("V5"), protect)
        + _message("A08", "P3", person, _pv1("V5"), protect),
        encoding="latin-1",
    )
    report = load(store, "hl7v2", "RKE", [feed])
    assert (report.loaded, report.unchanged, report.rejections) == (2, 1, [])
    (encounter_id,) = [
        str(r[0])
        for r in store.select(
            "SELECT res_id FROM resource_current WHERE res_type = 'Encounter'", []
        )
    ]
    stored = store.read("Encounter", encounter_id)
    assert stored is not None and stored.version == 2
    labels = fhirjson.loads(stored.content or b"")["meta"]["security"]
    assert {(label["system"], label["code"]) for label in labels} == {
        ("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "R")
    }


def _labels_of(store: Store, res_type: str) -> dict[str, set[str]]:
    """The confidentiality codes of each current ``res_type``, by id."""
    found = {}
    for (res_id,) in store.select(
        "SELECT res_id FROM resource_current WHERE res_type = ? AND deleted = ?",
        [res_type, False],
    ):
        stored = store.read(res_type, str(res_id))
        assert stored is not None and stored.content is not None
        meta = fhirjson.loads(stored.content).get("meta") or {}
        found[str(res_id)] = {label["code"] for label in meta.get("security") or []}
    return found


def test_an_update_silent_on_protection_keeps_the_visit_protected(
    store: Store, tmp_path: Path
) -> None:
    """An A08 that leaves PV2-22 empty (or sends no PV2) says nothing of the
    visit's protection: the visit stays labelled, and a diagnosis it adds is
    labelled too. An explicit N takes the protection off what it changes."""
    person = "PID|1||9990000034^^^NHS^NH||Smith^Jo||19500101|1"

    def pv2(protection: str) -> str:
        return "|".join(["PV2"] + [""] * 21 + [protection])

    feed = tmp_path / "feed.hl7"
    feed.write_text(
        _message("A01", "S1", person, _pv1("V6"), pv2("Y"))
        + _message("A08", "S2", person, _pv1("V6"), pv2(""), "DG1|1||J18.9^Pneumonia^I10")
        + _message("A08", "S3", person, _pv1("V6"), "DG1|2||J44.1^COPD exacerbation^I10"),
        encoding="latin-1",
    )
    report = load(store, "hl7v2", "RKE", [feed])
    assert (report.loaded, report.rejections) == (3, [])
    assert list(_labels_of(store, "Encounter").values()) == [{"R"}]
    assert list(_labels_of(store, "Condition").values()) == [{"R"}, {"R"}]

    opened = tmp_path / "opened.hl7"
    moved = _pv1("V6").replace("|I|W1|", "|I|W2|")
    opened.write_text(
        _message("A08", "S4", person, moved, pv2("N"), "DG1|1||J18.9^Lobar pneumonia^I10"),
        encoding="latin-1",
    )
    assert load(store, "hl7v2", "RKE", [opened]).rejections == []
    assert list(_labels_of(store, "Encounter").values()) == [set()]
    conditions = _labels_of(store, "Condition")
    pneumonia = mapped_id("RKE", "Condition", f"{id_basis('RKE', 'Encounter', 'V6')}|1")
    assert conditions.pop(pneumonia) == set()  # stated again, now open
    assert list(conditions.values()) == [{"R"}]  # not sent again: as it was


CLD = Path(__file__).resolve().parents[1] / "fixtures" / "cld"


def _current(store: Store, res_type: str, res_id: str) -> dict[str, Any]:
    found = store.read(res_type, res_id)
    assert found is not None and found.content is not None
    return fhirjson.loads(found.content)


def _patient(store: Store, patient_id: str) -> dict[str, Any]:
    return _current(store, "Patient", patient_id)


def test_a_council_return_loads_once_and_links_carers(store: Store) -> None:
    report = load(store, "cld", "713", [CLD / "return.csv"])
    assert (report.records, report.loaded, len(report.rejections)) == (5, 5, 0)
    assert report.written["EpisodeOfCare"] == 1 and report.written["Task"] == 3
    person = mapped_id("NHS", "Patient", "9990000018")
    (related,) = store.select(
        "SELECT res_id FROM resource_current WHERE res_type = 'RelatedPerson'", []
    )
    link = fhirjson.loads(store.read("RelatedPerson", str(related[0])).content or b"")  # type: ignore[union-attr]
    assert link["patient"] == {"reference": f"Patient/{person}"}  # resolved, stored plainly
    again = load(store, "cld", "713", [CLD / "return.csv"])
    assert (again.loaded, again.unchanged) == (0, 5)


def test_a_persons_facts_stand_as_at_their_latest_event_whatever_the_row_order(
    store: Store, tmp_path: Path
) -> None:
    """A return lists events in any order: the accommodation and support
    reason a row states are as at its event, so a row of an earlier event,
    read after a later one, leaves the later statement standing."""
    header, request, assessment = (CLD / "return.csv").read_text().splitlines()[:3]
    moved = assessment.replace("Owner occupier or shared ownership scheme", "Nursing home").replace(
        "Physical Support: Personal care support", "Support with Memory and Cognition"
    )
    returned = tmp_path / "return.csv"
    returned.write_text("\n".join([header, moved, request]) + "\n")  # the later event first
    report = load(store, "cld", "713", [returned])
    assert (report.loaded, report.rejections) == (2, [])
    person = id_basis("NHS", "Patient", "9990000018")  # what the keys of their records embed
    accommodation = _current(
        store, "Observation", mapped_id("713", "Observation", f"{person}|Accommodation_Status")
    )
    assert accommodation["effectiveDateTime"] == "2026-09-04"
    assert accommodation["valueCodeableConcept"]["text"] == "Registered nursing home"
    assert accommodation["meta"]["versionId"] == "1"  # the earlier event changed nothing
    reason = _current(
        store, "Condition", mapped_id("713", "Condition", f"{person}|primary-support-reason")
    )
    assert reason["recordedDate"] == "2026-09-04"
    assert reason["code"]["coding"][0]["code"] == "SMC"

    later = tmp_path / "later.csv"  # a later event still moves them on
    later.write_text(
        "\n".join(
            [
                header,
                assessment.replace("ASM-1", "ASM-9").replace(
                    "2026-09-04,2026-09-20", "2026-10-01,2026-10-02"
                ),
            ]
        )
        + "\n"
    )
    load(store, "cld", "713", [later])
    accommodation = _current(
        store, "Observation", mapped_id("713", "Observation", f"{person}|Accommodation_Status")
    )
    assert accommodation["effectiveDateTime"] == "2026-10-01"
    assert accommodation["valueCodeableConcept"]["text"] == (
        "Owner occupier or shared ownership scheme"
    )


def test_a_carer_of_someone_not_yet_known_is_rejected_with_the_reason(
    store: Store, tmp_path: Path
) -> None:
    lines = (CLD / "return.csv").read_text().splitlines()
    carer_only = tmp_path / "carer.csv"
    carer_only.write_text("\n".join([lines[0], lines[4]]) + "\n")
    report = load(store, "cld", "713", [carer_only])
    (rejection,) = report.rejections
    assert rejection.record == "line 2" and "LA100" in rejection.reason
    assert "not known here yet" in rejection.reason
    assert store.select("SELECT COUNT(*) FROM resource_current", []) == [(0,)]


def test_each_source_adds_what_it_knows_of_a_person(store: Store, tmp_path: Path) -> None:
    """The hospital knows the name; the council the ethnic category and its
    own id: the one Patient keeps both, and neither erases the other."""
    feed = tmp_path / "adt.hl7"
    feed.write_text(
        _message(
            "A28",
            "M1",
            "PID|1||9990000018^^^NHS^NH~H1^^^RKE^MR||Murphy^Aoife||19380412|2"
            "|||1 High St^^London^^ZZ9 1AA",
        )
    )
    load(store, "hl7v2", "RKE", [feed])
    load(store, "cld", "713", [CLD / "return.csv"])
    patient = _patient(store, mapped_id("NHS", "Patient", "9990000018"))
    assert patient["name"][0]["family"] == "Murphy"  # the hospital's, kept
    assert "extension" in patient  # the council's ethnic category, added
    systems = [i["system"] for i in patient["identifier"]]
    assert systems.count("https://fhir.nhs.uk/Id/nhs-number") == 1
    assert any(s.endswith(":RKE") for s in systems) and any(s.endswith(":713") for s in systems)


def _practices(store: Store, patient_id: str) -> list[str]:
    return [
        ref["identifier"]["value"]
        for ref in _patient(store, patient_id).get("generalPractitioner", [])
        if "identifier" in ref
    ]


def test_only_the_practice_moves_the_registered_practice_it_stated(
    store: Store, tmp_path: Path
) -> None:
    """The registered practice opens the person's whole record to a GP.
    Once the practice's own record says who it is, neither a council return
    nor a hospital's feed naming another practice (out of date: the person
    moved) changes it; the record of the practice they moved to does. For
    a person no practice has sent, the hospital's feed stands over the
    council's return, and for a person neither has sent, the council's
    latest return says."""
    header, request = (CLD / "return.csv").read_text().splitlines()[:2]
    number = "9990000042"  # the GP record's person
    stale = request.replace("999 000 0018", number).replace("F84003", "F84999")
    (tmp_path / "stale.csv").write_text(f"{header}\n{stale}\n")
    person = mapped_id("NHS", "Patient", number)
    load(store, "gp-connect", "F84003", [GP / "structured-rich.json"])
    assert _practices(store, person) == ["F84003"]
    assert load(store, "cld", "713", [tmp_path / "stale.csv"]).loaded == 1
    assert _practices(store, person) == ["F84003"]  # the council's other facts are kept
    assert "713" in {i["system"].rsplit(":", 1)[-1] for i in _patient(store, person)["identifier"]}
    feed = tmp_path / "adt.hl7"
    feed.write_text(
        _message(
            "A28",
            "M7",
            f"PID|1||{number}^^^NHS^NH||Lindqvist^Priya||19500101|2",
            "PD1|||Practice^^F84777",
        )
    )
    assert load(store, "hl7v2", "RKE", [feed]).loaded == 1
    assert _practices(store, person) == ["F84003"]
    moved = tmp_path / "moved.json"
    moved.write_text(
        (GP / "structured-rich.json")
        .read_text()
        .replace("F84003", "F84777")
        .replace("2025-11-03T09:15:27", "2026-05-01T09:00:00")
    )
    assert load(store, "gp-connect", "F84777", [moved]).loaded == 1
    assert _practices(store, person) == ["F84777"]

    hospital_only = "9990000026"
    feed.write_text(
        _message(
            "A28",
            "M8",
            f"PID|1||{hospital_only}^^^NHS^NH||Osei^Kwame||19400101|1",
            "PD1|||^^F84555",
        )
    )
    load(store, "hl7v2", "RKE", [feed])
    row = request.replace("999 000 0018", hospital_only).replace("LA100", "LA200")
    (tmp_path / "later.csv").write_text(f"{header}\n{row.replace('REQ-1', 'REQ-7')}\n")
    load(store, "cld", "713", [tmp_path / "later.csv"])
    assert _practices(store, mapped_id("NHS", "Patient", hospital_only)) == ["F84555"]

    council_only = mapped_id("NHS", "Patient", "9990000018")
    load(store, "cld", "713", [CLD / "return.csv"])
    assert _practices(store, council_only) == ["F84003"]
    moved_row = request.replace("F84003", "F84555").replace("REQ-1", "REQ-2")
    (tmp_path / "moved.csv").write_text(f"{header}\n{moved_row}\n")
    load(store, "cld", "713", [tmp_path / "moved.csv"])
    assert _practices(store, council_only) == ["F84555"]


def test_the_person_keeps_each_element_from_the_source_that_ranks_highest(
    store: Store, tmp_path: Path
) -> None:
    """The tester's case: the practice names itself, the GP and the ethnic
    category; a hospital's ADT and a care home's export of the same person,
    later, name the practice by its bare ODS code (and the hospital another
    category). The Patient keeps the practice's names and category, takes
    the hospital's later name and address (the practice's and the
    hospital's rank alike for who the person is), none of the home's, and
    every identifier; and which source gave each element is recorded."""
    number = "9990000042"
    person = mapped_id("NHS", "Patient", number)
    load(store, "gp-connect", "F84003", [GP / "structured-rich.json"])
    practice = _patient(store, person)
    pid = ["PID", "1", "", f"{number}^^^NHS^NH~H42^^^RKE^MR", "", "THORNBURY^Margaret"]
    pid += ["", "19481102", "F", "", "", "3 New Road^^London^^E8 7ZZ"] + [""] * 10 + ["C"]
    feed = tmp_path / "adt.hl7"
    feed.write_text(_message("A28", "H1", "|".join(pid), "PD1|||^^F84003"))
    assert load(store, "hl7v2", "RKE", [feed]).loaded == 1
    export = {
        "formatVersion": "1",
        "recordId": "PTH-RES-42",
        "exportedAt": "2026-04-10T07:15:00Z",
        "careHome": {"odsCode": "VM4X2"},
        "gpPractice": {"odsCode": "F84003"},
        "resident": {
            "nhsNumber": number,
            "nhsNumberVerification": "02",
            "residentId": "RES-42",
            "name": {"given": ["Maggie"], "family": "Thornbury"},
            "birthDate": "1948-11-02",
            "gender": "female",
            "address": {"lines": ["Plane Tree House"], "postcode": "E8 1XX"},
        },
        "residence": {"startDate": "2026-03-01"},
    }
    (tmp_path / "export.ndjson").write_text(json.dumps(export) + "\n")
    assert load(store, "care-home", "VM4X2", [tmp_path / "export.ndjson"]).loaded == 1

    patient = _patient(store, person)
    assert patient["generalPractitioner"] == practice["generalPractitioner"]
    assert [g.get("display") for g in patient["generalPractitioner"]] == [
        "Larkspur Medical Centre",
        "Dr Samuel Achterberg",
    ]
    assert patient["extension"] == practice["extension"]  # ethnic category A, the practice's
    assert patient["name"] == [{"use": "official", "family": "THORNBURY", "given": ["Margaret"]}]
    assert patient["address"][0]["postalCode"] == "E8 7ZZ"
    assert patient["telecom"] == practice["telecom"]  # no one else said it
    nhs = next(i for i in patient["identifier"] if i["system"] == NHS_NUMBER_SYSTEM)
    assert nhs == practice["identifier"][0]  # verified (01) as the practice said, not 02
    assert {i["system"].rsplit(":", 1)[-1] for i in patient["identifier"][1:]} == {
        "F84003",
        "RKE",
        "VM4X2",
    }

    def record(fmt: str) -> str:
        (row,) = store.select("SELECT record_key FROM mapping_record WHERE format = ?", [fmt])
        return str(row[0])

    gp = Source("F84003", "gp-connect", record("gp-connect"), "2025-11-03T09:15:27.000000Z")
    hospital = Source("RKE", "hl7v2", "H1", "2026-04-01T09:00:00.000000Z")
    home = Source("VM4X2", "care-home", record("care-home"), "2026-04-10T07:15:00.000000Z")
    sources = element_sources(store, person)
    assert sources["generalPractitioner"] == gp
    assert sources[f"extension:{ETHNIC_URL}"] == gp
    assert sources["telecom"] == gp
    assert sources["name:official"] == sources["address"] == sources["birthDate"] == hospital
    assert sources[f"identifier:{LOCAL_ID}:VM4X2|RES-42"] == home
    assert home not in {sources[e] for e in sources if not e.startswith("identifier:")}
    # Kept beside the Patient, not in it.
    assert "RKE" not in json.dumps({k: v for k, v in patient.items() if k != "identifier"})


def test_look_alikes_without_an_nhs_number_are_listed_never_merged(
    store: Store, tmp_path: Path
) -> None:
    feed = tmp_path / "adt.hl7"
    feed.write_text(
        _message("A28", "M1", "PID|1||9990000018^^^NHS^NH||Murphy^Aoife||19380412|2")
        + _message("A28", "M2", "PID|1||H77^^^RKE^MR||MURPHY^A||19380412|2")
    )
    report = load(store, "hl7v2", "RKE", [feed])
    assert report.probable_matches == 1
    (match,) = probable_matches(store)
    ids = {match.patient_id, match.candidate_id}
    assert ids == {mapped_id("NHS", "Patient", "9990000018"), mapped_id("RKE", "Patient", "H77")}
    assert "family name" in match.reason
    assert all(_patient(store, i).get("active") is not False for i in ids)  # not merged
    again = load(store, "hl7v2", "RKE", [feed])
    assert again.probable_matches == 0 and len(probable_matches(store)) == 1

    assert decide(store, match.candidate_id, match.patient_id, "dismissed", "operator@council")
    assert probable_matches(store) == [] and len(probable_matches(store, None)) == 1


CARE_HOME = Path(__file__).resolve().parents[1] / "fixtures" / "carehome"


def test_a_care_home_export_loads_each_resident_and_refuses_a_bad_one(store: Store) -> None:
    report = load(store, "care-home", "VM4X2", [CARE_HOME / "export.ndjson"])
    assert (report.records, report.loaded) == (3, 2)
    (rejection,) = report.rejections
    assert rejection.record == "line 3" and "Modulus 11" in rejection.reason
    episodes = store.select(
        "SELECT res_id FROM resource_current WHERE res_type = 'EpisodeOfCare'", []
    )
    assert len(episodes) == 2  # each resident's stay, which the home manages
    again = load(store, "care-home", "VM4X2", [CARE_HOME / "export.ndjson"])
    assert (again.loaded, again.unchanged, len(again.rejections)) == (0, 2, 1)
    elsewhere = load(store, "care-home", "VM9Z9", [CARE_HOME / "export.ndjson"])
    assert elsewhere.loaded == 0 and len(elsewhere.rejections) == 3


GP = Path(__file__).resolve().parents[1] / "fixtures" / "gpconnect"


def test_gp_connect_records_load_as_the_practice_and_once(store: Store) -> None:
    report = load(store, "gp-connect", "F84003", [GP / "structured-records.ndjson"])
    assert (report.records, report.loaded) == (3, 2)
    (rejection,) = report.rejections
    assert rejection.record == "line 3" and "Modulus 11" in rejection.reason
    assert report.written["AllergyIntolerance"] >= 2
    again = load(store, "gp-connect", "F84003", [GP / "structured-records.ndjson"])
    assert (again.loaded, again.unchanged) == (0, 2)
    elsewhere = load(store, "gp-connect", "Y00001", [GP / "structured-records.ndjson"])
    assert elsewhere.loaded == 0


def test_a_gp_heading_is_shown_with_its_warnings_only_to_who_may_see_every_item(
    store: Store, tmp_path: Path
) -> None:
    """The problems heading names a depression (PSY by its code) and warns
    that confidential items were left out: an emergency clinician, who may
    not see the depression, is not shown the heading either; the practice
    is, and anyone may see the medications heading and its warning."""
    obj = json.loads((GP / "structured-rich.json").read_text("utf-8"))
    for entry in obj["entry"]:
        if entry["resource"].get("id") == "problem-raised-bp":
            entry["resource"]["code"] = {
                "coding": [{"system": "http://snomed.info/sct", "code": "35489007"}],
                "text": "Depression",
            }
    pushed = tmp_path / "record.json"
    pushed.write_text(json.dumps(obj))
    report = load(store, "gp-connect", "F84003", [pushed])
    assert report.loaded == 1 and report.written["List"] == 9
    lists = {
        str(row[0]): _current(store, "List", str(row[0]))
        for row in store.select("SELECT res_id FROM resource_current WHERE res_type = 'List'", [])
    }
    by_code = {r["code"]["coding"][0]["code"]: r for r in lists.values()}
    problems, medications = by_code["717711000000103"], by_code["933361000000108"]
    warning = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-ListWarningCode"
    assert [e["url"] for e in problems["extension"]] == [warning]
    crew = AccessControl(store, Requester("RRU", "ambulance", "ETREAT"))
    practice = AccessControl(store, Requester("F84003", "gp-practice", "TREAT"))
    for listing, crew_sees in ((problems, False), (medications, True)):
        version = store.read("List", listing["id"])
        assert version is not None
        assert crew.visible(version) is crew_sees, listing["title"]
        assert practice.visible(version)
    assert crew.decide(store.read("List", problems["id"])).rule == "list-item"  # type: ignore[arg-type]


def test_a_loaded_message_is_archived_as_it_came(store: Store, tmp_path: Path) -> None:
    feed = tmp_path / "adt.hl7"
    feed.write_text(
        _message("A28", "Z1", "PID|1||9990000018^^^NHS^NH||Murphy^Aoife||19380412|2", "ZPI|1|x")
    )
    load(store, "hl7v2", "RKE", [feed])
    kept = archived(store, "rke", "hl7v2", "Z1")
    assert kept is not None and b"ZPI|1|x" in kept  # the Z-segment, otherwise ignored
    assert archived(store, "RKE", "hl7v2", "nope") is None


def test_a_later_export_retires_what_it_leaves_out(store: Store, tmp_path: Path) -> None:
    """A care-home export is the home's whole record of the resident: a
    medicine stopped since the last one is no longer in the Red Bag."""
    first = json.loads((CARE_HOME / "winifred-maddox.json").read_text())
    load(store, "care-home", "VM4X2", [CARE_HOME / "winifred-maddox.json"])
    later = {**first, "exportedAt": "2026-07-15T09:00:00+01:00"}
    later["medications"] = [m for m in first["medications"] if m["id"] != "MAR-881"]
    (tmp_path / "later.json").write_text(json.dumps(later))

    def statements() -> dict[str, bool]:
        rows = store.select(
            "SELECT res_id, deleted FROM resource_current WHERE res_type = 'MedicationStatement'",
            [],
        )
        found = {}
        for res_id, deleted in rows:
            content = store.read("MedicationStatement", str(res_id))
            assert content is not None
            if content.content is not None:
                found["Apixaban" in content.content.decode()] = bool(deleted)
            else:
                found[True] = True  # the deleted version carries no content
        return found

    assert statements() == {True: False, False: False}
    report = load(store, "care-home", "VM4X2", [tmp_path / "later.json"])
    assert report.loaded == 1 and not report.rejections
    assert statements() == {True: True, False: False}  # apixaban retired, the rest kept
    patient = store.select("SELECT deleted FROM resource_current WHERE res_type = 'Patient'", [])
    assert [bool(d) for (d,) in patient] == [False]


def test_an_earlier_export_loaded_after_a_later_one_changes_nothing(
    store: Store, tmp_path: Path
) -> None:
    """Exports can arrive out of order (a retry, a backlog): the home's
    record as at an earlier moment must not bring back the medicine the
    later export stopped, nor retire what only the later one states."""
    first = json.loads((CARE_HOME / "winifred-maddox.json").read_text())
    later = {**first, "exportedAt": "2026-07-15T09:00:00+01:00"}
    later["medications"] = [m for m in first["medications"] if m["id"] != "MAR-881"]
    (tmp_path / "later.json").write_text(json.dumps(later))
    load(store, "care-home", "VM4X2", [tmp_path / "later.json"])
    before = store.select("SELECT res_type, res_id, seq FROM resource_current ORDER BY seq", [])

    report = load(store, "care-home", "VM4X2", [CARE_HOME / "winifred-maddox.json"])
    assert (report.loaded, report.unchanged, report.superseded, report.rejections) == (0, 1, 1, [])
    assert (
        store.select("SELECT res_type, res_id, seq FROM resource_current ORDER BY seq", [])
        == before
    )
    assert archived(store, "VM4X2", "care-home", "PTH-RES-0412@2026-07-14T21:40:00+01:00")

    newest = {**later, "exportedAt": "2026-07-16T09:00:00+01:00", "medications": []}
    (tmp_path / "newest.json").write_text(json.dumps(newest))
    assert load(store, "care-home", "VM4X2", [tmp_path / "newest.json"]).loaded == 1
    statements = store.select(
        "SELECT deleted FROM resource_current WHERE res_type = 'MedicationStatement'", []
    )
    assert statements and all(deleted for (deleted,) in statements)  # each one retired


def test_a_diagnosis_sent_without_its_coding_system_is_labelled_from_its_code(
    store: Store, tmp_path: Path
) -> None:
    """DG1-3 "F32.9^Depressive episode^" names no system: the Condition is
    still labelled as mental health (the lists read the code as ICD-10 and
    SNOMED CT would), where a procedure's unnamed code (most likely OPCS-4,
    whose F34.1 is a tonsillectomy) is left as words and unlabelled."""
    person = "PID|1||9990000042^^^NHS^NH||Smith^Jo||19500101|1"
    feed = tmp_path / "feed.hl7"
    feed.write_text(
        _message(
            "A01",
            "D1",
            person,
            _pv1("V7"),
            "DG1|1||F32.9^Depressive episode^",
            "DG1|2||J44.1^COPD^",
            "PR1|1||F34.1^Tonsillectomy^|||20260401100000",
        ),
        encoding="latin-1",
    )
    report = load(store, "hl7v2", "RKE", [feed])
    assert (report.loaded, report.rejections) == (1, [])
    conditions = _labels_of(store, "Condition")
    by_code = {}
    for res_id, labels in conditions.items():
        stored = store.read("Condition", res_id)
        assert stored is not None
        by_code[fhirjson.loads(stored.content or b"")["code"]["coding"][0]["code"]] = labels
    assert by_code == {"F32.9": {"PSY"}, "J44.1": set()}
    assert list(_labels_of(store, "Procedure").values()) == [set()]
