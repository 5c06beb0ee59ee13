"""The dashboard in a real browser: what a new user does, page by page, through the public API.

Each test signs up its own user in a fresh browser on an empty database, and asserts on what a
person sees (text, roles, labels). Screenshots of every page go to tests/web/screenshots/.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import expect

from tests.conftest import scripted_agent_config
from tests.fakes.openai_server import tool_call
from tests.web.conftest import SERVICE, WAIT_MS, screenshot, sign_up, simulated_call

KNOWLEDGE = b"# Harbor Cafe\n\nThe cafe opens at seven in the morning on weekdays.\n"
TRUNK = {"sip_address": "sip.example.com", "phone_number": "+16505551234", "provider": "vonage"}


async def create_agent(page, scripted_llm, name: str = "Harbor Cafe") -> str:
    """An agent on the scripted LLM, made through the API with the browser's session."""
    response = await page.request.post(
        "/agents",
        data=scripted_agent_config(
            scripted_llm, agent_name=name, phone_number=TRUNK["phone_number"]
        ),
    )
    assert response.status == 201, await response.text()
    return (await response.json())["id"]


async def test_a_new_user_creates_an_agent_teaches_it_and_chats_with_it(page, scripted_llm):
    await sign_up(page)
    await expect(page.get_by_text("No agents yet. Create your first agent")).to_be_visible()
    await screenshot(page, "agents-empty")

    await create_agent(page, scripted_llm, name="Sales desk")  # a hand-off destination
    await page.get_by_label("Agent name", exact=True).fill("Harbor Cafe")
    await page.get_by_role("button", name="Create agent").click()
    await expect(page.get_by_role("heading", name="Harbor Cafe")).to_be_visible()

    # Every field is on the agent's page; the providers come from the catalogue.
    await expect(page.get_by_label("Text-to-speech provider")).to_contain_text("Local (Piper)")
    await page.get_by_label("Custom base URL", exact=True).fill(scripted_llm.base_url)
    await page.get_by_label("Model", exact=True).fill("scripted")
    await page.get_by_label("System prompt", exact=True).fill("You are the host of Harbor Cafe.")
    await page.get_by_label("Dispositions", exact=True).fill("booked: a table was booked")
    await page.get_by_role("button", name="Add a transfer destination").click()
    transfer = page.get_by_role("group", name="New transfer destination")
    await transfer.get_by_label("Name", exact=True).fill("billing")
    await transfer.get_by_label("Number or sip: address").fill("+14155550100")
    await transfer.get_by_label("What it is for").fill("Billing desk")
    await transfer.get_by_label("Type").select_option("warm")
    await transfer.get_by_label("Warm: seconds to answer").fill("20")
    await page.get_by_role("button", name="Add a hand-off to another agent").click()
    handoff = page.get_by_role("group", name="New hand-off")
    await handoff.get_by_label("Agent").select_option(label="Sales desk")
    await handoff.get_by_label("Name", exact=True).fill("sales")
    await handoff.get_by_label("Carries").select_option("summary")
    await page.get_by_label("Keypad menu").fill("1: billing questions")
    await page.get_by_role("button", name="Add a function").click()
    new_function = page.get_by_role("group", name="New function")
    await new_function.get_by_label("Name", exact=True).fill("opening_hours")
    await new_function.get_by_label("URL", exact=True).fill("https://api.example.com/hours")
    await page.get_by_role("button", name="Save agent").click()
    await expect(page.get_by_role("status")).to_have_text("Saved.")
    await page.reload()
    await expect(page.get_by_label("System prompt", exact=True)).to_have_value(
        "You are the host of Harbor Cafe."
    )
    await expect(page.get_by_label("Dispositions", exact=True)).to_have_value(
        "booked: a table was booked"
    )
    saved = page.get_by_role("group", name="Transfer to billing")  # destinations as rows
    await expect(saved.get_by_label("Number or sip: address")).to_have_value("+14155550100")
    await expect(saved.get_by_label("What it is for")).to_have_value("Billing desk")
    await expect(saved.get_by_label("Type")).to_have_value("warm")
    await expect(saved.get_by_label("Warm: seconds to answer")).to_have_value("20")
    kept = page.get_by_role("group", name="Hand-off to sales")
    await expect(kept.get_by_label("Carries")).to_have_value("summary")
    await expect(kept.get_by_label("Agent")).to_contain_text("Sales desk")
    await expect(page.get_by_label("Keypad menu")).to_have_value("1: billing questions")
    function = page.get_by_role("group", name="Function opening_hours")
    await expect(function).to_be_visible()
    # Tried once from the page: no internet here, so it fails, and says what the model would hear.
    await function.get_by_role("button", name="Test this function").click()
    result = function.locator(".function-result")
    await expect(result).to_contain_text("Failed after", timeout=20_000)
    await expect(result).to_contain_text("opening_hours")

    await page.get_by_label("Upload files").set_input_files(
        files=[{"name": "cafe.md", "mimeType": "text/markdown", "buffer": KNOWLEDGE}]
    )
    await page.get_by_role("button", name="Upload", exact=True).click()
    files = page.get_by_role("table", name="Knowledge files")
    await expect(files.get_by_role("row", name=re.compile("cafe.md"))).to_contain_text(
        "ready", timeout=60_000
    )
    await page.get_by_label("Question").fill("When does the cafe open?")
    await page.get_by_role("button", name="Search the knowledge").click()
    await expect(page.get_by_text("opens at seven in the morning")).to_be_visible()
    await screenshot(page, "agent")

    scripted_llm.on("open", tool_call("lookup_knowledge", query="opening time"))
    scripted_llm.on_tool("lookup_knowledge", "We open at seven on weekdays.")
    await page.get_by_role("link", name="Chat with this agent").click()
    await expect(page.get_by_text("Type a message below to start")).to_be_visible()
    await page.get_by_label("Your message").fill("When do you open?")
    await page.get_by_role("button", name="Send").click()
    conversation = page.get_by_role("list", name="Conversation")
    await expect(conversation).to_contain_text("We open at seven on weekdays.")
    await expect(conversation).to_contain_text("Tool call")
    await expect(conversation).to_contain_text("Sources: cafe.md")
    await screenshot(page, "chat")


