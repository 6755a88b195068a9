"""HL7 v2 ADT: the parser and the mapping to UK Core shaped resources."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from conformance.validation import validate_resource
from mappings.hl7v2.adt import instant, map_adt
from mappings.hl7v2.parser import (
    BrokenMessage,
    Message,
    Separators,
    parse_message,
    read_messages,
    split_messages,
    unescape,
)
from mappings.ukcore import Mapped, Unmappable
from tests.support.ids import unkeyed

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hl7v2"


def messages(name: str) -> list[str]:
    return [text for _, text in split_messages((FIXTURES / name).read_bytes())]


def test_escapes_and_separators() -> None:
    seps = Separators()
    assert unescape(r"O\S\Brien \T\ Sons\F\\R\\E\\X41\\.br\x", seps) == "O^Brien & Sons|~\\A\nx"
    message = parse_message(messages("admit.hl7")[0])
    assert message.event == "A01" and message.control_id == "MSG0001"
    pid = message.segment("PID")
    assert pid is not None and pid.value(5, 1) == "O^Brien"
    assert [pid.value(3, 1, n) for n in range(2)] == ["9990000034", "H123456"]
    assert message.segments[0].field(1) == "|" and message.segments[0].value(12) == "2.4"


def test_mllp_frames_lf_endings_and_latin1() -> None:
    framed = messages("discharge-and-errors.hl7")
    assert len(framed) == 3 and framed[0].startswith("MSH")
    lf = b"MSH|^~\\&|PAS|RKE|||20260101||ADT^A28|M1|P|2.4\nPID|1||H1^^^RKE^MR||Ren\xe9e^Ann\n"
    (text,) = [t for _, t in split_messages(lf)]
    assert parse_message(text).segment("PID").value(5, 1) == "Renée"  # type: ignore[union-attr]
    with pytest.raises(BrokenMessage):
        parse_message("PID|1||x")


def test_times_are_london_local_with_their_offset() -> None:
    assert instant("20260315093000") == "2026-03-15T09:30:00+00:00"  # GMT
    assert instant("20260715093000") == "2026-07-15T09:30:00+01:00"  # BST
    assert instant("202607150930") == "2026-07-15T09:30:00+01:00"
    assert instant("19410402") == "1941-04-02"
    assert instant("20260715093000+0000") == "2026-07-15T09:30:00+00:00"
    with pytest.raises(Unmappable):
        instant("2026-07-15")


@pytest.mark.parametrize(
    "raw",
    [
        "20260318139999",  # found by the fuzzer: minute 99 raised strptime's ValueError
        "20261399",  # month 13
        "20260230",  # 30 February
        "2026031825",  # hour 25
        "\uff12\uff10\uff12\uff16",  # digits, but not ASCII ones
        "20260315093000+ab",  # a zone that is no offset
        "20260315093000+9999",
    ],
)
def test_a_timestamp_out_of_range_is_unmappable(raw: str) -> None:
    with pytest.raises(Unmappable, match="not an HL7 timestamp"):
        instant(raw)


def test_a_message_sent_at_minute_99_is_that_message_s_rejection() -> None:
    """Fuzzing found it: MSH-7 ``20260318139999`` escaped the loader as a
    ValueError, where it is a rejection of that message with its reason."""
    from gateway.loading.sources import hl7v2_record

    text = messages("admit.hl7")[0].replace("20260315093000", "20260318139999", 1)
    record = hl7v2_record(text, "RKE", "message 1 (byte 0)")
    assert record.resources is None
    assert record.problem == "'20260318139999' is not an HL7 timestamp"


def test_an_admission_maps_to_uk_core_shapes() -> None:
    mapped = map_adt(parse_message(messages("admit.hl7")[0]), "RKE")
    by_type = {r["resourceType"]: r for r in mapped.resources}
    patient = by_type["Patient"]
    nhs = patient["identifier"][0]
    assert nhs["value"] == "9990000034"
    assert nhs["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "01"
    assert patient["identifier"][1]["value"] == "H123456"
    assert patient["name"][0] == {
        "use": "official",
        "family": "O^Brien",
        "given": ["Siobhan", "Mary"],
        "prefix": ["Mrs"],
    }
    assert (patient["gender"], patient["birthDate"]) == ("female", "1941-04-02")
    assert patient["generalPractitioner"][0]["identifier"]["value"] == "Y03079"
    assert patient["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "A"
    encounter = by_type["Encounter"]
    assert (encounter["status"], encounter["class"]["code"]) == ("in-progress", "IMP")
    assert encounter["period"] == {"start": "2026-03-15T09:30:00+00:00"}
    assert encounter["serviceProvider"]["identifier"]["value"] == "RKE"
    assert by_type["Condition"]["code"]["coding"][0] == {
        "system": "http://hl7.org/fhir/sid/icd-10",
        "code": "J18.9",
    }
    assert by_type["AllergyIntolerance"]["code"]["text"] == "Penicillin"
    assert by_type["RelatedPerson"]["relationship"][0]["text"] == "Spouse"


def test_a_discharge_finishes_the_same_encounter() -> None:
    admit = map_adt(parse_message(messages("admit.hl7")[0]), "RKE")
    discharge = map_adt(parse_message(messages("discharge-and-errors.hl7")[0]), "RKE")
    first = next(r for r in admit.resources if r["resourceType"] == "Encounter")
    last = next(r for r in discharge.resources if r["resourceType"] == "Encounter")
    assert first["id"] == last["id"] and last["status"] == "finished"
    assert last["period"]["end"] == "2026-03-18T13:30:00+00:00"
    assert admit.patient_id == discharge.patient_id


def test_what_cannot_be_mapped_says_why() -> None:
    wrong_number = parse_message(messages("discharge-and-errors.hl7")[1])
    with pytest.raises(Unmappable, match="Modulus 11"):
        map_adt(wrong_number, "RKE")
    with pytest.raises(Unmappable, match="MSH-4"):
        map_adt(parse_message(messages("admit.hl7")[0]), "RRV")


@pytest.mark.parametrize("name", ["admit.hl7", "discharge-and-errors.hl7"])
@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1 << 20])
def test_reading_in_chunks_finds_the_same_messages(name: str, chunk_size: int) -> None:
    import io

    data = (FIXTURES / name).read_bytes() * 3
    whole = list(split_messages(data))
    assert list(read_messages(io.BytesIO(data), chunk_size)) == whole


def test_obx_becomes_observations_keyed_by_person_code_and_time() -> None:
    text = (
        "MSH|^~\\&|PAS|RKE|GATEWAY|LONDON|20260715093000||ADT^A08|M9|P|2.4\r"
        "EVN|A08|20260715093000\r"
        "PID|1||9990000034^^^NHS^NH\r"
        "OBX|1|NM|27113001^Body weight^SCT||61.5|kg|||||F|||20260714080000\r"
        "OBX|2|ST|^Diet||Soft diet, thickened fluids||||||F\r"
        "OBX|3|NM|^Pulse||fast||||||F\r"
    )
    with pytest.raises(Unmappable, match="not a number"):
        map_adt(parse_message(text), "RKE")
    mapped = map_adt(parse_message(text.rsplit("OBX|3", 1)[0]), "RKE")
    weight, diet = [r for r in mapped.resources if r["resourceType"] == "Observation"]
    assert weight["code"]["coding"] == [{"system": "http://snomed.info/sct", "code": "27113001"}]
    assert weight["valueQuantity"] == {"value": 61.5, "unit": "kg"}
    assert weight["effectiveDateTime"] == "2026-07-14T08:00:00+01:00"
    assert diet["valueString"] == "Soft diet, thickened fluids"
    assert diet["effectiveDateTime"] == "2026-07-15T09:30:00+01:00"  # when the event happened
    again = map_adt(parse_message(text.rsplit("OBX|3", 1)[0].replace("|M9|", "|M10|")), "RKE")
    assert [r["id"] for r in again.resources] == [r["id"] for r in mapped.resources]


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity", "1e400", "1e20", "1_000", "\u0661"])
def test_an_obx_number_is_hl7_s_nm_not_what_float_reads(value: str) -> None:
    """Fuzzing found it: OBX-5 ``nan`` or ``inf`` became a quantity JSON cannot
    hold (the store's encoder writes NaN as null), ``1e20`` an integer past
    the 64 bits it writes; each is the message's rejection now."""
    text = (
        "MSH|^~\\&|PAS|RKE|GATEWAY|LONDON|20260715093000||ADT^A08|M9|P|2.4\r"
        "PID|1||9990000034^^^NHS^NH\r"
        f"OBX|1|NM|27113001^Body weight^SCT||{value}|kg|||||F\r"
    )
    with pytest.raises(Unmappable, match="not a number"):
        map_adt(parse_message(text), "RKE")
    big = map_adt(parse_message(text.replace(f"||{value}|", "||100000000000000000000|")), "RKE")
    (weight,) = [r for r in big.resources if r["resourceType"] == "Observation"]
    assert weight["valueQuantity"]["value"] == 1e20  # a decimal, as a float holds it


def test_the_admission_maps_to_the_golden_file() -> None:
    """Every message of the fixtures that maps, as resources: reviewed once
    by eye, then held still (``UPDATE_GOLDEN=1`` rewrites it on purpose).
    It holds each id's basis: tests/unit/test_keyed_ids.py checks the keyed ids."""
    mapped = []
    for name in ("admit.hl7", "discharge-and-errors.hl7"):
        for text in messages(name):
            try:
                with unkeyed():
                    mapped.append(map_adt(parse_message(text), "RKE").resources)
            except (Unmappable, BrokenMessage):
                continue
    golden = FIXTURES / "admit-and-discharge.expected.json"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(json.dumps(mapped, indent=2, sort_keys=True) + "\n")
    assert mapped == json.loads(golden.read_text())
    for resources in mapped:
        for resource in resources:
            assert validate_resource(resource, resource["resourceType"]) == [], resource


def _segment(name: str, **fields: str) -> str:
    """A segment with ``f3="..."`` style fields at their numbers."""
    numbered = {int(key[1:]): value for key, value in fields.items()}
    return "|".join([name] + [numbered.get(n, "") for n in range(1, max(numbered) + 1)])


def _visit(*segments: str, control: str = "M1", event: str = "A08") -> Message:
    return parse_message(
        "\r".join(
            [
                f"MSH|^~\\&|PAS|RKE|GATEWAY|LONDON|20260716090000||ADT^{event}|{control}|P|2.4",
                "EVN|A08|20260716090000",
                "PID|1||9990000034^^^NHS^NH",
                _segment("PV1", f2="I", f19="V77", f44="20260715100000"),
                *segments,
            ]
        )
    )


def _of(mapped: Mapped, res_type: str) -> list[dict[str, Any]]:
    return [r for r in mapped.resources if r["resourceType"] == res_type]


def test_pr1_becomes_a_completed_procedure_of_the_visit() -> None:
    mapped = map_adt(
        _visit(
            _segment(
                "PR1",
                f1="1",
                f3="W37.1^Primary total prosthetic replacement of hip joint using cement^OPCS4",
                f5="202607151430",
                f11="7654321^Khan^Imran^^^Mr^^^GMC",
                f12="7654321^Khan^Imran^^^Mr^^^GMC~N42^Adeyemi^Tolu^^^^^^RKE",
            )
        ),
        "RKE",
    )
    (encounter,) = _of(mapped, "Encounter")
    (procedure,) = _of(mapped, "Procedure")
    assert procedure["status"] == "completed"
    assert procedure["subject"] == {"reference": f"Patient/{mapped.patient_id}"}
    assert procedure["encounter"] == {"reference": f"Encounter/{encounter['id']}"}
    assert procedure["performedDateTime"] == "2026-07-15T14:30:00+01:00"  # BST
    # OPCS-4 has no FHIR system URI we could confirm: the code is kept in the
    # words with its system's name, and no coding is claimed.
    assert procedure["code"] == {
        "text": "Primary total prosthetic replacement of hip joint using cement (OPCS-4 W37.1)"
    }
    surgeon, nurse = procedure["performer"]  # the surgeon, named twice, is one performer
    assert surgeon == {
        "function": {"text": "surgeon"},
        "actor": {
            "type": "Practitioner",
            "identifier": {"system": "https://fhir.hl7.org.uk/Id/gmc-number", "value": "7654321"},
            "display": "Mr Imran Khan",
        },
    }
    assert nurse["actor"]["identifier"] == {
        "system": "urn:london-care-gateway:staff:RKE",
        "value": "N42",
    }
    assert nurse["actor"]["display"] == "Tolu Adeyemi" and "function" not in nurse
    assert validate_resource(procedure, "Procedure") == []


def test_pr1_codes_snomed_keeps_unknown_systems_as_words_and_dates_as_dates() -> None:
    mapped = map_adt(
        _visit(
            _segment("PR1", f1="1", f3="399208008^Plain chest X-ray^SCT", f5="20260715"),
            _segment("PR1", f1="2", f3="XR123^Chest film^LOCALPAS", f5="2026071509"),
            _segment("PR1", f1="3", f3="H01.9^^OPCS-4", f4="Appendicectomy", f5="20260715"),
            _segment("PR1", f1="4", f3="^^SCT"),  # nothing to say: no Procedure
        ),
        "RKE",
    )
    snomed, local, described = _of(mapped, "Procedure")
    assert snomed["code"] == {
        "coding": [{"system": "http://snomed.info/sct", "code": "399208008"}],
        "text": "Plain chest X-ray",
    }
    assert snomed["performedDateTime"] == "2026-07-15"  # a date only stays a date
    assert local["code"] == {"text": "Chest film (LOCALPAS XR123)"}
    assert local["performedDateTime"] == "2026-07-15T09:00:00+01:00"
    assert described["code"] == {"text": "Appendicectomy (OPCS-4 H01.9)"}  # PR1-4's words
    for procedure in (snomed, local, described):
        assert "performer" not in procedure
        assert validate_resource(procedure, "Procedure") == []


@pytest.mark.parametrize(
    ("priority", "rank"),
    [("2", 2), ("\u00b9", None), ("\u0663", None), ("0", None), ("99999999999", None)],
    ids=["two", "superscript-one", "arabic-indic-three", "zero", "past-positive-int"],
)
def test_a_diagnosis_is_ranked_only_by_a_positive_ascii_number(
    priority: str, rank: int | None
) -> None:
    """Fuzzing found it: DG1-15 ``\u00b9`` (superscript one) is a digit to
    str.isdigit but not to int, a ValueError escaping the loader."""
    mapped = map_adt(_visit(f"DG1|1||J18.9^Pneumonia^I10|||A|||||||||{priority}"), "RKE")
    (encounter,) = _of(mapped, "Encounter")
    assert encounter["diagnosis"][0].get("rank") == rank
    assert validate_resource(encounter, "Encounter") == []


def test_dg1_is_coded_only_in_the_system_it_names() -> None:
    """A diagnosis's code is claimed in ICD-10 or SNOMED CT only when DG1-3
    says so; a local system keeps the code in the words, never as a SNOMED
    code it is not; an unstated one is a coding that claims no system."""
    mapped = map_adt(
        _visit(
            "DG1|1||J18.9^Pneumonia, unspecified^I10",
            "DG1|2||233604007^Pneumonia^SCT",
            "DG1|3||PN01^Chest infection^LOCALPAS",
            "DG1|4||J44.1^^|Exacerbation of COPD",
            "DG1|5||^^I10",  # nothing to say: no Condition
        ),
        "RKE",
    )
    icd10, snomed, local, unstated = _of(mapped, "Condition")
    assert icd10["code"] == {
        "coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "J18.9"}],
        "text": "Pneumonia, unspecified",
    }
    assert snomed["code"]["coding"] == [{"system": "http://snomed.info/sct", "code": "233604007"}]
    assert local["code"] == {"text": "Chest infection (LOCALPAS PN01)"}
    assert unstated["code"] == {"coding": [{"code": "J44.1"}], "text": "Exacerbation of COPD"}
    for condition in (icd10, snomed, local, unstated):
        assert validate_resource(condition, "Condition") == []


def test_repeated_pr1_are_distinct_and_keep_their_ids_when_sent_again() -> None:
    twice = _segment("PR1", f1="1", f3="Z94.1^Bilateral operation^OPCS4", f5="202607151430")
    other = _segment("PR1", f1="3", f3="W37.1^Hip replacement^OPCS4", f5="202607151430")
    first = map_adt(_visit(twice, twice.replace("PR1|1", "PR1|2"), other), "RKE")
    ids = [p["id"] for p in _of(first, "Procedure")]
    assert len(set(ids)) == 3
    resent = map_adt(_visit(twice, twice.replace("PR1|1", "PR1|2"), other, control="M2"), "RKE")
    assert [r["id"] for r in resent.resources] == [r["id"] for r in first.resources]
    # A later message that leaves one out and numbers the rest anew: each
    # procedure keeps its own id, none lands on another's.
    later = map_adt(_visit(other.replace("PR1|3", "PR1|1"), control="M3"), "RKE")
    assert [p["id"] for p in _of(later, "Procedure")] == [ids[2]]


def test_pv2_gives_the_encounter_its_reason_and_planned_dates() -> None:
    mapped = map_adt(
        _visit(
            _segment("PV2", f3="233604007^Pneumonia^SCT", f8="20260715100000", f9="202607221200")
        ),
        "RKE",
    )
    (encounter,) = _of(mapped, "Encounter")
    assert encounter["reasonCode"] == [
        {"coding": [{"system": "http://snomed.info/sct", "code": "233604007"}], "text": "Pneumonia"}
    ]
    assert encounter["extension"] == [
        {
            "url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-Encounter.plannedStartDate",
            "valueDateTime": "2026-07-15T10:00:00+01:00",
        },
        {
            "url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-Encounter.plannedEndDate",
            "valueDateTime": "2026-07-22T12:00:00+01:00",
        },
    ]
    assert "meta" not in encounter  # PV2-22 not Y: nothing is labelled
    assert validate_resource(encounter, "Encounter") == []
    words = map_adt(_visit(_segment("PV2", f3="^Fall at home")), "RKE")
    assert _of(words, "Encounter")[0]["reasonCode"] == [{"text": "Fall at home"}]
    assert "reasonCode" not in _of(map_adt(_visit("PV2|"), "RKE"), "Encounter")[0]


def test_an_end_before_the_visit_is_finished_leaves_no_empty_period() -> None:
    """PV1-45 without PV1-44 on an event that does not finish the visit."""
    admitted = _segment("PV1", f2="I", f19="V77", f44="20260715100000")
    text = _visit(event="A01").raw.replace(
        admitted, _segment("PV1", f2="I", f19="V77", f45="20260716")
    )
    assert parse_message(text).segment("PV1").value(45) == "20260716"  # type: ignore[union-attr]
    (encounter,) = _of(map_adt(parse_message(text), "RKE"), "Encounter")
    assert "period" not in encounter and validate_resource(encounter, "Encounter") == []


def test_a_protected_visit_is_withheld_from_all_but_the_hospital() -> None:
    """PV2-22 Y labels the visit's resources R, which the write path keeps
    and consent withholds from everyone but their author; the person's own
    record (Patient, allergies) is not the visit's and stays shared."""
    # Imported here: the rest of this file needs nothing of the gateway.
    from consent.engine import decide
    from consent.model import Person, Requester
    from gateway.access.facts import facts_of
    from gateway.interactions.write import prepare

    mapped = map_adt(
        _visit(
            _segment("PV2", f22="Y"),
            "OBX|1|NM|27113001^Body weight^SCT||61.5|kg|||||F",
            "AL1|1|DA|PEN^Penicillin",
            "DG1|1||F32.9^Depressive episode, unspecified^I10",
            _segment("PR1", f1="1", f3="399208008^Plain chest X-ray^SCT", f5="20260715"),
        ),
        "RKE",
    )
    labelled = {r["resourceType"] for r in mapped.resources if "meta" in r}
    assert labelled == {"Encounter", "Observation", "Condition", "Procedure"}
    restricted = {
        "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
        "code": "R",
        "display": "restricted",
    }
    person = Person(mapped.patient_id, relationships=frozenset({"Y03079", "RKE"}))
    gp = Requester("Y03079", "gp-practice", "TREAT")
    ambulance = Requester("RRU", "ambulance", "ETREAT")
    hospital = Requester("RKE", "hospital", "TREAT")
    now = "2026-07-16T12:00:00.000000Z"
    for resource in mapped.resources:
        stored = prepare(resource["resourceType"], resource["id"], resource, "urn:ods:RKE")
        facts = facts_of(stored.content)
        if resource["resourceType"] in labelled:
            assert restricted in stored.content["meta"]["security"]
            assert decide(gp, person, facts, now).rule == "legally-restricted"
            assert decide(ambulance, person, facts, now).rule == "legally-restricted"
        else:
            assert decide(gp, person, facts, now).permit
        assert decide(hospital, person, facts, now).rule == "author"
    open_visit = map_adt(_visit(_segment("PV2", f22="N")), "RKE")
    assert all("meta" not in r for r in open_visit.resources)
    assert open_visit.labels_from == {}


def test_a_visit_whose_protection_is_not_stated_keeps_what_is_on_file() -> None:
    """No PV2, or PV2-22 empty: the visit's resources are tied to the visit's
    labels on file (the loader adds them); the person's own are not."""
    for pv2 in ("PV2|||233604007^Pneumonia^SCT", None):
        segments = [pv2] if pv2 else []
        mapped = map_adt(
            _visit(*segments, "DG1|1||J18.9^Pneumonia^I10", "AL1|1|DA|PEN^Penicillin"), "RKE"
        )
        (encounter,) = _of(mapped, "Encounter")
        (condition,) = _of(mapped, "Condition")
        visit = f"Encounter/{encounter['id']}"
        assert mapped.labels_from == {visit: visit, f"Condition/{condition['id']}": visit}
        assert all("meta" not in r for r in mapped.resources)


# -- NHS codes with their words (mappings/codelists) -------------------------------------

UKCORE_CS = "https://fhir.hl7.org.uk/CodeSystem"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PATIENT_CLASS = "http://terminology.hl7.org/CodeSystem/v2-0004"
ADMISSION_METHOD = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-AdmissionMethod"
DISCHARGE_METHOD = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DischargeMethod"


def _stay(event: str, ethnic: str = "", **pv1: str) -> Mapped:
    """An A01, A03 or A08 of visit V88, PV1's fields as given (``f4="21"``)
    and PID-22 the ethnic category."""
    fields = {"f2": "I", "f19": "V88", "f44": "20260715100000", **pv1}
    if event == "A03":
        fields.setdefault("f45", "20260720110000")
    pid = _segment("PID", f1="1", f3="9990000034^^^NHS^NH", f22=ethnic)
    return map_adt(
        parse_message(
            "\r".join(
                [
                    f"MSH|^~\\&|PAS|RKE|GATEWAY|LONDON|20260720120000||ADT^{event}|M{event}|P|2.4",
                    f"EVN|{event}|20260720120000",
                    pid,
                    _segment("PV1", **fields),
                ]
            )
        ),
        "RKE",
    )


def _words(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def test_an_admission_codes_its_nhs_codes_with_their_words() -> None:
    """A01: admission method on UK Core's extension of the hospitalization,
    source of admission as admitSource, the ethnic category on the Patient:
    each the NHS Data Dictionary's code with its words, never the bare code."""
    mapped = _stay("A01", ethnic="M", f4="11", f14="85")
    (patient,) = _of(mapped, "Patient")
    (encounter,) = _of(mapped, "Encounter")
    assert patient["extension"] == [
        {
            "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory",
            "valueCodeableConcept": _words(
                f"{UKCORE_CS}/UKCore-EthnicCategoryEngland",
                "M",
                "Black or Black British - Caribbean",
            ),
        }
    ]
    assert encounter["class"] == {
        "system": ACT_CODE,
        "code": "IMP",
        "display": "inpatient encounter",
    }
    assert encounter["hospitalization"] == {
        "extension": [
            {
                "url": ADMISSION_METHOD,
                "valueCodeableConcept": _words(
                    f"{UKCORE_CS}/UKCore-AdmissionMethodEngland",
                    "11",
                    "Elective Admission: Waiting list",
                ),
            }
        ],
        "admitSource": _words(
            f"{UKCORE_CS}/UKCore-SourceOfAdmissionEngland",
            "85",
            "Non-NHS (other than Local Authority) run Care Home",
        ),
    }
    assert "type" not in encounter and "extension" not in encounter
    for resource in (patient, encounter):
        assert validate_resource(resource, resource["resourceType"]) == []


def test_a_discharge_codes_its_destination_or_its_method() -> None:
    """A03: PV1-36 holds a discharge destination (two digits) in some feeds
    and a discharge method (one digit) in others; the code says which."""
    (to_home,) = _of(_stay("A03", f4="21", f36="54"), "Encounter")
    assert to_home["status"] == "finished"
    assert to_home["hospitalization"]["dischargeDisposition"] == _words(
        f"{UKCORE_CS}/UKCore-DischargeDestinationEngland", "54", "NHS run Care Home"
    )
    assert "extension" not in to_home
    (died,) = _of(_stay("A03", f4="21", f36="4"), "Encounter")
    assert died["extension"] == [
        {
            "url": DISCHARGE_METHOD,
            "valueCodeableConcept": _words(
                f"{UKCORE_CS}/UKCore-DischargeMethodEngland", "4", "Patient died"
            ),
        }
    ]
    assert "dischargeDisposition" not in died["hospitalization"]
    for encounter in (to_home, died):
        assert validate_resource(encounter, "Encounter") == []


def test_a_code_not_in_its_list_keeps_its_code_and_gets_no_words() -> None:
    """Not an error: the message loads, each code is kept in its list's
    system without a display, and the text says it is not in the list."""
    mapped = _stay("A03", ethnic="9^Not given", f2="Z", f4="2E", f14="40", f36="2")
    (patient,) = _of(mapped, "Patient")
    (encounter,) = _of(mapped, "Encounter")
    ethnic = patient["extension"][0]["valueCodeableConcept"]
    stay = encounter["hospitalization"]
    method = stay["extension"][0]["valueCodeableConcept"]
    concepts = {
        "UKCore-EthnicCategoryEngland": (ethnic, "9", "Ethnic category"),
        "UKCore-AdmissionMethodEngland": (method, "2E", "Admission method"),
        "UKCore-SourceOfAdmissionEngland": (stay["admitSource"], "40", "Source of admission"),
        # 2, the Dictionary's retired discharge method, is in neither list.
        "UKCore-DischargeDestinationEngland": (
            stay["dischargeDisposition"],
            "2",
            "Discharge destination",
        ),
    }
    for system, (concept, code, subject) in concepts.items():
        assert concept["coding"] == [{"system": f"{UKCORE_CS}/{system}", "code": code}]
        assert f"{subject} code {code}: not in the NHS Data Dictionary " in concept["text"]
    assert ethnic["text"].startswith("Not given (Ethnic category code 9: not in ")
    assert encounter["class"] == {"system": PATIENT_CLASS, "code": "Z"}
    assert "extension" not in encounter
    for resource in (patient, encounter):
        assert validate_resource(resource, resource["resourceType"]) == []


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("E", {"system": ACT_CODE, "code": "EMER", "display": "emergency"}),
        ("o", {"system": ACT_CODE, "code": "AMB", "display": "ambulatory"}),
        ("P", {"system": ACT_CODE, "code": "PRENC", "display": "pre-admission"}),
        # No v3 class fits: table 0004's own coding, with its words.
        ("C", {"system": PATIENT_CLASS, "code": "C", "display": "Commercial Account"}),
        ("N", {"system": PATIENT_CLASS, "code": "N", "display": "Not Applicable"}),
        # None sent (or HL7's null): unknown, not a class the message never stated.
        ("", {"system": PATIENT_CLASS, "code": "U", "display": "Unknown"}),
        ('""', {"system": PATIENT_CLASS, "code": "U", "display": "Unknown"}),
        # A site's own class: its code, no words.
        ("Q", {"system": PATIENT_CLASS, "code": "Q"}),
    ],
)
def test_the_patient_class_is_v3_where_it_maps_else_table_0004(
    sent: str, expected: dict[str, str]
) -> None:
    (encounter,) = _of(_stay("A01", f2=sent), "Encounter")
    assert encounter["class"] == expected
    assert validate_resource(encounter, "Encounter") == []


def test_hl7_null_in_a_coded_field_states_nothing() -> None:
    """``""`` deletes a value in HL7 v2: no coding of the two quotes."""
    mapped = _stay("A08", ethnic='""', f4='""', f14='""', f36='""')
    (encounter,) = _of(mapped, "Encounter")
    assert "hospitalization" not in encounter and "extension" not in encounter
    assert "extension" not in _of(mapped, "Patient")[0]
