"""Number providers against the Twilio and Vonage stand-ins: search, purchase, release, errors."""

from __future__ import annotations

import pytest

from telephony.config import TelephonySettings
from telephony.errors import NotConfigured, NumberVendorError
from telephony.numbers import NUMBER_PROVIDERS, AvailableNumber, get_number_provider
from tests.fakes.twilio_server import FakeTwilio
from tests.fakes.vonage_server import FakeVonage

# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


def test_unknown_provider_lists_the_allowed_ones(telephony_settings):
    with pytest.raises(ValueError) as caught:
        get_number_provider("telnyx", settings=telephony_settings)

    assert "twilio" in str(caught.value) and "vonage" in str(caught.value)


@pytest.mark.parametrize(("name", "variables"), [("twilio", "TWILIO_"), ("vonage", "VONAGE_")])
def test_missing_credentials_name_the_variables(name, variables):
    settings = TelephonySettings(
        env="test",
        twilio_account_sid=None,
        twilio_auth_token=None,
        vonage_api_key=None,
        vonage_api_secret=None,
    )

    with pytest.raises(NotConfigured, match=variables):
        get_number_provider(name, settings=settings)


def test_every_registered_provider_builds(telephony_settings):
    for name in NUMBER_PROVIDERS:
        assert get_number_provider(name.upper(), settings=telephony_settings).name == name


async def test_workspace_credentials_override_the_settings(twilio: FakeTwilio, telephony_settings):
    provider = get_number_provider(
        "twilio",
        {"account_sid": twilio.account_sid, "auth_token": "workspace-token"},
        settings=telephony_settings,
    )

    with pytest.raises(NumberVendorError) as caught:
        await provider.search("US")

    assert caught.value.http_status == 401
    assert "Authenticate" in str(caught.value)
    assert not caught.value.retryable


# --------------------------------------------------------------------------------------------
# Twilio
# --------------------------------------------------------------------------------------------


async def test_twilio_search_by_area_code(twilio: FakeTwilio, telephony_settings):
    provider = get_number_provider("twilio", settings=telephony_settings)

    found = await provider.search("us", area_code="650", limit=5)

    assert [n.phone_number for n in found] == ["+16505551234", "+16505559876"]
    assert found[0] == AvailableNumber(
        phone_number="+16505551234",
        country_code="US",
        region="CA",
        locality="Palo Alto",
        capabilities={"voice": True, "sms": True},
        monthly_price="1.15",
        currency="USD",
        provider="twilio",
    )
    assert found[1].capabilities == {"voice": True, "sms": False}
    [search] = twilio.calls("search")
    assert search.path.endswith(
        f"/Accounts/{twilio.account_sid}/AvailablePhoneNumbers/US/Local.json"
    )
    assert search.query == {"VoiceEnabled": "true", "PageSize": "5", "AreaCode": "650"}


async def test_twilio_search_by_pattern(twilio, telephony_settings):
    provider = get_number_provider("twilio", settings=telephony_settings)

    found = await provider.search("US", contains="9876")

    assert [n.phone_number for n in found] == ["+16505559876"]
    assert twilio.calls("search")[0].query["Contains"] == "9876"


async def test_twilio_search_without_pricing_still_lists_numbers(twilio, telephony_settings):
    twilio.fail("pricing", 500, {"code": 20500, "message": "Internal Server Error"})
    provider = get_number_provider("twilio", settings=telephony_settings)

    found = await provider.search("GB")

    assert [n.phone_number for n in found] == ["+442071838750"]
    assert (found[0].monthly_price, found[0].currency) == (None, None)


async def test_twilio_purchase_and_release_by_sid(twilio: FakeTwilio, telephony_settings):
    provider = get_number_provider("twilio", settings=telephony_settings)

    bought = await provider.purchase("+14155550123")

    assert bought.phone_number == "+14155550123"
    assert bought.provider == "twilio" and bought.provider_id.startswith("PN")
    assert twilio.owned_numbers() == ["+14155550123"]
    assert twilio.calls("purchase")[0].form == {"PhoneNumber": "+14155550123"}

    await provider.release(bought.provider_id)

    assert twilio.owned_numbers() == []
    assert twilio.calls("release")[0].path.endswith(
        f"/IncomingPhoneNumbers/{bought.provider_id}.json"
    )


async def test_twilio_release_by_number_and_twice(twilio, telephony_settings):
    provider = get_number_provider("twilio", settings=telephony_settings)
    bought = await provider.purchase("+12125550111")

    await provider.release("+12125550111")
    await provider.release("+12125550111")  # not on the account any more: nothing to do
    await provider.release(bought.provider_id)  # a 404 from Twilio: already released

    assert twilio.owned_numbers() == []
    assert [r.query for r in twilio.calls("lookup")] == [{"PhoneNumber": "+12125550111"}] * 2
    assert len(twilio.calls("release")) == 2


async def test_twilio_purchase_of_a_number_gone_carries_twilios_message(twilio, telephony_settings):
    provider = get_number_provider("twilio", settings=telephony_settings)

    with pytest.raises(NumberVendorError) as caught:
        await provider.purchase("+19995550000")

    error = caught.value
    assert error.provider == "twilio"
    assert error.provider_message == "PhoneNumber requested is not available"
    assert (error.http_status, error.provider_code, error.retryable) == (400, "21422", False)
    assert twilio.owned_numbers() == []


async def test_twilio_outage_is_retryable(twilio, telephony_settings):
    twilio.fail("search", 503, {"code": 20503, "message": "Service Unavailable", "status": 503})
    provider = get_number_provider("twilio", settings=telephony_settings)

    with pytest.raises(NumberVendorError) as caught:
        await provider.search("US")

    assert caught.value.retryable
    assert caught.value.http_status == 503