async def test_a_calls_page_shows_the_conversation_recording_and_latency(page, api, scripted_llm):
    await sign_up(page)
    agent_id = await create_agent(page, scripted_llm)
    call_id = await simulated_call(api, agent_id)

    await page.goto("/app/calls")
    calls = page.get_by_role("table", name="Calls")
    await expect(calls.get_by_role("row")).to_have_count(2)  # the heading and the call
    await expect(calls).to_contain_text("completed")
    await expect(page.get_by_role("link", name="Export CSV")).to_have_attribute(
        "href", "/calls/export"
    )
    await screenshot(page, "calls")
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Export CSV").click()
    download = await download_info.value
    assert download.suggested_filename.endswith(".csv")
    exported = await asyncio.to_thread(Path(await download.path()).read_text)
    assert call_id in exported
    await calls.get_by_role("link").first.click()
    await page.wait_for_url(f"**/app/calls/{call_id}")

    transcript = page.get_by_role("list", name="Transcript")
    await expect(transcript).to_contain_text("Hello, Harbor Cafe.")
    await expect(transcript).to_contain_text("When do you open?")
    await expect(transcript).to_contain_text('opening_hours({"day":"monday"})')
    await expect(transcript).to_contain_text("We open at seven.")
    latency = page.get_by_role("table", name="Latency per turn (ms)")
    await expect(latency.get_by_role("row", name=re.compile("^1 310 420 180 910"))).to_be_visible()
    await expect(
        page.get_by_role("img", name="Latency of each turn in milliseconds")
    ).to_be_visible()
    await expect(page.get_by_text("No webhook events were sent for this call.")).to_be_visible()

    # The recording plays: from the waveform with the keyboard, as from the audio controls.
    waveform = page.get_by_role("slider", name="Waveform: seek in the recording")
    await expect(waveform).to_be_visible()
    await waveform.focus()
    await page.keyboard.press("Space")
    await page.wait_for_function("document.querySelector('audio').currentTime > 0", timeout=WAIT_MS)
    await screenshot(page, "call")


