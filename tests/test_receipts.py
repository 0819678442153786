"""Receipt numbers: made and parsed back, with mistypes caught by the check digit."""

import pytest

from isps.citizen import receipts


def test_round_trip_and_forms_a_citizen_types():
    r = receipts.make("application", 1023)
    assert r.startswith("OW") and len(r) == 2 + 4 + 1
    assert receipts.parse(r) == ("application", 1023)
    assert receipts.parse(f" {r.lower()[:2]}-{r[2:]} ") == ("application", 1023)
    g = receipts.make("grievance", 7)
    assert receipts.parse(g) == ("grievance", 7)


@pytest.mark.parametrize("bad", ["", "OW", "XX12345", "OW12a45", "12345", "OW 1"])
def test_not_a_receipt(bad):
    with pytest.raises(receipts.ReceiptError):
        receipts.parse(bad)


def test_one_wrong_digit_and_swapped_digits_are_caught():
    r = receipts.make("application", 40518)
    digits = r[2:]
    wrong = r[:2] + str((int(digits[0]) + 1) % 10) + digits[1:]
    swapped = r[:2] + digits[1] + digits[0] + digits[2:]
    for typo in (wrong, swapped):
        with pytest.raises(receipts.ReceiptError, match="not a valid receipt"):
            receipts.parse(typo)