async def test_unreachable_provider_is_retryable(telephony_settings):
    provider = get_number_provider(
        "vonage", {"api_base": "http://127.0.0.1:9"}, settings=telephony_settings
    )

    with pytest.raises(NumberVendorError) as caught:
        await provider.search("GB")

    assert caught.value.retryable
    assert caught.value.http_status is None


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"country_code": "USA"}, "country_code"),
        ({"country_code": "US", "area_code": "65a"}, "area_code"),
        ({"country_code": "US", "contains": "55-12"}, "contains"),
        ({"country_code": "US", "limit": 0}, "limit"),
        ({"country_code": "US", "limit": 101}, "limit"),
    ],
)
@pytest.mark.parametrize("name", ["twilio", "vonage"])
async def test_bad_search_arguments_are_refused_before_any_request(
    twilio, vonage, telephony_settings, name, arguments, message
):
    provider = get_number_provider(name, settings=telephony_settings)

    with pytest.raises(ValueError, match=message):
        await provider.search(**arguments)

    assert twilio.calls() == [] and vonage.calls() == []


@pytest.mark.parametrize("name", ["twilio", "vonage"])
async def test_purchase_of_a_number_not_e164_is_refused(twilio, vonage, telephony_settings, name):
    provider = get_number_provider(name, settings=telephony_settings)

    with pytest.raises(ValueError, match="E.164"):
        await provider.purchase("07700 900001", country_code="GB")

    assert twilio.calls() == [] and vonage.calls() == []


# --------------------------------------------------------------------------------------------
# Vonage
# --------------------------------------------------------------------------------------------


async def test_vonage_search_voice_numbers_containing(vonage: FakeVonage, telephony_settings):
    provider = get_number_provider("vonage", settings=telephony_settings)

    found = await provider.search("GB", contains="900")

    # 447700900999 contains 900 but has no voice.
    assert [n.phone_number for n in found] == ["+447700900001", "+447700900123"]
    assert found[0] == AvailableNumber(
        phone_number="+447700900001",
        country_code="GB",
        capabilities={"voice": True, "sms": True},
        monthly_price="1.25",
        currency="EUR",
        provider="vonage",
    )
    [search] = vonage.calls("search")
    assert search.query == {
        "country": "GB",
        "features": "VOICE",
        "size": "20",
        "pattern": "900",
        "search_pattern": "1",
    }
    assert search.authorized
    assert "api_secret" not in search.query  # credentials travel as basic auth, not in URLs


async def test_vonage_search_by_area_code_and_pattern(vonage, telephony_settings):
    provider = get_number_provider("vonage", settings=telephony_settings)

    by_area = await provider.search("GB", area_code="20")
    by_both = await provider.search("GB", area_code="20", contains="1234")

    assert [n.phone_number for n in by_area] == ["+442079460000", "+442079461234"]
    assert [n.phone_number for n in by_both] == ["+442079461234"]
    assert vonage.calls("search")[0].query["pattern"] == "4420"
    assert vonage.calls("search")[0].query["search_pattern"] == "0"


async def test_vonage_search_with_no_results(vonage, telephony_settings):
    provider = get_number_provider("vonage", settings=telephony_settings)

    assert await provider.search("GB", contains="31415") == []


async def test_vonage_purchase_and_release(vonage: FakeVonage, telephony_settings):
    provider = get_number_provider("vonage", settings=telephony_settings)

    bought = await provider.purchase("+447700900123", country_code="gb")

    assert (bought.phone_number, bought.provider_id) == ("+447700900123", "GB:447700900123")
    assert vonage.owned_numbers() == ["447700900123"]
    assert vonage.calls("buy")[0].form == {"country": "GB", "msisdn": "447700900123"}

    await provider.release(bought.provider_id)

    assert vonage.owned_numbers() == []
    assert vonage.calls("cancel")[0].form == {"country": "GB", "msisdn": "447700900123"}


async def test_vonage_release_by_number_and_twice(vonage, telephony_settings):
    provider = get_number_provider("vonage", settings=telephony_settings)
    await provider.purchase("+12015550123", country_code="US")

    await provider.release("+12015550123")
    await provider.release("+12015550123")

    assert vonage.owned_numbers() == []
    assert len(vonage.calls("cancel")) == 1


async def test_vonage_purchase_needs_the_country(vonage, telephony_settings):
    provider = get_number_provider("vonage", settings=telephony_settings)

    with pytest.raises(ValueError, match="country_code"):
        await provider.purchase("+447700900123")

    assert vonage.calls() == []


async def test_vonage_refusal_carries_vonages_label(vonage, telephony_settings):
    provider = get_number_provider("vonage", settings=telephony_settings)

    with pytest.raises(NumberVendorError) as caught:
        await provider.purchase("+447700900555", country_code="GB")

    error = caught.value
    assert (error.provider, error.provider_message, error.provider_code) == (
        "vonage",
        "method failed",
        "420",
    )
    assert not error.retryable


async def test_vonage_refusal_in_a_200_body_is_an_error(vonage, telephony_settings):
    vonage.fail("buy", 200, {"error-code": "420", "error-code-label": "insufficient funds"})
    provider = get_number_provider("vonage", settings=telephony_settings)

    with pytest.raises(NumberVendorError, match="insufficient funds"):
        await provider.purchase("+447700900123", country_code="GB")


async def test_vonage_wrong_credentials(vonage, telephony_settings):
    provider = get_number_provider(
        "vonage", {"api_key": vonage.api_key, "api_secret": "wrong"}, settings=telephony_settings
    )

    with pytest.raises(NumberVendorError) as caught:
        await provider.search("GB")

    assert (caught.value.http_status, caught.value.provider_message) == (
        401,
        "authentication failed",
    )