async def test_a_batch_upload_shows_rejected_rows_and_its_progress(
    page, api, scripted_llm, livekit_server
):
    await sign_up(page)
    await page.goto("/app/numbers")
    await expect(page.get_by_text("No phone numbers yet.")).to_be_visible()
    await page.get_by_label("Phone number", exact=True).fill(TRUNK["phone_number"])
    await page.get_by_label("SIP address").fill(TRUNK["sip_address"])
    await page.get_by_label("Provider name").fill(TRUNK["provider"])
    await page.get_by_role("button", name="Register the trunk").click()
    numbers = page.get_by_role("table", name="Phone numbers")
    await expect(numbers).to_contain_text(TRUNK["phone_number"])
    await create_agent(page, scripted_llm)
    await page.reload()
    await page.get_by_role("button", name="Map the number").click()
    await expect(numbers).to_contain_text("Harbor Cafe")
    await screenshot(page, "numbers")

    await page.goto("/app/batches")
    await expect(page.get_by_text("No batches yet.")).to_be_visible()
    await page.get_by_label("Batch name").fill("Spring reminders")
    await page.get_by_label("Calls per minute").fill("600")
    rows = "phone_number,name\n+14155550001,Ann\nnot-a-number,Bob\n+14155550002,Cy\n"
    await page.get_by_label("CSV file").set_input_files(
        files=[{"name": "leads.csv", "mimeType": "text/csv", "buffer": rows.encode()}]
    )
    await page.get_by_role("button", name="Upload and start").click()
    await expect(page.get_by_text("Accepted 2 numbers; rejected 1 rows.")).to_be_visible()
    rejected = page.get_by_role("table", name="Rejected rows")
    await expect(rejected.get_by_role("row")).to_have_count(2)
    await expect(rejected).to_contain_text("3")  # the CSV's third line
    await screenshot(page, "batches")

    await page.get_by_role("link", name="Watch the batch's progress").click()
    await expect(page.get_by_role("heading", name="Batch Spring reminders")).to_be_visible()
    # A stand-in worker ends each dispatched call; the page follows without a reload.
    ended: set[str] = set()

    async def end_dispatched_calls() -> bool:
        for dispatch in list(livekit_server.dispatches.values()):
            call_id = json.loads(dispatch.metadata)["call_id"]
            if call_id not in ended:
                reported = await api.post(
                    f"/internal/calls/{call_id}/report",
                    json={"status": "completed", "end_reason": "user_hangup"},
                    headers=SERVICE,
                )
                assert reported.status_code == 200, reported.text
                ended.add(call_id)
        return len(ended) >= 2

    deadline = time.monotonic() + WAIT_MS / 1000
    while not await end_dispatched_calls():
        assert time.monotonic() < deadline, f"the dialer dispatched only {len(ended)} calls"
        await page.wait_for_timeout(250)  # the dialer's pace, not an assertion's wait
    await expect(page.get_by_text("100% done")).to_be_visible()
    await expect(page.get_by_role("table", name="Numbers of the batch")).to_contain_text(
        "+14155550002"
    )
    await expect(page.get_by_role("table", name="Outcomes")).to_contain_text("answered")
    await screenshot(page, "batch")


async def test_the_report_shows_the_calls_as_charts_and_figures(page, api, scripted_llm):
    await sign_up(page)
    await page.goto("/app/reports")
    await expect(page.get_by_text("No calls in this range.").first).to_be_visible()
    agent_id = await create_agent(page, scripted_llm)
    await simulated_call(api, agent_id)

    await page.get_by_label("Time zone").fill("Europe/Paris")
    await page.get_by_role("button", name="Show the report").click()
    totals = page.locator("#totals")
    await expect(totals).to_contain_text("Calls1")
    await expect(totals).to_contain_text("Answered1 (100%)")
    per_agent = page.get_by_role("table", name="Calls per agent")
    await expect(per_agent.get_by_role("row", name="Harbor Cafe 1 1")).to_be_visible()
    latency = page.get_by_role("table", name="Latency per agent")
    await expect(latency).to_contain_text("Harbor Cafe")
    for chart in ("Calls and answered calls per day", "Calls per disposition"):
        await expect(page.get_by_role("img", name=chart)).to_be_visible()
    await screenshot(page, "reports")


async def test_keys_members_and_webhooks_are_managed_from_the_settings_pages(page, mailbox):
    await sign_up(page)
    await page.goto("/app/api-keys")
    await expect(page.get_by_text("No API keys yet.")).to_be_visible()
    await page.get_by_label("Key name").fill("CRM sync")
    await page.get_by_role("button", name="Create key").click()
    await expect(page.get_by_text("Copy this key now: it is shown only once.")).to_be_visible()
    secret = await page.locator("#new-key-secret").inner_text()
    assert secret.startswith("vxk_")
    await expect(page.get_by_role("table", name="API keys")).to_contain_text("CRM sync")
    await expect(page.get_by_role("button", name="Copy the key")).to_be_visible()
    await screenshot(page, "api-keys")
    await page.reload()
    assert secret not in await page.content()  # shown once only

    await page.goto("/app/workspace")
    await expect(page.get_by_role("table", name="Members")).to_contain_text("ada@example.com")
    await page.get_by_label("Email", exact=True).fill("grace@example.com")
    await page.get_by_label("Role").select_option("developer")
    await page.get_by_role("button", name="Send the invitation").click()
    pending = page.get_by_role("table", name="Pending invitations")
    await expect(
        pending.get_by_role("row", name=re.compile("grace@example.com developer"))
    ).to_be_visible()
    await page.get_by_label("Workspace name").fill("Night shift")
    await page.get_by_role("button", name="Create workspace").click()
    await expect(page.get_by_label("Workspace", exact=True)).to_have_value(re.compile(".+"))
    await expect(page.get_by_label("Name", exact=True)).to_have_value("Night shift")
    await expect(page.get_by_label("Workspace", exact=True).get_by_role("option")).to_have_count(2)
    await screenshot(page, "workspace")

    await page.goto("/app/webhooks")
    await expect(page.get_by_text("No deliveries yet.")).to_be_visible()
    await page.get_by_label("Endpoint URL").fill("https://hooks.example.com/voxline")
    await page.get_by_role("button", name="Save endpoint").click()
    await expect(page.get_by_text("Copy the signing secret now")).to_be_visible()
    await page.reload()
    await expect(page.get_by_label("Endpoint URL")).to_have_value(
        "https://hooks.example.com/voxline"
    )
    await expect(page.get_by_text(re.compile("Signing secret: "))).to_be_visible()
    await screenshot(page, "webhooks")


