"""NHS numbers and the ids of mapped resources."""

from __future__ import annotations

import pytest

from mappings.identity import InvalidNhsNumber, mapped_id, nhs_number


@pytest.mark.parametrize("raw", ["9990000034", "943 476 5919", "943-476-5919", "4010232137"])
def test_valid_numbers_are_normalised(raw: str) -> None:
    assert nhs_number(raw) == raw.replace(" ", "").replace("-", "")


@pytest.mark.parametrize(
    "raw",
    [
        "9990000035",  # wrong check digit
        "1111111111",  # one digit repeated
        "943476591",  # nine digits
        "99900000340",  # eleven
        "94347A5919",
        "\uff19\uff14\uff13\uff14\uff17\uff16\uff15\uff19\uff11\uff19",  # fullwidth digits
        "",
        "0000000000",
    ],
)
def test_invalid_numbers_are_refused(raw: str) -> None:
    with pytest.raises(InvalidNhsNumber):
        nhs_number(raw)


def test_check_digit_ten_is_never_valid() -> None:
    # 100000001 as the first nine digits gives a check of 10: no number has it.
    with pytest.raises(InvalidNhsNumber):
        nhs_number("1000000010")


def test_ids_are_stable_and_distinct() -> None:
    first = mapped_id("RKE", "Encounter", "V123")
    assert first == mapped_id("rke", "Encounter", "V123")
    assert first != mapped_id("RKE", "Encounter", "V124")
    assert first != mapped_id("RRV", "Encounter", "V123")
    assert first != mapped_id("RKE", "Condition", "V123")
