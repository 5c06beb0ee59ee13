"""Phone numbers: the E.164 check, normalising what people type, masking for logs, time zones."""

from __future__ import annotations

import functools
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata
from phonenumbers import timezone as number_zones

#: "+" then a country code (no leading zero) and up to 15 digits in all, as ITU-T E.164 allows.
E164_PATTERN = re.compile(r"\+[1-9][0-9]{6,14}")


#: A SIP address a call may be transferred to: `sip:user@host` (or `sips:`).
SIP_URI_PATTERN = re.compile(r"^sips?:[^@\s]+@[^@\s]+$")


def is_transfer_address(destination: str | None) -> bool:
    """Whether a call can be transferred to `destination`: an E.164 number or a SIP URI."""
    return is_e164(destination) or SIP_URI_PATTERN.match(destination or "") is not None


def is_e164(number: object) -> bool:
    """Whether `number` is a string in E.164 form, such as "+16505551234" (nothing around it)."""
    return isinstance(number, str) and E164_PATTERN.fullmatch(number) is not None


def normalise_number(raw: str, default_country: str | None) -> str:
    """`raw` as E.164, or ValueError saying why not.

    Args:
        raw: a number as a person wrote it ("+1 650-555-1234", "(650) 555 1234").
        default_country: the ISO 3166-1 alpha-2 country of numbers written without "+".

    Raises:
        ValueError: the number has no country, cannot be parsed or is not a valid number; the
            message starts with "invalid: ".
    """
    text = raw.strip()
    if not text:
        raise ValueError("invalid: no phone number")
    if _valid_e164(text):
        return text
    try:
        parsed = phonenumbers.parse(text, None if text.startswith("+") else default_country)
    except phonenumbers.NumberParseException as error:
        if error.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            raise ValueError(
                "invalid: no country code (start with + or set default_country)"
            ) from error
        raise ValueError(f"invalid: {error._msg}") from error
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError("invalid: not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


#: A country code's national-prefix pattern ("1" for +1), or None when it has none.
_NO_METADATA = re.compile(r"(?!)")  # a country code the library has no metadata for


@functools.cache
def _national_prefix(country_code: int) -> re.Pattern[str] | None:
    region = phonenumbers.region_code_for_country_code(country_code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    if metadata is None:
        return _NO_METADATA
    prefix = metadata.national_prefix_for_parsing
    return re.compile(prefix) if prefix else None


def _valid_e164(text: str) -> bool:
    """Whether `text` is already E.164 that `phonenumbers` would accept and return unchanged.

    The fast path of `normalise_number`: it skips `phonenumbers.parse` (half the cost of a
    number) but takes its steps for a "+digits" string -- the country code as `parse` picks it
    (the shortest known prefix) -- and says False (leaving the number to the library) whenever
    `parse` could read it otherwise: a national number starting with 0 (Italian leading zeros)
    or with the country's national prefix (which `parse` may strip). Validity is the library's
    own `is_valid_number`. tests/runtime/test_phone_fast_path.py compares both paths.
    """
    if E164_PATTERN.fullmatch(text) is None:
        return False
    digits = text[1:]
    for length in (1, 2, 3):
        country_code = int(digits[:length])
        if country_code in COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return False
    national = digits[length:]
    if national.startswith("0"):
        return False
    prefix = _national_prefix(country_code)
    if prefix is not None and (prefix is _NO_METADATA or prefix.match(national)):
        return False
    number = phonenumbers.PhoneNumber(country_code=country_code, national_number=int(national))
    return _is_valid(number, country_code)


@functools.cache
def _found_by_type(region: str) -> bool:
    """Whether `region_code_for_number` picks `region` by the number's type (not by leading
    digits): a region it so picks is one `is_valid_number_for_region` accepts."""
    metadata = PhoneMetadata.metadata_for_region(region, None)
    return metadata is not None and metadata.leading_digits is None


def _is_valid(number: phonenumbers.PhoneNumber, country_code: int) -> bool:
    """`phonenumbers.is_valid_number`, without typing the number twice for a country code that
    several regions share (+1): `region_code_for_number` already typed it for the region."""
    if len(COUNTRY_CODE_TO_REGION_CODE[country_code]) == 1:
        return bool(phonenumbers.is_valid_number(number))
    region = phonenumbers.region_code_for_number(number)
    if region is None:
        return False
    return _found_by_type(region) or bool(phonenumbers.is_valid_number_for_region(number, region))


def number_time_zones(phone_number: str) -> list[str]:
    """The IANA zones a number's country and area code span (phonenumbers' data).

    Zones this system's time-zone database lacks are left out; [] when none is known (or the
    number does not parse).
    """
    try:
        parsed = phonenumbers.parse(phone_number, None)
    except phonenumbers.NumberParseException:
        return []
    zones = []
    for zone in number_zones.time_zones_for_number(parsed):
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            continue  # "Etc/Unknown", or a zone this system's tz database lacks
        zones.append(zone)
    return zones


def mask_phone(number: str | None) -> str:
    """Mask a phone number for logs: "+16505551234" -> "+1650***1234".

    No number masks to "" so that callers choose how absence reads (`mask_phone(n) or "-"`);
    a short one (an extension, a SIP user) keeps only its last two characters.
    """
    if not number:
        return ""
    number = str(number)
    if len(number) <= 8:
        return "***" + number[-2:]
    return f"{number[:5]}***{number[-4:]}"
