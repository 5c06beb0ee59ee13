"""The E.164 fast path of `normalise_number` accepts only what `phonenumbers` accepts, unchanged.

The reference is the library alone (parse, is_valid_number, format as E.164), compared over
every region's example numbers of every type, each mutated (a digit changed, added, dropped,
a 0 or the national prefix put after the country code), and random "+digits" strings.
"""

from __future__ import annotations

import phonenumbers
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.spec import phone


def library(text: str) -> str | None:
    """What `phonenumbers` alone makes of `text` (None: it does not accept it)."""
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def ours(text: str) -> str | None:
    try:
        return phone.normalise_number(text, None)
    except ValueError:
        return None


def example_numbers() -> list[str]:
    numbers = set()
    regions: list[tuple[str | None, int | None]] = [
        (region, None) for region in phonenumbers.SUPPORTED_REGIONS
    ]
    regions += [(None, code) for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS]
    for region, code in regions:
        for kind in phonenumbers.PhoneNumberType.values():
            if region is not None:
                example = phonenumbers.example_number_for_type(region, kind)
            elif code is not None:
                example = phonenumbers.example_number_for_non_geo_entity(code)
            if example is not None:
                numbers.add(
                    phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
                )
    return sorted(numbers)


def mutations(number: str) -> set[str]:
    digits = number[1:]
    found = {number, number + "0", number + "9", "+" + digits[:-1]}
    for index in range(1, len(digits)):
        found.add(f"+{digits[:index]}0{digits[index:]}")  # a leading zero after the code
        found.add(f"+{digits[:index]}1{digits[index:]}")  # a "1" (+1's national prefix)
        found.add(f"+{digits[:index]}{(int(digits[index]) + 1) % 10}{digits[index + 1 :]}")
    return found


def test_the_fast_path_agrees_with_the_library_on_every_example_number_and_its_mutations() -> None:
    examples = example_numbers()
    assert len(examples) > 1000
    fast = checked = 0
    for example in examples:
        for text in mutations(example):
            expected = library(text)
            if phone._valid_e164(text):
                fast += 1
                assert expected == text, text
            assert ours(text) == expected, text
            checked += 1
    # The fast path is taken for most valid numbers, so the comparison above means something.
    assert fast > len(examples) // 2, (fast, checked)


def test_tricky_numbers() -> None:
    cases = {
        "+14155552671": "+14155552671",
        "+390612345678": "+390612345678",  # Italy: a leading zero the library keeps
        "+5491123456789": "+5491123456789",  # Argentina: mobile 9
        "+525512345678": "+525512345678",  # Mexico
        "+112025550123": "+12025550123",  # +1 then the national prefix 1, which parse strips
        "+44020 7946 0958": "+442079460958",  # spaces: the library's path, which drops the 0
        "+4402079460958": "+442079460958",  # UK: a national prefix 0 after the code
        "+80012345678": "+80012345678",  # a non-geographic code
        "+999123456789": None,  # no such country code
        "+1415555267": None,  # one digit short
    }
    for text, expected in cases.items():
        assert ours(text) == expected, text
        assert library(text) == expected, text
    assert not phone._valid_e164("+112025550123")  # the library's path, not the fast one


@settings(max_examples=3000, deadline=None)
@given(st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True))
def test_random_plus_digit_strings(text: str) -> None:
    if phone._valid_e164(text):
        assert library(text) == text
    assert ours(text) == library(text)


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(example_numbers()), st.integers(min_value=0, max_value=10**6))
def test_random_tails_on_real_prefixes(example: str, tail: int) -> None:
    # Real country and area codes with random subscriber digits: mostly valid numbers.
    digits = str(tail)
    text = example[: max(4, len(example) - len(digits))] + digits
    text = text[:16]
    if phone._valid_e164(text):
        assert library(text) == text
    assert ours(text) == library(text)
