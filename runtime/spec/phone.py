"""Phone numbers: the E.164 check, normalising what people type, masking for logs, time zones."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
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