async def test_signed_out_visitors_are_sent_to_log_in_and_come_back(page):
    await sign_up(page)
    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_url("**/app/login")
    await page.goto("/app/calls")
    await page.wait_for_url(re.compile(r"/app/login\?next="))
    await screenshot(page, "login")
    # Keyboard only: the fields and the button are reachable in order.
    await page.get_by_label("Email").focus()
    await page.keyboard.type("ada@example.com")
    await page.keyboard.press("Tab")
    await page.keyboard.type("correct-horse-42")
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/app/calls")
    await expect(page.get_by_text("No calls yet.")).to_be_visible()

    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_url("**/app/login")
    await page.get_by_label("Email").fill("ada@example.com")
    await page.get_by_label("Password").fill("wrong-password-1")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("status")).to_contain_text("Wrong email or password")

    # The links in invitation and reset emails open the forms, the code filled in. The code is
    # in the link's fragment, which the browser never sends to a server (or its access log).
    # Signed out, the invitation asks to log in first, then comes back to it.
    await page.goto("/accept-invite#token=invite-code-1")
    await page.wait_for_url(re.compile(r"/app/login\?next="))
    await page.get_by_label("Email").fill("ada@example.com")
    await page.get_by_label("Password").fill("correct-horse-42")
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url("**/app/accept-invite#token=invite-code-1")
    await expect(page.get_by_label("Invitation code")).to_have_value("invite-code-1")
    await page.get_by_role("button", name="Join the workspace").click()
    await expect(page.get_by_role("status")).to_contain_text("invitation")
    await page.goto("/reset-password#token=reset-code-1")
    await expect(page.get_by_label("Reset code")).to_have_value("reset-code-1")
    # A link from an earlier release (`?token=`) has its code moved into the fragment.
    await page.goto("/reset-password?token=reset-code-2")
    await page.wait_for_url("**/app/reset-password#token=reset-code-2")
    await expect(page.get_by_label("Reset code")).to_have_value("reset-code-2")

    await page.goto("/app/login")
    await page.get_by_role("link", name="Forgot your password?").click()
    await page.get_by_label("Email").fill("ada@example.com")
    await page.get_by_role("button", name="Send the reset link").click()
    await expect(page.get_by_role("status")).not_to_be_empty()
    await screenshot(page, "forgot-password")


async def test_a_campaign_is_set_up_within_the_servers_ranges_and_takes_a_prospect_list(
    page, scripted_llm
):
    if (await page.request.get("/api/v/options/")).status == 404:
        pytest.skip("the campaigns API is not part of this build")
    await sign_up(page)
    assert (await page.request.post("/phonenumbers/sip_trunk", data=TRUNK)).status == 201
    await create_agent(page, scripted_llm)
    await page.goto("/app/campaigns")
    await expect(page.get_by_text("No campaigns yet.")).to_be_visible()
    await expect(page.get_by_text("No numbers on the do-not-call list.")).to_be_visible()
    options = await (await page.request.get("/api/v/options/")).json()
    ratio = options["numeric"]["max_active_calls"]
    limit = page.get_by_label("Max active calls")
    await expect(limit).to_have_attribute("max", str(int(ratio["max"])))
    await expect(limit).to_have_value(str(int(ratio["default"])))

    await page.get_by_label("Phone number", exact=True).fill("+14155550199")
    await page.get_by_role("button", name="Add to the list").click()
    await expect(page.get_by_role("table", name="Do-not-call list")).to_contain_text("+14155550199")
    await page.get_by_label("Campaign name").fill("Winter follow-up")
    await page.get_by_role("button", name="Create campaign").click()
    await expect(page.get_by_role("heading", name="Campaign Winter follow-up")).to_be_visible()
    await screenshot(page, "campaign")

    await page.get_by_label("List name").fill("November leads")
    rows = "phone_number,name\n+14155550101,Ann\nnonsense,Bob\n"
    await page.get_by_label("CSV file").set_input_files(
        files=[{"name": "leads.csv", "mimeType": "text/csv", "buffer": rows.encode()}]
    )
    await page.get_by_role("button", name="Upload the list").click()
    lists = page.get_by_role("table", name="Prospect lists")
    await expect(
        lists.get_by_role("row", name=re.compile("November leads completed"))
    ).to_be_visible()
    await lists.get_by_role("button", name=re.compile("show why")).click()
    await expect(page.get_by_role("table", name="Rejected rows of November leads")).to_contain_text(
        "3"
    )
    await page.goto("/app/campaigns")
    await expect(page.get_by_role("table", name="Campaigns")).to_contain_text("Winter follow-up")
    await screenshot(page, "campaigns")


