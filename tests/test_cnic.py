"""CNIC rules as an operator meets them at the counter."""

import pytest

from isps.registry.cnic import CnicError, formatted, mask, normalise, validate


def test_accepts_written_and_bare_forms():
    assert normalise("35202-1234567-1") == "3520212345671"
    assert normalise(" 3520212345671 ") == "3520212345671"


@pytest.mark.parametrize("raw, message", [
    ("35202-123456-1", "13 digits"),
    ("3520-21234567-1", "must be written NNNNN-NNNNNNN-N"),
    ("", "missing"),
    ("abc", "13 digits"),
])
def test_rejects_malformed_numbers_with_a_clear_message(raw, message):
    with pytest.raises(CnicError, match=message):
        normalise(raw)


def test_last_digit_must_match_sex():
    assert validate("35202-1234567-1", "male") == "3520212345671"
    assert validate("35202-1234567-2", "female") == "3520212345672"
    with pytest.raises(CnicError, match="ends in 2, but a male holder's CNIC ends in an odd digit"):
        validate("35202-1234567-2", "male")
    with pytest.raises(CnicError, match="female holder's CNIC ends in an even digit"):
        validate("35202-1234567-3", "female")
    assert validate("35202-1234567-4", "transgender")


def test_first_digit_is_a_province_code():
    with pytest.raises(CnicError, match="cannot begin with 0"):
        validate("05202-1234567-1", "male")


def test_masking_hides_the_serial_but_keeps_locality():
    assert mask("3520212345671") == "35202-*****67-1"
    assert formatted("3520212345671") == "35202-1234567-1"
    assert "1234" not in mask("3520212345671")