async def test_a_voice_call_from_the_chat_page_dispatches_the_agent_to_its_room(
    page, scripted_llm, livekit_server
):
    await sign_up(page)
    agent_id = await create_agent(page, scripted_llm)
    allowed = await page.request.put(f"/agents/{agent_id}", data={"allow_web_calls": True})
    assert allowed.status == 200, await allowed.text()
    await page.goto(f"/app/chat?agent={agent_id}")
    await page.get_by_role("button", name="Talk by voice").click()
    # The stand-in mints rooms but speaks no WebRTC: the agent is dispatched to the call's room,
    # then the browser's connection fails and the page says so.
    await expect(page.get_by_role("status")).to_contain_text("Could not connect the voice call")
    assert len(livekit_server.dispatches) == 1


@pytest.mark.parametrize(
    ("page_path", "held_path", "button"),
    [
        ("/app/chat?agent={agent_id}", "/agents?page_size=100", "Send"),
        ("/app/agents/{agent_id}", "/agents/{agent_id}", "Save agent"),
    ],
    ids=["chat", "agent"],
)
async def test_a_form_waits_for_what_it_acts_on_before_it_can_be_sent(
    page, scripted_llm, page_path, held_path, button
):
    """A quick click before the page's data arrives never sends a half-filled form (a chat to
    no agent, or an agent saved with empty settings): the button waits for the data."""
    await sign_up(page)
    agent_id = await create_agent(page, scripted_llm)
    held_url = re.compile("^https?://[^/]+" + re.escape(held_path.format(agent_id=agent_id)) + "$")
    requested = asyncio.Event()
    release = asyncio.Event()

    async def hold(route) -> None:
        requested.set()
        await release.wait()
        await route.continue_()

    await page.route(held_url, hold)
    await page.goto(page_path.format(agent_id=agent_id))
    await asyncio.wait_for(requested.wait(), WAIT_MS / 1000)
    await page.wait_for_load_state("domcontentloaded")
    send = page.get_by_role("button", name=button)
    await expect(send).to_be_disabled()
    release.set()
    await expect(send).to_be_enabled()


async def test_the_report_range_is_the_last_30_days_in_the_chosen_time_zone(
    browser, dashboard_server, db, livekit
):
    # The browser 14 hours ahead of UTC, the report's zone 11 hours behind: their dates always
    # differ, so the range must follow the zone the person chose, not the browser's clock.
    context = await browser.new_context(base_url=dashboard_server, timezone_id="Pacific/Kiritimati")
    try:
        page = await context.new_page()
        await sign_up(page)
        await page.goto("/app/reports")
        zone, since, until = (page.get_by_label(name) for name in ("Time zone", "From", "Until"))
        await expect(zone).to_have_value("Pacific/Kiritimati")
        browser_today = datetime.now(ZoneInfo("Pacific/Kiritimati")).date()
        await expect(until).to_have_value(browser_today.isoformat())
        await zone.fill("Pacific/Pago_Pago")
        today = datetime.now(ZoneInfo("Pacific/Pago_Pago")).date()
        await expect(until).to_have_value(today.isoformat())
        await expect(since).to_have_value((today - timedelta(days=29)).isoformat())
        # Dates the person picked stay as they are.
        await since.fill("2026-01-01")
        await zone.fill("Pacific/Kiritimati")
        await expect(until).to_have_value(today.isoformat())
        await expect(since).to_have_value("2026-01-01")
    finally:
        await context.close()
